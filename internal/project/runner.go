package project

import (
	"context"
	"errors"
	"fmt"
	"github.com/devloop-dev/devloop/internal/redact"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/devloop-dev/devloop/internal/build"
	"github.com/devloop-dev/devloop/internal/config"
	"github.com/devloop-dev/devloop/internal/engine"
	"github.com/devloop-dev/devloop/internal/imageload"
	"github.com/devloop-dev/devloop/internal/kube"
	"github.com/devloop-dev/devloop/internal/livesync"
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

	mu        sync.Mutex
	manifests *kube.Manifests // of the last deploy (before it: as rendered)
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
func (r *runner) Image(ctx context.Context, svc config.Service, _ []string, progress func(engine.Phase)) (*build.Image, error) {
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
	go func() {
		if _, err := r.cluster.wait(ctx); err != nil {
			probed <- probeResult{err: err}
			return
		}
		probed <- probeResult{probe: r.eng.Loader.ProbeNodes(ctx, r.cfg.Cluster.Name)}
	}()
	stop := r.progress(svc.Name, fixed("building"))
	img, err := r.eng.Builder.Build(ctx, svc, out)
	stop()
	if err != nil {
		return nil, err
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
	stop = r.progress(svc.Name, fixed("loading "+img.Ref()+" into the cluster"))
	res, err := r.eng.Loader.LoadProbed(ctx, probe, img.Ref(), out)
	stop()
	if err != nil {
		return nil, fmt.Errorf("loading %s into the cluster: %w", img.Ref(), err)
	}
	sent, loaded := res.Sent()
	if loaded > 0 {
		r.out.Line(svc.Name, "image %s: build %s, load into %d node(s) %s (%s sent)", img.Ref(),
			built.Round(time.Millisecond), loaded, time.Since(begin).Round(time.Millisecond), ui.Bytes(sent))
	} else {
		r.out.Line(svc.Name, "image %s: build %s, already in the node(s)", img.Ref(), built.Round(time.Millisecond))
	}
	return &img, nil
}

// Sync copies changed files into every running container of the service.
func (r *runner) Sync(ctx context.Context, svc config.Service, paths []string) (bool, error) {
	begin := time.Now()
	files, rest := livesync.PlanSync(svc.Sync, paths)
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
	run := strings.Join(livesync.Runs(files), " && ")
	g, gctx := errgroup.WithContext(ctx)
	for _, t := range targets {
		g.Go(func() error { return livesync.Copy(gctx, conn.Execer, t, files, run) })
	}
	if err := g.Wait(); err != nil {
		return errors.Is(err, livesync.ErrNoTar), err
	}
	r.out.Line(svc.Name, "synced %d file(s) into %d container(s) in %s", len(files), len(targets), time.Since(begin).Round(time.Millisecond))
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
		running := map[string]bool{}
		for _, cs := range p.Status.ContainerStatuses {
			running[cs.Name] = cs.State.Running != nil
		}
		for _, c := range m.ContainersOf(svc.Name, p) {
			if running[c] {
				out = append(out, livesync.Target{Namespace: p.Namespace, Pod: p.Name, Container: c})
			}
		}
	}
	return out
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
	for _, err := range res.OthersFailed {
		// A workload that runs no built image (a database, say): nobody
		// else will say it, so say it here.
		r.out.Error("devloop", "%v", err)
	}
	r.mu.Lock()
	r.manifests = res.Manifests
	r.mu.Unlock()
	return res.Failed, nil
}

func (r *runner) lastManifests() *kube.Manifests {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.manifests
}
