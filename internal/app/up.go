package app

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/devloop-dev/devloop/internal/config"
	"github.com/devloop-dev/devloop/internal/engine"
	"github.com/devloop-dev/devloop/internal/portfwd"
	"github.com/devloop-dev/devloop/internal/sync"
	"github.com/devloop-dev/devloop/internal/ui"
)

type upFlags struct {
	once           bool
	plain          bool
	noLogs         bool
	rolloutTimeout time.Duration
	parallel       int
}

func newUpCommand(g *globals) *cobra.Command {
	f := &upFlags{}
	cmd := &cobra.Command{
		Use:   "up",
		Short: "Create or adopt the cluster, build, deploy, forward, tail logs, and rebuild on every change",
		Long: `Create (or adopt) the kind cluster and its ingress, build every service's
image, load it into the cluster, apply the manifests, wait for the rollouts,
then keep port-forwards and one log stream alive and rebuild or live-sync
whatever changes, until Ctrl-C. Ctrl-C leaves the cluster and the apps
running; the next 'devloop up' adopts them without rebuilding what did not
change. 'devloop down' removes them.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runUp(cmd.Context(), g, f) },
	}
	cmd.Flags().BoolVar(&f.once, "once", false, "exit when everything is ready (non-zero if anything failed) instead of watching")
	cmd.Flags().BoolVar(&f.noLogs, "no-logs", false, "do not tail container logs")
	cmd.Flags().BoolVar(&f.plain, "plain", false, "plain lines only, no live status table (the default when output is not a terminal)")
	cmd.Flags().DurationVar(&f.rolloutTimeout, "rollout-timeout", 3*time.Minute, "how long a rollout may take before devloop explains why it is stuck")
	cmd.Flags().IntVar(&f.parallel, "parallel", 2, "how many images to build at once")
	return cmd
}

func runUp(ctx context.Context, g *globals, f *upFlags) error {
	// In a terminal, a status table is redrawn in place below the output.
	var live *ui.Live
	if !f.plain && !f.once && ui.IsTerminal(g.streams.Out) {
		// A config error is printed plainly, before any table appears.
		if _, err := g.loadConfig(nil); err != nil {
			return err
		}
		live = ui.NewLive(g.streams.Out, !g.noColor)
		g.liveOut = live
		defer func() { _ = live.Stop() }()
	}
	s, err := newSession(g)
	if err != nil {
		return err
	}
	status := newLiveStatus(live, s)
	p := s.p
	if err := s.openDocker(ctx); err != nil {
		return err
	}
	if err := s.ensureCluster(ctx); err != nil {
		if isCanceled(ctx, err) {
			p.Line("devloop", "stopped before the cluster was ready; nothing half-made was left behind")
			return nil
		}
		return err
	}

	// Port-forwards: listeners for the whole session, carried to whichever
	// pod is ready at connection time.
	fwd := portfwd.New(s.kc.Config, s.kc.Core, portfwd.Options{
		Logf:     func(format string, args ...any) { p.Line("forward", format, args...) },
		OnChange: func(st portfwd.Status) { reportForward(s, st); status.forward(st) },
	})
	defer fwd.Close()
	if err := fwd.Reconcile(ctx, forwardSpecs(s.cfg)); err != nil {
		return err
	}

	// One aggregated log stream of every container devloop deployed.
	logsDone := make(chan struct{})
	if !f.noLogs && !f.once {
		lctx, stopLogs := context.WithCancel(ctx)
		defer func() { stopLogs(); <-logsDone }()
		go func() {
			defer close(logsDone)
			if err := runLogTail(lctx, s, logTailOptions{follow: true}); err != nil && lctx.Err() == nil {
				p.Error("logs", "log tail stopped: %v", err)
			}
		}()
	} else {
		close(logsDone)
	}

	r := &runner{s: s, live: live != nil, rolloutTimeout: f.rolloutTimeout, execer: sync.NewKubeExecer(s.kc.Config, s.kc.Core)}
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	podsDone := make(chan struct{})
	go func() { defer close(podsDone); status.watchPods(ctx, s) }()
	defer func() { stop(); <-podsDone }()
	var onceErr error
	obs := &observer{p: p, base: s.cfg.Dir, changed: func(st *engine.State) { status.fromState(st, r.ingressURLs()) },
		started: s.cfg, reload: func() (*config.Config, error) { return loadConfigFile(s.cfg.Path) }}
	obs.ready = func(st *engine.State) {
		printURLs(s, r.ingressURLs())
		if f.once {
			var failed []string
			for _, name := range st.Order {
				if st.Services[name].Phase == engine.PhaseFailed {
					failed = append(failed, name)
				}
			}
			if len(failed) > 0 {
				onceErr = fmt.Errorf("not ready: %s", strings.Join(failed, ", "))
			}
			stop()
		}
	}
	loop := engine.New(s.cfg, r, engine.Options{ParallelImages: int64(f.parallel), Observer: obs})

	if !f.once {
		w, err := startWatcher(ctx, s.cfg, loop)
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
	if onceErr != nil {
		return onceErr
	}
	if f.once {
		return nil
	}
	if errors.Is(err, context.Canceled) {
		p.Line("devloop", "stopped. The cluster and apps keep running: 'devloop up' adopts them, 'devloop down' removes them")
		return nil
	}
	return err
}

// startWatcher watches every service's watch paths (with its ignore rules),
// the manifests and devloop.yaml, and posts routed batches to the loop.
func startWatcher(ctx context.Context, cfg *config.Config, loop *engine.Loop) (*sync.Watcher, error) {
	matchers := map[string]*sync.Matcher{}
	var roots []sync.Root
	for _, svc := range cfg.Services {
		m, err := sync.NewMatcherForDockerfile(svc.Build.Context, svc.Build.Dockerfile, svc.Ignore)
		if err != nil {
			return nil, fmt.Errorf("service %s: %w", svc.Name, err)
		}
		matchers[svc.Name] = m
		for _, w := range svc.Watch {
			roots = append(roots, sync.Root{Path: w, Ignore: m})
		}
	}
	for _, m := range cfg.Manifests {
		if strings.ContainsAny(m, "*?[") {
			m = filepath.Dir(m)
		}
		roots = append(roots, sync.Root{Path: m})
	}
	if filepath.IsAbs(cfg.Path) {
		roots = append(roots, sync.Root{Path: cfg.Path})
	}
	w, err := sync.NewWatcher(ctx, sync.WatchOptions{Roots: roots})
	if err != nil {
		return nil, err
	}
	router := engine.NewRouter(cfg, func(svc string) func(string) bool { return matchers[svc].Matches })
	go func() {
		for batch := range w.Events() {
			if ch := router.Route(batch); !ch.Empty() {
				loop.Post(ctx, ch)
			}
		}
	}()
	return w, nil
}

func forwardSpecs(cfg *config.Config) []portfwd.Spec {
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

func reportForward(s *session, st portfwd.Status) {
	addr := fmt.Sprintf("http://%s:%d/", st.Address, st.LocalPort)
	switch st.State {
	case "up":
		s.p.Line("forward", "%s → %s port %d (pod %s)", addr, st.Resource, st.Port, st.Pod)
	case "waiting":
		s.p.Line("forward", "%s waiting for a ready pod of %s%s", addr, st.Resource, suffix(st.Err))
	case "error":
		s.p.Error("forward", "%s: %s", addr, st.Err)
	}
}

func printURLs(s *session, ingress []string) {
	for _, u := range ingress {
		s.p.Line("devloop", "ingress: %s", u)
	}
	for _, spec := range forwardSpecs(s.cfg) {
		s.p.Line("devloop", "forward: http://%s:%d/ → %s port %d", spec.Address, spec.LocalPort, spec.Resource, spec.Port)
	}
}

func suffix(s string) string {
	if s == "" {
		return ""
	}
	return ": " + s
}
