package engine

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/devloop-dev/devloop/internal/build"
	"github.com/devloop-dev/devloop/internal/config"
)

func testConfig(names ...string) *config.Config {
	cfg := &config.Config{Name: "p"}
	for _, n := range names {
		cfg.Services = append(cfg.Services, config.Service{Name: n, Image: n})
	}
	return cfg
}

func art(repo, tag string) *build.Image {
	return &build.Image{Service: repo, Repo: repo, Tag: tag, ID: "sha256:" + tag}
}

// run applies Plan's actions as started (like the loop does) and returns them.
func step(s *State) []Action {
	acts := Plan(s)
	for _, a := range acts {
		Reduce(s, ActionStarted{Action: a})
	}
	return acts
}

func kinds(acts []Action) []string {
	var out []string
	for _, a := range acts {
		out = append(out, fmt.Sprintf("%s:%s", a.Kind, a.Service))
	}
	return out
}

func TestPlanFirstRunBuildsAllThenDeploysOnce(t *testing.T) {
	s := NewState(testConfig("a", "b"), time.Unix(0, 0))
	if got, want := kinds(step(s)), []string{"image:a", "image:b"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("first plan = %v, want %v", got, want)
	}
	Reduce(s, ImageDone{Service: "a", Gen: 1, Image: art("a", "1")})
	if acts := step(s); len(acts) != 0 {
		t.Fatalf("deploy must wait for every first image, got %v", kinds(acts))
	}
	Reduce(s, ImageDone{Service: "b", Gen: 1, Image: art("b", "1")})
	acts := step(s)
	if len(acts) != 1 || acts[0].Kind != ActionDeploy || !acts[0].All {
		t.Fatalf("want one full deploy, got %+v", acts)
	}
	if want := map[string]string{"a": "a:1", "b": "b:1"}; !reflect.DeepEqual(acts[0].Images, want) {
		t.Fatalf("images = %v, want %v", acts[0].Images, want)
	}
	Reduce(s, DeployDone{Gen: acts[0].Gen})
	for _, n := range []string{"a", "b"} {
		if s.Services[n].Phase != PhaseReady || s.Services[n].Deployed.Ref() != n+":1" {
			t.Fatalf("%s: phase %s deployed %v", n, s.Services[n].Phase, s.Services[n].Deployed)
		}
	}
	if !s.Settled() {
		t.Fatal("state should be settled")
	}
	if acts := step(s); len(acts) != 0 {
		t.Fatalf("settled state planned %v", kinds(acts))
	}
}

// settle brings every service to deployed at tag "1".
func settled(t *testing.T, names ...string) *State {
	t.Helper()
	s := NewState(testConfig(names...), time.Unix(0, 0))
	step(s)
	for _, n := range names {
		Reduce(s, ImageDone{Service: n, Gen: 1, Image: art(n, "1")})
	}
	acts := step(s)
	Reduce(s, DeployDone{Gen: acts[0].Gen})
	if !s.Settled() {
		t.Fatal("not settled")
	}
	return s
}

func TestChangeRebuildsOnlyAffectedService(t *testing.T) {
	s := settled(t, "a", "b")
	Reduce(s, Changed{Rebuild: map[string][]string{"b": {"/src/b/main.go"}}})
	acts := step(s)
	if got := kinds(acts); !reflect.DeepEqual(got, []string{"image:b"}) {
		t.Fatalf("plan = %v", got)
	}
	if !reflect.DeepEqual(acts[0].Paths, []string{"/src/b/main.go"}) {
		t.Fatalf("reasons = %v", acts[0].Paths)
	}
	Reduce(s, ImageDone{Service: "b", Gen: acts[0].Gen, Image: art("b", "2")})
	acts = step(s)
	if len(acts) != 1 || acts[0].Kind != ActionDeploy || acts[0].All || !reflect.DeepEqual(acts[0].Services, []string{"b"}) {
		t.Fatalf("want a deploy rolling only b, got %+v", acts)
	}
	Reduce(s, DeployDone{Gen: acts[0].Gen})
	if s.Services["b"].Deployed.Ref() != "b:2" || s.Services["a"].Deployed.Ref() != "a:1" {
		t.Fatalf("deployed: a=%v b=%v", s.Services["a"].Deployed, s.Services["b"].Deployed)
	}
}

func TestSameContentRebuildDoesNotDeploy(t *testing.T) {
	s := settled(t, "a")
	Reduce(s, Changed{Rebuild: map[string][]string{"a": {"/x"}}})
	acts := step(s)
	Reduce(s, ImageDone{Service: "a", Gen: acts[0].Gen, Image: art("a", "1")})
	if acts := step(s); len(acts) != 0 {
		t.Fatalf("identical image must not redeploy, got %v", kinds(acts))
	}
	if s.Services["a"].Phase != PhaseReady {
		t.Fatalf("phase = %s", s.Services["a"].Phase)
	}
}

func TestChangeDuringBuildSupersedesIt(t *testing.T) {
	s := settled(t, "a")
	Reduce(s, Changed{Rebuild: map[string][]string{"a": {"/1"}}})
	first := step(s)[0]
	Reduce(s, Changed{Rebuild: map[string][]string{"a": {"/2"}}})
	if got := kinds(step(s)); !reflect.DeepEqual(got, []string{"cancel:a"}) {
		t.Fatalf("plan during build = %v, want cancel", got)
	}
	if got := kinds(step(s)); len(got) != 0 {
		t.Fatalf("cancel must be asked once, then %v", got)
	}
	// The cancelled build reports back; a new build of the newest change follows.
	Reduce(s, ImageDone{Service: "a", Gen: first.Gen, Err: ErrSuperseded})
	acts := step(s)
	if got := kinds(acts); !reflect.DeepEqual(got, []string{"image:a"}) {
		t.Fatalf("after cancel = %v", got)
	}
	if acts[0].Gen == first.Gen || !reflect.DeepEqual(acts[0].Paths, []string{"/2"}) {
		t.Fatalf("new build %+v should be a new generation for /2", acts[0])
	}
	if s.Services["a"].LastError != "" {
		t.Fatalf("a superseded build is not an error: %q", s.Services["a"].LastError)
	}
}

func TestStaleResultsAreDropped(t *testing.T) {
	s := settled(t, "a")
	Reduce(s, ImageDone{Service: "a", Gen: 99, Image: art("a", "x")})
	Reduce(s, DeployDone{Gen: 99, Err: errors.New("boom")})
	Reduce(s, SyncDone{Service: "a", Gen: 99, Err: errors.New("boom")})
	if s.Services["a"].Built.Ref() != "a:1" || s.Services["a"].Phase != PhaseReady || s.Services["a"].LastError != "" {
		t.Fatalf("stale results changed state: %+v", s.Services["a"])
	}
}

func TestFailedBuildKeepsLastGoodAndRetriesOnNextChange(t *testing.T) {
	s := settled(t, "a")
	Reduce(s, Changed{Rebuild: map[string][]string{"a": {"/main.go"}}})
	acts := step(s)
	Reduce(s, ImageDone{Service: "a", Gen: acts[0].Gen, Err: errors.New("main.go:3: syntax error")})
	ss := s.Services["a"]
	if ss.Phase != PhaseFailed || ss.LastError != "main.go:3: syntax error" {
		t.Fatalf("after failure: %+v", ss)
	}
	if ss.Deployed.Ref() != "a:1" {
		t.Fatalf("last good version lost: %v", ss.Deployed)
	}
	if acts := step(s); len(acts) != 0 {
		t.Fatalf("a failed build must not retry by itself: %v", kinds(acts))
	}
	Reduce(s, Changed{Rebuild: map[string][]string{"a": {"/main.go"}}})
	acts = step(s)
	if got := kinds(acts); !reflect.DeepEqual(got, []string{"image:a"}) {
		t.Fatalf("next save should retry, got %v", got)
	}
	Reduce(s, ImageDone{Service: "a", Gen: acts[0].Gen, Image: art("a", "2")})
	d := step(s)[0]
	Reduce(s, DeployDone{Gen: d.Gen})
	if ss.Phase != PhaseReady || ss.LastError != "" || ss.Deployed.Ref() != "a:2" {
		t.Fatalf("after recovery: %+v", ss)
	}
}

func TestRolloutFailureIsPerService(t *testing.T) {
	s := settled(t, "a", "b")
	Reduce(s, Changed{Rebuild: map[string][]string{"a": {"/x"}, "b": {"/y"}}})
	acts := step(s)
	for _, a := range acts {
		Reduce(s, ImageDone{Service: a.Service, Gen: a.Gen, Image: art(a.Service, "2")})
	}
	d := step(s)[0]
	Reduce(s, DeployDone{Gen: d.Gen, Failed: map[string]error{"a": errors.New("CrashLoopBackOff")}})
	if s.Services["a"].Phase != PhaseFailed || s.Services["a"].Deployed.Ref() != "a:1" {
		t.Fatalf("a: %+v", s.Services["a"])
	}
	if s.Services["b"].Phase != PhaseReady || s.Services["b"].Deployed.Ref() != "b:2" {
		t.Fatalf("b: %+v", s.Services["b"])
	}
}

func TestManifestChangeAppliesWithoutBuilding(t *testing.T) {
	s := settled(t, "a")
	Reduce(s, Changed{Manifests: true})
	acts := step(s)
	if len(acts) != 1 || acts[0].Kind != ActionDeploy || !acts[0].All {
		t.Fatalf("want one full apply, got %+v", acts)
	}
	if acts[0].Images["a"] != "a:1" {
		t.Fatalf("apply must keep the built image: %v", acts[0].Images)
	}
}

// A manifest (or chart) that fails to apply, then is fixed: the service is
// ready again after the fixed apply, without a build. A failed build still
// shows through a manifest-only apply.
func TestFixedManifestClearsDeployFailure(t *testing.T) {
	s := settled(t, "a")
	Reduce(s, Changed{Manifests: true})
	d := step(s)[0]
	Reduce(s, DeployDone{Gen: d.Gen, Err: errors.New("chart: template: broken.yaml:4:18: nil pointer")})
	if ss := s.Services["a"]; ss.Phase != PhaseFailed || !ss.DeployFailed {
		t.Fatalf("after the failed apply: %+v", ss)
	}
	Reduce(s, Changed{Manifests: true})
	d = step(s)[0]
	if s.Services["a"].Phase != PhaseDeploying {
		t.Fatalf("the fixed apply does not deploy a: %+v", s.Services["a"])
	}
	Reduce(s, DeployDone{Gen: d.Gen})
	if ss := s.Services["a"]; ss.Phase != PhaseReady || ss.DeployFailed || ss.LastError != "" {
		t.Fatalf("after the fixed apply: %+v", ss)
	}

	Reduce(s, Changed{Rebuild: map[string][]string{"a": {"/x"}}})
	b := step(s)[0]
	Reduce(s, ImageDone{Service: "a", Gen: b.Gen, Err: errors.New("compile error")})
	Reduce(s, Changed{Manifests: true})
	d = step(s)[0]
	Reduce(s, DeployDone{Gen: d.Gen})
	if ss := s.Services["a"]; ss.Phase != PhaseFailed || ss.LastError != "compile error" {
		t.Fatalf("a manifest apply hid the failed build: %+v", ss)
	}
}

func TestOneDeployAtATime(t *testing.T) {
	s := settled(t, "a", "b")
	Reduce(s, Changed{Rebuild: map[string][]string{"a": {"/x"}}})
	a := step(s)[0]
	Reduce(s, ImageDone{Service: "a", Gen: a.Gen, Image: art("a", "2")})
	d1 := step(s)[0]
	// b finishes a build while a's deploy runs: it must wait.
	Reduce(s, Changed{Rebuild: map[string][]string{"b": {"/y"}}})
	b := step(s)[0]
	Reduce(s, ImageDone{Service: "b", Gen: b.Gen, Image: art("b", "2")})
	if acts := step(s); len(acts) != 0 {
		t.Fatalf("second deploy started during the first: %v", kinds(acts))
	}
	Reduce(s, DeployDone{Gen: d1.Gen})
	if s.Services["b"].Phase != PhaseDeploying {
		t.Fatalf("b must still be waiting for its deploy, is %s", s.Services["b"].Phase)
	}
	d2 := step(s)
	if len(d2) != 1 || !reflect.DeepEqual(d2[0].Services, []string{"b"}) {
		t.Fatalf("second deploy = %+v", d2)
	}
}

func TestLiveSync(t *testing.T) {
	s := settled(t, "a")
	Reduce(s, Changed{Sync: map[string][]string{"a": {"/static/b.css", "/static/a.css"}}})
	acts := step(s)
	if got := kinds(acts); !reflect.DeepEqual(got, []string{"sync:a"}) {
		t.Fatalf("plan = %v", got)
	}
	if !reflect.DeepEqual(acts[0].Paths, []string{"/static/a.css", "/static/b.css"}) {
		t.Fatalf("paths = %v", acts[0].Paths)
	}
	Reduce(s, SyncDone{Service: "a", Gen: acts[0].Gen})
	if s.Services["a"].Phase != PhaseReady || s.Services["a"].Syncs != 1 {
		t.Fatalf("after sync: %+v", s.Services["a"])
	}

	// A sync that cannot be done falls back to a rebuild and says why.
	Reduce(s, Changed{Sync: map[string][]string{"a": {"/static/a.css"}}})
	acts = step(s)
	Reduce(s, SyncDone{Service: "a", Gen: acts[0].Gen, Fallback: true, Err: errors.New("no tar in the image")})
	if got := kinds(step(s)); !reflect.DeepEqual(got, []string{"image:a"}) {
		t.Fatalf("fallback should rebuild, got %v", got)
	}
	if s.Services["a"].LastError == "" {
		t.Fatal("fallback must say why")
	}
}

func TestLiveUpdate(t *testing.T) {
	s := settled(t, "a")
	Reduce(s, Changed{Live: map[string][]string{"a": {"/src/main.go"}}})
	acts := step(s)
	if got := kinds(acts); !reflect.DeepEqual(got, []string{"live:a"}) || !reflect.DeepEqual(acts[0].Paths, []string{"/src/main.go"}) {
		t.Fatalf("plan = %v %v", got, acts)
	}
	if s.Services["a"].Phase != PhaseLive {
		t.Fatalf("phase %s", s.Services["a"].Phase)
	}
	// A change during the update waits for it, then is another update.
	Reduce(s, Changed{Live: map[string][]string{"a": {"/src/util.go"}}})
	if got := kinds(step(s)); len(got) != 0 {
		t.Fatalf("plan during an update = %v", got)
	}
	Reduce(s, LiveDone{Service: "a", Gen: acts[0].Gen, Updated: 1})
	if ss := s.Services["a"]; ss.Phase != PhaseReady || ss.LiveUpdates != 1 {
		t.Fatalf("after the update: %+v", ss)
	}
	acts = step(s)
	if got := kinds(acts); !reflect.DeepEqual(got, []string{"live:a"}) {
		t.Fatalf("plan = %v", got)
	}
	Reduce(s, LiveDone{Service: "a", Gen: acts[0].Gen, Updated: 1})
	if s.Services["a"].LiveUpdates != 2 || !s.Settled() {
		t.Fatalf("after the second update: %+v", s.Services["a"])
	}

	// A new container replayed (a marker, no sources) is no new live update.
	Reduce(s, Changed{Live: map[string][]string{"a": {"(new container a-1)"}}})
	acts = step(s)
	Reduce(s, LiveDone{Service: "a", Gen: acts[0].Gen, Updated: 0})
	if s.Services["a"].LiveUpdates != 2 {
		t.Fatalf("a replay counted: %+v", s.Services["a"])
	}

	// A pre-build failure is a failed build: the last good version runs.
	Reduce(s, Changed{Live: map[string][]string{"a": {"/src/main.go"}}})
	acts = step(s)
	Reduce(s, LiveDone{Service: "a", Gen: acts[0].Gen, Err: errors.New("main.go:3: syntax error")})
	if ss := s.Services["a"]; ss.Phase != PhaseFailed || !strings.Contains(ss.LastError, "syntax error") || ss.Dirty {
		t.Fatalf("after a failed pre-build: %+v", ss)
	}

	// A restart that cannot be done rebuilds and says why; the rollout of
	// the new image catches up with the live updates.
	Reduce(s, Changed{Live: map[string][]string{"a": {"/src/main.go"}}})
	acts = step(s)
	Reduce(s, LiveDone{Service: "a", Gen: acts[0].Gen, Fallback: true, Err: errors.New("no supervisor")})
	acts = step(s)
	if got := kinds(acts); !reflect.DeepEqual(got, []string{"image:a"}) || !strings.Contains(s.Services["a"].LastError, "rebuilding instead: no supervisor") {
		t.Fatalf("plan %v, state %+v", got, s.Services["a"])
	}
	// While the build runs, a live change is part of a new build.
	Reduce(s, Changed{Live: map[string][]string{"a": {"/src/x.go"}}})
	if got := kinds(step(s)); !reflect.DeepEqual(got, []string{"cancel:a"}) {
		t.Fatalf("a live change during a build: %v", got)
	}
	Reduce(s, ImageDone{Service: "a", Gen: acts[0].Gen, Err: ErrSuperseded})
	acts = step(s)
	Reduce(s, ImageDone{Service: "a", Gen: acts[0].Gen, Image: art("a", "2")})
	acts = step(s)
	if got := kinds(acts); !reflect.DeepEqual(got, []string{"deploy:"}) {
		t.Fatalf("plan %v", got)
	}
	// During the rollout a live change waits for a build too.
	Reduce(s, Changed{Live: map[string][]string{"a": {"(new container a-2)"}}})
	if len(s.Services["a"].PendingLive) != 0 || s.Services["a"].Dirty {
		t.Fatalf("a marker during a rollout: %+v", s.Services["a"])
	}
	Reduce(s, DeployDone{Gen: acts[0].Gen})
	if ss := s.Services["a"]; ss.LiveUpdates != 0 || ss.Phase != PhaseReady {
		t.Fatalf("after the rollout: %+v", ss)
	}
}

func TestSyncWaitsForBuildAndIsPartOfIt(t *testing.T) {
	s := NewState(testConfig("a"), time.Unix(0, 0))
	Reduce(s, Changed{Sync: map[string][]string{"a": {"/static/x"}}})
	acts := step(s)
	if got := kinds(acts); !reflect.DeepEqual(got, []string{"image:a"}) {
		t.Fatalf("plan = %v", got)
	}
	if len(s.Services["a"].PendingSync) != 0 {
		t.Fatal("a build includes pending synced files")
	}
}

// fakeRunner records calls and lets the test decide each result.
type fakeRunner struct {
	mu      sync.Mutex
	builds  map[string]int
	release chan struct{} // closed or fed to let builds finish
	deploys []Action
}

func (f *fakeRunner) Image(ctx context.Context, svc config.Service, reasons []string, progress func(Phase)) (*build.Image, error) {
	f.mu.Lock()
	f.builds[svc.Name]++
	n := f.builds[svc.Name]
	f.mu.Unlock()
	select {
	case <-f.release:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	progress(PhaseLoading)
	a := art(svc.Image, fmt.Sprint(n))
	a.ID = strings.Join(reasons, ",") // which change this image was built for
	return a, nil
}

func (f *fakeRunner) Sync(context.Context, config.Service, []string) (bool, error) { return false, nil }

func (f *fakeRunner) Live(context.Context, config.Service, []string) (int, bool, error) {
	return 1, false, nil
}

func (f *fakeRunner) Deploy(_ context.Context, a Action) (map[string]error, error) {
	f.mu.Lock()
	f.deploys = append(f.deploys, a)
	f.mu.Unlock()
	return nil, nil
}

// settleObserver signals each time the state is settled, and each started action.
type settleObserver struct {
	settled chan *State
	started chan Action
}

func newObserver() settleObserver {
	return settleObserver{settled: make(chan *State, 64), started: make(chan Action, 64)}
}

// Reduced sends a copy of each settled state: the loop goes on changing
// its own while the test reads it.
func (o settleObserver) Reduced(s *State, _ Event) {
	if s.Settled() {
		o.settled <- snapshot(s)
	}
}

// snapshot copies s and its services (their slices and maps are shared).
func snapshot(s *State) *State {
	c := *s
	c.Services = make(map[string]*ServiceState, len(s.Services))
	for k, v := range s.Services {
		vv := *v
		c.Services[k] = &vv
	}
	return &c
}
func (o settleObserver) Started(_ *State, a Action) { o.started <- a }

func TestLoopRunsActionsAndSupersedes(t *testing.T) {
	f := &fakeRunner{builds: map[string]int{}, release: make(chan struct{})}
	obs := newObserver()
	l := New(testConfig("a", "b"), f, Options{Observer: obs})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- l.Run(ctx) }()

	close(f.release) // builds finish at once from now on
	<-obs.settled
	f.mu.Lock()
	if len(f.deploys) != 1 || !f.deploys[0].All {
		t.Fatalf("deploys = %+v", f.deploys)
	}
	f.mu.Unlock()

	l.Post(ctx, Changed{Rebuild: map[string][]string{"a": {"/a/main.go"}}})
	<-obs.settled
	f.mu.Lock()
	if f.builds["a"] != 2 || f.builds["b"] != 1 {
		t.Fatalf("builds = %v, want a rebuilt only", f.builds)
	}
	if len(f.deploys) != 2 || !reflect.DeepEqual(f.deploys[1].Services, []string{"a"}) {
		t.Fatalf("second deploy = %+v", f.deploys)
	}
	f.mu.Unlock()

	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Run returned %v", err)
	}
}

func TestLoopCancelsSupersededBuild(t *testing.T) {
	f := &fakeRunner{builds: map[string]int{}, release: make(chan struct{})}
	obs := newObserver()
	l := New(testConfig("a"), f, Options{Observer: obs})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go l.Run(ctx) //nolint:errcheck

	// The first build blocks until release; a change supersedes it.
	if a := <-obs.started; a.Kind != ActionImage || a.Gen != 1 {
		t.Fatalf("first action = %+v", a)
	}
	l.Post(ctx, Changed{Rebuild: map[string][]string{"a": {"/a/x.go"}}})
	if a := <-obs.started; a.Kind != ActionImage || a.Gen != 2 {
		t.Fatalf("second action = %+v, want the superseding build", a)
	}
	close(f.release)
	s := <-obs.settled
	// The superseded build may be cancelled before it even reaches the
	// runner, so count nothing: what matters is which change was deployed.
	if d := s.Services["a"].Deployed; d == nil || d.ID != "/a/x.go" {
		t.Fatalf("deployed %+v, want the build of the newer change", d)
	}
}

// A first build that fails does not hold up the others: the first apply
// goes ahead without its workloads (held: neither applied nor pruned), and
// the state settles (so up --once can report it). Its fix is rolled alone.
func TestFailedFirstBuildDoesNotHoldUpTheOthers(t *testing.T) {
	s := NewState(testConfig("a", "b"), time.Time{})
	acts := step(s)
	Reduce(s, ImageDone{Service: "b", Gen: acts[1].Gen, Image: art("b", "1")})
	if got := kinds(step(s)); len(got) != 0 {
		t.Fatalf("deploy started before a's first image: %v", got)
	}
	if s.Settled() {
		t.Fatal("settled while a still builds")
	}
	Reduce(s, ImageDone{Service: "a", Gen: acts[0].Gen, Err: errors.New("compile error")})
	acts = step(s)
	if len(acts) != 1 || acts[0].Kind != ActionDeploy || !acts[0].All ||
		!reflect.DeepEqual(acts[0].Services, []string{"b"}) || !reflect.DeepEqual(acts[0].Hold, []string{"a"}) {
		t.Fatalf("after a failed first build: %+v, want the first apply of b, a held", acts)
	}
	Reduce(s, DeployDone{Gen: acts[0].Gen})
	if s.Services["b"].Phase != PhaseReady || s.Services["a"].Phase != PhaseFailed {
		t.Fatalf("phases a=%s b=%s", s.Services["a"].Phase, s.Services["b"].Phase)
	}
	if !s.Settled() {
		t.Fatal("not settled: nothing runs and nothing can start until a is fixed")
	}
	Reduce(s, Changed{Rebuild: map[string][]string{"a": {"/a/main.go"}}})
	acts = step(s)
	if got := kinds(acts); !reflect.DeepEqual(got, []string{"image:a"}) {
		t.Fatalf("after a fix of a: %v, want a built", got)
	}
	if s.Settled() {
		t.Fatal("settled while the fix of a builds")
	}
	Reduce(s, ImageDone{Service: "a", Gen: acts[0].Gen, Image: art("a", "2")})
	acts = step(s)
	if len(acts) != 1 || acts[0].All || !reflect.DeepEqual(acts[0].Services, []string{"a"}) || len(acts[0].Hold) != 0 {
		t.Fatalf("after the fix: %+v, want a rolled alone, nothing held", acts)
	}
}

// A build that failed because the Docker engine stopped answering is not
// the code's fault: it is shown as failed (the last good version keeps
// running) and built again by itself once the engine answers, not on the
// next save.
func TestEngineFailureRetriesByItself(t *testing.T) {
	s := settled(t, "a")
	Reduce(s, Changed{Rebuild: map[string][]string{"a": {"/main.go"}}})
	acts := step(s)
	gen := acts[0].Gen
	Reduce(s, ImageDone{Service: "a", Gen: gen, Err: &RetryError{Err: errors.New("engine gone"), Reason: "the engine answers again"}})
	ss := s.Services["a"]
	if ss.Phase != PhaseFailed || !ss.RetryOwed || ss.Deployed.Ref() != "a:1" {
		t.Fatalf("after the engine failure: %+v", ss)
	}
	if acts := step(s); len(acts) != 0 {
		t.Fatalf("retried before the engine answered: %v", kinds(acts))
	}
	Reduce(s, Retry{Service: "a", Gen: gen, Reason: "the engine answers again"})
	acts = step(s)
	if got := kinds(acts); !reflect.DeepEqual(got, []string{"image:a"}) || acts[0].Paths[0] != "the engine answers again" {
		t.Fatalf("after the engine answered: %v %v, want one build saying why", got, acts)
	}
	if ss.RetryOwed {
		t.Fatal("retry still owed once the build started")
	}

	// A code failure is never retried by a Retry event.
	Reduce(s, ImageDone{Service: "a", Gen: acts[0].Gen, Err: errors.New("syntax error")})
	Reduce(s, Retry{Service: "a", Gen: acts[0].Gen})
	if acts := step(s); len(acts) != 0 {
		t.Fatalf("a code failure was retried: %v", kinds(acts))
	}
}

// A save while the retry waits builds at once; the retry, when the engine
// answers, is then dropped (the newer build already runs).
func TestRetryAfterSaveIsDropped(t *testing.T) {
	s := settled(t, "a")
	Reduce(s, Changed{Rebuild: map[string][]string{"a": {"/main.go"}}})
	gen := step(s)[0].Gen
	Reduce(s, ImageDone{Service: "a", Gen: gen, Err: &RetryError{Err: errors.New("engine gone")}})
	Reduce(s, Changed{Rebuild: map[string][]string{"a": {"/main.go"}}})
	if got := kinds(step(s)); !reflect.DeepEqual(got, []string{"image:a"}) {
		t.Fatalf("save after an engine failure: %v", got)
	}
	Reduce(s, Retry{Service: "a", Gen: gen})
	if got := kinds(step(s)); len(got) != 0 {
		t.Fatalf("stale retry started %v", got)
	}
}

// retryRunner fails the first build of each service with a RetryError whose
// Wait returns when engineBack is closed.
type retryRunner struct {
	fakeRunner
	engineBack chan struct{}
}

func (f *retryRunner) Image(ctx context.Context, svc config.Service, reasons []string, progress func(Phase)) (*build.Image, error) {
	f.mu.Lock()
	first := f.builds[svc.Name] == 0
	f.mu.Unlock()
	if first {
		f.mu.Lock()
		f.builds[svc.Name]++
		f.mu.Unlock()
		return nil, &RetryError{Err: errors.New("the Docker engine does not answer"), Reason: "the engine answers again",
			Wait: func(ctx context.Context) error {
				select {
				case <-f.engineBack:
					return nil
				case <-ctx.Done():
					return ctx.Err()
				}
			}}
	}
	return f.fakeRunner.Image(ctx, svc, reasons, progress)
}

func TestLoopRetriesWhenTheEngineAnswers(t *testing.T) {
	f := &retryRunner{fakeRunner: fakeRunner{builds: map[string]int{}, release: make(chan struct{})}, engineBack: make(chan struct{})}
	close(f.release)
	obs := newObserver()
	l := New(testConfig("a"), f, Options{Observer: obs})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go l.Run(ctx) //nolint:errcheck
	if s := <-obs.settled; s.Services["a"].Phase != PhaseFailed {
		t.Fatalf("after the engine failure: %+v", s.Services["a"])
	}
	close(f.engineBack)
	if a := <-obs.started; a.Kind != ActionImage || a.Gen != 1 {
		t.Fatalf("first action %+v", a)
	}
	if a := <-obs.started; a.Kind != ActionImage || a.Paths[0] != "the engine answers again" {
		t.Fatalf("want the retry build, got %+v", a)
	}
	// Settled states from before the retry may still be queued: the one
	// after it is ready with the retried image deployed.
	deadline := time.After(time.Minute)
	for {
		select {
		case s := <-obs.settled:
			if ss := s.Services["a"]; ss.Phase == PhaseReady && ss.Deployed != nil {
				return
			}
		case <-deadline:
			t.Fatal("the service never became ready after the retry")
		}
	}
}
