package project

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/devloop-dev/devloop/internal/cluster"
	"github.com/devloop-dev/devloop/internal/config"
	"github.com/devloop-dev/devloop/internal/engine"
	"github.com/devloop-dev/devloop/internal/kube"
	"github.com/devloop-dev/devloop/internal/portfwd"
	"github.com/devloop-dev/devloop/internal/ui"
	"github.com/devloop-dev/devloop/internal/watch"
)

// UpOptions configure Up.
type UpOptions struct {
	// Out receives every line (progress, results, the log stream).
	Out *ui.Printer
	// Live, when set, shows the status table; "still ..." lines are then off.
	Live LiveView
	// Once returns when everything is ready (an error if anything failed)
	// instead of watching.
	Once bool
	// NoLogs turns the aggregated log stream off (Once implies it).
	NoLogs bool
	// RolloutTimeout bounds each rollout before devloop explains why it is stuck.
	RolloutTimeout time.Duration
	// Parallel bounds concurrent image builds.
	Parallel int
	// Reload loads devloop.yaml again, to say what an edit of it changed.
	Reload func() (*config.Config, error)
	// Context points the session at an existing cluster (--context,
	// --allow-context).
	Context ContextOptions
	// Services runs only these services and what they depend on (`devloop up
	// api web`): the others are neither built, watched, synced nor
	// forwarded, and their workloads are left as they are. Empty: all.
	Services []string
}

// selected returns cfg with only the named services (config.Select: with
// their dependencies) and their names; every service when names is empty.
func selected(cfg *config.Config, names []string) (*config.Config, []string, error) {
	if len(names) == 0 {
		return cfg, nil, nil
	}
	sel, err := cfg.Select(names)
	if err != nil {
		return nil, nil, err
	}
	c := *cfg
	c.Services = nil
	for _, n := range sel {
		svc, _ := cfg.Service(n)
		c.Services = append(c.Services, svc)
	}
	return &c, sel, nil
}

// Up runs the inner loop for cfg until ctx ends (or, with Once, until
// everything is ready): it creates or adopts the cluster and its ingress,
// builds and loads every image, applies the manifests, waits for the
// rollouts, keeps the port-forwards and the log stream, and rebuilds,
// reloads or live-syncs whatever changes. Ctrl-C (ctx) leaves the cluster
// and the apps running.
func Up(ctx context.Context, cfg *config.Config, deps *Deps, o UpOptions) error {
	p := o.Out
	if err := useContext(cfg, deps, o.Context); err != nil {
		return err
	}
	if reload := o.Reload; reload != nil && o.Context.Context != "" {
		// The file read again is compared with the session's config, the
		// command line's context in both.
		o.Reload = func() (*config.Config, error) {
			c, err := reload()
			if err == nil {
				err = c.UseContext(o.Context.Context)
			}
			return c, err
		}
	}
	deps.redactManifests(cfg)
	// sel is what this session builds, watches and forwards; cfg stays whole
	// for what is the project's (the manifests, the deploys, the logs).
	sel, names, err := selected(cfg, o.Services)
	if err != nil {
		return err
	}
	if names != nil {
		p.Line("devloop", "running %s only", strings.Join(names, ", "))
	}
	// The manifests must render before anything is created or changed.
	rendered, err := kube.Prepare(cfg, nil)
	if err != nil {
		return err
	}
	eng, err := deps.Engine(ctx)
	if err != nil {
		return err
	}
	ctx, stop := context.WithCancel(ctx)
	defer stop()

	// The cluster comes up while the first images build: nothing of the loop
	// waits for it but the loads, the syncs and the deploys.
	live := newLiveFeed(o.Live, cfg.Name, cfg.Cluster.Target())
	live.secrets = deps.Secrets
	cl := &clusterStart{done: make(chan struct{})}
	r := &runner{cfg: cfg, out: p, eng: eng, cluster: cl, secrets: deps.Secrets, rolloutTimeout: o.RolloutTimeout, live: o.Live != nil, manifests: rendered,
		liveUpdates: newLiveUpdates()}
	var session sync.WaitGroup
	// However Up returns, the session's goroutines end first: cancel, then wait.
	defer func() { stop(); session.Wait() }()
	session.Add(1)
	go func() {
		defer session.Done()
		conn, err := ensureCluster(ctx, cfg, deps, p)
		if err == nil {
			// One watch on the cluster for the whole session: forwards, tails,
			// rollout waits and the live view all read it, and it keeps
			// serving while builds run.
			err = conn.Informers.Start(ctx)
		}
		cl.finish(conn, err)
		if err != nil {
			stop()
			return
		}
		defer conn.Informers.Shutdown()
		var wg sync.WaitGroup
		defer wg.Wait()
		wg.Add(2)
		if !o.Once {
			// Say when the cluster stops answering, why, and when it is back.
			wg.Add(1)
			clusters, name := deps.clusters(cfg)
			w := newClusterWatch(name, p, conn, clusters)
			w.existing = cfg.Cluster.Existing()
			w.onBack = func() { r.recheckTails(ctx) }
			go func() { defer wg.Done(); w.run(ctx) }()
		}
		go func() { defer wg.Done(); installAddons(ctx, cfg, deps, eng, conn, p, cl) }()
		go func() {
			defer wg.Done()
			if err := connected(ctx, cfg, sel, conn, rendered, p, o, r, live); err != nil {
				cl.fail(err) // a forward that cannot listen ends the session, as before the cluster was up
				stop()
			}
		}()
	}()

	var onceErr error
	obs := &observer{p: p, base: cfg.Dir, started: cfg, reload: o.Reload, once: o.Once,
		changed: func(st *engine.State) { live.fromState(st, r.lastManifests().IngressURLs) }}
	obs.ready = func(st *engine.State) {
		if cl.failed() {
			return // the cluster failed: stopping, and that error is what matters
		}
		printURLs(p, sel, r.lastManifests().IngressURLs)
		if o.Once {
			if failed := failedServices(st); len(failed) > 0 {
				onceErr = fmt.Errorf("not ready: %s", strings.Join(failed, ", "))
			}
			if err := cl.waitAddons(ctx); err != nil && onceErr == nil {
				onceErr = err
			}
			stop()
		}
	}
	loop := engine.New(cfg, r, engine.Options{ParallelImages: int64(o.Parallel), Observer: obs, Services: names})
	r.liveUpdates.setPost(func(ch engine.Changed) { loop.Post(ctx, ch) })

	if !o.Once {
		w, err := watch.Start(ctx, sel, func(ch engine.Changed) { loop.Post(ctx, ch) })
		if err != nil {
			return err
		}
		defer w.Close()
		go func() {
			for err := range w.Errors() {
				p.Error("watch", "%v", err)
			}
		}()
	}

	err = loop.Run(ctx)
	// A cold start interrupted while the cluster is created: wait for the
	// cluster step to end (it deletes what it half-made) before saying so.
	<-cl.done
	if cerr := cl.error(); cerr != nil {
		if isCanceled(ctx, cerr) {
			p.Line("devloop", "stopped before the cluster was ready; nothing half-made was left behind")
			return nil
		}
		return cerr
	}
	switch {
	case onceErr != nil:
		return onceErr
	case o.Once:
		return nil
	case errors.Is(err, context.Canceled):
		p.Line("devloop", "stopped. The cluster and apps keep running: 'devloop up' adopts them, 'devloop down' removes them")
		return nil
	}
	return err
}

// connected runs what needs the cluster for the whole session: the
// port-forwards, the log stream, the live view's pod counts and the
// monitor of pods that go wrong after their rollout, until ctx ends.
func connected(ctx context.Context, cfg, sel *config.Config, conn *Conn, rendered *kube.Manifests, p *ui.Printer, o UpOptions, r *runner, live *liveFeed) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	// Port-forwards: listeners for the whole session, carried to whichever
	// pod is ready at connection time.
	fwd := portfwd.New(conn.Clients.Config, conn.Clients.Core, conn.Informers.Factory(), portfwd.Options{
		Logf:     func(format string, args ...any) { p.Line("forward", format, args...) },
		OnChange: func(st portfwd.Status) { reportForward(p, st); live.forward(st) },
	})
	defer fwd.Close()
	if err := fwd.Reconcile(ctx, ForwardSpecs(sel)); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	// One aggregated log stream of every container devloop deployed.
	if !o.NoLogs && !o.Once {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := tailLogs(ctx, cfg, conn, rendered, p, LogsOptions{Follow: true, started: r.tails.Store}); err != nil && ctx.Err() == nil {
				p.Error("logs", "log tail stopped: %v", err)
			}
		}()
	}
	wg.Add(3)
	go func() { defer wg.Done(); live.watchPods(ctx, conn.Informers, cfg.Namespace, r.lastManifests) }()
	// Containers that start with older code than a live update gave their
	// service are brought up to date.
	go func() { defer wg.Done(); r.liveUpdates.watch(ctx, r, conn) }()
	// Pods that go wrong after their rollout are explained as it would.
	mon := newPodMonitor(p, conn.Clients.Core, r.lastManifests, &r.deploying, live)
	go func() { defer wg.Done(); mon.run(ctx, conn.Informers, cfg.Namespace) }()
	<-ctx.Done()
	return nil
}

// clusterStart is the cluster coming up: the connection once it is there,
// then the addons (the ingress controller) once they are.
type clusterStart struct {
	done       chan struct{}
	conn       *Conn
	err        error
	addonsDone chan struct{}
	addonsErr  error
	sessionErr error // set by fail
	mu         sync.Mutex
}

func (c *clusterStart) finish(conn *Conn, err error) {
	c.mu.Lock()
	c.conn, c.err = conn, err
	c.addonsDone = make(chan struct{})
	c.mu.Unlock()
	close(c.done)
}

// wait returns the connection once the cluster is up.
func (c *clusterStart) wait(ctx context.Context) (*Conn, error) {
	select {
	case <-c.done:
		return c.conn, c.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// fail records an error that ends the session after the cluster came up.
func (c *clusterStart) fail(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.sessionErr == nil {
		c.sessionErr = err
	}
}

func (c *clusterStart) failed() bool {
	select {
	case <-c.done:
		return c.err != nil
	default:
		return false
	}
}

func (c *clusterStart) error() error {
	select {
	case <-c.done:
	default:
		return nil
	}
	if c.err != nil {
		return c.err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sessionErr
}

// waitAddons waits for the addons (after the cluster) and returns their error.
func (c *clusterStart) waitAddons(ctx context.Context) error {
	if _, err := c.wait(ctx); err != nil {
		return err
	}
	select {
	case <-c.addonsDone:
		return c.addonsErr
	case <-ctx.Done():
		return ctx.Err()
	}
}

func failedServices(st *engine.State) []string {
	var failed []string
	for _, name := range st.Order {
		switch ss := st.Services[name]; {
		case ss.Phase == engine.PhaseFailed:
			failed = append(failed, name)
		case !ss.Released:
			failed = append(failed, fmt.Sprintf("%s (waits for %s)", name, strings.Join(st.WaitingFor(name), ", ")))
		}
	}
	return failed
}

// ensureCluster creates or adopts the cluster and connects to it.
func ensureCluster(ctx context.Context, cfg *config.Config, deps *Deps, p *ui.Printer) (*Conn, error) {
	begin := time.Now()
	clusters, name := deps.clusters(cfg)
	if cfg.Cluster.Existing() {
		p.Line("cluster", "using the existing cluster of context %q (devloop never creates, deletes or loads images into it; images are pushed to %s)...",
			name, cfg.Cluster.Registry.Host())
		stop := p.Progress("cluster", fmt.Sprintf("reaching context %q", name))
		info, err := clusters.Ensure(ctx, cfg.Cluster)
		stop()
		if err != nil {
			return nil, err
		}
		p.Line("cluster", "context %q answers (API server %s) in %s; namespace %s", name, info.RESTConfig.Host, since(begin), cfg.Namespace)
		return deps.Connect(cfg, info.RESTConfig)
	}
	p.Line("cluster", "ensuring kind cluster %q (context %s)...", name, cluster.ContextName(name))
	stop := p.Progress("cluster", fmt.Sprintf("ensuring cluster %q", name))
	info, err := clusters.Ensure(ctx, cfg.Cluster)
	stop()
	if err != nil {
		return nil, err
	}
	verb := "adopted"
	if info.Created {
		verb = "created"
	}
	p.Line("cluster", "%s cluster %q in %s (nodes: %s)", verb, name, since(begin), strings.Join(info.Nodes, ", "))
	return deps.Connect(cfg, info.RESTConfig)
}

// installAddons installs the ingress controller and checks the default
// StorageClass, while the apps deploy: an Ingress can exist before its
// controller serves it, and devloop says when it starts serving. A failure
// is said at once (and fails up --once).
func installAddons(ctx context.Context, cfg *config.Config, deps *Deps, eng *Engine, conn *Conn, p *ui.Printer, cl *clusterStart) {
	begin := time.Now()
	if cfg.Cluster.Existing() {
		// No addons in a cluster devloop did not create.
		p.Line("cluster", "an existing cluster: devloop installs no ingress controller or StorageClass; the cluster's own ingress controller, if any, serves the Ingresses")
		close(cl.addonsDone)
		return
	}
	in := cfg.Cluster.Ingress
	what := "checking the default StorageClass"
	if in.IsEnabled() {
		p.Line("cluster", "ensuring ingress controller %s and a default StorageClass...", in.Image)
		what = "installing the ingress controller and waiting for it"
	}
	// An addon image the local engine has is loaded into the nodes (nodes
	// that have it are skipped); otherwise the node pulls it as usual.
	ensureImage := func(ctx context.Context, ref string) error {
		if ok, _ := eng.Images.HasImage(ctx, ref); !ok {
			return nil
		}
		_, err := eng.Loader.Load(ctx, cfg.Cluster.Name, ref, p.Writer("cluster"))
		return err
	}
	stop := p.Progress("cluster", what)
	err := deps.Clusters.InstallAddons(ctx, conn, cfg.Cluster, ensureImage)
	stop()
	cl.mu.Lock()
	cl.addonsErr = err
	cl.mu.Unlock()
	close(cl.addonsDone)
	switch {
	case err != nil && ctx.Err() == nil:
		p.Error("cluster", "%v", err)
	case err == nil && in.IsEnabled():
		p.Line("cluster", "ingress ready in %s: serving http://*.localhost:%d/ (bound to %s)", since(begin), in.HTTPPort, in.ListenAddress)
	}
}

// ForwardSpecs are cfg's port-forwards.
func ForwardSpecs(cfg *config.Config) []portfwd.Spec {
	var out []portfwd.Spec
	for _, svc := range cfg.Services {
		for _, pf := range svc.PortForwards {
			out = append(out, portfwd.Spec{
				Name: svc.Name, Address: pf.Address, LocalPort: pf.Local,
				Namespace: cfg.Namespace, Resource: pf.Resource, Port: pf.Port,
			})
		}
	}
	return out
}

// reportForward says what a forward does now, and only what is true: a
// forward is "up" only with a pod to send connections to.
func reportForward(p *ui.Printer, st portfwd.Status) {
	addr := kube.HTTPURL(st.Address, st.LocalPort)
	switch st.State {
	case portfwd.StateUp:
		if st.Note != "" {
			p.Line("forward", "%s → %s port %d (pod %s: %s)", addr, st.Resource, st.Port, st.Pod, st.Note)
			return
		}
		p.Line("forward", "%s → %s port %d (pod %s)", addr, st.Resource, st.Port, st.Pod)
	case portfwd.StateWaiting:
		p.Line("forward", "%s waiting for a ready pod of %s%s", addr, st.Resource, suffix(st.Err))
	case portfwd.StateError:
		p.Error("forward", "%s: %s", addr, st.Err)
	}
}

func printURLs(p *ui.Printer, cfg *config.Config, ingress []string) {
	for _, u := range ingress {
		p.Line("devloop", "ingress: %s", u)
	}
	for _, spec := range ForwardSpecs(cfg) {
		p.Line("devloop", "forward: %s → %s port %d", kube.HTTPURL(spec.Address, spec.LocalPort), spec.Resource, spec.Port)
	}
}

func suffix(s string) string {
	if s == "" {
		return ""
	}
	return ": " + s
}

func since(t time.Time) string {
	d := time.Since(t)
	if d < 10*time.Second {
		return d.Round(10 * time.Millisecond).String()
	}
	return d.Round(100 * time.Millisecond).String()
}

// isCanceled reports whether err is only the user stopping devloop.
func isCanceled(ctx context.Context, err error) bool {
	return ctx.Err() != nil && (errors.Is(err, context.Canceled) || errors.Is(err, ctx.Err()))
}
