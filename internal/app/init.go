package app

import (
	"errors"

	"github.com/spf13/cobra"

	"github.com/devloop-dev/devloop/internal/initcfg"
)

func newInitCommand(g *globals) *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:   "init [dir]",
		Short: "Write a starting devloop.yaml from the Dockerfiles and Kubernetes manifests in a directory",
		Long: `init looks for Dockerfiles (Dockerfile, Dockerfile.*, *.Dockerfile) and
Kubernetes manifests (YAML with apiVersion: and kind:, in k8s/, kube/,
kubernetes/, manifests/ or deploy/ first) under dir (default "."), matches
each Dockerfile to the containers whose image has its directory's name, adds
a port-forward per workload, and writes dir/devloop.yaml.

When a Dockerfile copies files built on the host (missing, git-ignored, or
under bin/, dist/, build/, out/, target/), init infers the preBuild command
that makes them: a Makefile target of that name, a package.json "build"
script, or "go build" of the Go main package named like the file; and adds
the output directory to the service's ignore list. Check what it wrote.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			dir := "."
			if len(args) == 1 {
				dir = args[0]
			}
			path, sum, err := initcfg.Write(dir, initcfg.Options{Force: force})
			switch {
			case errors.Is(err, initcfg.ErrNothingFound):
				return withHint(err, "run devloop init in your project's root, or pass its directory: devloop init path/to/project")
			case err != nil:
				return err
			}
			p := g.printer()
			p.Line("init", "wrote %s", path)
			for _, l := range sum.Lines() {
				p.Line("init", "%s", l)
			}
			p.Line("init", "next: devloop up")
			return nil
		},
	}
	cmd.Flags().BoolVar(&force, "force", false, "overwrite an existing devloop.yaml")
	return cmd
}
