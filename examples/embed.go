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

// The multi-service example "shop": the sources, Dockerfiles and ignore
// files of its four services, never their bin/ (preBuild output).
//
//go:embed shop/devloop.yaml shop/README.md shop/.gitignore shop/k8s shop/*/*.go shop/*/Dockerfile shop/*/.dockerignore shop/web/static shop/web/toolbox/*.go shop/chart shop/values
var shop embed.FS

// HelloFS is the example project "hello" (rooted at its directory).
func HelloFS() fs.FS { return sub(hello, "hello") }

// ShopFS is the multi-service example project "shop" (rooted at its directory).
func ShopFS() fs.FS { return sub(shop, "shop") }

func sub(fsys fs.FS, dir string) fs.FS {
	s, err := fs.Sub(fsys, dir)
	if err != nil {
		panic(err) // the embed pattern guarantees the directory
	}
	return s
}

// goMod makes an extracted example its own Go module. In this repository the
// example is part of devloop's module (Go cannot embed files of another
// module), so the file exists only once extracted.
func goMod(module string) string { return "module " + module + "\n\ngo 1.26\n" }

// Extract writes fsys into dir, creating it, plus a go.mod (module
// example.com/hello). Existing files are kept, so a user's edits to an
// extracted example survive the next run.
func Extract(fsys fs.FS, dir string) error { return ExtractModule(fsys, dir, "example.com/hello") }

// ExtractModule is Extract with the go.mod naming module.
func ExtractModule(fsys fs.FS, dir, module string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(dir, "go.mod")); os.IsNotExist(err) {
		if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte(goMod(module)), 0o644); err != nil {
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
