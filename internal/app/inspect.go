package app

import (
	"context"
	"fmt"

	"github.com/moby/moby/client"
	"github.com/spf13/cobra"

	"github.com/devloop-dev/devloop/internal/doctor"
	"github.com/devloop-dev/devloop/internal/kube"
	"github.com/devloop-dev/devloop/internal/status"
)

func newStatusCommand(g *globals) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the project's services from the cluster's state (no loop)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if output != "table" && output != "json" {
				return fmt.Errorf("--output must be table or json, not %q", output)
			}
			return runStatus(cmd.Context(), g, output)
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "table", "table or json")
	return cmd
}

func runStatus(ctx context.Context, g *globals, output string) error {
	s, err := newSession(g)
	if err != nil {
		return err
	}
	objs, err := kube.Render(s.cfg)
	if err != nil {
		return err
	}
	running, err := s.openExistingCluster()
	if err != nil {
		return err
	}
	var rep status.Report
	if running {
		rep, err = status.Collect(ctx, s.kc.Core, s.cfg, objs)
	} else {
		rep, err = status.Collect(ctx, nil, s.cfg, objs)
	}
	if output == "json" {
		if werr := status.WriteJSON(g.streams.Out, rep); werr != nil {
			return werr
		}
	} else {
		status.PrintTable(g.streams.Out, rep, s.p.Color())
	}
	return err
}

func newDoctorCommand(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "doctor",
		Short: "Check the machine (Docker, disk, inotify, ports, kubeconfig) and the manifests (probes, resources, root, :latest, references)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runDoctor(cmd.Context(), g)
		},
	}
}

func runDoctor(ctx context.Context, g *globals) error {
	s, err := newSession(g)
	if err != nil {
		return err
	}
	dockerVersion := func(ctx context.Context) (string, string, error) {
		if err := s.openDocker(ctx); err != nil {
			return "", "", err
		}
		v, err := s.docker.ServerVersion(ctx, client.ServerVersionOptions{})
		if err != nil {
			return "", "", err
		}
		return v.Version, v.APIVersion, nil
	}
	env := doctor.DefaultEnv(dockerVersion, s.clusterManager().Exists)
	results := doctor.Machine(ctx, env, s.cfg)
	objs, rerr := kube.Render(s.cfg)
	if rerr != nil {
		results = append(results, doctor.Result{Level: doctor.Fail, Check: "manifests", Message: rerr.Error(), Fix: "fix the manifest named above"})
	} else {
		results = append(results, doctor.Manifests(objs, s.cfg)...)
	}
	doctor.Print(g.streams.Out, results, s.p.Color())
	if doctor.Worst(results) == doctor.Fail {
		return fmt.Errorf("doctor found problems (see FAIL above)")
	}
	return nil
}
