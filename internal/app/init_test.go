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
	for _, want := range []string{"wrote ", "service hello", "next: devloop up"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if _, errOut, err := run(t, dir, "init"); err == nil || !strings.Contains(errOut, "devloop.yaml already exists (use --force to overwrite)") {
		t.Errorf("second init: err=%v stderr=%q", err, errOut)
	}
	if _, errOut, err := run(t, dir, "init", "--force", "."); err != nil {
		t.Errorf("init --force: %v\n%s", err, errOut)
	}
}
