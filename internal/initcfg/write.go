package initcfg

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/devloop-dev/devloop/internal/config"
)

// Write generates devloop.yaml for dir and writes it there, refusing to
// replace an existing one unless opts.Force. The file is loaded back with
// config.Load before it takes the final name, so an invalid result never
// replaces anything. It returns the path written and the summary.
func Write(dir string, opts Options) (string, Summary, error) {
	target := filepath.Join(dir, FileName)
	if _, err := os.Lstat(target); err == nil && !opts.Force {
		return "", Summary{}, ErrExists
	} else if err != nil && !errors.Is(err, os.ErrNotExist) {
		return "", Summary{}, fmt.Errorf("checking for an existing %s: %w", FileName, err)
	}
	data, sum, err := Generate(dir, opts)
	if err != nil {
		return "", Summary{}, err
	}
	tmp, err := os.CreateTemp(dir, ".devloop-init-*.yaml")
	if err != nil {
		return "", Summary{}, fmt.Errorf("writing %s: %w", FileName, err)
	}
	defer os.Remove(tmp.Name()) // no-op after the rename
	if _, err := tmp.Write(data); err != nil {
		_ = tmp.Close()
		return "", Summary{}, fmt.Errorf("writing %s: %w", FileName, err)
	}
	if err := tmp.Close(); err != nil {
		return "", Summary{}, fmt.Errorf("writing %s: %w", FileName, err)
	}
	if _, err := config.Load(tmp.Name()); err != nil {
		return "", Summary{}, fmt.Errorf("the generated %s does not validate (nothing was written; please report this):\n%s\n%w", FileName, data, err)
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return "", Summary{}, fmt.Errorf("writing %s: %w", FileName, err)
	}
	if err := os.Rename(tmp.Name(), target); err != nil {
		return "", Summary{}, fmt.Errorf("writing %s: %w", FileName, err)
	}
	return target, sum, nil
}
