package project

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/rest"

	"github.com/devloop-dev/devloop/internal/build"
	"github.com/devloop-dev/devloop/internal/cluster"
	"github.com/devloop-dev/devloop/internal/config"
	"github.com/devloop-dev/devloop/internal/imageload"
	"github.com/devloop-dev/devloop/internal/kube"
	"github.com/devloop-dev/devloop/internal/ui"
)

// These tests run whole commands against fakes of every external system
// (kind, Docker, the API server's apply), with real files, a real watcher
// and a real (fake-clientset) informer. They wait for what the user would
// see, with a deadline; they never sleep to synchronise.

// output is a buffer that signals every write.
type output struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	wrote chan struct{}
}

func newOutput() *output { return &output{wrote: make(chan struct{}, 1)} }

func (o *output) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	select {
	case o.wrote <- struct{}{}:
	default:
	}
	return o.buf.Write(p)
}

func (o *output) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.String()
}

// waitCount waits until s appears at least n times.
func (o *output) waitCount(t *testing.T, s string, n int) {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for strings.Count(o.String(), s) < n {
		select {
		case <-o.wrote:
		case <-deadline:
			t.Fatalf("timed out waiting for %d× %q; output:\n%s", n, s, o.String())
		}
	}
}

// fakeBuilder "builds" the image from main.go's content: BROKEN in it is a
// compile error; the image ID is the content's hash.
type fakeBuilder struct {
	mu     sync.Mutex
	builds int
	// started, when set, is closed as the first build starts.
	started chan struct{}
	// engineDown: the Docker engine does not answer (builds fail to connect).
	engineDown atomic.Bool
}

func (b *fakeBuilder) Build(_ context.Context, svc config.Service, out io.Writer) (build.Image, error) {
	b.mu.Lock()
	b.builds++
	if b.started != nil && b.builds == 1 {
		close(b.started)
	}
	b.mu.Unlock()
	if b.engineDown.Load() {
		return build.Image{}, &build.BuildError{Service: svc.Name, Stage: "build",
			Err: errors.New("starting image build: Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?")}
	}
	src, err := os.ReadFile(filepath.Join(svc.Build.Context, "main.go"))
	if err != nil {
		return build.Image{}, err
	}
	if bytes.Contains(src, []byte("BROKEN")) {
		fmt.Fprintln(out, "main.go:3: syntax error")
		return build.Image{}, &build.BuildError{Service: svc.Name, Stage: "build", Err: errors.New("the build failed"), Output: "main.go:3: syntax error"}
	}
	id := fmt.Sprintf("sha256:%x", sha256.Sum256(src))
	return build.Image{Service: svc.Name, Repo: svc.Image, Tag: build.ContentTag(id), ID: id}, nil
}

// PreBuild counts as nothing: the fake build reads the sources itself.
func (b *fakeBuilder) PreBuild(context.Context, config.Service, io.Writer) error { return nil }

// noImages is an engine without any image of its own.
type noImages struct{}

func (noImages) HasImage(context.Context, string) (bool, error) { return false, nil }

type fakeLoader struct{}

func (fakeLoader) ProbeNodes(context.Context, string) *imageload.NodeProbe { return nil }
func (fakeLoader) LoadProbed(_ context.Context, _ *imageload.NodeProbe, ref string, _ io.Writer) (imageload.Result, error) {
	return imageload.Result{Ref: ref, Nodes: []imageload.NodeResult{{Name: "n1", Bytes: 1 << 20}}}, nil
}
func (fakeLoader) Load(_ context.Context, _ string, ref string, _ io.Writer) (imageload.Result, error) {
	return imageload.Result{Ref: ref, Nodes: []imageload.NodeResult{{Name: "n1", Skipped: true}}}, nil
}

// fakeDeployer prepares the manifests like the real one and "rolls out":
// an image whose source says CRASH fails its rollout.
type fakeDeployer struct {
	cfg     *config.Config
	mu      sync.Mutex
	deploys []map[string]string
	opts    []kube.DeployOptions
	crash   map[string]bool // refs that crash
	deleted bool
	// before, when set, runs as each Deploy starts (a test orders events with it).
	before func(opts kube.DeployOptions)
}

func (d *fakeDeployer) Deploy(_ context.Context, images map[string]string, opts kube.DeployOptions) (*kube.Deployed, error) {
	if d.before != nil {
		d.before(opts)
	}
	m, err := kube.Prepare(d.cfg, images)
	if err != nil {
		return nil, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.deploys = append(d.deploys, images)
	d.opts = append(d.opts, opts)
	res := &kube.Deployed{Manifests: m, Failed: map[string]error{}}
	for _, svc := range opts.Services {
		if d.crash[images[svc]] {
			res.Failed[svc] = errors.New(`deployment/hello is not ready: container "app" is in CrashLoopBackOff`)
		}
	}
	return res, nil
}

func (d *fakeDeployer) DeleteAll(_ context.Context, volumes bool) (kube.Removed, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.deleted = true
	if volumes {
		return kube.Removed{Deleted: []string{"deployment/hello deleted", "persistentvolumeclaim/data-hello-0 deleted"}}, nil
	}
	return kube.Removed{Deleted: []string{"deployment/hello deleted"}, KeptVolumes: []string{"persistentvolumeclaim/data-hello-0"}}, nil
}

func (d *fakeDeployer) lastImage(repo string) string {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.deploys) == 0 {
		return ""
	}
	return d.deploys[len(d.deploys)-1][repo]
}

type fakeClusters struct {
	exists, owned bool
	deleted       bool
	// gate, when set, holds Ensure until it is closed (a slow cold start).
	gate chan struct{}
}

func (c *fakeClusters) Ensure(ctx context.Context, _ config.Cluster) (*cluster.Info, error) {
	if c.gate != nil {
		select {
		case <-c.gate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	created := !c.exists
	c.exists = true
	c.owned = c.owned || created
	return &cluster.Info{Name: "devloop", RESTConfig: &rest.Config{}, Nodes: []string{"devloop-control-plane"}, Created: created}, nil
}
func (c *fakeClusters) Exists(string) (bool, error)             { return c.exists, nil }
func (c *fakeClusters) RESTConfig(string) (*rest.Config, error) { return &rest.Config{}, nil }
func (c *fakeClusters) Delete(context.Context, string) error    { c.deleted = true; return nil }
func (c *fakeClusters) Owned(string) (bool, error)              { return c.owned, nil }
func (c *fakeClusters) RemoveRegistry(context.Context, string) ([]string, error) {
	return nil, nil
}
func (c *fakeClusters) Usable(context.Context, string) (*rest.Config, error) {
	return &rest.Config{}, nil
}
func (c *fakeClusters) Down(ctx context.Context, name string, cleanup func(context.Context, *rest.Config) error) (error, error) {
	var notCleaned error
	if cleanup != nil {
		notCleaned = cleanup(ctx, &rest.Config{})
	}
	return notCleaned, c.Delete(ctx, name)
}
func (c *fakeClusters) InstallAddons(context.Context, *Conn, config.Cluster, func(context.Context, string) error) error {
	return nil
}

type fixture struct {
	dir      string
	cfg      *config.Config
	deps     *Deps
	builder  *fakeBuilder
	deployer *fakeDeployer
	clusters *fakeClusters
	out      *output
}

const deployYAML = `apiVersion: apps/v1
kind: Deployment
metadata: {name: hello}
spec:
  replicas: 2
  selector: {matchLabels: {app: hello}}
  template:
    metadata: {labels: {app: hello}}
    spec:
      containers: [{name: app, image: hello}]
`

func newFixture(t *testing.T) *fixture {
	t.Helper()
	dir, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]string{
		"devloop.yaml":    "name: hello\nservices:\n  - name: hello\nmanifests: [k8s/deploy.yaml]\n",
		"Dockerfile":      "FROM scratch\nCOPY main.go /\n",
		"main.go":         "package main\n// v1\n",
		"k8s/deploy.yaml": deployYAML,
	}
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cfg, err := config.Load(filepath.Join(dir, "devloop.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{dir: dir, cfg: cfg, builder: &fakeBuilder{}, deployer: &fakeDeployer{cfg: cfg, crash: map[string]bool{}},
		clusters: &fakeClusters{}, out: newOutput()}
	eng := &Engine{Builder: f.builder, Loader: fakeLoader{}, Images: noImages{},
		Version: func(context.Context) (string, string, error) {
			if f.builder.engineDown.Load() {
				return "", "", errors.New("Cannot connect to the Docker daemon")
			}
			return "28.5.2", "1.51", nil
		}}
	f.deps = &Deps{
		Clusters: f.clusters,
		Engine:   func(context.Context) (*Engine, error) { return eng, nil },
		Connect: func(cfg *config.Config, _ *rest.Config) (*Conn, error) {
			cs := fake.NewClientset()
			return &Conn{Clients: &kube.Clients{Config: &rest.Config{}, Core: cs},
				Informers: kube.NewInformers(cs, cfg.Namespace, cfg.Name), Deployer: f.deployer}, nil
		},
	}
	return f
}

func (f *fixture) printer() *ui.Printer { return ui.NewPrinter(f.out, false, false) }

func (f *fixture) write(t *testing.T, name, content string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(f.dir, name), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func (f *fixture) ref(t *testing.T, content string) string {
	t.Helper()
	id := fmt.Sprintf("sha256:%x", sha256.Sum256([]byte(content)))
	return "hello:" + build.ContentTag(id)
}

// A build that fails because the Docker engine went away (restarted, say)
// is reported as not the code's fault and built again by itself once the
// engine answers: no save needed, and the last good version keeps running.
func TestUpRetriesABuildWhenTheEngineAnswersAgain(t *testing.T) {
	enginePoll = 10 * time.Millisecond
	f := newFixture(t)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		done <- Up(ctx, f.cfg, f.deps, UpOptions{Out: f.printer(), NoLogs: true, RolloutTimeout: time.Minute, Parallel: 2,
			Reload: func() (*config.Config, error) { return config.Load(f.cfg.Path) }})
	}()
	f.out.waitCount(t, "all services ready (hello)", 1)
	v1 := f.ref(t, "package main\n// v1\n")

	f.builder.engineDown.Store(true)
	f.write(t, "main.go", "package main\n// v2\n")
	f.out.waitCount(t, "Not your code: the Docker engine does not answer", 1)
	if got := f.deployer.lastImage("hello"); got != v1 {
		t.Fatalf("deployed %q while the engine was down, want %q still running", got, v1)
	}
	if out := f.out.String(); strings.Contains(out, "Fix it and save to retry") {
		t.Errorf("an engine failure asks the user to fix their code:\n%s", out)
	}
	f.builder.engineDown.Store(false)
	f.out.waitCount(t, "building (retry: the Docker engine answers again)", 1)
	f.out.waitCount(t, "all services ready (hello)", 2)
	if got, want := f.deployer.lastImage("hello"), f.ref(t, "package main\n// v2\n"); got != want {
		t.Fatalf("after the engine answered the deploy ran %q, want %q", got, want)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Up after Ctrl-C: %v", err)
	}
}

func TestUpCycle(t *testing.T) {
	f := newFixture(t)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		done <- Up(ctx, f.cfg, f.deps, UpOptions{Out: f.printer(), NoLogs: true, RolloutTimeout: time.Minute, Parallel: 2,
			Reload: func() (*config.Config, error) { return config.Load(f.cfg.Path) }})
	}()

	// First build → deploy → ready.
	f.out.waitCount(t, "all services ready (hello)", 1)
	v1 := f.ref(t, "package main\n// v1\n")
	if got := f.deployer.lastImage("hello"); got != v1 {
		t.Fatalf("first deploy ran %q, want %q", got, v1)
	}
	if !strings.Contains(f.out.String(), `created cluster "devloop"`) {
		t.Errorf("no cluster line:\n%s", f.out)
	}

	// A change → rebuild → deploy of the new image.
	f.write(t, "main.go", "package main\n// v2\n")
	f.out.waitCount(t, "all services ready (hello)", 2)
	v2 := f.ref(t, "package main\n// v2\n")
	if got := f.deployer.lastImage("hello"); got != v2 {
		t.Fatalf("after the edit the deploy ran %q, want %q", got, v2)
	}

	// A broken build keeps the last good version: no deploy.
	f.write(t, "main.go", "package main\nBROKEN\n")
	f.out.waitCount(t, "build failed; the last good version keeps running", 1)
	f.out.waitCount(t, "1 of 1 services failed (hello)", 1)
	if got := f.deployer.lastImage("hello"); got != v2 {
		t.Fatalf("a failed build deployed %q; want %q still running", got, v2)
	}

	// A build whose rollout fails is reported, and the next good edit recovers.
	crash := "package main\n// CRASH\n"
	f.deployer.mu.Lock()
	f.deployer.crash[f.ref(t, crash)] = true
	f.deployer.mu.Unlock()
	f.write(t, "main.go", crash)
	f.out.waitCount(t, "rollout failed; the last good version keeps running", 1)
	f.out.waitCount(t, "1 of 1 services failed (hello)", 2)

	f.write(t, "main.go", "package main\n// v3\n")
	f.out.waitCount(t, "all services ready (hello)", 3)
	if got, want := f.deployer.lastImage("hello"), f.ref(t, "package main\n// v3\n"); got != want {
		t.Fatalf("recovery deployed %q, want %q", got, want)
	}

	// Editing devloop.yaml is named, not applied.
	f.write(t, "devloop.yaml", "name: hello\nservices:\n  - name: hello\n    ignore: [tmp]\nmanifests: [k8s/deploy.yaml]\n")
	f.out.waitCount(t, "devloop.yaml changed (services.hello.ignore)", 1)

	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Up after Ctrl-C: %v", err)
	}
	if !strings.Contains(f.out.String(), "stopped. The cluster and apps keep running") {
		t.Errorf("no stop line:\n%s", f.out)
	}
}

func TestUpOnceReportsFailure(t *testing.T) {
	f := newFixture(t)
	f.write(t, "main.go", "package main\nBROKEN\n")
	err := Up(t.Context(), f.cfg, f.deps, UpOptions{Out: f.printer(), Once: true, RolloutTimeout: time.Minute})
	if err == nil || !strings.Contains(err.Error(), "not ready: hello") {
		t.Fatalf("Up --once with a broken build = %v, want not ready: hello", err)
	}
	if len(f.deployer.deploys) != 0 {
		t.Errorf("a broken first build was deployed: %v", f.deployer.deploys)
	}
}

func TestUpRejectsBadManifestsBeforeTheCluster(t *testing.T) {
	f := newFixture(t)
	f.write(t, "k8s/deploy.yaml", "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: {{ .Values.name }}}\n")
	err := Up(t.Context(), f.cfg, f.deps, UpOptions{Out: f.printer(), Once: true})
	if err == nil {
		t.Fatal("want an error for a manifest that does not parse")
	}
	if f.clusters.exists {
		t.Error("the cluster was created although the manifests do not parse")
	}
}

func TestUpRejectsBrokenChartBeforeTheCluster(t *testing.T) {
	f := newFixture(t)
	for name, content := range map[string]string{
		"chart/Chart.yaml":            "apiVersion: v2\nname: web\nversion: 0.1.0\n",
		"chart/templates/broken.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Values.missing.name }}\n",
	} {
		p := filepath.Join(f.dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		f.write(t, name, content)
	}
	f.cfg.Charts = []config.Chart{{Chart: filepath.Join(f.dir, "chart"), Release: "web", Namespace: "default"}}
	err := Up(t.Context(), f.cfg, f.deps, UpOptions{Out: f.printer(), Once: true})
	if err == nil || !strings.Contains(err.Error(), "web/templates/broken.yaml:4:") {
		t.Fatalf("err = %v, want Helm's template error with file and line", err)
	}
	if f.clusters.exists {
		t.Error("the cluster was created although the chart does not render")
	}
}

func TestBuildDownStatus(t *testing.T) {
	f := newFixture(t)
	p := f.printer()
	// No cluster: build says the images were not loaded; down has nothing to do.
	if err := Build(t.Context(), f.cfg, f.deps, p, nil, 2); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(f.out.String(), "images were built but not loaded") {
		t.Errorf("build without a cluster:\n%s", f.out)
	}
	if err := Build(t.Context(), f.cfg, f.deps, p, []string{"nope"}, 2); err == nil || !strings.Contains(err.Error(), `no service "nope"`) {
		t.Errorf("build of an unknown service = %v", err)
	}
	rep, err := Status(t.Context(), f.cfg, f.deps, ContextOptions{})
	if err != nil || rep.ClusterRunning || len(rep.Services) != 1 || rep.Services[0].Desired != 2 {
		t.Errorf("status without a cluster = %+v, %v", rep, err)
	}
	if err := Down(t.Context(), f.cfg, f.deps, p, DownOptions{Cluster: true}); err != nil || !strings.Contains(f.out.String(), "nothing to remove") {
		t.Errorf("down without a cluster = %v\n%s", err, f.out)
	}

	// A failed build is not reported as "built but not loaded".
	f.write(t, "main.go", "package main\nBROKEN\n")
	before := strings.Count(f.out.String(), "images were built but not loaded")
	if err := Build(t.Context(), f.cfg, f.deps, p, nil, 2); err == nil {
		t.Error("a failed build returned no error")
	}
	if strings.Count(f.out.String(), "images were built but not loaded") != before {
		t.Errorf("a failed build says images were built:\n%s", f.out)
	}

	// With a cluster: down removes the inventory and deletes the cluster.
	f.clusters.exists = true
	f.write(t, "main.go", "package main\n// ok\n")
	if err := Build(t.Context(), f.cfg, f.deps, p, nil, 2); err != nil || !strings.Contains(f.out.String(), "node n1 already has") {
		t.Errorf("build with a cluster = %v\n%s", err, f.out)
	}
	// Down keeps the volumes and says so; --volumes deletes them.
	if err := Down(t.Context(), f.cfg, f.deps, p, DownOptions{}); err != nil ||
		!strings.Contains(f.out.String(), "kept persistentvolumeclaim/data-hello-0 and the data in them (the next up uses them again); devloop down --volumes deletes them") {
		t.Errorf("down = %v, want the kept claim said\n%s", err, f.out)
	}
	if err := Down(t.Context(), f.cfg, f.deps, p, DownOptions{Volumes: true}); err != nil ||
		!strings.Contains(f.out.String(), "removed: deployment/hello deleted, persistentvolumeclaim/data-hello-0 deleted") {
		t.Errorf("down --volumes = %v, want the claim deleted\n%s", err, f.out)
	}
	f.deployer.deleted = false
	// A cluster devloop did not create is not deleted without --force.
	var notOwned *NotOwnedError
	if err := Down(t.Context(), f.cfg, f.deps, p, DownOptions{Cluster: true}); !errors.As(err, &notOwned) {
		t.Fatalf("down --cluster of an adopted cluster = %v, want NotOwnedError", err)
	}
	if f.deployer.deleted || f.clusters.deleted {
		t.Fatal("down --cluster of an adopted cluster deleted something")
	}
	if err := Down(t.Context(), f.cfg, f.deps, p, DownOptions{Cluster: true, Force: true}); err != nil {
		t.Fatal(err)
	}
	if !f.deployer.deleted || !f.clusters.deleted || !strings.Contains(f.out.String(), "removed: deployment/hello deleted") {
		t.Errorf("down --cluster: deleted=%v cluster=%v\n%s", f.deployer.deleted, f.clusters.deleted, f.out)
	}
}

// Issue 17: on a cold start the first build runs while the cluster is being
// created, and a Ctrl-C before the cluster is up leaves nothing behind.
func TestUpBuildsWhileTheClusterComesUp(t *testing.T) {
	f := newFixture(t)
	f.clusters.gate = make(chan struct{})
	f.builder.started = make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- Up(t.Context(), f.cfg, f.deps, UpOptions{Out: f.printer(), Once: true, RolloutTimeout: time.Minute})
	}()
	select {
	case <-f.builder.started:
	case <-time.After(30 * time.Second):
		t.Fatal("the first build did not start while the cluster was being created")
	}
	close(f.clusters.gate)
	if err := <-done; err != nil {
		t.Fatalf("up --once: %v\n%s", err, f.out)
	}
	out := f.out.String()
	if b, c := strings.Index(out, "building (initial build)"), strings.Index(out, `created cluster "devloop"`); b < 0 || c < 0 || b > c {
		t.Errorf("the build line should come before the cluster line:\n%s", out)
	}

	g := newFixture(t)
	g.clusters.gate = make(chan struct{}) // never opens
	g.builder.started = make(chan struct{})
	ctx, cancel := context.WithCancel(t.Context())
	done = make(chan error, 1)
	go func() { done <- Up(ctx, g.cfg, g.deps, UpOptions{Out: g.printer(), RolloutTimeout: time.Minute}) }()
	<-g.builder.started
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Ctrl-C during a cold start: %v", err)
	}
	if !strings.Contains(g.out.String(), "stopped before the cluster was ready; nothing half-made was left behind") {
		t.Errorf("Ctrl-C during a cold start:\n%s", g.out)
	}
	if len(g.deployer.deploys) != 0 {
		t.Errorf("deployed although the cluster never came up")
	}
}

// A forward whose port is taken ends up with a clear error (after the
// cluster came up, the session stops with it).
func TestUpForwardPortInUse(t *testing.T) {
	f := newFixture(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	f.write(t, "devloop.yaml", fmt.Sprintf("name: hello\nservices:\n  - name: hello\n    portForwards: [{local: %d, port: 80}]\nmanifests: [k8s/deploy.yaml]\n", port))
	cfg, err := config.Load(f.cfg.Path)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		done <- Up(t.Context(), cfg, f.deps, UpOptions{Out: f.printer(), NoLogs: true, RolloutTimeout: time.Minute})
	}()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("127.0.0.1:%d is already in use", port)) {
			t.Fatalf("Up with a taken forward port = %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("Up did not stop on a forward that cannot listen:\n%s", f.out)
	}
}

// fakePusher is the push delivery: it names the registry's reference.
type fakePusher struct {
	host   string
	pushed *[]string
}

func (p fakePusher) ProbeNodes(context.Context, string) *imageload.NodeProbe { return nil }
func (p fakePusher) LoadProbed(ctx context.Context, _ *imageload.NodeProbe, ref string, out io.Writer) (imageload.Result, error) {
	return p.Load(ctx, "", ref, out)
}
func (p fakePusher) Load(_ context.Context, _ string, ref string, _ io.Writer) (imageload.Result, error) {
	*p.pushed = append(*p.pushed, ref)
	to, err := imageload.RegistryRef(p.host, ref)
	return imageload.Result{Ref: ref, Pushed: to, Push: &imageload.PushResult{Registry: p.host, LayersPushed: 1, LayersExisted: 2}}, err
}

// With cluster.registry, images are pushed (not streamed) and the manifests
// name them by the registry's reference.
func TestUpPushesToTheRegistry(t *testing.T) {
	f := newFixture(t)
	f.cfg.Cluster.Registry.Enabled = true
	f.cfg.Cluster.Delivery = config.DeliveryPush
	var pushed []string
	eng, _ := f.deps.Engine(t.Context())
	eng.Push = func(host string) Loader { return fakePusher{host: host, pushed: &pushed} }
	if err := Up(t.Context(), f.cfg, f.deps, UpOptions{Out: f.printer(), Once: true, RolloutTimeout: time.Minute}); err != nil {
		t.Fatal(err)
	}
	ref := f.ref(t, "package main\n// v1\n")
	if len(pushed) != 1 || pushed[0] != ref {
		t.Fatalf("pushed %v, want [%s]", pushed, ref)
	}
	want := "localhost:5001/" + ref
	if len(f.deployer.deploys) == 0 || f.deployer.deploys[0]["hello"] != want {
		t.Fatalf("deployed %v, want hello=%s", f.deployer.deploys, want)
	}
	if out := f.out.String(); !strings.Contains(out, "image "+want+": build") || !strings.Contains(out, "push to localhost:5001") {
		t.Errorf("output:\n%s", out)
	}
}
