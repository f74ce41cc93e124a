package project

import (
	"archive/tar"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/devloop-dev/devloop/internal/build"
	"github.com/devloop-dev/devloop/internal/engine"
	"github.com/devloop-dev/devloop/internal/kube"
	"github.com/devloop-dev/devloop/internal/livesync"
	"github.com/devloop-dev/devloop/internal/ui"
)

func writeFile(p, content string) error {
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	return os.WriteFile(p, []byte(content), 0o644)
}

// startedInformers starts the project's informers on cs until the test ends,
// and returns once their caches are synced and the pod watch is open (the
// fake clientset drops events between an informer's list and its watch).
func startedInformers(t *testing.T, cs *fake.Clientset) *kube.Informers {
	t.Helper()
	watching := make(chan struct{})
	var once sync.Once
	cs.PrependWatchReactor("pods", func(a k8stesting.Action) (bool, watch.Interface, error) {
		w, err := cs.Tracker().Watch(a.GetResource(), a.GetNamespace())
		once.Do(func() { close(watching) })
		return true, w, err
	})
	inf := kube.NewInformers(cs, "dev", "proj")
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(func() { cancel(); inf.Shutdown() })
	if err := inf.Start(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case <-watching:
	case <-time.After(30 * time.Second): // failure guard only
		t.Fatal("pod informer never watched")
	}
	return inf
}

func running(names ...string) podOpt {
	return func(p *corev1.Pod) {
		p.Status.Phase = corev1.PodRunning
		for _, n := range names {
			p.Status.ContainerStatuses = append(p.Status.ContainerStatuses, corev1.ContainerStatus{
				Name: n, State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}})
		}
	}
}

func sidecar(image string) podOpt {
	return func(p *corev1.Pod) {
		p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: "side", Image: image})
	}
}

// fakeExecer records every exec and, for tar, the names in the stream.
type fakeExecer struct {
	mu    sync.Mutex
	calls []string // "pod/container: cmd"
	files []string
	err   error // returned by tar
}

func (e *fakeExecer) Exec(_ context.Context, _, pod, container string, cmd []string, stdin io.Reader, _, _ io.Writer) error {
	e.mu.Lock()
	e.calls = append(e.calls, pod+"/"+container+": "+strings.Join(cmd, " "))
	e.mu.Unlock()
	if cmd[0] != "tar" {
		if stdin != nil {
			_, _ = io.Copy(io.Discard, stdin) // the supervisor reads the files whole
		}
		return nil
	}
	if e.err != nil {
		return e.err
	}
	tr := tar.NewReader(stdin)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		e.mu.Lock()
		e.files = append(e.files, pod+":"+h.Name)
		e.mu.Unlock()
	}
}

func (e *fakeExecer) sortedCalls() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	s := append([]string(nil), e.calls...)
	sort.Strings(s)
	return s
}

func syncRunner(t *testing.T, ex livesync.Execer) (*runner, *output) {
	cfg, m := twoServices(t)
	cs := fake.NewClientset([]runtime.Object{
		projPod("web-1", "hello:devloop-1", running("app", "side"), sidecar("hello:devloop-1")),
		projPod("web-2", "hello:devloop-1", running()),                               // container not running yet
		projPod("web-3", "hello:devloop-1"),                                          // pending
		projPod("web-old", "hello:devloop-0", running("app"), terminating),           // going away
		projPod("worker-1", "worker:devloop-2", running("app")),                      // another service
		projPod("web-4", "docker.io/library/hello:devloop-1", running("app"), ready), // normalised image
	}...)
	inf := startedInformers(t, cs)
	out := newOutput()
	cl := &clusterStart{done: make(chan struct{})}
	cl.finish(&Conn{Informers: inf, Execer: ex}, nil)
	return &runner{cfg: cfg, out: ui.NewPrinter(out, false, false), cluster: cl, manifests: m}, out
}

func TestContainersOf(t *testing.T) {
	r, _ := syncRunner(t, nil)
	var got []string
	for _, tg := range r.containersOf(r.cluster.conn, r.cfg.Services[0]) {
		got = append(got, tg.Namespace+"/"+tg.Pod+"/"+tg.Container)
	}
	sort.Strings(got)
	want := []string{"dev/web-1/app", "dev/web-1/side", "dev/web-4/app"}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("containersOf(web) = %v, want %v", got, want)
	}
	if got := r.containersOf(r.cluster.conn, r.cfg.Services[2]); len(got) != 0 {
		t.Errorf("containersOf(idle) = %v", got)
	}
}

func TestSyncCopiesIntoEveryRunningContainer(t *testing.T) {
	ex := &fakeExecer{}
	r, out := syncRunner(t, ex)
	web := r.cfg.Services[0]
	changed := filepath.Join(web.Sync[0].Src, "css", "site.css")
	if err := writeFile(changed, "body{}"); err != nil {
		t.Fatal(err)
	}
	fallback, err := r.Sync(context.Background(), web, []string{changed})
	if err != nil || fallback {
		t.Fatalf("Sync = %v, %v", fallback, err)
	}
	want := []string{
		"web-1/app: sh -c touch /tmp/reload", "web-1/app: tar -xmf - -C /",
		"web-1/side: sh -c touch /tmp/reload", "web-1/side: tar -xmf - -C /",
		"web-4/app: sh -c touch /tmp/reload", "web-4/app: tar -xmf - -C /",
	}
	if got := ex.sortedCalls(); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("execs:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	for _, f := range ex.files {
		if !strings.HasSuffix(f, "srv/css/site.css") {
			t.Errorf("tar carried %q, want srv/css/site.css", f)
		}
	}
	if len(ex.files) != 3 {
		t.Errorf("tar streams carried %v, want the file once per container", ex.files)
	}
	if !strings.Contains(out.String(), "synced 1 file(s) into 3 container(s)") {
		t.Errorf("output: %q", out.String())
	}
}

func TestSyncFallsBackToRebuild(t *testing.T) {
	ctx := context.Background()
	r, _ := syncRunner(t, &fakeExecer{})
	web := r.cfg.Services[0]

	// A path no rule covers: rebuild.
	fallback, err := r.Sync(ctx, web, []string{filepath.Join(r.cfg.Dir, "main.go")})
	if !fallback || err == nil || !strings.Contains(err.Error(), "not covered by sync rules") {
		t.Errorf("uncovered path: %v, %v", fallback, err)
	}
	// No running container of the service: rebuild.
	fallback, err = r.Sync(ctx, r.cfg.Services[2], nil)
	if !fallback || err == nil || !strings.Contains(err.Error(), "no running container") {
		t.Errorf("no containers: %v, %v", fallback, err)
	}

	// No tar in the image: rebuild; another exec failure: no fallback.
	changed := filepath.Join(web.Sync[0].Src, "a.txt")
	if err := writeFile(changed, "a"); err != nil {
		t.Fatal(err)
	}
	r.cluster.conn.Execer = &fakeExecer{err: errors.New(`exec: "tar": executable file not found in $PATH`)}
	fallback, err = r.Sync(ctx, web, []string{changed})
	if !fallback || !errors.Is(err, livesync.ErrNoTar) {
		t.Errorf("no tar: %v, %v", fallback, err)
	}
	r.cluster.conn.Execer = &fakeExecer{err: errors.New("connection reset")}
	fallback, err = r.Sync(ctx, web, []string{changed})
	if fallback || err == nil || !strings.Contains(err.Error(), "connection reset") {
		t.Errorf("exec failure: %v, %v", fallback, err)
	}
}

// Which failed builds are retried by themselves: the engine does not answer
// (always), or the build's connection to it broke while it answers now
// (once: a retry that fails the same way waits for a save, no retry storm);
// never a pre-build, a build's own failure or a cancelled build.
func TestEngineFailureClassification(t *testing.T) {
	up := true
	r := &runner{eng: &Engine{Version: func(context.Context) (string, string, error) {
		if up {
			return "28.5.2", "1.51", nil
		}
		return "", "", errors.New("Cannot connect to the Docker daemon")
	}}}
	isRetry := func(err error) bool { var re *engine.RetryError; return errors.As(err, &re) }
	lost := &build.BuildError{Stage: "build", Err: errors.New("reading build output: unexpected EOF")}
	own := &build.BuildError{Stage: "build", Err: errors.New(`process "/bin/sh -c make" did not complete successfully: exit code: 2`)}
	pre := &build.BuildError{Stage: "pre-build", Err: errors.New("exit status 1")}
	ctx := context.Background()
	if !isRetry(r.engineFailure(ctx, lost, false)) {
		t.Error("a lost engine connection is not retried")
	}
	if isRetry(r.engineFailure(ctx, lost, true)) {
		t.Error("a retry that lost the connection again while the engine answers is retried again (a storm)")
	}
	if isRetry(r.engineFailure(ctx, own, false)) || isRetry(r.engineFailure(ctx, pre, false)) {
		t.Error("a build's own failure is retried")
	}
	up = false
	if !isRetry(r.engineFailure(ctx, own, true)) {
		t.Error("a build that failed while the engine does not answer is not retried")
	}
	if isRetry(r.engineFailure(ctx, pre, false)) {
		t.Error("a pre-build failure is retried")
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if isRetry(r.engineFailure(cctx, lost, false)) {
		t.Error("a cancelled build is retried")
	}
}
