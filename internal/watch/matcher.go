// Package sync watches source trees for changes, decides which changes
// matter (dockerignore semantics plus editor temp files), debounces them into
// batches, and live-syncs changed files into running containers.
package watch

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"
)

// PathMatcher decides which absolute paths are ignored. *Matcher implements it.
type PathMatcher interface {
	// Matches reports whether changes to absPath are ignored.
	Matches(absPath string) bool
	// MatchesEntireDir reports whether absPath is a directory whose whole
	// subtree is ignored, with no exception below it, so it need not be watched.
	MatchesEntireDir(absPath string) bool
}

// tempFilePatterns are basename globs (path.Match syntax) for files editors
// create and delete around a save; changes to them never matter.
var tempFilePatterns = [...]string{
	"*.swp", "*.swo", "*.swx", ".*.sw?", // vim swap files
	"4913",       // vim's "can I write here" probe
	"*~",         // vim/emacs backups
	"#*#", ".#*", // emacs auto-save and lock files
	"*___jb_tmp___", "*___jb_old___", // JetBrains safe-write
}

// isTempFile reports whether base (a file name without directory) is an
// editor temp file.
func isTempFile(base string) bool {
	for _, p := range tempFilePatterns {
		if ok, _ := path.Match(p, base); ok {
			return true
		}
	}
	return false
}

// hasGitComponent reports whether any component of the slash path p is ".git".
func hasGitComponent(p string) bool {
	for _, c := range strings.Split(p, "/") {
		if c == ".git" {
			return true
		}
	}
	return false
}

// DefaultIgnore is the matcher for paths outside any build context: it
// ignores only what is always ignored (.git at any depth and editor temp files).
type DefaultIgnore struct{}

// Matches implements PathMatcher.
func (DefaultIgnore) Matches(absPath string) bool {
	p := filepath.ToSlash(filepath.Clean(absPath))
	return hasGitComponent(p) || isTempFile(path.Base(p))
}

// MatchesEntireDir implements PathMatcher.
func (DefaultIgnore) MatchesEntireDir(absPath string) bool {
	return hasGitComponent(filepath.ToSlash(filepath.Clean(absPath)))
}

// Matcher ignores what a Docker build would leave out of contextDir's build
// context (its .dockerignore plus extra patterns), .git directories at any
// depth and editor temp files. A file excluded from the build context cannot
// affect the image, so its changes are ignored for watching too.
//
// A Matcher is safe for concurrent use.
type Matcher struct {
	dir string // absolute, cleaned context directory

	// always are context-relative files whose changes always matter (the
	// service's Dockerfile and its own .dockerignore).
	always []string

	mu sync.Mutex // patternmatcher compiles lazily and is not concurrency-safe
	pm *patternmatcher.PatternMatcher
}

var _ PathMatcher = (*Matcher)(nil)

// NewMatcher reads <contextDir>/.dockerignore (if present) and adds patterns
// (.dockerignore syntax, relative to contextDir, "!" exceptions allowed).
// contextDir must be absolute.
func NewMatcher(contextDir string, patterns []string) (*Matcher, error) {
	return NewMatcherForDockerfile(contextDir, "", patterns)
}

// NewMatcherForDockerfile is NewMatcher for a build with the given Dockerfile
// (absolute; "" for <contextDir>/Dockerfile): as in BuildKit and the docker
// CLI, <dockerfile>.dockerignore, when it exists, replaces the context's
// .dockerignore; changes to the Dockerfile and its ignore file always matter.
func NewMatcherForDockerfile(contextDir, dockerfile string, patterns []string) (*Matcher, error) {
	if !filepath.IsAbs(contextDir) {
		return nil, fmt.Errorf("creating ignore matcher: context dir %q is not absolute", contextDir)
	}
	dir := filepath.Clean(contextDir)
	ignoreFile := filepath.Join(dir, ".dockerignore")
	m := &Matcher{dir: dir}
	if dockerfile != "" {
		if _, err := os.Stat(dockerfile + ".dockerignore"); err == nil {
			ignoreFile = dockerfile + ".dockerignore"
		}
		for _, f := range []string{dockerfile, dockerfile + ".dockerignore"} {
			if rel, ok := m.rel(f); ok {
				m.always = append(m.always, rel)
			}
		}
	}
	var all []string
	f, err := os.Open(ignoreFile)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return nil, fmt.Errorf("reading %s: %w", filepath.Base(ignoreFile), err)
	default:
		all, err = ignorefile.ReadAll(f)
		_ = f.Close()
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", ignoreFile, err)
		}
	}
	extra, err := ignorefile.ReadAll(strings.NewReader(strings.Join(patterns, "\n")))
	if err != nil {
		return nil, fmt.Errorf("parsing ignore patterns: %w", err)
	}
	all = append(all, extra...)
	pm, err := patternmatcher.New(all)
	if err != nil {
		return nil, fmt.Errorf("parsing ignore patterns for %s: %w", dir, err)
	}
	m.pm = pm
	return m, nil
}

// Dir returns the context directory the patterns are relative to.
func (m *Matcher) Dir() string { return m.dir }

// rel returns absPath relative to the context dir as a slash path, or
// ok=false if absPath is outside it.
func (m *Matcher) rel(absPath string) (string, bool) {
	r, err := filepath.Rel(m.dir, filepath.Clean(absPath))
	if err != nil || r == ".." || strings.HasPrefix(r, ".."+string(filepath.Separator)) {
		return "", false
	}
	return filepath.ToSlash(r), true
}

// neverExcluded reports whether rel is a file Docker always needs even when
// .dockerignore excludes it (it still sends them to the daemon), so changes
// to it always matter.
func neverExcluded(rel string) bool {
	return rel == "Dockerfile" || rel == ".dockerignore"
}

// Matches reports whether changes to absPath are ignored. Paths outside the
// context dir are only subject to the always-ignored rules.
func (m *Matcher) Matches(absPath string) bool {
	if (DefaultIgnore{}).Matches(absPath) {
		return true
	}
	rel, ok := m.rel(absPath)
	if !ok || rel == "." || neverExcluded(rel) || slices.Contains(m.always, rel) {
		return false
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	matched, err := m.pm.MatchesOrParentMatches(filepath.FromSlash(rel))
	return err == nil && matched
}

// MatchesEntireDir reports whether absPath is a directory that is ignored
// together with everything below it: it is excluded and no "!" exception
// could re-include anything under it.
func (m *Matcher) MatchesEntireDir(absPath string) bool {
	if (DefaultIgnore{}).MatchesEntireDir(absPath) {
		return true
	}
	rel, ok := m.rel(absPath)
	if !ok || rel == "." || neverExcluded(rel) || slices.Contains(m.always, rel) {
		return false
	}
	for _, a := range m.always {
		if strings.HasPrefix(a, rel+"/") {
			return false // it holds the Dockerfile or its ignore file
		}
	}
	dirSegs := strings.Split(rel, "/")
	m.mu.Lock()
	defer m.mu.Unlock()
	// Editor temp-file patterns apply to a path's last component only, so
	// they never make a whole directory ignored.
	if matched, err := m.pm.MatchesOrParentMatches(filepath.FromSlash(rel)); err != nil || !matched {
		return false
	}
	for _, p := range m.pm.Patterns() {
		if p.Exclusion() && mayMatchBelow(strings.Split(filepath.ToSlash(p.String()), "/"), dirSegs) {
			return false
		}
	}
	return true
}

// mayMatchBelow reports whether a pattern (split into slash segments) could
// match some path strictly below the directory dirSegs. It errs on the side
// of "yes": a false "yes" only costs a watch.
func mayMatchBelow(pat, dirSegs []string) bool {
	for i, d := range dirSegs {
		if i >= len(pat) {
			return false
		}
		if strings.Contains(pat[i], "**") {
			return true
		}
		if ok, err := path.Match(pat[i], d); err != nil || !ok {
			return false
		}
	}
	return len(pat) > len(dirSegs)
}
