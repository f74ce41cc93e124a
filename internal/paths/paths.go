// Package paths answers one question for every package that routes or
// copies files: is this clean absolute path a directory itself or below it.
package paths

import (
	"path/filepath"
	"strings"
)

// Under reports whether p is dir or below it. Both must be clean
// (filepath.Clean) paths of the same kind (both absolute or both relative).
func Under(p, dir string) bool {
	if p == dir {
		return true
	}
	if dir == string(filepath.Separator) {
		return strings.HasPrefix(p, dir)
	}
	return strings.HasPrefix(p, dir+string(filepath.Separator))
}

// Within reports whether p is strictly below dir.
func Within(p, dir string) bool { return p != dir && Under(p, dir) }

// UnderAny reports whether p is one of dirs or below one of them.
func UnderAny(p string, dirs []string) bool {
	for _, d := range dirs {
		if Under(p, filepath.Clean(d)) {
			return true
		}
	}
	return false
}
