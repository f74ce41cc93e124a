package build

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/moby/moby/client"

	"github.com/devloop-dev/devloop/internal/config"
	"github.com/devloop-dev/devloop/internal/supervisor"
	"github.com/devloop-dev/devloop/internal/supervisor/embedded"
)

// supervisorBinary returns devloop's supervisor for a Linux architecture;
// tests replace it.
var supervisorBinary = embedded.Binary

// SupervisorLayerDockerfile is the Dockerfile of devloop's own layer on top
// of a service's image (base): the supervisor at supervisor.Path, made the
// entrypoint in front of the image's own entrypoint, with the image's CMD
// kept (a new ENTRYPOINT would reset an inherited CMD).
func SupervisorLayerDockerfile(base string, entrypoint, cmd []string) string {
	js := func(v []string) string { b, _ := json.Marshal(v); return string(b) }
	var b strings.Builder
	fmt.Fprintf(&b, "FROM %s\n", base)
	fmt.Fprintf(&b, "COPY supervisor %s\n", supervisor.Path)
	fmt.Fprintf(&b, "ENTRYPOINT %s\n", js(append([]string{supervisor.Path}, entrypoint...)))
	if len(cmd) > 0 {
		fmt.Fprintf(&b, "CMD %s\n", js(cmd))
	}
	return b.String()
}

// withSupervisor adds devloop's supervisor layer (the way ko appends layers:
// the user's Dockerfile is not changed, and only devloop's dev images carry
// it) to the image id built for svc, and returns the new image's ID. The
// layer is built like the image (BuildKit, or the classic builder), from a
// two-file context: its cache makes it a no-op when the image is unchanged.
func (b *Builder) withSupervisor(ctx context.Context, svc config.Service, repo, id string, log io.Writer) (string, error) {
	insp, err := b.api.ImageInspect(ctx, id)
	if err != nil {
		return "", fmt.Errorf("inspecting %s: %w", id, err)
	}
	arch := insp.Architecture
	if arch == "" {
		arch = "amd64"
	}
	bin, err := supervisorBinary(arch)
	if err != nil {
		return "", &noSupervisorError{err}
	}
	var entrypoint, cmd []string
	if insp.Config != nil {
		entrypoint, cmd = insp.Config.Entrypoint, insp.Config.Cmd
	}
	// The layer's FROM names the image by a tag: BuildKit resolves a local
	// image by reference, not by bare ID.
	base := repo + ":" + ContentTag(id) + "-app"
	if _, err := b.api.ImageTag(ctx, client.ImageTagOptions{Source: id, Target: base}); err != nil {
		return "", fmt.Errorf("tagging %s as %s: %w", id, base, err)
	}
	dir, err := os.MkdirTemp("", "devloop-supervisor-layer-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(dir)
	df := filepath.Join(dir, "Dockerfile")
	if err := os.WriteFile(df, []byte(SupervisorLayerDockerfile(base, entrypoint, cmd)), 0o644); err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(dir, "supervisor"), bin, 0o755); err != nil {
		return "", err
	}
	if b.useBuildKit(ctx) {
		return b.buildKit(ctx, buildKitSpec{contextDir: dir, dockerfile: df}, log)
	}
	return b.classic(ctx, config.Service{Name: svc.Name, Build: config.Build{Context: dir, Dockerfile: df}}, log)
}

// noSupervisorError: this devloop has no supervisor for the image's architecture.
type noSupervisorError struct{ err error }

func (e *noSupervisorError) Error() string { return e.err.Error() }
