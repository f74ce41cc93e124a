package project

import (
	"context"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/devloop-dev/devloop/internal/build"
	"github.com/devloop-dev/devloop/internal/config"
	"github.com/devloop-dev/devloop/internal/engine"
	"github.com/devloop-dev/devloop/internal/kube"
	"github.com/devloop-dev/devloop/internal/portfwd"
	"github.com/devloop-dev/devloop/internal/ui"
)

// twoServices is a project with web (hello, 2 replicas), worker (a
// Deployment of 1 and a StatefulSet of 3 running "worker") and idle (no
// workload), in namespace dev.
const twoServicesYAML = `apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: app, image: hello}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: worker}
spec:
  selector: {matchLabels: {app: worker}}
  template:
    metadata: {labels: {app: worker}}
    spec:
      containers: [{name: w, image: worker}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: worker-pool}
spec:
  replicas: 3
  selector: {matchLabels: {app: pool}}
  template:
    metadata: {labels: {app: pool}}
    spec:
      containers: [{name: w, image: worker}]
`

func twoServices(t *testing.T) (*config.Config, *kube.Manifests) {
	t.Helper()
	dir := t.TempDir()
	p := filepath.Join(dir, "k8s.yaml")
	if err := writeFile(p, twoServicesYAML); err != nil {
		t.Fatal(err)
	}
	cfg := &config.Config{Name: "proj", Namespace: "dev", Dir: dir, Manifests: []string{p},
		Services: []config.Service{
			{Name: "web", Image: "hello", Sync: []config.SyncRule{{Src: filepath.Join(dir, "static"), Dest: "/srv", Run: "touch /tmp/reload"}}},
			{Name: "worker", Image: "worker"},
			{Name: "idle", Image: "idle"},
		}}
	m, err := kube.Prepare(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	return cfg, m
}

type podOpt func(*corev1.Pod)

func ready(p *corev1.Pod) {
	p.Status.Phase = corev1.PodRunning
	p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}
}

func terminating(p *corev1.Pod) { p.DeletionTimestamp = &metav1.Time{Time: time.Unix(1, 0)} }

func restarts(init, main int32) podOpt {
	return func(p *corev1.Pod) {
		p.Status.InitContainerStatuses = []corev1.ContainerStatus{{Name: "init", RestartCount: init}}
		p.Status.ContainerStatuses = append(p.Status.ContainerStatuses, corev1.ContainerStatus{Name: "app", RestartCount: main})
	}
}

func projPod(name, image string, opts ...podOpt) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "dev", Labels: map[string]string{kube.ProjectLabel: "proj"}},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: image}}},
	}
	for _, o := range opts {
		o(p)
	}
	return p
}

func TestCountPods(t *testing.T) {
	_, m := twoServices(t)
	pods := []*corev1.Pod{
		projPod("web-1", "hello:devloop-1", ready, restarts(2, 1)),
		projPod("web-2", "docker.io/library/hello:devloop-1", restarts(0, 4)), // not ready
		projPod("web-old", "hello:devloop-0", ready, terminating, restarts(0, 9)),
		projPod("db", "postgres:17", ready, restarts(0, 7)),
		projPod("worker-1", "worker:devloop-2", ready),
	}
	got := countPods(m, pods)
	want := map[string][3]int{"web": {1, 2, 7}, "worker": {1, 4, 0}, "idle": {0, 0, 0}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("countPods = %v, want %v", got, want)
	}
}

// fakeView records what the live view was last given and signals each Set.
type fakeView struct {
	mu   sync.Mutex
	last ui.StatusView
	n    int
	set  chan struct{}
}

func newFakeView() *fakeView { return &fakeView{set: make(chan struct{}, 1)} }

func (v *fakeView) Set(s ui.StatusView) {
	v.mu.Lock()
	v.last, v.n = s, v.n+1
	v.mu.Unlock()
	select {
	case v.set <- struct{}{}:
	default:
	}
}

func (v *fakeView) get() (ui.StatusView, int) {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.last, v.n
}

// wait waits until cond holds for the last view given.
func (v *fakeView) wait(t *testing.T, ctx context.Context, cond func(ui.StatusView) bool) {
	t.Helper()
	for {
		if s, _ := v.get(); cond(s) {
			return
		}
		select {
		case <-v.set:
		case <-ctx.Done():
			s, _ := v.get()
			t.Fatalf("live view never got there; last: %+v", s)
		}
	}
}

func liveState() *engine.State {
	since := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	return &engine.State{
		Order: []string{"web", "worker", "idle"},
		Services: map[string]*engine.ServiceState{
			"web": {Phase: engine.Phase("ready"), PhaseSince: since,
				Built:    &build.Image{Repo: "hello", Tag: "devloop-new"},
				Deployed: &build.Image{Repo: "hello", Tag: "devloop-old"}},
			"worker": {Phase: engine.Phase("failed"), LastError: "build failed", Built: &build.Image{Repo: "worker", Tag: "devloop-w"}, LiveUpdates: 2},
			"idle":   {Phase: engine.Phase("pending")},
		},
	}
}

func TestLiveFeedFromStateAndForwards(t *testing.T) {
	v := newFakeView()
	l := newLiveFeed(v, "proj", "devloop")
	l.fromState(liveState(), []string{"http://web.localhost:8080/"})
	s, n := v.get()
	if n != 1 || s.Project != "proj" || s.Cluster != "devloop" || !reflect.DeepEqual(s.Ingress, []string{"http://web.localhost:8080/"}) {
		t.Fatalf("after fromState (%d sets): %+v", n, s)
	}
	wantRows := []ui.ServiceRow{
		{Name: "web", Phase: "ready", Since: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), Image: "hello:devloop-old"},
		{Name: "worker", Phase: "failed", Image: "worker:devloop-w +2 live (image lags)", Error: "build failed"},
		{Name: "idle", Phase: "pending"},
	}
	if !reflect.DeepEqual(s.Services, wantRows) {
		t.Errorf("rows:\n got %+v\nwant %+v", s.Services, wantRows)
	}

	spec := func(port int) portfwd.Spec {
		return portfwd.Spec{Address: "127.0.0.1", LocalPort: port, Resource: "service/web", Port: 80}
	}
	l.forward(portfwd.Status{Spec: spec(9090), State: "waiting"})
	l.forward(portfwd.Status{Spec: spec(8081), State: "up", Pod: "web-1"})
	l.forward(portfwd.Status{Spec: spec(9090), State: "up", Pod: "web-2"}) // replaces the first row
	s, _ = v.get()
	wantFwd := []ui.ForwardRow{
		{URL: "http://127.0.0.1:8081/", Target: "service/web:80", State: "up", Pod: "web-1"},
		{URL: "http://127.0.0.1:9090/", Target: "service/web:80", State: "up", Pod: "web-2"},
	}
	if !reflect.DeepEqual(s.Forwards, wantFwd) {
		t.Errorf("forwards:\n got %+v\nwant %+v", s.Forwards, wantFwd)
	}
	if len(s.Services) != 3 || s.Services[0].Pods != "" {
		t.Errorf("service rows lost or pods invented by a forward: %+v", s.Services)
	}
}

func TestLiveFeedWithoutViewIsNoOp(t *testing.T) {
	l := newLiveFeed(nil, "proj", "devloop")
	l.fromState(liveState(), nil)
	l.forward(portfwd.Status{State: "up"})
	// No informers needed: it returns at once.
	l.watchPods(context.Background(), nil, "dev", nil)
}

func TestLiveFeedWatchPodsCountsOnEveryChange(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second) // failure guard only
	defer cancel()
	_, m := twoServices(t)
	cs := fake.NewClientset([]runtime.Object{
		projPod("web-1", "hello:devloop-1", ready, restarts(0, 1)),
		projPod("worker-1", "worker:x"),
	}...)
	inf := startedInformers(t, cs)
	v := newFakeView()
	l := newLiveFeed(v, "proj", "devloop")
	l.fromState(liveState(), nil)

	wctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		l.watchPods(wctx, inf, "dev", func() *kube.Manifests { return m })
	}()
	pods := func(want ...string) func(ui.StatusView) bool {
		return func(s ui.StatusView) bool {
			for i, row := range s.Services {
				if i >= len(want) || row.Pods != want[i] {
					return false
				}
			}
			return len(s.Services) == len(want)
		}
	}
	v.wait(t, ctx, pods("1/2", "0/4", "0/0"))
	if s, _ := v.get(); s.Services[0].Restarts != 1 {
		t.Errorf("web restarts = %d, want 1", s.Services[0].Restarts)
	}
	if _, err := cs.CoreV1().Pods("dev").Create(ctx, projPod("web-2", "hello:devloop-1", ready), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	v.wait(t, ctx, pods("2/2", "0/4", "0/0"))
	stop()
	select {
	case <-done:
	case <-ctx.Done():
		t.Fatal("watchPods did not return when its context ended")
	}
}

// Jobs keep no ready pods, so they ask for none; a pod that runs two
// services' images counts for both.
func TestCountPodsJobsAndSharedPods(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "k8s.yaml")
	y := `apiVersion: apps/v1
kind: Deployment
metadata: {name: api}
spec:
  replicas: 2
  selector: {matchLabels: {app: api}}
  template:
    metadata: {labels: {app: api}}
    spec:
      initContainers: [{name: migrate, image: migrate}]
      containers: [{name: app, image: api}]
---
apiVersion: batch/v1
kind: Job
metadata: {name: seed}
spec:
  template:
    spec:
      containers: [{name: seed, image: api}]
`
	if err := writeFile(p, y); err != nil {
		t.Fatal(err)
	}
	cfg := &config.Config{Name: "proj", Namespace: "dev", Dir: dir, Manifests: []string{p},
		Services: []config.Service{{Name: "migrate", Image: "migrate"}, {Name: "api", Image: "api"}}}
	m, err := kube.Prepare(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	pod := projPod("api-1", "api:devloop-1", ready)
	pod.Spec.InitContainers = []corev1.Container{{Name: "migrate", Image: "migrate:devloop-2"}}
	got := countPods(m, []*corev1.Pod{pod})
	want := map[string][3]int{"api": {1, 2, 0}, "migrate": {1, 2, 0}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("countPods = %v, want %v (the Job asks for no ready pod; the shared pod counts for both)", got, want)
	}
}

func TestLiveFeedSaysWhatAServiceWaitsFor(t *testing.T) {
	v := newFakeView()
	l := newLiveFeed(v, "shop", "devloop")
	st := &engine.State{
		Order: []string{"api", "web", "db"},
		Services: map[string]*engine.ServiceState{
			"api": {Name: "api", Phase: engine.PhaseWaiting, DependsOn: []string{"db"}},
			"web": {Name: "web", Phase: engine.PhaseWaiting, DependsOn: []string{"api", "db"}},
			"db":  {Name: "db", Phase: engine.PhaseDeploying, Released: true},
		},
	}
	l.fromState(st, nil)
	s, _ := v.get()
	if s.Services[0].Phase != "waiting for db" || s.Services[1].Phase != "waiting for api, db" || s.Services[0].Error != "" {
		t.Errorf("rows %+v", s.Services)
	}
	st.Services["db"].Phase, st.Services["db"].LastError = engine.PhaseFailed, "CrashLoopBackOff"
	l.fromState(st, nil)
	s, _ = v.get()
	if s.Services[0].Error != "db failed: fix it and save" {
		t.Errorf("api's row once db failed: %+v", s.Services[0])
	}
	if !strings.Contains(ui.RenderStatus(s, time.Now(), false), "waiting for db") {
		t.Errorf("table:\n%s", ui.RenderStatus(s, time.Now(), false))
	}
}
