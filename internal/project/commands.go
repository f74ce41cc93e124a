package project

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/devloop-dev/devloop/internal/build"
	"github.com/devloop-dev/devloop/internal/cluster"
	"github.com/devloop-dev/devloop/internal/config"
	"github.com/devloop-dev/devloop/internal/doctor"
	"github.com/devloop-dev/devloop/internal/initcfg"
	"github.com/devloop-dev/devloop/internal/kube"
	"github.com/devloop-dev/devloop/internal/logs"
	"github.com/devloop-dev/devloop/internal/status"
	"github.com/devloop-dev/devloop/internal/ui"
)

// Build builds the named services' images (all when names is empty), at
// most parallel at a time, and loads each built one into the cluster when
// the cluster exists. A failed build does not stop the others; the error
// joins every failure.
func Build(ctx context.Context, cfg *config.Config, deps *Deps, out *ui.Printer, names []string, parallel int) error {
	if err := useContext(cfg, deps, ContextOptions{}); err != nil {
		return err
	}
	deps.redactManifests(cfg)
	svcs := cfg.Services
	if len(names) > 0 {
		svcs = nil
		for _, n := range names {
			svc, ok := cfg.Service(n)
			if !ok {
				return fmt.Errorf("no service %q in %s", n, cfg.Path)
			}
			svcs = append(svcs, svc)
		}
	}
	eng, err := deps.Engine(ctx)
	if err != nil {
		return err
	}
	clusters, name := deps.clusters(cfg)
	exists, err := clusters.Exists(name)
	if err != nil {
		return err
	}
	stop := out.Progress("build", fmt.Sprintf("building %d image(s)", len(svcs)))
	var (
		mu    sync.Mutex
		built = map[string]build.Image{}
		errs  []error
	)
	g := errgroup.Group{}
	g.SetLimit(max(parallel, 1))
	for _, svc := range svcs {
		g.Go(func() error {
			w := out.Writer(svc.Name)
			img, err := eng.Builder.Build(ctx, svc, w)
			_ = w.Close()
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
			} else {
				built[svc.Name] = img
			}
			return nil
		})
	}
	_ = g.Wait()
	stop()
	for _, svc := range svcs {
		img, ok := built[svc.Name]
		if !ok {
			continue
		}
		out.Line(svc.Name, "built %s", img.Ref())
		if !exists {
			continue
		}
		res, err := eng.Delivery(cfg).Load(ctx, name, img.Ref(), out.Writer(svc.Name))
		if err != nil {
			return fmt.Errorf("delivering %s to cluster %q: %w", img.Ref(), name, err)
		}
		if res.Push != nil {
			out.Line(svc.Name, "pushed %s in %s (%d layer(s) sent, %d already there)", res.Pushed,
				res.Push.Duration.Round(time.Millisecond), res.Push.LayersPushed, res.Push.LayersExisted)
		}
		for _, n := range res.Nodes {
			if n.Skipped {
				out.Line(svc.Name, "node %s already has %s", n.Name, img.Ref())
			} else {
				out.Line(svc.Name, "loaded into node %s in %s (%s sent)", n.Name, n.Duration.Round(time.Millisecond), ui.Bytes(n.Bytes))
			}
		}
	}
	if !exists && len(built) > 0 {
		out.Line("devloop", "cluster %q does not exist: images were built but not loaded ('devloop up' creates it)", cfg.Cluster.Name)
	}
	return errors.Join(errs...)
}

// DownOptions configure Down.
type DownOptions struct {
	// Cluster also deletes the kind cluster, if devloop created it.
	Cluster bool
	// Force deletes the cluster even when devloop did not create it.
	Force bool
	// Volumes also deletes the project's PersistentVolumeClaims (and with
	// them the data); without it they are kept, and down says so.
	Volumes bool
	// Context points down at an existing cluster (--context, --allow-context).
	Context ContextOptions
}

// Down deletes what devloop applied for cfg's project (its inventory) and,
// with o.Cluster, the kind cluster: only one devloop created, unless o.Force.
func Down(ctx context.Context, cfg *config.Config, deps *Deps, out *ui.Printer, o DownOptions) error {
	if err := useContext(cfg, deps, o.Context); err != nil {
		return err
	}
	deps.redactManifests(cfg)
	clusters, name := deps.clusters(cfg)
	if o.Cluster && cfg.Cluster.Existing() {
		// --force included: an existing cluster is never devloop's to delete.
		return &cluster.RefusedError{Context: name, What: "deletes"}
	}
	if o.Cluster && !o.Force {
		exists, err := clusters.Exists(name)
		if err != nil {
			return err
		}
		owned, err := clusters.Owned(name)
		if err != nil {
			return err
		}
		if exists && !owned {
			return &NotOwnedError{Name: name}
		}
	}
	exists, err := clusters.Exists(name)
	if err != nil {
		return err
	}
	if !exists {
		if o.Cluster {
			// A registry devloop made outlives a cluster deleted by other means.
			removed, err := clusters.RemoveRegistry(ctx, name)
			if len(removed) > 0 {
				out.Line("cluster", "removed the registry's %s", strings.Join(removed, " and "))
			}
			if err != nil {
				return err
			}
		}
		out.Line("devloop", "cluster %q does not exist: nothing to remove", name)
		return nil
	}
	removeDeployed := func(ctx context.Context, conn *Conn) error {
		removed, err := conn.Deployer.DeleteAll(ctx, o.Volumes)
		if err != nil {
			return err
		}
		if len(removed.Deleted) == 0 {
			out.Line("devloop", "nothing deployed by devloop for project %q", cfg.Name)
		} else {
			out.Line("devloop", "removed: %s", strings.Join(removed.Deleted, ", "))
		}
		if len(removed.KeptVolumes) > 0 && !o.Cluster {
			out.Line("devloop", "kept %s and the data in them (the next up uses them again); devloop down --volumes deletes them",
				strings.Join(removed.KeptVolumes, ", "))
		}
		return nil
	}
	if !o.Cluster {
		// A broken cluster is an error that says how to repair or delete it.
		conn, _, err := open(cfg, deps)
		if err != nil {
			return err
		}
		return removeDeployed(ctx, conn)
	}
	// With --cluster a broken cluster is deleted all the same.
	begin := time.Now()
	_, err = clusters.Down(ctx, name, func(ctx context.Context, rc *rest.Config) error {
		conn, err := deps.Connect(cfg, rc)
		if err != nil {
			return err
		}
		return removeDeployed(ctx, conn)
	})
	if err != nil {
		return err
	}
	out.Line("cluster", "deleted cluster %q in %s", name, since(begin))
	return nil
}

// NotOwnedError refuses to delete a cluster devloop did not create.
type NotOwnedError struct{ Name string }

func (e *NotOwnedError) Error() string {
	return fmt.Sprintf("kind cluster %q was not created by devloop (it was made with kind, ctlptl or another tool, or by devloop on another machine): devloop only adopted it, and does not delete it", e.Name)
}

// Status reports cfg's services from the cluster's state (from the
// manifests alone when the cluster does not exist).
func Status(ctx context.Context, cfg *config.Config, deps *Deps, co ContextOptions) (status.Report, error) {
	if err := useContext(cfg, deps, co); err != nil {
		return status.Report{}, err
	}
	deps.redactManifests(cfg)
	m, err := kube.Prepare(cfg, nil)
	if err != nil {
		return status.Report{}, err
	}
	conn, running, err := open(cfg, deps)
	if err != nil {
		return status.Report{}, err
	}
	if !running {
		return status.Collect(ctx, nil, cfg, m)
	}
	return status.Collect(ctx, conn.Clients.Core, cfg, m)
}

// Doctor checks the machine and cfg's manifests.
func Doctor(ctx context.Context, cfg *config.Config, deps *Deps, co ContextOptions) []doctor.Result {
	if err := useContext(cfg, deps, co); err != nil {
		return []doctor.Result{{Level: doctor.Fail, Check: "cluster context", Message: err.Error(),
			Fix: "name a context of your kubeconfig (cluster.context or --context) and the registry it pulls from (cluster.registry.address)"}}
	}
	deps.redactManifests(cfg)
	dockerVersion := func(ctx context.Context) (string, string, error) {
		eng, err := deps.Engine(ctx)
		if err != nil {
			return "", "", err
		}
		return eng.Version(ctx)
	}
	env := doctor.DefaultEnv(dockerVersion, deps.Clusters.Exists)
	env.RelayReachable = func(ctx context.Context) error {
		eng, err := deps.Engine(ctx)
		if err != nil || eng.RelayReachable == nil {
			return doctor.ErrNotProbed
		}
		return eng.RelayReachable(ctx)
	}
	results := doctor.Machine(ctx, env, cfg)
	if cfg.Cluster.Existing() {
		results = append(results, doctorExisting(ctx, cfg, deps)...)
	}
	var images initcfg.ImageChecker
	if eng, err := deps.Engine(ctx); err == nil {
		images = eng.Images
	}
	results = append(results, doctor.BaseImages(ctx, cfg, images)...)
	// The manifests and the charts' releases, rendered as a deploy renders
	// them (without built images: the manifests' own image names).
	m, err := kube.Prepare(cfg, nil)
	if err != nil {
		return append(results, doctor.Result{Level: doctor.Fail, Check: "manifests", Message: err.Error(), Fix: "fix the manifest or chart template named above"})
	}
	return append(results, doctor.Manifests(m.Objects, cfg)...)
}

// doctorExisting checks the existing cluster of cfg's context: reachable,
// its namespace writable, the registry accepting a push.
func doctorExisting(ctx context.Context, cfg *config.Config, deps *Deps) []doctor.Result {
	clusters, name := deps.clusters(cfg)
	rc, err := clusters.RESTConfig(name)
	var cs kubernetes.Interface
	server := ""
	if err == nil {
		server = rc.Host
		cs, err = kubernetes.NewForConfig(rc)
	}
	return doctor.ExistingCluster(ctx, cfg, cs, server, err, nil)
}

// Init writes a starting devloop.yaml for the project in dir (initcfg),
// asking the engine, when it can be reached, which base images it has.
func Init(ctx context.Context, dir string, deps *Deps, force bool) (string, initcfg.Summary, error) {
	opts := initcfg.Options{Force: force}
	if eng, err := deps.Engine(ctx); err == nil {
		opts.Images = eng.Images
	} else {
		opts.Images = initcfg.EngineUnavailable(err)
	}
	return initcfg.Write(dir, opts)
}

// LogsOptions configure Logs.
type LogsOptions struct {
	// Service limits the stream to one service's pods.
	Service string
	// Since limits it to lines newer than this (0: from each container's start).
	Since time.Duration
	// Follow keeps streaming and follows new pods and restarts.
	Follow bool

	// Context points logs at an existing cluster (--context, --allow-context).
	Context ContextOptions

	// started, when set, is given the log manager before it runs (up's
	// cluster watch rechecks it when the cluster answers again).
	started func(*logs.Manager)
}

// Logs streams the logs of every container devloop deployed for cfg's
// project (or one service's), prefixed and colored, until ctx ends (or,
// without Follow, until what is there was printed).
func Logs(ctx context.Context, cfg *config.Config, deps *Deps, out *ui.Printer, o LogsOptions) error {
	if err := useContext(cfg, deps, o.Context); err != nil {
		return err
	}
	deps.redactManifests(cfg)
	if o.Service != "" {
		if _, ok := cfg.Service(o.Service); !ok {
			return fmt.Errorf("no service %q in %s", o.Service, cfg.Path)
		}
	}
	m, err := kube.Prepare(cfg, nil)
	if err != nil {
		return err
	}
	conn, ok, err := open(cfg, deps)
	if err != nil {
		return err
	}
	if !ok {
		return &ErrNoCluster{Name: cfg.Cluster.Target()}
	}
	if o.Follow {
		defer conn.Informers.Shutdown()
	}
	err = tailLogs(ctx, cfg, conn, m, out, o)
	if isCanceled(ctx, err) {
		return nil
	}
	return err
}

// tailLogs runs the log tails of cfg's pods through the printer; pods are
// named by the service whose image they run (m).
func tailLogs(ctx context.Context, cfg *config.Config, conn *Conn, m *kube.Manifests, out *ui.Printer, o LogsOptions) error {
	serviceOf := func(p *corev1.Pod) string {
		if svc := m.ServiceOf(p); svc != "" {
			return svc
		}
		if app := p.Labels["app"]; app != "" {
			return app
		}
		return p.Name
	}
	opts := logs.Options{
		Namespace: cfg.Namespace,
		Selector:  conn.Informers.Selector(),
		Informers: conn.Informers.Factory(),
		ServiceOf: serviceOf,
		Color:     out.Color(),
		Since:     o.Since,
		Follow:    o.Follow,
	}
	if o.Service != "" {
		opts.Filter = func(p *corev1.Pod) bool { return serviceOf(p) == o.Service }
	}
	lm := logs.New(conn.Clients.Core, printerWriter{out}, opts)
	if o.started != nil {
		o.started(lm)
	}
	return lm.Run(ctx)
}

// printerWriter sends whole log lines through the printer, so they never
// interleave with devloop's own lines.
type printerWriter struct{ p *ui.Printer }

func (w printerWriter) Write(b []byte) (int, error) {
	w.p.RawBlock(string(b))
	return len(b), nil
}

var _ io.Writer = printerWriter{}
