package app

import (
	"context"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
	"strings"
	gosync "sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/devloop-dev/devloop/internal/build"
)

func newDownCommand(g *globals) *cobra.Command {
	var deleteCluster bool
	cmd := &cobra.Command{
		Use:   "down",
		Short: "Remove what devloop deployed (and, with --cluster, the cluster itself)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runDown(cmd.Context(), g, deleteCluster)
		},
	}
	cmd.Flags().BoolVar(&deleteCluster, "cluster", false, "also delete the kind cluster")
	return cmd
}

func runDown(ctx context.Context, g *globals, deleteCluster bool) error {
	s, err := newSession(g)
	if err != nil {
		return err
	}
	name := s.cfg.Cluster.Name
	ok, err := s.openExistingCluster()
	if err != nil {
		return err
	}
	if !ok {
		s.p.Line("devloop", "cluster %q does not exist: nothing to remove", name)
		return nil
	}
	deleted, err := s.applier.DeleteAll(ctx)
	if err != nil {
		return fmt.Errorf("removing what devloop deployed for %s: %w", s.cfg.Name, err)
	}
	if len(deleted) == 0 {
		s.p.Line("devloop", "nothing deployed by devloop for project %q", s.cfg.Name)
	} else {
		s.p.Line("devloop", "removed %s", strings.Join(deleted, ", "))
	}
	if deleteCluster {
		begin := time.Now()
		if err := s.clusterManager().Delete(ctx, name); err != nil {
			return err
		}
		s.p.Line("cluster", "deleted cluster %q in %s", name, since(begin))
	}
	return nil
}

func newBuildCommand(g *globals) *cobra.Command {
	var parallel int
	cmd := &cobra.Command{
		Use:   "build [service...]",
		Short: "Build every service's image once and load it into the cluster if it exists (no deploy, no loop)",
		RunE: func(cmd *cobra.Command, args []string) error {
			return runBuild(cmd.Context(), g, args, parallel)
		},
	}
	cmd.Flags().IntVar(&parallel, "parallel", 2, "how many images to build at once")
	return cmd
}

func runBuild(ctx context.Context, g *globals, names []string, parallel int) error {
	s, err := newSession(g)
	if err != nil {
		return err
	}
	svcs := s.cfg.Services
	if len(names) > 0 {
		svcs = nil
		for _, n := range names {
			svc, ok := s.service(n)
			if !ok {
				return fmt.Errorf("no service %q in %s", n, s.cfg.Path)
			}
			svcs = append(svcs, svc)
		}
	}
	if err := s.openDocker(ctx); err != nil {
		return err
	}
	// BuildAll calls out from its build goroutines.
	var (
		mu      gosync.Mutex
		writers []io.Closer
	)
	out := func(svc string) io.Writer {
		w := s.p.Writer(svc)
		mu.Lock()
		writers = append(writers, w)
		mu.Unlock()
		return w
	}
	stop := s.p.Progress("build", fmt.Sprintf("building %d image(s)", len(svcs)))
	imgs, buildErr := build.BuildAll(ctx, s.builder, svcs, parallel, out)
	stop()
	for _, w := range writers {
		_ = w.Close()
	}
	exists, err := s.clusterManager().Exists(s.cfg.Cluster.Name)
	if err != nil {
		return err
	}
	for _, svc := range svcs {
		img, ok := imgs[svc.Name]
		if !ok {
			continue
		}
		s.p.Line(svc.Name, "built %s", img.Ref())
		if !exists {
			continue
		}
		res, err := s.loader.Load(ctx, s.cfg.Cluster.Name, img.Ref(), s.p.Writer(svc.Name))
		if err != nil {
			return fmt.Errorf("loading %s into cluster %q: %w", img.Ref(), s.cfg.Cluster.Name, err)
		}
		for _, n := range res.Nodes {
			if n.Skipped {
				s.p.Line(svc.Name, "node %s already has %s", n.Name, img.Ref())
			} else {
				s.p.Line(svc.Name, "loaded into node %s in %s (%s sent)", n.Name, n.Duration.Round(time.Millisecond), humanBytes(n.Bytes))
			}
		}
	}
	if !exists {
		s.p.Line("devloop", "cluster %q does not exist: images were built but not loaded ('devloop up' creates it)", s.cfg.Cluster.Name)
	}
	return buildErr
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
					case "sigs.k8s.io/kind", "k8s.io/client-go", "github.com/moby/moby/client":
						fmt.Fprintf(g.streams.Out, "  %s %s\n", d.Path, d.Version)
					}
				}
			}
			return nil
		},
	}
}
