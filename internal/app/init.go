package app

import (
	"errors"

	"github.com/spf13/cobra"

	"github.com/devloop-dev/devloop/internal/initcfg"
	"github.com/devloop-dev/devloop/internal/project"
)

func newInitCommand(g *globals) *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:   "init [dir]",
		Short: "Write a starting devloop.yaml from the Dockerfiles and Kubernetes manifests in a directory",
		Long: `init looks for Dockerfiles (Dockerfile, Dockerfile.*, *.Dockerfile; read
with BuildKit's parser) and Kubernetes manifests under dir (default "."), and
writes dir/devloop.yaml, checked by loading it back:

- one kustomize overlay for local work (dev, local or development first, never
  production or staging); the other environments, the bases the overlay
  builds and other variants of the same objects are listed as comments;
- each service's image as the manifests spell it (ghcr.io/org/name, say),
  matched by the program the Dockerfile builds, its Go module or directory;
  third-party images (databases, caches) and Helm charts named in comments;
- one port-forward per Service in front of a built image, on a free port;
- the preBuild command for files a Dockerfile copies from the host (missing,
  git-ignored, or under bin/, dist/, build/, out/, target/): a Makefile
  target, a package.json "build" script, or "go build" of the Go main
  package named like the file; its output added to the ignore list;
- the base images each build needs, and whether the local engine has them.

Check what it wrote.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			dir := "."
			if len(args) == 1 {
				dir = args[0]
			}
			p := g.printer()
			path, sum, err := project.Init(cmd.Context(), dir, g.deps(p), force)
			switch {
			case errors.Is(err, initcfg.ErrNothingFound):
				return withHint(err, "run devloop init in your project's root, or pass its directory: devloop init path/to/project")
			case err != nil:
				return err
			}
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
