package app

import (
	"errors"
	"fmt"
	"runtime"
	"runtime/debug"
	"time"

	"github.com/spf13/cobra"

	"github.com/devloop-dev/devloop/internal/config"
	"github.com/devloop-dev/devloop/internal/project"
	"github.com/devloop-dev/devloop/internal/ui"
)

type upFlags struct {
	once           bool
	plain          bool
	noLogs         bool
	rolloutTimeout time.Duration
	parallel       int
	context        project.ContextOptions
}

func newUpCommand(g *globals) *cobra.Command {
	f := &upFlags{}
	cmd := &cobra.Command{
		Use:   "up [service...]",
		Short: "Create or adopt the cluster, build, deploy, forward, tail logs, and rebuild on every change",
		Long: `Create (or adopt) the kind cluster and its ingress, build every service's
image, load it into the cluster, apply the manifests, wait for the rollouts,
then keep port-forwards and one log stream alive and rebuild or live-sync
whatever changes, until Ctrl-C. Ctrl-C leaves the cluster and the apps
running; the next 'devloop up' adopts them without rebuilding what did not
change. 'devloop down' removes them.

With service names, only those services and the services they depend on
(dependsOn) are built, deployed, watched and forwarded; the others' workloads
are left as they are. On the first up a service is deployed once the services
it depends on are ready.`,
		Args: cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
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
			cfg, p, err := g.load()
			if err != nil {
				return err
			}
			o := project.UpOptions{Out: p, Once: f.once, Services: args, NoLogs: f.noLogs, RolloutTimeout: f.rolloutTimeout, Parallel: f.parallel, Context: f.context,
				Reload: func() (*config.Config, error) { return loadConfigFile(cfg.Path) }}
			if live != nil {
				o.Live = live
			}
			return project.Up(cmd.Context(), cfg, g.deps(p), o)
		},
	}
	cmd.Flags().BoolVar(&f.once, "once", false, "exit when everything is ready (non-zero if anything failed) instead of watching")
	cmd.Flags().BoolVar(&f.noLogs, "no-logs", false, "do not tail container logs")
	cmd.Flags().BoolVar(&f.plain, "plain", false, "plain lines only, no live status table (the default when output is not a terminal)")
	cmd.Flags().DurationVar(&f.rolloutTimeout, "rollout-timeout", 3*time.Minute, "how long a rollout may take before devloop explains why it is stuck")
	cmd.Flags().IntVar(&f.parallel, "parallel", 2, "how many images to build at once")
	contextFlags(cmd, &f.context)
	return cmd
}

func newDownCommand(g *globals) *cobra.Command {
	var o project.DownOptions
	cmd := &cobra.Command{
		Use:   "down",
		Short: "Remove what devloop deployed (and, with --cluster, the cluster itself); volumes are kept unless --volumes",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, p, err := g.load()
			if err != nil {
				return err
			}
			err = project.Down(cmd.Context(), cfg, g.deps(p), p, o)
			var notOwned *project.NotOwnedError
			if errors.As(err, &notOwned) {
				return withHint(err, "delete it with the tool that made it, or run devloop down --cluster --force")
			}
			return err
		},
	}
	cmd.Flags().BoolVar(&o.Cluster, "cluster", false, "also delete the kind cluster (only one devloop created)")
	cmd.Flags().BoolVar(&o.Force, "force", false, "with --cluster: delete the cluster even if devloop did not create it")
	cmd.Flags().BoolVar(&o.Volumes, "volumes", false, "also delete the project's PersistentVolumeClaims and their data (kept by default)")
	contextFlags(cmd, &o.Context)
	return cmd
}

func newBuildCommand(g *globals) *cobra.Command {
	var parallel int
	cmd := &cobra.Command{
		Use:   "build [service...]",
		Short: "Build every service's image once and load it into the cluster if it exists (no deploy, no loop)",
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, p, err := g.load()
			if err != nil {
				return err
			}
			return project.Build(cmd.Context(), cfg, g.deps(p), p, args, parallel)
		},
	}
	cmd.Flags().IntVar(&parallel, "parallel", 2, "how many images to build at once")
	return cmd
}

func newVersionCommand(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print devloop's version and the versions of what it is built with",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			fmt.Fprintf(g.streams.Out, "devloop %s (%s, %s/%s)\n", Version, runtime.Version(), runtime.GOOS, runtime.GOARCH)
			if bi, ok := debug.ReadBuildInfo(); ok {
				for _, d := range bi.Deps {
					switch d.Path {
					case "sigs.k8s.io/kind", "k8s.io/client-go", "github.com/moby/moby/client", "helm.sh/helm/v4":
						fmt.Fprintf(g.streams.Out, "  %s %s\n", d.Path, d.Version)
					}
				}
			}
			return nil
		},
	}
}
