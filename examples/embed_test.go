package examples

import (
	"os"
	"path/filepath"
	"testing"
)

func TestExtractKeepsEdits(t *testing.T) {
	dir := t.TempDir()
	if err := Extract(HelloFS(), dir); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"go.mod", "devloop.yaml", "Dockerfile", ".dockerignore", "main.go", "message.go", "k8s/kustomization.yaml", "static/index.html", "toolbox/main.go"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Fatalf("missing %s: %v", f, err)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "bin")); err == nil {
		t.Fatal("build output must not be embedded")
	}
	msg := filepath.Join(dir, "message.go")
	if err := os.WriteFile(msg, []byte("edited"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := Extract(HelloFS(), dir); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(msg); string(b) != "edited" {
		t.Fatalf("user edit overwritten: %q", b)
	}
}
