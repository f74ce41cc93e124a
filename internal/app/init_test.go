package app

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/devloop-dev/devloop/examples"
	"github.com/devloop-dev/devloop/internal/config"
)

func TestInitWritesLoadableConfig(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "hello")
	if err := examples.Extract(examples.HelloFS(), dir); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"devloop.yaml", "bin"} {
		if err := os.RemoveAll(filepath.Join(dir, p)); err != nil {
			t.Fatal(err)
		}
	}
	out, errOut, err := run(t, dir, "init", "--no-color")
	if err != nil {
		t.Fatalf("%v\n%s", err, errOut)
	}
	cfg, err := config.Load(filepath.Join(dir, "devloop.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Name != "hello" || len(cfg.Services) != 1 || cfg.Services[0].Name != "hello" || len(cfg.Manifests) != 1 {
		t.Errorf("config = %+v", cfg)
	}
	// The example's Dockerfile copies bin/hello and bin/toolbox: init infers
	// how to build them, so the file works without editing.
	if pb := cfg.Services[0].Build.PreBuild; pb == nil || !strings.Contains(pb.Run, "-o bin/hello .") || !strings.Contains(pb.Run, "-o bin/toolbox ./toolbox") {
		t.Errorf("preBuild = %+v", pb)
	}
	for _, want := range []string{"wrote ", "service hello", "pre-build hello (inferred from Dockerfile lines ", "GOOS=linux CGO_ENABLED=0 go build", "next: devloop up"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "go.mod") {
		t.Errorf("the extracted example has a go.mod, yet the output says:\n%s", out)
	}
	if _, errOut, err := run(t, dir, "init"); err == nil || !strings.Contains(errOut, "devloop.yaml already exists (use --force to overwrite)") {
		t.Errorf("second init: err=%v stderr=%q", err, errOut)
	}
	if _, errOut, err := run(t, dir, "init", "--force", "."); err != nil {
		t.Errorf("init --force: %v\n%s", err, errOut)
	}
}
