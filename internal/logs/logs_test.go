package logs

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

const ns = "dev"

var t0 = time.Date(2026, 1, 1, 10, 0, 0, 0, time.UTC)

func at(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }

type containerState struct {
	name, id   string
	terminated bool
	lastID     string // LastTerminationState.Terminated.ContainerID
}

func testPod(name string, init []containerState, cs ...containerState) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, UID: types.UID("uid-" + name), Labels: map[string]string{"app": "hello", "devloop.dev/project": "hello"}},
		Status:     corev1.PodStatus{Phase: corev1.PodRunning},
	}
	conv := func(c containerState) corev1.ContainerStatus {
		s := corev1.ContainerStatus{Name: c.name, ContainerID: c.id}
		switch {
		case c.id == "":
			s.State.Waiting = &corev1.ContainerStateWaiting{Reason: "ContainerCreating"}
		case c.terminated:
			s.State.Terminated = &corev1.ContainerStateTerminated{ContainerID: c.id}
		default:
			s.State.Running = &corev1.ContainerStateRunning{}
		}
		if c.lastID != "" {
			s.LastTerminationState.Terminated = &corev1.ContainerStateTerminated{ContainerID: c.lastID}
		}
		return s
	}
	for _, c := range init {
		p.Status.InitContainerStatuses = append(p.Status.InitContainerStatuses, conv(c))
	}
	for _, c := range cs {
		p.Status.ContainerStatuses = append(p.Status.ContainerStatuses, conv(c))
	}
	return p
}

type harness struct {
	t      *testing.T
	cs     *fake.Clientset
	fs     *fakeStreamer
	out    *syncBuffer
	m      *Manager
	cancel context.CancelFunc
	done   chan error

	mu       sync.Mutex
	statuses []TailStatus
}

func start(t *testing.T, opts Options, pods ...*corev1.Pod) *harness {
	h := &harness{t: t, fs: newFakeStreamer(), out: &syncBuffer{}, done: make(chan error, 1)}
	h.cs = fake.NewClientset()
	for _, p := range pods {
		if _, err := h.cs.CoreV1().Pods(ns).Create(context.Background(), p, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	opts.Namespace = ns
	opts.Streamer = h.fs
	if opts.Selector == nil {
		opts.Selector = labels.SelectorFromSet(labels.Set{"devloop.dev/project": "hello"})
	}
	opts.OnChange = func(s TailStatus) { h.mu.Lock(); h.statuses = append(h.statuses, s); h.mu.Unlock() }
	sel := opts.Selector.String()
	factory := informers.NewSharedInformerFactoryWithOptions(h.cs, 0, informers.WithNamespace(ns),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.LabelSelector = sel }))
	t.Cleanup(factory.Shutdown)
	opts.Informers = factory
	h.m = New(h.cs, h.out, opts)
	return h
}

func (h *harness) run() {
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	go func() { h.done <- h.m.Run(ctx) }()
}

func (h *harness) stop() {
	h.cancel()
	if err := <-h.done; err != nil {
		h.t.Fatalf("Run: %v", err)
	}
}

func (h *harness) updatePod(p *corev1.Pod) {
	h.t.Helper()
	if _, err := h.cs.CoreV1().Pods(ns).UpdateStatus(context.Background(), p, metav1.UpdateOptions{}); err != nil {
		h.t.Fatal(err)
	}
}

// lines returns the output lines.
func (h *harness) lines() []string {
	s := strings.TrimSuffix(h.out.String(), "\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

// linesOf returns the texts printed under prefix, in order.
func (h *harness) linesOf(prefix string) []string {
	var out []string
	for _, l := range h.lines() {
		if p, text, ok := strings.Cut(l, " | "); ok && p == prefix {
			out = append(out, text)
		}
	}
	return out
}

func equal(t *testing.T, what string, got, want []string) {
	t.Helper()
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("%s:\n got %q\nwant %q", what, got, want)
	}
}

const pfx = "hello/x2x9z/app"

func TestReconnectWithinSameSecondLosesAndRepeatsNothing(t *testing.T) {
	// Lines within one second, two pairs sharing exact timestamps; the
	// first stream breaks after every possible number of lines.
	texts := []string{"a", "b", "c", "d", "e"}
	stamps := []int{100, 100, 200, 300, 300}
	for _, fault := range []fakeFault{{after: 0}, {after: 1}, {after: 2}, {after: 3}, {after: 4}, {after: 1, eof: true}, {after: 4, eof: true}} {
		t.Run(fmt.Sprintf("after%d_eof%v", fault.after, fault.eof), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				h := start(t, Options{Follow: true}, testPod("hello-7d9c5b6f4-x2x9z", nil, containerState{name: "app", id: "c1"}))
				h.fs.start("hello-7d9c5b6f4-x2x9z", "app", "c1", fault)
				for i, s := range texts {
					h.fs.log("hello-7d9c5b6f4-x2x9z", "app", at(stamps[i]), s)
				}
				h.run()
				synctest.Wait()
				if fault.eof {
					// A clean end while the pod says "running" waits for
					// the status to settle before resuming.
					time.Sleep(settleMax + time.Second)
					synctest.Wait()
				}
				equal(t, "lines", h.linesOf(pfx), texts)
				// More lines after the reconnect still flow.
				h.fs.log("hello-7d9c5b6f4-x2x9z", "app", at(300), "f")
				h.fs.log("hello-7d9c5b6f4-x2x9z", "app", at(1500), "g")
				synctest.Wait()
				equal(t, "lines after more output", h.linesOf(pfx), append(texts, "f", "g"))
				h.fs.mu.Lock()
				calls := h.fs.calls
				h.fs.mu.Unlock()
				if len(calls) != 2 {
					t.Fatalf("%d streams opened, want 2", len(calls))
				}
				if fault.after > 0 {
					if st := calls[1].SinceTime; st == nil || !st.Time.Equal(t0) {
						t.Errorf("resume SinceTime = %v, want %v", st, t0)
					}
				}
				if !calls[0].Follow || !calls[0].Timestamps || calls[0].Container != "app" {
					t.Errorf("first stream options %+v", calls[0])
				}
				h.stop()
			})
		})
	}
}

func TestContainerRestartGetsNewTailAndKeepsCrashLines(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const pod = "hello-7d9c5b6f4-x2x9z"
		h := start(t, Options{Follow: true}, testPod(pod, nil, containerState{name: "app", id: "c1"}))
		h.fs.start(pod, "app", "c1")
		h.fs.log(pod, "app", at(0), "starting")
		h.run()
		synctest.Wait()
		h.fs.log(pod, "app", at(10), "panic: boom")
		// The container dies and kubelet starts c2; only then does the
		// pod status (and so the informer) catch up.
		h.fs.start(pod, "app", "c2")
		h.fs.log(pod, "app", at(2000), "starting again")
		synctest.Wait()
		h.updatePod(testPod(pod, nil, containerState{name: "app", id: "c2", lastID: "c1"}))
		synctest.Wait()
		equal(t, "lines", h.linesOf(pfx), []string{"starting", "panic: boom", "starting again"})
		h.fs.log(pod, "app", at(2500), "serving")
		synctest.Wait()
		equal(t, "lines", h.linesOf(pfx), []string{"starting", "panic: boom", "starting again", "serving"})

		time.Sleep(settleMax) // let c1's tail see the settled status
		synctest.Wait()
		equal(t, "lines", h.linesOf(pfx), []string{"starting", "panic: boom", "starting again", "serving"})
		h.mu.Lock()
		got := map[string][]string{}
		for _, s := range h.statuses {
			got[s.ContainerID] = append(got[s.ContainerID], s.State)
		}
		h.mu.Unlock()
		equal(t, "c1 tail statuses", got["c1"], []string{StateAttached, StateDetached, StateEnded})
		equal(t, "c2 tail statuses", got["c2"], []string{StateAttached})
		h.stop()
	})
}

func TestRestartBeforeOldStreamDrainedUsesPrevious(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const pod = "hello-7d9c5b6f4-x2x9z"
		h := start(t, Options{Follow: true}, testPod(pod, nil, containerState{name: "app", id: "c1"}))
		// c1's stream breaks after one line; by the time the tail
		// reconnects, c1 has been replaced by c2.
		h.fs.start(pod, "app", "c1", fakeFault{after: 1, stall: true})
		h.fs.log(pod, "app", at(0), "one")
		h.fs.log(pod, "app", at(1), "two")
		h.fs.log(pod, "app", at(2), "three")
		h.run()
		synctest.Wait()
		h.fs.start(pod, "app", "c2")
		h.fs.log(pod, "app", at(3000), "fresh")
		h.updatePod(testPod(pod, nil, containerState{name: "app", id: "c2", lastID: "c1"}))
		synctest.Wait()
		// The stall is detected after the silence timeout.
		time.Sleep(31 * time.Second)
		synctest.Wait()
		got := h.linesOf(pfx)
		// c1's lines come from its Previous log, c2's from its own tail;
		// the two tails interleave, so compare per-instance order.
		var c1, c2 []string
		for _, l := range got {
			if l == "fresh" {
				c2 = append(c2, l)
			} else {
				c1 = append(c1, l)
			}
		}
		equal(t, "c1 lines", c1, []string{"one", "two", "three"})
		equal(t, "c2 lines", c2, []string{"fresh"})
		h.stop()
	})
}

func TestSilentStreamIsRecheckedWithoutDuplicates(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const pod = "hello-7d9c5b6f4-x2x9z"
		h := start(t, Options{Follow: true, SilenceTimeout: 30 * time.Second}, testPod(pod, nil, containerState{name: "app", id: "c1"}))
		h.fs.start(pod, "app", "c1", fakeFault{after: 2, stall: true})
		h.fs.log(pod, "app", at(0), "a")
		h.fs.log(pod, "app", at(0), "b")
		h.fs.log(pod, "app", at(5), "c")
		begin := time.Now()
		h.run()
		synctest.Wait()
		equal(t, "before stall detection", h.linesOf(pfx), []string{"a", "b"})
		time.Sleep(30 * time.Second)
		synctest.Wait()
		equal(t, "after stall detection", h.linesOf(pfx), []string{"a", "b", "c"})
		if d := time.Since(begin); d < 30*time.Second {
			t.Errorf("reconnected after %s, before the silence timeout", d)
		}
		h.stop()
	})
}

func TestInitAndWaitingContainers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const pod = "hello-7d9c5b6f4-x2x9z"
		h := start(t, Options{Follow: true},
			testPod(pod, []containerState{{name: "migrate", id: "i1", terminated: true}}, containerState{name: "app"}))
		h.fs.start(pod, "migrate", "i1")
		h.fs.log(pod, "migrate", at(0), "migrated")
		h.fs.terminate(pod, "migrate")
		h.run()
		synctest.Wait()
		equal(t, "init lines", h.linesOf("hello/x2x9z/migrate"), []string{"migrated"})
		if got := h.linesOf(pfx); len(got) != 0 {
			t.Errorf("waiting container printed %q", got)
		}
		h.fs.start(pod, "app", "c1")
		h.fs.log(pod, "app", at(1000), "up")
		h.updatePod(testPod(pod, []containerState{{name: "migrate", id: "i1", terminated: true}}, containerState{name: "app", id: "c1"}))
		synctest.Wait()
		equal(t, "app lines", h.linesOf(pfx), []string{"up"})
		// The finished init container's tail ended after one stream.
		h.fs.mu.Lock()
		opened := h.fs.instances[pod+"/migrate"][0].opened
		h.fs.mu.Unlock()
		if opened != 1 {
			t.Errorf("init container stream opened %d times, want 1", opened)
		}
		h.stop()
	})
}

func TestPodDeletedEndsTails(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const pod = "hello-7d9c5b6f4-x2x9z"
		h := start(t, Options{Follow: true}, testPod(pod, nil, containerState{name: "app", id: "c1"}))
		h.fs.start(pod, "app", "c1")
		h.fs.log(pod, "app", at(0), "bye")
		h.run()
		synctest.Wait()
		if err := h.cs.CoreV1().Pods(ns).Delete(context.Background(), pod, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		h.fs.terminate(pod, "app")
		synctest.Wait()
		h.mu.Lock()
		last := h.statuses[len(h.statuses)-1]
		h.mu.Unlock()
		if last.State != StateEnded {
			t.Errorf("last status %+v, want ended", last)
		}
		h.stop()
	})
}

func TestNoFollowPrintsAndReturns(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const pod = "hello-7d9c5b6f4-x2x9z"
		h := start(t, Options{}, testPod(pod, nil, containerState{name: "app", id: "c1"}))
		h.fs.start(pod, "app", "c1")
		h.fs.log(pod, "app", at(0), "one")
		h.fs.log(pod, "app", at(1), "two")
		if err := h.m.Run(context.Background()); err != nil {
			t.Fatal(err)
		}
		equal(t, "lines", h.linesOf(pfx), []string{"one", "two"})
	})
}

func TestFilterSkipsPods(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const pod = "hello-7d9c5b6f4-x2x9z"
		h := start(t, Options{Filter: func(*corev1.Pod) bool { return false }}, testPod(pod, nil, containerState{name: "app", id: "c1"}))
		h.fs.start(pod, "app", "c1")
		h.fs.log(pod, "app", at(0), "one")
		if err := h.m.Run(context.Background()); err != nil {
			t.Fatal(err)
		}
		equal(t, "lines", h.linesOf(pfx), nil)
	})
}

func TestSinceSetsSinceTime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const pod = "hello-7d9c5b6f4-x2x9z"
		h := start(t, Options{Since: 5 * time.Minute}, testPod(pod, nil, containerState{name: "app", id: "c1"}))
		h.fs.start(pod, "app", "c1")
		if err := h.m.Run(context.Background()); err != nil {
			t.Fatal(err)
		}
		if st := h.fs.calls[0].SinceTime; st == nil || !st.Time.Equal(time.Now().Add(-5*time.Minute).Truncate(time.Second)) && !st.Time.Equal(time.Now().Add(-5*time.Minute)) {
			t.Errorf("SinceTime = %v, want now-5m", st)
		}
	})
}

func TestLongLinesAreSplitAndLinesAreAtomic(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const pod = "hello-7d9c5b6f4-x2x9z"
		h := start(t, Options{Follow: true, MaxLineBytes: 64}, testPod(pod, nil, containerState{name: "app", id: "c1"}))
		long := strings.Repeat("0123456789", 30)
		h.fs.start(pod, "app", "c1", fakeFault{after: 2})
		h.fs.log(pod, "app", at(0), "short")
		h.fs.log(pod, "app", at(0), long)
		h.fs.log(pod, "app", at(1), "after")
		h.run()
		synctest.Wait()
		got := h.linesOf(pfx)
		if len(got) < 4 || got[0] != "short" || got[len(got)-1] != "after" {
			t.Fatalf("lines %q", got)
		}
		if joined := strings.Join(got[1:len(got)-1], ""); joined != long {
			t.Errorf("fragments join to %q, want the long line", joined)
		}
		for _, l := range got {
			if len(l) > 64 {
				t.Errorf("fragment of %d bytes exceeds the 64-byte limit", len(l))
			}
		}
		h.out.mu.Lock()
		writes := h.out.writes
		h.out.mu.Unlock()
		if writes != len(h.lines()) {
			t.Errorf("%d writes for %d lines: lines must be written whole", writes, len(h.lines()))
		}
		h.stop()
	})
}

func TestPrefix(t *testing.T) {
	tests := []struct {
		svc, pod, container string
		color               bool
		want                string
	}{
		{"hello", "hello-7d9c5b6f4-x2x9z", "app", false, "hello/x2x9z/app"},
		{"db", "db-0", "postgres", false, "db/0/postgres"},
		{"solo", "solo", "main", false, "solo/main"},
		{"hello", "hello-7d9c5b6f4-x2x9z", "app", true, "\x1b[" + fmt.Sprint(colorOf("hello-7d9c5b6f4-x2x9z/app")) + "mhello/x2x9z/app\x1b[0m"},
	}
	for _, tt := range tests {
		if got := Prefix(tt.svc, tt.pod, tt.container, tt.color); got != tt.want {
			t.Errorf("Prefix(%q, %q, %q, %v) = %q, want %q", tt.svc, tt.pod, tt.container, tt.color, got, tt.want)
		}
	}
	// Stable, and different containers usually differ.
	if Prefix("a", "a-1", "x", true) != Prefix("a", "a-1", "x", true) {
		t.Error("color not stable")
	}
	seen := map[string]bool{}
	for i := range 20 {
		seen[Prefix("a", fmt.Sprintf("a-%d", i), "x", true)[:5]] = true
	}
	if len(seen) < 3 {
		t.Errorf("only %d colors over 20 pods", len(seen))
	}
}

func TestColoredOutput(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const pod = "hello-7d9c5b6f4-x2x9z"
		h := start(t, Options{Color: true}, testPod(pod, nil, containerState{name: "app", id: "c1"}))
		h.fs.start(pod, "app", "c1")
		h.fs.log(pod, "app", at(0), "hi")
		if err := h.m.Run(context.Background()); err != nil {
			t.Fatal(err)
		}
		want := Prefix("hello", pod, "app", true) + " | hi\n"
		if got := h.out.String(); got != want || !strings.HasPrefix(got, "\x1b[") {
			t.Errorf("output %q, want %q", got, want)
		}
	})
}

func TestSplitTimestamp(t *testing.T) {
	tests := []struct {
		in       string
		wantTS   time.Time
		wantText string
		ok       bool
	}{
		{"2026-01-01T10:00:00.123456789Z hello world", t0.Add(123456789), "hello world", true},
		{"2026-01-01T10:00:00Z ", t0, "", true},
		{"2026-01-01T10:00:00Z", t0, "", true},
		{"no timestamp here", time.Time{}, "no timestamp here", false},
	}
	for _, tt := range tests {
		ts, text, ok := splitTimestamp([]byte(tt.in))
		if ok != tt.ok || !ts.Equal(tt.wantTS) || string(text) != tt.wantText {
			t.Errorf("splitTimestamp(%q) = %v, %q, %v", tt.in, ts, text, ok)
		}
	}
}

// The API server unreachable for a while (issue 16, fault 2): the tail is
// back within about a second of it answering again, whatever the length of
// the outage (its retries while it is down are at most a second apart), and
// nothing is lost or printed twice.
func TestTailIsBackSoonAfterTheAPIServerAnswers(t *testing.T) {
	for _, outage := range []int{20, 37, 45, 52, 57, 60, 64, 90} {
		t.Run(fmt.Sprintf("%ds", outage), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				const pod = "hello-7d9c5b6f4-x2x9z"
				h := start(t, Options{Follow: true}, testPod(pod, nil, containerState{name: "app", id: "c1"}))
				var down atomic.Bool
				h.fs.down = down.Load
				h.cs.PrependReactor("get", "pods", func(k8stesting.Action) (bool, runtime.Object, error) {
					if down.Load() {
						return true, nil, errors.New("dial tcp 127.0.0.1:6443: connect: connection refused")
					}
					return false, nil, nil
				})
				h.fs.start(pod, "app", "c1", fakeFault{after: 1})
				h.fs.log(pod, "app", at(100), "a")
				h.fs.log(pod, "app", at(200), "b")
				down.Store(true) // the first stream breaks after "a", with the API server gone
				h.run()
				synctest.Wait()
				time.Sleep(time.Duration(outage) * time.Second)
				down.Store(false)
				back := time.Now()
				for len(h.linesOf(pfx)) < 2 {
					if time.Since(back) > time.Minute {
						t.Fatalf("the tail never came back: %q", h.lines())
					}
					time.Sleep(10 * time.Millisecond) // virtual time: measures when the tail is back
					synctest.Wait()
				}
				if took := time.Since(back); took > 1200*time.Millisecond {
					t.Errorf("after a %ds outage the tail printed again %s after the API server answered, want ≤ 1.2s", outage, took)
				}
				equal(t, "lines", h.linesOf(pfx), []string{"a", "b"})
				h.stop()
			})
		})
	}
}

// After a node restart (the Docker engine restarted, issue 16 fault 1) the
// pod informer can lag the API server by up to 30 s (client-go's relist
// backoff after a long outage). The tail of the dead container sees the new
// container ID in the pod it reads directly, and the new container's tail
// starts from that at once instead of waiting for the informer.
func TestNewContainerSeenByTheOldTailIsTailedWithoutTheInformer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const pod = "hello-7d9c5b6f4-x2x9z"
		h := start(t, Options{Follow: true}, testPod(pod, nil, containerState{name: "app", id: "c1"}))
		// The informer watches a clientset that never sees the restart.
		stale := fake.NewClientset(testPod(pod, nil, containerState{name: "app", id: "c1"}))
		factory := informers.NewSharedInformerFactoryWithOptions(stale, 0, informers.WithNamespace(ns))
		t.Cleanup(factory.Shutdown)
		h.m.opts.Informers = factory
		h.fs.start(pod, "app", "c1")
		h.fs.log(pod, "app", at(0), "before the restart")
		h.run()
		synctest.Wait()
		// The node restarts: c1 is gone, c2 runs; only the API server knows.
		h.fs.start(pod, "app", "c2")
		h.fs.log(pod, "app", at(5000), "after the restart")
		h.updatePod(testPod(pod, nil, containerState{name: "app", id: "c2", lastID: "c1"}))
		begin := time.Now()
		for len(h.linesOf(pfx)) < 2 && time.Since(begin) < time.Minute {
			time.Sleep(100 * time.Millisecond) // virtual time: measures when c2 shows
			synctest.Wait()
		}
		equal(t, "lines", h.linesOf(pfx), []string{"before the restart", "after the restart"})
		if took := time.Since(begin); took > 5*time.Second {
			t.Errorf("the new container's lines showed %s after its start, want within the old tail's settle time", took)
		}
		h.stop()
	})
}

// The old container's stream stalls after a node restart (nothing ends it
// but the 30 s silence watchdog) and the informer lags: Recheck, called
// when the cluster answers again, tails the new container at once.
func TestRecheckTailsContainersTheInformerHasNotDelivered(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const pod = "hello-7d9c5b6f4-x2x9z"
		h := start(t, Options{Follow: true, SilenceTimeout: time.Hour}, testPod(pod, nil, containerState{name: "app", id: "c1"}))
		stale := fake.NewClientset(testPod(pod, nil, containerState{name: "app", id: "c1"}))
		factory := informers.NewSharedInformerFactoryWithOptions(stale, 0, informers.WithNamespace(ns))
		t.Cleanup(factory.Shutdown)
		h.m.opts.Informers = factory
		h.fs.start(pod, "app", "c1", fakeFault{after: 1, stall: true})
		h.fs.log(pod, "app", at(0), "before the restart")
		h.fs.log(pod, "app", at(100), "held in the stalled stream")
		h.run()
		synctest.Wait()
		h.fs.start(pod, "app", "c2")
		h.fs.log(pod, "app", at(5000), "after the restart")
		h.updatePod(testPod(pod, nil, containerState{name: "app", id: "c2", lastID: "c1"}))
		time.Sleep(10 * time.Second)
		synctest.Wait()
		equal(t, "lines before Recheck", h.linesOf(pfx), []string{"before the restart"})
		if err := h.m.Recheck(context.Background()); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		equal(t, "lines after Recheck", h.linesOf(pfx), []string{"before the restart", "after the restart"})
		h.stop()
	})
}
