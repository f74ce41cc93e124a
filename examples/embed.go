// Package examples embeds the bundled example project, so `devloop up` with
// no devloop.yaml at hand still has something real to run.
package examples

import (
	"embed"
	"io/fs"
	"os"
	"path/filepath"
)

//go:embed hello/*.go hello/Dockerfile hello/.dockerignore hello/.gitignore hello/devloop.yaml hello/README.md hello/k8s hello/static hello/toolbox
var hello embed.FS

// HelloFS is the example project "hello" (rooted at its directory).
func HelloFS() fs.FS {
	sub, err := fs.Sub(hello, "hello")
	if err != nil {
		panic(err) // the embed pattern guarantees the directory
	}
	return sub
}

// goMod makes an extracted example its own Go module. In this repository the
// example is part of devloop's module (Go cannot embed files of another
// module), so the file exists only once extracted.
const goMod = "module example.com/hello\n\ngo 1.26\n"

// Extract writes fsys into dir, creating it, plus a go.mod. Existing files
// are kept, so a user's edits to an extracted example survive the next run.
func Extract(fsys fs.FS, dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(dir, "go.mod")); os.IsNotExist(err) {
		if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte(goMod), 0o644); err != nil {
			return err
		}
	}
	return fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		target := filepath.Join(dir, filepath.FromSlash(p))
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		if _, err := os.Stat(target); err == nil {
			return nil
		}
		data, err := fs.ReadFile(fsys, p)
		if err != nil {
			return err
		}
		return os.WriteFile(target, data, 0o644)
	})
}
