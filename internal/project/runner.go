package project

import (
	"context"
	"errors"
	"fmt"
	"github.com/devloop-dev/devloop/internal/redact"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/devloop-dev/devloop/internal/build"
	"github.com/devloop-dev/devloop/internal/config"
	"github.com/devloop-dev/devloop/internal/engine"
	"github.com/devloop-dev/devloop/internal/imageload"
	"github.com/devloop-dev/devloop/internal/kube"
	"github.com/devloop-dev/devloop/internal/livesync"
	"github.com/devloop-dev/devloop/internal/logs"
	"github.com/devloop-dev/devloop/internal/ui"
)

// runner does the I/O the engine asks for.
type runner struct {
	cfg            *config.Config
	out            *ui.Printer
	eng            *Engine
	cluster        *clusterStart // the cluster's connection, once it is up
	rolloutTimeout time.Duration
	live           bool        // the live status view is on: no "still ..." lines
	secrets        *redact.Set // gets the Secret values of every deploy

	deploying atomic.Int32 // deploys in flight: their rollout waits explain pods
	tails     atomic.Pointer[logs.Manager]

	liveUpdates *liveUpdates // live updates since each service's image

	mu             sync.Mutex
	manifests      *kube.Manifests   // of the last deploy (before it: as rendered)
	deployedImages map[string]string // the images of the last deploy
}

var _ engine.Runner = (*runner)(nil)

// progress prints "still ..." lines during a long step, unless the live
// status view is on (its table already shows each service's step and for
// how long).
func (r *runner) progress(prefix string, what func() string) (stop func()) {
	if r.live {
		return func() {}
	}
	return r.out.ProgressFunc(prefix, what)
}

func fixed(s string) func() string { return func() string { return s } }

// Image runs the pre-build and the build, then loads the image into the nodes.
func (r *runner) Image(ctx context.Context, svc config.Service, reasons []string, progress func(engine.Phase)) (*build.Image, error) {
	retry := slices.Contains(reasons, engineRetryReason)
	out := r.out.Writer(svc.Name)
	defer out.Close()
	begin := time.Now()
	// Probe the nodes while the image builds (once the cluster is up: on a
	// cold start the first builds run while it is created), so the load
	// starts sending at once.
	type probeResult struct {
		probe *imageload.NodeProbe
		err   error
	}
	probed := make(chan probeResult, 1)
	delivery := r.eng.Delivery(r.cfg)
	go func() {
		if _, err := r.cluster.wait(ctx); err != nil {
			probed <- probeResult{err: err}
			return
		}
		probed <- probeResult{probe: delivery.ProbeNodes(ctx, r.cfg.Cluster.Name)}
	}()
	stop := r.progress(svc.Name, fixed("building"))
	img, err := r.eng.Builder.Build(ctx, svc, out)
	stop()
	if err != nil {
		return nil, r.engineFailure(ctx, err, retry)
	}
	built := time.Since(begin)
	progress(engine.PhaseLoading)
	stop = r.progress(svc.Name, fixed("waiting for the cluster"))
	pr := <-probed
	stop()
	if pr.err != nil {
		return nil, fmt.Errorf("loading %s: the cluster is not up: %w", img.Ref(), pr.err)
	}
	probe := pr.probe
	begin = time.Now()
	what := "loading " + img.Ref() + " into the cluster"
	if r.cfg.Cluster.Push() && r.eng.Push != nil {
		what = "pushing " + img.Ref() + " to " + r.cfg.Cluster.Registry.Host()
	}
	stop = r.progress(svc.Name, fixed(what))
	res, err := delivery.LoadProbed(ctx, probe, img.Ref(), out)
	stop()
	if err != nil {
		return nil, r.engineFailure(ctx, fmt.Errorf("%s: %w", what, err), retry)
	}
	sent, loaded := res.Sent()
	switch {
	case res.Push != nil:
		img.Delivered = res.Pushed
		r.out.Line(svc.Name, "image %s: build %s, push to %s %s (%d layer(s) sent, %d already there)", img.DeployRef(),
			built.Round(time.Millisecond), res.Push.Registry, time.Since(begin).Round(time.Millisecond), res.Push.LayersPushed, res.Push.LayersExisted)
	case loaded > 0:
		r.out.Line(svc.Name, "image %s: build %s, load into %d node(s) %s (%s sent)", img.Ref(),
			built.Round(time.Millisecond), loaded, time.Since(begin).Round(time.Millisecond), ui.Bytes(sent))
	default:
		r.out.Line(svc.Name, "image %s: build %s, already in the node(s)", img.Ref(), built.Round(time.Millisecond))
	}
	return &img, nil
}

// engineRetryReason is what the build line says when a build runs again
// because the Docker engine answers again.
const engineRetryReason = "retry: the Docker engine answers again"

// enginePoll is how often a build that failed with the engine waits to see
// whether it answers again.
var enginePoll = 500 * time.Millisecond

// engineFailure turns a failed build or load into an engine.RetryError when
// it was the Docker engine that failed, not the code: the engine does not
// answer now (stopped, restarting), or the build's connection to it broke.
// The loop then builds again by itself once the engine (and the kind node it
// runs, which restarts with it) answers, rather than waiting for a save that
// could not fix anything. A cancelled build is left as it is, and so is a
// retry that failed again while the engine answers (no retry storm).
func (r *runner) engineFailure(ctx context.Context, err error, isRetry bool) error {
	if ctx.Err() != nil || r.eng.Version == nil {
		return err
	}
	var be *build.BuildError
	if errors.As(err, &be) && be.Stage == "pre-build" {
		return err // the host's command: never the engine's
	}
	pctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	_, _, perr := r.eng.Version(pctx)
	cancel()
	if perr == nil && (isRetry || !build.EngineConnLost(err)) {
		return err
	}
	why := "the Docker engine stopped answering"
	if perr != nil {
		why = fmt.Sprintf("the Docker engine does not answer (%v)", perr)
	}
	return &engine.RetryError{
		Err:    fmt.Errorf("%s; devloop builds again by itself once it answers: %w", why, err),
		Reason: engineRetryReason,
		Wait:   r.waitEngine,
	}
}

// waitEngine returns once the Docker engine answers again and, when the
// cluster was up, its API server too (a kind node restarts with the engine),
// for at most nodeWait: a node that does not come back is the load's error
// to report.
func (r *runner) waitEngine(ctx context.Context) error {
	if err := pollUntil(ctx, func(ctx context.Context) bool { _, _, err := r.eng.Version(ctx); return err == nil }); err != nil {
		return err
	}
	select {
	case <-r.cluster.done:
	default:
		return nil // the cluster is still being made: the build waits for it anyway
	}
	conn, err := r.cluster.wait(ctx)
	if err != nil || conn == nil || conn.Clients == nil {
		return nil
	}
	nctx, cancel := context.WithTimeout(ctx, nodeWait)
	defer cancel()
	_ = pollUntil(nctx, func(ctx context.Context) bool {
		_, err := conn.Clients.Core.CoreV1().Namespaces().Get(ctx, "default", metav1.GetOptions{})
		return err == nil || apierrors.IsNotFound(err) || apierrors.IsForbidden(err) // it answers
	})
	return ctx.Err()
}

// nodeWait bounds how long a retry waits for the cluster after the engine answers.
const nodeWait = 3 * time.Minute

// pollUntil calls ok (each call bounded to 2 s) every enginePoll until it
// reports true or ctx ends.
func pollUntil(ctx context.Context, ok func(context.Context) bool) error {
	for {
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		up := ok(pctx)
		cancel()
		if up {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(enginePoll):
		}
	}
}

// recheckTails reads the pods directly a few times after the cluster
// answers again (at once, then 2, 4, 8 and 16 s later, while a restarted
// node starts its containers), so new containers are tailed without waiting
// for the informer's relist, which lags by up to 30 s after an outage.
func (r *runner) recheckTails(ctx context.Context) {
	lm := r.tails.Load()
	if lm == nil {
		return
	}
	go func() {
		for _, d := range []time.Duration{0, 2 * time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second} {
			select {
			case <-ctx.Done():
				return
			case <-time.After(d):
			}
			_ = lm.Recheck(ctx)
		}
	}()
}

// Sync copies changed files into every running container of the service.
func (r *runner) Sync(ctx context.Context, svc config.Service, paths []string) (bool, error) {
	begin := time.Now()
	// A new container that lacks the files synced since its image gets
	// every file the sync rules cover, as the workspace has them.
	var changed []string
	replay := false
	for _, p := range paths {
		if strings.HasPrefix(p, newContainerMarker) {
			replay = true
		} else {
			changed = append(changed, p)
		}
	}
	if replay {
		for _, f := range plainSyncFiles(svc) {
			changed = append(changed, f.Local)
		}
		slices.Sort(changed)
		changed = slices.Compact(changed)
	}
	files, rest := livesync.PlanSync(svc.Sync, changed)
	if len(rest) > 0 {
		return true, fmt.Errorf("%d changed files are not covered by sync rules", len(rest))
	}
	conn, err := r.cluster.wait(ctx)
	if err != nil {
		return true, err
	}
	targets := r.containersOf(conn, svc)
	if len(targets) == 0 {
		return true, errors.New("no running container to sync into")
	}
	// Files of a restart rule go through the container's supervisor, which
	// restarts the process; the others are copied with tar.
	var plain, restart []livesync.FileCopy
	for _, f := range files {
		if rule, _ := livesync.RuleFor(svc.Sync, f.Local); rule.Restart && !f.Delete {
			restart = append(restart, f)
		} else {
			plain = append(plain, f)
		}
	}
	run := strings.Join(livesync.Runs(plain), " && ")
	g, gctx := errgroup.WithContext(ctx)
	for _, t := range targets {
		g.Go(func() error {
			if len(plain) > 0 {
				if err := livesync.Copy(gctx, conn.Execer, t, plain, run); err != nil {
					return err
				}
			}
			if len(restart) > 0 {
				_, err := livesync.Restart(gctx, conn.Execer, t, restart)
				return err
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return errors.Is(err, livesync.ErrNoTar) || errors.Is(err, livesync.ErrNoSupervisor), err
	}
	r.mu.Lock()
	image := r.deployedImages[svc.Image]
	r.mu.Unlock()
	if len(plain) > 0 && r.liveUpdates != nil {
		r.liveUpdates.synced(svc.Name, image, targets)
	}
	if len(restart) > 0 && r.liveUpdates != nil {
		r.liveUpdates.restarted(svc.Name, image, targets)
	}
	verb := "synced"
	if len(restart) > 0 {
		verb = "synced and restarted"
	}
	r.out.Line(svc.Name, "%s %d file(s) into %d container(s) in %s", verb, len(files), len(targets), time.Since(begin).Round(time.Millisecond))
	return false, nil
}

// containersOf finds the running containers of the service's image, from
// the shared pod informer.
func (r *runner) containersOf(conn *Conn, svc config.Service) []livesync.Target {
	m := r.lastManifests()
	pods, _ := conn.Informers.Factory().Core().V1().Pods().Lister().Pods(r.cfg.Namespace).List(labels.Everything())
	var out []livesync.Target
	for _, p := range pods {
		if p.DeletionTimestamp != nil || p.Status.Phase != corev1.PodRunning {
			continue
		}
		running := map[string]string{}
		for _, cs := range p.Status.ContainerStatuses {
			if cs.State.Running != nil {
				running[cs.Name] = cs.ContainerID
			}
		}
		for _, c := range m.ContainersOf(svc.Name, p) {
			if id, ok := running[c]; ok {
				out = append(out, livesync.Target{Namespace: p.Namespace, Pod: p.Name, Container: c, ContainerID: id, Image: containerImage(p, c)})
			}
		}
	}
	return out
}

// containerImage is the image p's spec gives container c.
func containerImage(p *corev1.Pod, c string) string {
	for _, list := range [][]corev1.Container{p.Spec.Containers, p.Spec.InitContainers} {
		for _, x := range list {
			if x.Name == c {
				return x.Image
			}
		}
	}
	return ""
}

// Deploy applies the manifests with the action's images and waits for the
// rollouts it asks for.
func (r *runner) Deploy(ctx context.Context, a engine.Action) (map[string]error, error) {
	r.deploying.Add(1)
	defer r.deploying.Add(-1)
	conn, err := r.cluster.wait(ctx)
	if err != nil {
		return nil, err
	}
	res, err := conn.Deployer.Deploy(ctx, a.Images, kube.DeployOptions{
		Services: a.Services, All: a.All, Hold: a.Hold, Timeout: r.rolloutTimeout,
		Secrets: func(values []string) { r.secrets.Add(values...) },
		Waiting: func(w kube.Workload) (func(string), func()) {
			var mu sync.Mutex
			waiting := "waiting for " + w.String() + " to roll out"
			stop := r.progress("devloop", func() string { mu.Lock(); defer mu.Unlock(); return waiting })
			return func(line string) { mu.Lock(); waiting = "waiting for " + w.String() + ": " + line; mu.Unlock() }, stop
		},
	})
	if err != nil {
		return nil, err
	}
	if lines := res.Applied.ChangedLines(); len(lines) > 0 {
		r.out.Line("devloop", "applied: %s", strings.Join(lines, ", "))
	}
	for _, l := range res.ReleaseLines() {
		r.out.Line("devloop", "%s", l)
	}
	for _, err := range res.OthersFailed {
		// A workload that runs no built image (a database, say): nobody
		// else will say it, so say it here.
		r.out.Error("devloop", "%v", err)
	}
	r.mu.Lock()
	r.manifests = res.Manifests
	prev := r.deployedImages
	r.deployedImages = a.Images
	r.mu.Unlock()
	if r.liveUpdates != nil {
		for _, name := range a.Services {
			svc, _ := r.cfg.Service(name)
			if res.Failed[name] == nil && prev[svc.Image] != a.Images[svc.Image] {
				r.liveUpdates.imageRolled(name)
			}
		}
		r.liveUpdates.wake()
	}
	return res.Failed, nil
}

func (r *runner) lastManifests() *kube.Manifests {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.manifests
}
