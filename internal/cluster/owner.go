package cluster

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Marks records, on this machine, which kind clusters devloop created: one
// small file per cluster. devloop deletes a cluster it did not create only
// when told to (down --cluster --force); a kind cluster someone made with
// kind, ctlptl or another tool is only ever adopted.
type Marks struct{ dir string }

// DefaultMarks keeps the marks under the user's config directory
// (~/.config/devloop/clusters), which outlives caches.
func DefaultMarks() Marks {
	base, err := os.UserConfigDir()
	if err != nil {
		base = filepath.Join(os.TempDir(), "devloop-config")
	}
	return Marks{dir: filepath.Join(base, "devloop", "clusters")}
}

// Dir is where the marks are.
func (m Marks) Dir() string { return m.dir }

func (m Marks) path(name string) string {
	// kind cluster names are DNS labels; never let one name a path elsewhere.
	return filepath.Join(m.dir, strings.NewReplacer("/", "_", "\\", "_", "..", "_").Replace(name))
}

// Created records that devloop created cluster name.
func (m Marks) Created(name string) error {
	if err := os.MkdirAll(m.dir, 0o755); err != nil {
		return fmt.Errorf("recording that devloop created cluster %q: %w", name, err)
	}
	body := fmt.Sprintf("created by devloop at %s\n", time.Now().UTC().Format(time.RFC3339))
	if err := os.WriteFile(m.path(name), []byte(body), 0o644); err != nil {
		return fmt.Errorf("recording that devloop created cluster %q: %w", name, err)
	}
	return nil
}

// Owned reports whether devloop created cluster name on this machine.
func (m Marks) Owned(name string) (bool, error) {
	_, err := os.Stat(m.path(name))
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, fs.ErrNotExist):
		return false, nil
	}
	return false, fmt.Errorf("reading devloop's record of cluster %q: %w", name, err)
}

// Forget removes the record of cluster name (it was deleted).
func (m Marks) Forget(name string) error {
	if err := os.Remove(m.path(name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("forgetting cluster %q: %w", name, err)
	}
	return nil
}
