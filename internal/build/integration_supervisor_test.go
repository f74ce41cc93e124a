package build

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/devloop-dev/devloop/internal/config"
)

// goBuildStatic compiles a Go package (a directory, or a main.go body) for
// linux with CGO_ENABLED=0, as the embedded supervisor is built.
func goBuildStatic(t *testing.T, pkg, out string) {
	t.Helper()
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", out, pkg)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, b)
	}
}

// TestIntegrationSupervisorLayer builds a FROM scratch image (no shell)
// with a restart rule on the real engine: the supervisor layer goes on top,
// in front of the image's entrypoint with its CMD kept, and running the
// image passes the program's output, arguments and exit code through.
func TestIntegrationSupervisorLayer(t *testing.T) {
	it := newITBuilder(t)
	dir := t.TempDir()
	sup := filepath.Join(t.TempDir(), "supervisor")
	goBuildStatic(t, "../../cmd/devloop-supervisor", sup)
	defer func(f func(string) ([]byte, error)) { supervisorBinary = f }(supervisorBinary)
	supervisorBinary = func(string) ([]byte, error) { return os.ReadFile(sup) }

	appDir := t.TempDir()
	writeTree(t, appDir, map[string]string{
		"go.mod":  "module example.com/app\n\ngo 1.26\n",
		"main.go": "package main\n\nimport (\n\t\"fmt\"\n\t\"os\"\n)\n\nfunc main() {\n\tfmt.Println(\"app says\", os.Args[1:])\n\tfmt.Fprintln(os.Stderr, \"app fails\")\n\tos.Exit(3)\n}\n",
	})
	cmd := exec.Command("go", "build", "-o", filepath.Join(dir, "app"), ".")
	cmd.Dir = appDir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building the app: %v\n%s", err, b)
	}
	writeTree(t, dir, map[string]string{"Dockerfile": "FROM scratch\nCOPY app /app\nENTRYPOINT [\"/app\"]\nCMD [\"from-cmd\"]\n"})
	svc := config.Service{Name: "sup", Build: config.Build{Context: dir, Dockerfile: dir + "/Dockerfile"},
		Sync: []config.SyncRule{{Src: dir + "/app", Dest: "/app", Restart: true}}}
	img, _ := it.mustBuild(svc)
	insp, err := it.c.ImageInspect(context.Background(), img.Ref())
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(insp.Config.Entrypoint, " ") + " | " + strings.Join(insp.Config.Cmd, " "); got != "/.devloop/supervisor /app | from-cmd" {
		t.Fatalf("entrypoint | cmd = %q", got)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for args, want := range map[string]string{"": "app says [from-cmd]", "x y": "app says [x y]"} {
		run := []string{"run", "--rm", img.Ref()}
		if args != "" {
			run = append(run, strings.Fields(args)...)
		}
		out, err := exec.CommandContext(ctx, "docker", run...).CombinedOutput()
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() != 3 || !strings.Contains(string(out), want) || !strings.Contains(string(out), "app fails") {
			t.Errorf("docker run %s: %v, output %q; want exit code 3 and %q", args, err, out, want)
		}
	}
	// A second build of the same content is the same image (the layer is cached).
	again, _ := it.mustBuild(svc)
	if again.ID != img.ID {
		t.Errorf("rebuilt %s, want the same image %s", again.ID, img.ID)
	}
}
