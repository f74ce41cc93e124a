package app

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/devloop-dev/devloop/internal/doctor"
	"github.com/devloop-dev/devloop/internal/project"
	"github.com/devloop-dev/devloop/internal/status"
)

func newStatusCommand(g *globals) *cobra.Command {
	var output string
	var co project.ContextOptions
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the project's services from the cluster's state (no loop)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if output != "table" && output != "json" {
				return fmt.Errorf("--output must be table or json, not %q", output)
			}
			cfg, p, err := g.load()
			if err != nil {
				return err
			}
			rep, err := project.Status(cmd.Context(), cfg, g.deps(p), co)
			if rep.Project == "" {
				return err // nothing known to print
			}
			if output == "json" {
				if werr := status.WriteJSON(g.out, rep); werr != nil {
					return werr
				}
			} else {
				status.PrintTable(g.out, rep, p.Color())
			}
			return err
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "table", "table or json")
	contextFlags(cmd, &co)
	return cmd
}

func newDoctorCommand(g *globals) *cobra.Command {
	var co project.ContextOptions
	cmd := &cobra.Command{
		Use:   "doctor",
		Short: "Check the machine (Docker, disk, inotify, ports, kubeconfig) and the manifests (probes, resources, root, :latest, references)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, p, err := g.load()
			if err != nil {
				return err
			}
			results := project.Doctor(cmd.Context(), cfg, g.deps(p), co)
			doctor.Print(g.out, results, p.Color())
			if doctor.Worst(results) == doctor.Fail {
				return fmt.Errorf("doctor found problems (see FAIL above)")
			}
			return nil
		},
	}
	contextFlags(cmd, &co)
	return cmd
}

func newLogsCommand(g *globals) *cobra.Command {
	o := project.LogsOptions{}
	cmd := &cobra.Command{
		Use:   "logs [service]",
		Short: "Stream the logs of every container devloop deployed (or one service's), without the loop",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, p, err := g.load()
			if err != nil {
				return err
			}
			if len(args) == 1 {
				o.Service = args[0]
			}
			err = project.Logs(cmd.Context(), cfg, g.deps(p), p, o)
			var none *project.ErrNoCluster
			if errors.As(err, &none) {
				return withHint(err, "run devloop up first")
			}
			return err
		},
	}
	cmd.Flags().DurationVar(&o.Since, "since", 0, "only lines newer than this (e.g. 5m); default: from each container's start")
	cmd.Flags().BoolVar(&o.Follow, "follow", true, "keep streaming (--follow=false prints what is there and exits)")
	contextFlags(cmd, &o.Context)
	return cmd
}

// contextFlags adds --context and --allow-context: an existing cluster of
// the kubeconfig instead of devloop's kind cluster, and the person's
// allowance of a context whose name looks like production.
func contextFlags(cmd *cobra.Command, co *project.ContextOptions) {
	cmd.Flags().StringVar(&co.Context, "context", "", "use the existing cluster of this kubeconfig context (as cluster.context; needs cluster.registry.address)")
	cmd.Flags().StringArrayVar(&co.Allow, "allow-context", nil, "allow this context although its name looks like production (prod, production, prd, live); also DEVLOOP_ALLOW_CONTEXT")
}
