package portfwd

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	clocktesting "k8s.io/utils/clock/testing"
)

const ns = "dev"

var base = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

type fixture struct {
	t      *testing.T
	cs     *fake.Clientset
	dialer *fakeDialer
	clock  *clocktesting.FakeClock
	m      *Manager

	mu       sync.Mutex
	logs     []string
	watching map[string]bool
}

func newFixture(t *testing.T, objs ...k8sruntime.Object) *fixture {
	t.Helper()
	f := &fixture{
		t:        t,
		cs:       fake.NewClientset(objs...),
		dialer:   newFakeDialer(),
		clock:    clocktesting.NewFakeClock(base),
		watching: map[string]bool{},
	}
	// Record when each watch is registered, so the test mutates objects
	// only once the informer can see the change.
	f.cs.PrependWatchReactor("*", func(a k8stesting.Action) (bool, watch.Interface, error) {
		w, err := f.cs.Tracker().Watch(a.GetResource(), a.GetNamespace())
		f.mu.Lock()
		f.watching[a.GetResource().Resource] = true
		f.mu.Unlock()
		return true, w, err
	})
	factory := informers.NewSharedInformerFactoryWithOptions(f.cs, 0, informers.WithNamespace(ns))
	t.Cleanup(factory.Shutdown)
	f.m = New(nil, f.cs, factory, Options{
		Clock:  f.clock,
		Dialer: f.dialer,
		Logf: func(format string, args ...any) {
			f.mu.Lock()
			f.logs = append(f.logs, fmt.Sprintf(format, args...))
			f.mu.Unlock()
		},
	})
	t.Cleanup(f.m.Close)
	return f
}

func (f *fixture) reconcile(specs ...Spec) error {
	f.t.Helper()
	err := f.m.Reconcile(context.Background(), specs)
	eventually(f.t, "informer watches started", func() bool {
		f.mu.Lock()
		defer f.mu.Unlock()
		return f.watching["pods"]
	})
	return err
}

func (f *fixture) logged(sub string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, l := range f.logs {
		if strings.Contains(l, sub) {
			return true
		}
	}
	return false
}

func (f *fixture) status(local int) Status {
	for _, s := range f.m.Status() {
		if s.LocalPort == local {
			return s
		}
	}
	return Status{}
}

// eventually waits (bounded) for cond, which observes state driven by
// other goroutines (informers, handlers).
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		runtime.Gosched()
		time.Sleep(time.Millisecond)
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

type podOpt func(*corev1.Pod)

func ready(ok bool) podOpt {
	return func(p *corev1.Pod) {
		st := corev1.ConditionFalse
		if ok {
			st = corev1.ConditionTrue
		}
		p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: st}}
	}
}

func created(d time.Duration) podOpt {
	return func(p *corev1.Pod) { p.CreationTimestamp = metav1.NewTime(base.Add(d)) }
}

func terminating() podOpt {
	return func(p *corev1.Pod) { now := metav1.NewTime(base); p.DeletionTimestamp = &now }
}

func namedPort(name string, port int32) podOpt {
	return func(p *corev1.Pod) {
		p.Spec.Containers[0].Ports = append(p.Spec.Containers[0].Ports, corev1.ContainerPort{Name: name, ContainerPort: port})
	}
}

func pod(name string, opts ...podOpt) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, UID: types.UID("uid-" + name), Labels: map[string]string{"app": "hello"}},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app"}}},
		Status:     corev1.PodStatus{Phase: corev1.PodRunning},
	}
	ready(true)(p)
	for _, o := range opts {
		o(p)
	}
	return p
}

func service(port int32, target intstr.IntOrString) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "hello", Namespace: ns},
		Spec: corev1.ServiceSpec{
			Selector: map[string]string{"app": "hello"},
			Ports:    []corev1.ServicePort{{Port: port, TargetPort: target}},
		},
	}
}

// roundTrip connects to the forward, sends msg and returns the answer
// (or an error if the forward closed the connection).
func roundTrip(t *testing.T, local int, msg string) (string, error) {
	t.Helper()
	c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", local))
	if err != nil {
		return "", err
	}
	defer c.Close()
	if _, err := fmt.Fprintln(c, msg); err != nil {
		return "", err
	}
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	return strings.TrimSpace(line), err
}

func svcSpec(local int) Spec {
	return Spec{Name: "hello", Address: "127.0.0.1", LocalPort: local, Namespace: ns, Resource: "service/hello", Port: 80}
}

func TestConnectionGoesToReadyPod(t *testing.T) {
	f := newFixture(t,
		service(80, intstr.FromInt32(8080)),
		pod("hello-old", created(0)),
		pod("hello-new", created(time.Minute)),
		pod("hello-newest-unready", created(2*time.Minute), ready(false)),
		pod("hello-terminating", created(3*time.Minute), terminating()),
	)
	f.dialer.serve(t, "hello-old")
	f.dialer.serve(t, "hello-new")
	local := freePort(t)
	if err := f.reconcile(svcSpec(local)); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		got, err := roundTrip(t, local, fmt.Sprint("hi", i))
		if err != nil {
			t.Fatal(err)
		}
		if want := fmt.Sprint("hello-new: hi", i); got != want {
			t.Fatalf("got %q, want %q", got, want)
		}
	}
	if n := f.dialer.dialCount(); n != 1 {
		t.Errorf("dialed %d tunnels for 3 connections, want 1 shared tunnel", n)
	}
	f.dialer.mu.Lock()
	ports := append([]int(nil), f.dialer.ports...)
	f.dialer.mu.Unlock()
	for _, p := range ports {
		if p != 8080 {
			t.Errorf("data stream to container port %d, want targetPort 8080", p)
		}
	}
	if st := f.status(local); st.State != StateUp || st.Pod != "hello-new" {
		t.Errorf("status = %+v, want up on hello-new", st)
	}
}

// The tunnel to a forward's pod is dialed as soon as that pod is the one
// to use, before any connection, so the first request after a restart or a
// rollout does not pay for the handshake.
func TestTunnelIsDialedBeforeTheFirstConnection(t *testing.T) {
	f := newFixture(t, service(80, intstr.FromInt32(8080)), pod("hello-a", created(0)))
	f.dialer.serve(t, "hello-a")
	local := freePort(t)
	if err := f.reconcile(svcSpec(local)); err != nil {
		t.Fatal(err)
	}
	eventually(t, "tunnel dialed ahead", func() bool { return f.dialer.dialCount() == 1 })
	got, err := roundTrip(t, local, "hi")
	if err != nil || got != "hello-a: hi" {
		t.Fatalf("got %q, %v", got, err)
	}
	if n := f.dialer.dialCount(); n != 1 {
		t.Fatalf("dialed %d tunnels, want the one dialed ahead to be used", n)
	}
}

func TestPodReplacedNextConnectionGoesToNewPod(t *testing.T) {
	f := newFixture(t, service(80, intstr.FromInt32(8080)), pod("hello-a", created(0)))
	f.dialer.serve(t, "hello-a")
	f.dialer.serve(t, "hello-b")
	var changes []Status
	var cmu sync.Mutex
	f.m.onChange = func(s Status) { cmu.Lock(); changes = append(changes, s); cmu.Unlock() }
	local := freePort(t)
	if err := f.reconcile(svcSpec(local)); err != nil {
		t.Fatal(err)
	}
	if got, err := roundTrip(t, local, "one"); err != nil || got != "hello-a: one" {
		t.Fatalf("got %q, %v", got, err)
	}

	// Rollout: a new pod becomes ready, the old one terminates and goes.
	ctx := context.Background()
	if _, err := f.cs.CoreV1().Pods(ns).Create(ctx, pod("hello-b", created(time.Minute)), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := f.cs.CoreV1().Pods(ns).Delete(ctx, "hello-a", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "status to follow hello-b", func() bool { return f.status(local).Pod == "hello-b" })
	// The old pod's tunnel is dropped as soon as the pod is gone.
	eventually(t, "old tunnel closed", func() bool {
		f.dialer.mu.Lock()
		defer f.dialer.mu.Unlock()
		select {
		case <-f.dialer.conns[0].closeCh:
			return true
		default:
			return false
		}
	})

	if got, err := roundTrip(t, local, "two"); err != nil || got != "hello-b: two" {
		t.Fatalf("got %q, %v; want hello-b: two on the same local port", got, err)
	}
	cmu.Lock()
	defer cmu.Unlock()
	var pods []string
	for _, c := range changes {
		pods = append(pods, c.State+":"+c.Pod)
	}
	if len(pods) == 0 || pods[0] != "up:hello-a" || pods[len(pods)-1] != "up:hello-b" {
		t.Errorf("OnChange sequence %v, want up:hello-a ... up:hello-b", pods)
	}
}

func TestNoReadyPodWaitsThenCloses(t *testing.T) {
	f := newFixture(t, service(80, intstr.FromInt32(8080)), pod("hello-a", ready(false)))
	f.dialer.serve(t, "hello-a")
	local := freePort(t)
	if err := f.reconcile(svcSpec(local)); err != nil {
		t.Fatal(err)
	}
	if st := f.status(local); st.State != StateWaiting {
		t.Fatalf("status = %+v, want waiting", st)
	}
	errc := make(chan error, 1)
	go func() { _, err := roundTrip(t, local, "x"); errc <- err }()
	eventually(t, "connection to wait on the clock", f.clock.HasWaiters)
	f.clock.Step(5 * time.Second)
	if err := <-errc; err == nil {
		t.Fatal("connection answered with no ready pod")
	}
	want := fmt.Sprintf("forward hello 127.0.0.1:%d: no ready pod for service/hello", local)
	eventually(t, "log line "+want, func() bool { return f.logged(want) })
	if n := f.dialer.dialCount(); n != 0 {
		t.Errorf("dialed %d times with no ready pod", n)
	}
}

func TestWaitingConnectionProceedsWhenPodBecomesReady(t *testing.T) {
	f := newFixture(t, service(80, intstr.FromInt32(8080)), pod("hello-a", ready(false)))
	f.dialer.serve(t, "hello-a")
	local := freePort(t)
	if err := f.reconcile(svcSpec(local)); err != nil {
		t.Fatal(err)
	}
	type res struct {
		s   string
		err error
	}
	resc := make(chan res, 1)
	go func() { s, err := roundTrip(t, local, "late"); resc <- res{s, err} }()
	eventually(t, "connection to wait", f.clock.HasWaiters)
	if _, err := f.cs.CoreV1().Pods(ns).Update(context.Background(), pod("hello-a"), metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	// No clock step: the informer event alone must wake the connection.
	r := <-resc
	if r.err != nil || r.s != "hello-a: late" {
		t.Fatalf("got %q, %v", r.s, r.err)
	}
}

func TestNamedTargetPort(t *testing.T) {
	f := newFixture(t, service(80, intstr.FromString("http")), pod("hello-a", namedPort("metrics", 9090), namedPort("http", 8081)))
	f.dialer.serve(t, "hello-a")
	local := freePort(t)
	if err := f.reconcile(svcSpec(local)); err != nil {
		t.Fatal(err)
	}
	if got, err := roundTrip(t, local, "x"); err != nil || got != "hello-a: x" {
		t.Fatalf("got %q, %v", got, err)
	}
	f.dialer.mu.Lock()
	defer f.dialer.mu.Unlock()
	if len(f.dialer.ports) != 1 || f.dialer.ports[0] != 8081 {
		t.Errorf("container ports %v, want [8081] (named port http)", f.dialer.ports)
	}
}

func TestTargetPort(t *testing.T) {
	p := pod("p", namedPort("http", 8081))
	tests := []struct {
		name    string
		svc     *corev1.Service
		port    int
		want    int
		wantErr string
	}{
		{"numeric", service(80, intstr.FromInt32(8080)), 80, 8080, ""},
		{"named", service(80, intstr.FromString("http")), 80, 8081, ""},
		{"defaulted to port", service(80, intstr.IntOrString{}), 80, 80, ""},
		{"unknown name", service(80, intstr.FromString("grpc")), 80, 0, `targetPort "grpc" is not a named port`},
		{"no such service port", service(80, intstr.FromInt32(8080)), 81, 0, "has no port 81"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := targetPort(tt.svc, p, tt.port)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("got %d, %v; want %d", got, err, tt.want)
			}
		})
	}
}

func TestDeploymentAndPodResources(t *testing.T) {
	dep := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "hello", Namespace: ns},
		Spec:       appsv1.DeploymentSpec{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "hello"}}},
	}
	f := newFixture(t, dep, pod("hello-a"))
	f.dialer.serve(t, "hello-a")
	l1, l2 := freePort(t), freePort(t)
	err := f.reconcile(
		Spec{Name: "dep", Address: "127.0.0.1", LocalPort: l1, Namespace: ns, Resource: "deployment/hello", Port: 8080},
		Spec{Name: "pod", Address: "127.0.0.1", LocalPort: l2, Namespace: ns, Resource: "pod/hello-a", Port: 9000},
	)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range []int{l1, l2} {
		if got, err := roundTrip(t, l, "x"); err != nil || got != "hello-a: x" {
			t.Fatalf("port %d: got %q, %v", l, got, err)
		}
	}
}

func TestPortInUse(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	local := ln.Addr().(*net.TCPAddr).Port
	f := newFixture(t, service(80, intstr.FromInt32(8080)))
	err = f.m.Reconcile(context.Background(), []Spec{svcSpec(local)})
	if err == nil {
		t.Fatal("Reconcile succeeded on a port in use")
	}
	want := fmt.Sprintf("127.0.0.1:%d is already in use", local)
	if !strings.Contains(err.Error(), want) {
		t.Fatalf("err = %q, want it to contain %q", err, want)
	}
	comm, _ := os.ReadFile("/proc/self/comm")
	if len(comm) > 0 {
		who := fmt.Sprintf("by pid %d (%s)", os.Getpid(), strings.TrimSpace(string(comm)))
		if !strings.Contains(err.Error(), who) {
			t.Errorf("err = %q, want it to name the holder %q", err, who)
		}
	}
	if st := f.status(local); st.State != StateError || !strings.Contains(st.Err, want) {
		t.Errorf("status = %+v, want error", st)
	}
	// Once the port is free, the next Reconcile binds it.
	ln.Close()
	if err := f.m.Reconcile(context.Background(), []Spec{svcSpec(local)}); err != nil {
		t.Fatalf("retry after port freed: %v", err)
	}
}

func TestPortHolderFromProcFiles(t *testing.T) {
	root := t.TempDir()
	write := func(p, s string) {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(root, p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, p), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("net/tcp", "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"+
		"   0: 0100007F:46A0 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 4242 1 0000000000000000 100 0 0 10 0\n"+
		"   1: 0100007F:46A0 0100007F:9C40 01 00000000:00000000 00:00000000 00000000  1000        0 999 1 0000000000000000 100 0 0 10 0\n")
	write("net/tcp6", "  sl  local_address\n")
	write("1234/comm", "python3\n")
	if err := os.MkdirAll(filepath.Join(root, "1234/fd"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("socket:[4242]", filepath.Join(root, "1234/fd/3")); err != nil {
		t.Fatal(err)
	}
	if got, want := portHolder(root, 18080), "pid 1234 (python3)"; got != want {
		t.Errorf("portHolder = %q, want %q", got, want)
	}
	if got := portHolder(root, 18081); got != "" {
		t.Errorf("portHolder for a free port = %q, want empty", got)
	}
}

func TestDialFailureBacksOff(t *testing.T) {
	f := newFixture(t, service(80, intstr.FromInt32(8080)), pod("hello-a"))
	f.dialer.fail["hello-a"] = errors.New("connection refused")
	local := freePort(t)
	if err := f.reconcile(svcSpec(local)); err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() { _, err := roundTrip(t, local, "x"); errc <- err }()
	// First dial fails at once; the retry waits 100ms on the clock, then
	// 200ms, ... Succeed on the third attempt.
	eventually(t, "first dial", func() bool { return f.dialer.dialCount() == 1 })
	eventually(t, "backoff wait", func() bool { return f.clock.Waiters() >= 2 }) // ready timer + backoff
	f.clock.Step(99 * time.Millisecond)
	if n := f.dialer.dialCount(); n != 1 {
		t.Fatalf("redialed before the 100ms backoff: %d dials", n)
	}
	f.clock.Step(time.Millisecond)
	eventually(t, "second dial", func() bool { return f.dialer.dialCount() == 2 })
	eventually(t, "error status", func() bool { return f.status(local).State == StateError })
	f.dialer.mu.Lock()
	delete(f.dialer.fail, "hello-a")
	f.dialer.mu.Unlock()
	f.dialer.serve(t, "hello-a")
	eventually(t, "second backoff wait", func() bool { return f.clock.Waiters() >= 2 })
	f.clock.Step(200 * time.Millisecond)
	if err := <-errc; err != nil {
		t.Fatalf("connection failed after the pod came back: %v", err)
	}
	if n := f.dialer.dialCount(); n != 3 {
		t.Errorf("%d dials, want 3", n)
	}
	eventually(t, "status up", func() bool { return f.status(local).State == StateUp })
}

// While the API server is down (issue 16, fault 2) every dial of a tunnel
// fails; the next one is never more than a second away, so the first
// connection after it answers again is served within about a second, not
// after a long backoff.
func TestDialBackoffIsCappedAtOneSecond(t *testing.T) {
	f := newFixture(t)
	f.dialer.fail["hello-a"] = errors.New("dial tcp 127.0.0.1:6443: connect: connection refused")
	fw := &forward{spec: Spec{Name: "hello"}}
	var waits []time.Duration
	for i := 0; i < 12; i++ { // a minute of refused dials
		if _, err := f.m.dial(context.Background(), fw, pod("hello-a"), 0, nil); err == nil {
			t.Fatal("dial succeeded")
		}
		waits = append(waits, fw.backoff)
	}
	if worst := slices.Max(waits); worst > time.Second {
		t.Errorf("backoff between dials reached %s (%v), want at most 1s", worst, waits)
	}
	if waits[0] != backoffMin {
		t.Errorf("first backoff %s, want %s", waits[0], backoffMin)
	}
}

func TestReconcileRemovesAndKeepsListeners(t *testing.T) {
	f := newFixture(t, service(80, intstr.FromInt32(8080)), pod("hello-a"))
	f.dialer.serve(t, "hello-a")
	l1, l2 := freePort(t), freePort(t)
	s2 := svcSpec(l2)
	s2.Name = "second"
	if err := f.reconcile(svcSpec(l1), s2); err != nil {
		t.Fatal(err)
	}
	if err := f.m.Reconcile(context.Background(), []Spec{svcSpec(l1)}); err != nil {
		t.Fatal(err)
	}
	if _, err := roundTrip(t, l2, "x"); err == nil {
		t.Error("removed forward still answers")
	}
	if got, err := roundTrip(t, l1, "x"); err != nil || got != "hello-a: x" {
		t.Errorf("kept forward: got %q, %v", got, err)
	}
	if n := len(f.m.Status()); n != 1 {
		t.Errorf("%d statuses, want 1", n)
	}
}

func TestCloseLeaksNoGoroutines(t *testing.T) {
	f := newFixture(t, service(80, intstr.FromInt32(8080)), pod("hello-a"), pod("hello-b", ready(false)))
	f.dialer.serve(t, "hello-a")
	before := runtime.NumGoroutine()
	factory := informers.NewSharedInformerFactoryWithOptions(f.cs, 0, informers.WithNamespace(ns))
	t.Cleanup(factory.Shutdown)
	m := New(nil, f.cs, factory, Options{Clock: f.clock, Dialer: f.dialer})
	local := freePort(t)
	if err := m.Reconcile(context.Background(), []Spec{svcSpec(local)}); err != nil {
		t.Fatal(err)
	}
	if got, err := roundTrip(t, local, "x"); err != nil || got != "hello-a: x" {
		t.Fatalf("got %q, %v", got, err)
	}
	// Leave one connection open mid-stream.
	c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", local))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintln(c, "held")
	if _, err := bufio.NewReader(c).ReadString('\n'); err != nil {
		t.Fatal(err)
	}
	m.Close()
	if _, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", local)); err == nil {
		t.Error("listener still open after Close")
	}
	eventually(t, fmt.Sprintf("goroutines back to %d", before), func() bool { return runtime.NumGoroutine() <= before })
}

// An app that restarts refuses each request until it listens again: the
// forward says the first refusal, counts the rest, and says the count in
// one line when a request gets through again.
func TestRepeatedConnectionErrorsAreSaidOnce(t *testing.T) {
	f := newFixture(t, service(80, intstr.FromInt32(8080)), pod("hello-a", created(0)))
	f.dialer.serve(t, "hello-a")
	local := freePort(t)
	if err := f.reconcile(svcSpec(local)); err != nil {
		t.Fatal(err)
	}
	refuse := func(on bool) {
		f.dialer.mu.Lock()
		f.dialer.refuse["hello-a"] = on
		f.dialer.mu.Unlock()
	}
	logs := func() []string {
		f.mu.Lock()
		defer f.mu.Unlock()
		return append([]string(nil), f.logs...)
	}
	// Each connection is done (said or counted) before the next one.
	settled := func() {
		eventually(t, "the connection to be done", func() bool {
			f.m.mu.Lock()
			defer f.m.mu.Unlock()
			for _, fw := range f.m.forwards {
				if len(fw.conns) > 0 {
					return false
				}
			}
			return true
		})
	}
	refuse(true)
	for i := range 5 {
		if _, err := roundTrip(t, local, fmt.Sprint("r", i)); err == nil {
			t.Fatal("a refused connection answered")
		}
		settled()
	}
	refuse(false)
	if got, err := roundTrip(t, local, "back"); err != nil || got != "hello-a: back" {
		t.Fatalf("got %q, %v", got, err)
	}
	settled()
	got := logs()
	if len(got) != 2 || !strings.Contains(got[0], "connection refused") ||
		!strings.HasSuffix(got[1], "4 more connection(s) failed the same way; it serves again") {
		t.Fatalf("logs = %q", got)
	}

	// The pod refused connections; the tunnel to it was fine and is kept.
	if n := f.dialer.dialCount(); n != 1 {
		t.Errorf("%d tunnels dialed, want 1: a refused connection is not the tunnel's failure", n)
	}

	// A later failure is said again; one long after the first, too.
	refuse(true)
	roundTrip(t, local, "x")
	settled()
	roundTrip(t, local, "y")
	settled()
	f.clock.Step(connErrRepeat)
	roundTrip(t, local, "z")
	settled()
	got = logs()[2:]
	if len(got) != 3 || !strings.Contains(got[0], "connection refused") ||
		!strings.HasSuffix(got[1], "1 more connection(s) failed the same way") || !strings.Contains(got[2], "connection refused") {
		t.Fatalf("logs = %q", got)
	}
}
