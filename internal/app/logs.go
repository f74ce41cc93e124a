package app

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/spf13/cobra"

	"github.com/devloop-dev/devloop/internal/kube"
	"github.com/devloop-dev/devloop/internal/logs"
)

type logTailOptions struct {
	service string
	since   time.Duration
	follow  bool
}

// runLogTail streams the logs of every container devloop deployed for the
// project (or one service's), prefixed and colored, until ctx ends.
func runLogTail(ctx context.Context, s *session, o logTailOptions) error {
	sel := labels.SelectorFromSet(labels.Set{"devloop.dev/project": s.cfg.Name})
	serviceOf := func(p *corev1.Pod) string {
		for _, c := range append(append([]corev1.Container{}, p.Spec.InitContainers...), p.Spec.Containers...) {
			for _, svc := range s.cfg.Services {
				if kube.SameRepo(c.Image, svc.Image) {
					return svc.Name
				}
			}
		}
		if app := p.Labels["app"]; app != "" {
			return app
		}
		return p.Name
	}
	opts := logs.Options{
		Namespace: s.cfg.Namespace,
		Selector:  sel,
		ServiceOf: serviceOf,
		Color:     s.p.Color(),
		Since:     o.since,
		Follow:    o.follow,
	}
	if o.service != "" {
		opts.Filter = func(p *corev1.Pod) bool { return serviceOf(p) == o.service }
	}
	m := logs.New(s.kc.Core, printerWriter{s}, opts)
	return m.Run(ctx)
}

// printerWriter sends whole log lines through the session's printer, so they
// never interleave with devloop's own lines.
type printerWriter struct{ s *session }

func (w printerWriter) Write(b []byte) (int, error) {
	w.s.p.RawBlock(string(b))
	return len(b), nil
}

func newLogsCommand(g *globals) *cobra.Command {
	o := logTailOptions{}
	cmd := &cobra.Command{
		Use:   "logs [service]",
		Short: "Stream the logs of every container devloop deployed (or one service's), without the loop",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := newSession(g)
			if err != nil {
				return err
			}
			if len(args) == 1 {
				if _, ok := s.service(args[0]); !ok {
					return fmt.Errorf("no service %q in %s", args[0], s.cfg.Path)
				}
				o.service = args[0]
			}
			ok, err := s.openExistingCluster()
			if err != nil {
				return err
			}
			if !ok {
				return withHint(fmt.Errorf("cluster %q does not exist", s.cfg.Cluster.Name), "run devloop up first")
			}
			err = runLogTail(cmd.Context(), s, o)
			if isCanceled(cmd.Context(), err) {
				return nil
			}
			return err
		},
	}
	cmd.Flags().DurationVar(&o.since, "since", 0, "only lines newer than this (e.g. 5m); default: from each container's start")
	cmd.Flags().BoolVar(&o.follow, "follow", true, "keep streaming (--follow=false prints what is there and exits)")
	return cmd
}
