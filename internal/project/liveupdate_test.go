package project

import (
	"context"
	"io"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/devloop-dev/devloop/internal/config"
	"github.com/devloop-dev/devloop/internal/engine"
	"github.com/devloop-dev/devloop/internal/kube"
	"github.com/devloop-dev/devloop/internal/ui"
)

// preBuilder counts pre-builds; each writes a new bin/hello.
type preBuilder struct {
	fakeBuilder
	mu   sync.Mutex
	runs int
}

func (b *preBuilder) PreBuild(_ context.Context, svc config.Service, _ io.Writer) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.runs++
	return writeFile(filepath.Join(svc.Build.Context, "bin", "hello"), strings.Repeat("v", b.runs))
}

func withContainerID(id string) podOpt {
	return func(p *corev1.Pod) {
		p.Spec.ReadinessGates = []corev1.PodReadinessGate{{ConditionType: kube.UpToDateCondition}}
		for i := range p.Status.ContainerStatuses {
			p.Status.ContainerStatuses[i].ContainerID = id
		}
	}
}

// liveRunner is a runner whose cluster is up with one pod, web-1, running
// hello:devloop-1 in container c1 (its service's deployed image).
func liveRunner(t *testing.T, cfg *config.Config, m *kube.Manifests, b Builder) (*fake.Clientset, *kube.Informers, *fakeExecer, *Conn, *output, *runner) {
	t.Helper()
	cs := fake.NewClientset([]runtime.Object{projPod("web-1", "hello:devloop-1", running("app"), withContainerID("c1"))}...)
	inf := startedInformers(t, cs)
	ex := &fakeExecer{}
	conn := &Conn{Informers: inf, Execer: ex, Clients: &kube.Clients{Core: cs}}
	cl := &clusterStart{done: make(chan struct{})}
	cl.finish(conn, nil)
	out := newOutput()
	r := &runner{cfg: cfg, out: ui.NewPrinter(out, false, false), cluster: cl, manifests: m,
		eng: &Engine{Builder: b}, liveUpdates: newLiveUpdates(), deployedImages: map[string]string{"hello": "hello:devloop-1"}}
	return cs, inf, ex, conn, out, r
}

// untilInformer waits, woken by the shared informer, until cond holds.
func untilInformer(t *testing.T, wake <-chan struct{}, what string, cond func() bool) {
	t.Helper()
	for deadline := time.After(30 * time.Second); !cond(); {
		select {
		case <-wake:
		case <-deadline:
			t.Fatalf("the informer never saw %s", what)
		}
	}
}

// gatePatches returns the readiness gate values devloop patched, in order.
func gatePatches(cs *fake.Clientset) []string {
	var out []string
	for _, a := range cs.Actions() {
		if p, ok := a.(k8stesting.PatchAction); ok && p.GetSubresource() == "status" {
			switch s := string(p.GetPatch()); {
			case strings.Contains(s, `"status":"True"`):
				out = append(out, p.GetName()+"=True")
			case strings.Contains(s, `"status":"False"`):
				out = append(out, p.GetName()+"=False")
			}
		}
	}
	return out
}

func TestLiveUpdateAndNewContainers(t *testing.T) {
	cfg, _ := twoServices(t)
	web := &cfg.Services[0]
	web.Build.Context = cfg.Dir
	web.Build.PreBuild = &config.Command{Run: "go build -o bin/ ."}
	web.Sync = append(web.Sync, config.SyncRule{Src: filepath.Join(cfg.Dir, "bin", "hello"), Dest: "/hello", Restart: true})
	m, err := kube.Prepare(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	pb := &preBuilder{}
	cs, inf, ex, conn, out, r := liveRunner(t, cfg, m, pb)
	var posted []engine.Changed
	r.liveUpdates.setPost(func(ch engine.Changed) { posted = append(posted, ch) })
	ctx := t.Context()

	// Before any live update the pod runs the workspace's code: its gate opens.
	r.liveUpdates.check(ctx, r, conn)
	if got := gatePatches(cs); !reflect.DeepEqual(got, []string{"web-1=True"}) || len(posted) != 0 {
		t.Fatalf("gates %v, posted %v", got, posted)
	}

	// An edit: pre-build, then the binary through the supervisor.
	n, fallback, err := r.Live(ctx, *web, []string{filepath.Join(cfg.Dir, "main.go")})
	if err != nil || fallback || n != 1 || pb.runs != 1 {
		t.Fatalf("Live = %d, %v, %v after %d pre-builds", n, fallback, err, pb.runs)
	}
	if got := ex.sortedCalls(); !reflect.DeepEqual(got, []string{"web-1/app: /.devloop/supervisor --devloop-restart"}) {
		t.Fatalf("execs %v", got)
	}
	out.waitCount(t, "restarted 1 container(s) with the new build", 1)

	// A marker for a container that already runs the newest code does nothing.
	if n, _, err := r.Live(ctx, *web, []string{"(new container web-1/app)"}); n != 0 || err != nil || len(ex.sortedCalls()) != 1 || pb.runs != 1 {
		t.Fatalf("a marker for an up-to-date container: %d, %v, %v", n, err, ex.sortedCalls())
	}

	// The kubelet restarts the container from the image: it is closed
	// to traffic, and a live update is posted for it.
	wake, cancel := inf.Subscribe()
	defer cancel()
	p, _ := cs.CoreV1().Pods("dev").Get(ctx, "web-1", metav1.GetOptions{})
	p.Status.ContainerStatuses[0].ContainerID = "c2"
	p.Status.Conditions = []corev1.PodCondition{{Type: kube.UpToDateCondition, Status: corev1.ConditionTrue}}
	if _, err := cs.CoreV1().Pods("dev").UpdateStatus(ctx, p, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	lister := inf.Factory().Core().V1().Pods().Lister().Pods("dev")
	untilInformer(t, wake, "the restarted container", func() bool {
		got, _ := lister.Get("web-1")
		return got != nil && got.Status.ContainerStatuses[0].ContainerID == "c2"
	})
	r.liveUpdates.check(ctx, r, conn)
	r.liveUpdates.check(ctx, r, conn) // posted once
	if len(posted) != 1 || !reflect.DeepEqual(posted[0].Live, map[string][]string{"web": {"(new container web-1/app)"}}) {
		t.Fatalf("posted %+v", posted)
	}
	if got := gatePatches(cs); got[len(got)-1] != "web-1=False" {
		t.Fatalf("gates %v: the restarted container must not serve the image's code", got)
	}
	n, fallback, err = r.Live(ctx, *web, posted[0].Live["web"])
	if err != nil || fallback || n != 0 || pb.runs != 1 || len(ex.sortedCalls()) != 2 {
		t.Fatalf("bringing it up to date: %d, %v, %v, %d pre-builds, execs %v", n, fallback, err, pb.runs, ex.sortedCalls())
	}
	out.waitCount(t, "brought web-1 up to date", 1)

	// A pod of the next rollout's image (built from the workspace) is not
	// behind the live updates of the image before: its gate opens, nothing
	// is posted for it.
	wake2, cancel2 := inf.Subscribe()
	defer cancel2()
	if _, err := cs.CoreV1().Pods("dev").Create(ctx, projPod("web-2", "hello:devloop-2", running("app"), withContainerID("c9")), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	untilInformer(t, wake2, "the new pod", func() bool { got, _ := lister.Get("web-2"); return got != nil })
	before := len(gatePatches(cs))
	r.liveUpdates.check(ctx, r, conn)
	if got := gatePatches(cs)[before:]; !slices.Contains(got, "web-2=True") || slices.Contains(got, "web-2=False") || len(posted) != 1 {
		t.Fatalf("gates %v, posted %v", got, posted)
	}

	// A new image rolled: the live state is gone.
	r.liveUpdates.imageRolled("web")
	if n, _, err := r.Live(ctx, *web, []string{"(new container web-1/app)"}); n != 0 || err != nil || len(ex.sortedCalls()) != 2 {
		t.Fatalf("after a new image: %d, %v", n, err)
	}
}

func TestLiveUpdateFallsBackWithoutARunningContainer(t *testing.T) {
	cfg, m := twoServices(t)
	web := cfg.Services[0]
	web.Sync = []config.SyncRule{{Src: filepath.Join(cfg.Dir, "k8s.yaml"), Dest: "/hello", Restart: true}}
	cs := fake.NewClientset()
	inf := startedInformers(t, cs)
	cl := &clusterStart{done: make(chan struct{})}
	cl.finish(&Conn{Informers: inf, Execer: &fakeExecer{}}, nil)
	r := &runner{cfg: cfg, out: ui.NewPrinter(newOutput(), false, false), cluster: cl, manifests: m,
		eng: &Engine{Builder: &preBuilder{}}, liveUpdates: newLiveUpdates()}
	_, fallback, err := r.Live(t.Context(), web, []string{"/src/main.go"})
	if !fallback || err == nil || !strings.Contains(err.Error(), "no running container") {
		t.Fatalf("fallback %v, err %v", fallback, err)
	}
}

func TestSyncOfARestartRuleRestartsAndIsReplayed(t *testing.T) {
	cfg, m := twoServices(t)
	web := cfg.Services[0]
	app := filepath.Join(cfg.Dir, "app.py")
	if err := writeFile(app, "print('v2')\n"); err != nil {
		t.Fatal(err)
	}
	web.Sync = []config.SyncRule{{Src: app, Dest: "/app/app.py", Restart: true}}
	_, _, ex, _, out, r := liveRunner(t, cfg, m, &preBuilder{})
	if fallback, err := r.Sync(t.Context(), web, []string{app}); err != nil || fallback {
		t.Fatalf("sync: %v, %v", fallback, err)
	}
	if got := ex.sortedCalls(); !reflect.DeepEqual(got, []string{"web-1/app: /.devloop/supervisor --devloop-restart"}) {
		t.Fatalf("execs %v: a restart rule's file goes through the supervisor, not tar", got)
	}
	out.waitCount(t, "synced and restarted 1 file(s) into 1 container(s)", 1)
	// The live state knows it: web-1 is up to date, a new container is not.
	r.liveUpdates.mu.Lock()
	st := r.liveUpdates.services["web"]
	ok := st != nil && st.gen == 1 && st.applied["c1"] == 1 && st.image == "hello:devloop-1"
	r.liveUpdates.mu.Unlock()
	if !ok {
		t.Fatalf("live state %+v", st)
	}
}

// A pod that replaces one the plain sync rules copied files into (deleted,
// rescheduled, a container restarted) gets those files replayed: every
// file the rules cover, as the workspace has them; not a pod of another
// image (the next rollout's is built from the workspace).
func TestPlainSyncIsReplayedIntoNewContainers(t *testing.T) {
	cfg, m := twoServices(t)
	web := cfg.Services[0]
	page := filepath.Join(cfg.Dir, "static", "index.html")
	if err := writeFile(page, "<h1>edited</h1>\n"); err != nil {
		t.Fatal(err)
	}
	if err := writeFile(filepath.Join(cfg.Dir, "static", "app.js"), "x()\n"); err != nil {
		t.Fatal(err)
	}
	cs, inf, ex, conn, out, r := liveRunner(t, cfg, m, &preBuilder{})
	var posted []engine.Changed
	r.liveUpdates.setPost(func(ch engine.Changed) { posted = append(posted, ch) })
	ctx := t.Context()

	// Nothing synced yet: a new pod runs the image, which is the workspace.
	r.liveUpdates.check(ctx, r, conn)
	if len(posted) != 0 {
		t.Fatalf("posted %+v before any sync", posted)
	}
	if fallback, err := r.Sync(ctx, web, []string{page}); err != nil || fallback {
		t.Fatalf("sync: %v, %v", fallback, err)
	}
	r.liveUpdates.check(ctx, r, conn)
	if len(posted) != 0 {
		t.Fatalf("posted %+v for the pod the sync went into", posted)
	}

	// The pod is replaced by one of the same image, and one of the next image appears.
	wake, cancel := inf.Subscribe()
	defer cancel()
	if err := cs.CoreV1().Pods("dev").Delete(ctx, "web-1", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, p := range []*corev1.Pod{
		projPod("web-2", "hello:devloop-1", running("app"), withContainerID("c2")),
		projPod("web-3", "hello:devloop-2", running("app"), withContainerID("c3")),
	} {
		if _, err := cs.CoreV1().Pods("dev").Create(ctx, p, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	lister := inf.Factory().Core().V1().Pods().Lister().Pods("dev")
	untilInformer(t, wake, "the new pods", func() bool {
		a, _ := lister.Get("web-2")
		b, _ := lister.Get("web-3")
		gone, _ := lister.Get("web-1")
		return a != nil && b != nil && gone == nil
	})
	r.liveUpdates.check(ctx, r, conn)
	r.liveUpdates.check(ctx, r, conn) // posted once
	if len(posted) != 1 || !reflect.DeepEqual(posted[0].Sync, map[string][]string{"web": {"(new container web-2/app)"}}) {
		t.Fatalf("posted %+v", posted)
	}
	before := len(ex.sortedCalls())
	if fallback, err := r.Sync(ctx, web, posted[0].Sync["web"]); err != nil || fallback {
		t.Fatalf("replay: %v, %v", fallback, err)
	}
	out.waitCount(t, "synced 2 file(s)", 1)
	if calls := ex.sortedCalls(); len(calls) <= before || !slices.ContainsFunc(calls[before:], func(c string) bool { return strings.HasPrefix(c, "web-2/app: tar") }) {
		t.Fatalf("execs %v: the replay did not reach web-2", calls)
	}
	r.liveUpdates.check(ctx, r, conn)
	if len(posted) != 1 {
		t.Fatalf("posted again after the replay: %+v", posted)
	}
}
