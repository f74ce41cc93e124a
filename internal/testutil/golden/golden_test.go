package golden

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// recorder is a testing.TB that records failures instead of failing the real
// test; Fatalf ends the goroutine running the assertion, as testing.T does.
type recorder struct {
	testing.TB
	errors []string
	fatal  bool
}

func (r *recorder) Helper() {}
func (r *recorder) Errorf(format string, args ...any) {
	r.errors = append(r.errors, fmt.Sprintf(format, args...))
}
func (r *recorder) Fatal(args ...any) {
	r.errors = append(r.errors, fmt.Sprint(args...))
	r.fatal = true
	runtime.Goexit()
}
func (r *recorder) Fatalf(format string, args ...any) {
	r.errors = append(r.errors, fmt.Sprintf(format, args...))
	r.fatal = true
	runtime.Goexit()
}

// run calls Assert on a recorder in its own goroutine so Fatalf can end it.
func run(t *testing.T, name string, got []byte) *recorder {
	r := &recorder{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		Assert(r, name, got)
	}()
	<-done
	return r
}

func setUpdate(t *testing.T, v bool) {
	old := *update
	*update = v
	t.Cleanup(func() { *update = old })
}

func TestAssertMatch(t *testing.T) {
	t.Chdir(t.TempDir())
	setUpdate(t, false)
	if err := os.MkdirAll("testdata", 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join("testdata", "a.golden"), []byte("hello\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if r := run(t, "a.golden", []byte("hello\n")); len(r.errors) != 0 {
		t.Fatalf("equal output reported: %q", r.errors)
	}
}

func TestAssertMismatchShowsBoth(t *testing.T) {
	t.Chdir(t.TempDir())
	setUpdate(t, false)
	os.MkdirAll("testdata", 0o755)
	os.WriteFile(filepath.Join("testdata", "a.golden"), []byte("want-text"), 0o644)
	r := run(t, "a.golden", []byte("got-text"))
	if r.fatal || len(r.errors) != 1 {
		t.Fatalf("want one non-fatal error, got fatal=%v %q", r.fatal, r.errors)
	}
	msg := r.errors[0]
	for _, s := range []string{"got-text", "want-text", filepath.Join("testdata", "a.golden"), "-update"} {
		if !strings.Contains(msg, s) {
			t.Errorf("mismatch message lacks %q:\n%s", s, msg)
		}
	}
	// A mismatch must not touch the file.
	if b, _ := os.ReadFile(filepath.Join("testdata", "a.golden")); string(b) != "want-text" {
		t.Errorf("golden file changed without -update: %q", b)
	}
}

func TestAssertMissingFileIsFatal(t *testing.T) {
	t.Chdir(t.TempDir())
	setUpdate(t, false)
	r := run(t, "missing.golden", []byte("x"))
	if !r.fatal || len(r.errors) != 1 || !strings.Contains(r.errors[0], "-update") {
		t.Fatalf("want a fatal error suggesting -update, got fatal=%v %q", r.fatal, r.errors)
	}
}

func TestAssertUpdateWritesNestedFile(t *testing.T) {
	t.Chdir(t.TempDir())
	setUpdate(t, true)
	r := run(t, filepath.Join("sub", "b.golden"), []byte("new output\n"))
	if len(r.errors) != 0 {
		t.Fatalf("update reported errors: %q", r.errors)
	}
	b, err := os.ReadFile(filepath.Join("testdata", "sub", "b.golden"))
	if err != nil || string(b) != "new output\n" {
		t.Fatalf("golden file after -update = %q, %v", b, err)
	}
	// A second update overwrites the old content.
	if r := run(t, filepath.Join("sub", "b.golden"), []byte("newer")); len(r.errors) != 0 {
		t.Fatalf("second update: %q", r.errors)
	}
	if b, _ := os.ReadFile(filepath.Join("testdata", "sub", "b.golden")); string(b) != "newer" {
		t.Errorf("golden file not overwritten: %q", b)
	}
}
