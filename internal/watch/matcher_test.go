package watch

import (
	"os"
	"path/filepath"
	"testing"
)

func TestMatcher(t *testing.T) {
	dir := t.TempDir()
	dockerignore := "# comment\nnode_modules\n*.log\n!keep.log\nbuild/\n!build/keep/**\n/dist\nDockerfile\n"
	if err := os.WriteFile(filepath.Join(dir, ".dockerignore"), []byte(dockerignore), 0o644); err != nil {
		t.Fatal(err)
	}
	m, err := NewMatcher(dir, []string{"tmp/**", "secrets"})
	if err != nil {
		t.Fatal(err)
	}
	// entireDir is what MatchesEntireDir says if the path were a directory.
	tests := []struct {
		path      string
		ignored   bool
		entireDir bool
	}{
		{"main.go", false, false},
		{"src/app.py", false, false},
		{"node_modules", true, true},
		{"node_modules/x/index.js", true, true},
		{"sub/node_modules", false, false}, // dockerignore patterns are anchored at the context root
		{"app.log", true, true},
		{"sub/app.log", false, false}, // "*.log" matches only at the root
		{"keep.log", false, false},
		{"build", true, false}, // has an exception below it
		{"build/out.o", true, true},
		{"build/keep/x.txt", false, false},
		{"dist/bundle.js", true, true},
		{"dist", true, true},
		{"tmp/a/b", true, true},
		{"secrets", true, true},
		// Always ignored.
		{".git", true, true},
		{".git/HEAD", true, true},
		{"sub/.git/objects/ab", true, true},
		{".gitignore", false, false},
		{"main.go.swp", true, false},
		{".main.go.swp", true, false},
		{".main.go.swo", true, false},
		{".main.go.swx", true, false},
		{".main.go.swn", true, false},
		{"sub/4913", true, false},
		{"49130", false, false},
		{"main.go~", true, false},
		{"#main.go#", true, false},
		{".#main.go", true, false},
		{"main.go___jb_tmp___", true, false},
		{"main.go___jb_old___", true, false},
		// Docker always sends these, so they always matter.
		{"Dockerfile", false, false},
		{".dockerignore", false, false},
		{"sub/Dockerfile", false, false},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			abs := filepath.Join(dir, tt.path)
			if got := m.Matches(abs); got != tt.ignored {
				t.Errorf("Matches(%s) = %v, want %v", tt.path, got, tt.ignored)
			}
			if got := m.MatchesEntireDir(abs); got != tt.entireDir {
				t.Errorf("MatchesEntireDir(%s) = %v, want %v", tt.path, got, tt.entireDir)
			}
		})
	}
	if m.Matches(dir) || m.MatchesEntireDir(dir) {
		t.Errorf("the context dir itself must not be ignored")
	}
}

func TestMatcherOutsideContext(t *testing.T) {
	dir := t.TempDir()
	m, err := NewMatcher(filepath.Join(dir, "ctx"), []string{"*"})
	if err != nil {
		t.Fatal(err)
	}
	if !m.Matches(filepath.Join(dir, "ctx", "anything")) {
		t.Errorf("pattern * must ignore files in the context")
	}
	if m.Matches(filepath.Join(dir, "other", "file.go")) {
		t.Errorf("context patterns must not apply outside the context")
	}
	if !m.Matches(filepath.Join(dir, "other", ".file.go.swp")) {
		t.Errorf("temp files are ignored everywhere")
	}
}

func TestMatcherExceptionWithWildcardKeepsDirWatched(t *testing.T) {
	dir := t.TempDir()
	m, err := NewMatcher(dir, []string{"vendor", "!vendor/**/*.proto", "gen", "!*/keep"})
	if err != nil {
		t.Fatal(err)
	}
	if m.MatchesEntireDir(filepath.Join(dir, "vendor", "a")) {
		t.Errorf("vendor/a has a possible exception below it")
	}
	if m.Matches(filepath.Join(dir, "vendor", "a", "b.proto")) {
		t.Errorf("vendor/a/b.proto is re-included")
	}
	if !m.Matches(filepath.Join(dir, "vendor", "a", "b.go")) {
		t.Errorf("vendor/a/b.go is ignored")
	}
	if m.MatchesEntireDir(filepath.Join(dir, "gen")) {
		t.Errorf("gen/keep is re-included, so gen must stay watched")
	}
}

func TestNewMatcherErrors(t *testing.T) {
	if _, err := NewMatcher("relative", nil); err == nil {
		t.Errorf("relative context dir: want error")
	}
	if _, err := NewMatcher(t.TempDir(), []string{"["}); err == nil {
		t.Errorf("bad pattern: want error")
	}
	if _, err := NewMatcher(t.TempDir(), []string{"!"}); err == nil {
		t.Errorf("lone !: want error")
	}
}

func TestDefaultIgnore(t *testing.T) {
	var d DefaultIgnore
	if !d.Matches("/a/.git/config") || !d.MatchesEntireDir("/a/.git") || !d.Matches("/a/b/.x.swp") {
		t.Errorf("DefaultIgnore misses always-ignored paths")
	}
	if d.Matches("/a/b/main.go") || d.MatchesEntireDir("/a/b") {
		t.Errorf("DefaultIgnore ignores a normal path")
	}
}

func TestMatcherForDockerfile(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(".dockerignore", "docs\n")
	write("docker/app.Dockerfile", "FROM scratch\n")
	write("docker/app.Dockerfile.dockerignore", "*.log\ndocker\n")
	tests := []struct {
		dockerfile string
		path       string
		ignored    bool
	}{
		// Without it the context's .dockerignore applies.
		{"", "docs/a.md", true},
		{"", "x.log", false},
		// app.Dockerfile.dockerignore replaces .dockerignore.
		{"docker/app.Dockerfile", "docs/a.md", false},
		{"docker/app.Dockerfile", "x.log", true},
		{"docker/app.Dockerfile", "docker/other", true},
		// The Dockerfile and its ignore file always matter.
		{"docker/app.Dockerfile", "docker/app.Dockerfile", false},
		{"docker/app.Dockerfile", "docker/app.Dockerfile.dockerignore", false},
		// A Dockerfile without its own ignore file keeps .dockerignore.
		{"docker/none.Dockerfile", "docs/a.md", true},
	}
	for _, tt := range tests {
		df := ""
		if tt.dockerfile != "" {
			df = filepath.Join(dir, tt.dockerfile)
		}
		m, err := NewMatcherForDockerfile(dir, df, nil)
		if err != nil {
			t.Fatal(err)
		}
		if got := m.Matches(filepath.Join(dir, tt.path)); got != tt.ignored {
			t.Errorf("dockerfile %q: Matches(%s) = %v, want %v", tt.dockerfile, tt.path, got, tt.ignored)
		}
	}
	// The directory holding the Dockerfile stays watched though it is ignored.
	m, err := NewMatcherForDockerfile(dir, filepath.Join(dir, "docker/app.Dockerfile"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if m.MatchesEntireDir(filepath.Join(dir, "docker")) {
		t.Error("the Dockerfile's directory is ignored entirely")
	}
}
