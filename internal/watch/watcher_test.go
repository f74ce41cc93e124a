package watch

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/fsnotify/fsnotify"
)

// These tests use real inotify in temp dirs. They never sleep to
// synchronise: they wait (bounded) for the batch that must come, and prove
// that something did NOT come by waiting for a later sentinel's batch.

const testQuiet = 200 * time.Millisecond

type watchFixture struct {
	t       *testing.T
	dir     string
	w       *Watcher
	batches [][]string
}

func tempDir(t *testing.T) string {
	t.Helper()
	d, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func newWatchFixture(t *testing.T, dir string, quiet time.Duration, roots ...Root) *watchFixture {
	t.Helper()
	if len(roots) == 0 {
		roots = []Root{{Path: dir}}
	}
	w, err := NewWatcher(t.Context(), WatchOptions{Roots: roots, Quiet: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = w.Close() })
	return &watchFixture{t: t, dir: dir, w: w}
}

func (f *watchFixture) path(rel string) string { return filepath.Join(f.dir, rel) }

func (f *watchFixture) write(rel, content string) {
	f.t.Helper()
	p := f.path(rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		f.t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		f.t.Fatal(err)
	}
}

func (f *watchFixture) must(err error) {
	f.t.Helper()
	if err != nil {
		f.t.Fatal(err)
	}
}

// waitFor collects batches until every rel path has appeared in one, and
// returns the batches collected by this call.
func (f *watchFixture) waitFor(rels ...string) [][]string {
	f.t.Helper()
	want := map[string]bool{}
	for _, r := range rels {
		want[f.path(r)] = true
	}
	var got [][]string
	deadline := time.After(20 * time.Second)
	for len(want) > 0 {
		select {
		case cb, ok := <-f.w.Events():
			if !ok {
				f.t.Fatalf("events closed while waiting for %v", rels)
			}
			b := changePaths(cb)
			got = append(got, b)
			f.batches = append(f.batches, b)
			for _, p := range b {
				delete(want, p)
			}
		case err := <-f.w.Errors():
			f.t.Fatalf("watch error: %v", err)
		case <-deadline:
			f.t.Fatalf("timed out waiting for %v; batches so far: %v", rels, got)
		}
	}
	return got
}

// everSeen reports whether rel appeared in any batch so far.
func (f *watchFixture) everSeen(rel string) bool {
	for _, b := range f.batches {
		if slices.Contains(b, f.path(rel)) {
			return true
		}
	}
	return false
}

func TestWatcherCreateModifyDeleteRename(t *testing.T) {
	dir := tempDir(t)
	f := newWatchFixture(t, dir, testQuiet)

	f.write("a.txt", "1")
	f.waitFor("a.txt")

	f.write("a.txt", "2")
	f.waitFor("a.txt")

	f.must(os.Rename(f.path("a.txt"), f.path("b.txt")))
	f.waitFor("a.txt", "b.txt") // the old name (gone) and the new one

	f.must(os.Remove(f.path("b.txt")))
	f.waitFor("b.txt")
}

func TestWatcherAtomicSaveIsOneChange(t *testing.T) {
	dir := tempDir(t)
	f := newWatchFixture(t, dir, testQuiet)
	f.write("main.go", "v1")
	f.waitFor("main.go")

	// Write a temp file and rename it over the real one (Go's renameio,
	// VS Code, many tools). The temp name is not an editor pattern.
	f.write("main.go.tmp12345", "v2")
	f.must(os.Rename(f.path("main.go.tmp12345"), f.path("main.go")))
	got := f.waitFor("main.go")
	if len(got) != 1 || !slices.Equal(got[0], []string{f.path("main.go")}) {
		t.Errorf("batches = %v, want one batch with only main.go", got)
	}
}

func TestWatcherVimSave(t *testing.T) {
	dir := tempDir(t)
	f := newWatchFixture(t, dir, testQuiet)
	f.write("main.go", "v1")
	f.waitFor("main.go")

	// vim with 'backupcopy=no' (the usual Linux outcome of "auto"):
	// open swap, probe 4913, rename original to backup, write anew, chmod,
	// delete backup, delete swap on quit.
	f.write(".main.go.swp", "swap")
	f.write("4913", "")
	f.must(os.Remove(f.path("4913")))
	f.must(os.Rename(f.path("main.go"), f.path("main.go~")))
	f.write("main.go", "v2")
	f.must(os.Chmod(f.path("main.go"), 0o644))
	f.must(os.Remove(f.path("main.go~")))
	f.must(os.Remove(f.path(".main.go.swp")))

	got := f.waitFor("main.go")
	if len(got) != 1 || !slices.Equal(got[0], []string{f.path("main.go")}) {
		t.Errorf("batches = %v, want one batch with only main.go", got)
	}
}

func TestWatcherIgnoredPathsProduceNothing(t *testing.T) {
	dir := tempDir(t)
	if err := os.WriteFile(filepath.Join(dir, ".dockerignore"), []byte("logs\n*.log\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	must := func(err error) {
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(dir, "logs"), 0o755))
	must(os.MkdirAll(filepath.Join(dir, ".git"), 0o755))
	m, err := NewMatcher(dir, []string{"tmp"})
	must(err)
	f := newWatchFixture(t, dir, testQuiet, Root{Path: dir, Ignore: m})

	ignored := []string{"logs/app.txt", "server.log", ".git/index", "tmp/x/y", "main.go~", ".x.swp", "#x#"}
	for _, p := range ignored {
		f.write(p, "x")
	}
	f.write("sentinel.txt", "x")
	f.waitFor("sentinel.txt")
	for _, p := range ignored {
		if f.everSeen(p) {
			t.Errorf("ignored path %s was reported: %v", p, f.batches)
		}
	}
}

func TestWatcherNewNestedDirs(t *testing.T) {
	dir := tempDir(t)
	f := newWatchFixture(t, dir, testQuiet)

	// mkdir -p a/b/c && touch a/b/c/f: the file may be created before the
	// watch on a/b/c exists; the walk after adding the watch finds it.
	f.write("a/b/c/f.txt", "x")
	f.waitFor("a/b/c/f.txt")

	// And the new directories are watched from now on.
	f.write("a/b/c/g.txt", "x")
	f.write("a/h.txt", "x")
	f.waitFor("a/b/c/g.txt", "a/h.txt")
}

func TestWatcherDirDeleteAndRecreate(t *testing.T) {
	dir := tempDir(t)
	sub := filepath.Join(dir, "sub")
	if err := os.MkdirAll(filepath.Join(sub, "deep"), 0o755); err != nil {
		t.Fatal(err)
	}
	// Watch the project dir and, separately, sub as a root of its own.
	f := newWatchFixture(t, dir, testQuiet, Root{Path: dir}, Root{Path: sub})

	f.must(os.RemoveAll(sub))
	f.waitFor("sub")

	f.must(os.MkdirAll(filepath.Join(sub, "deep"), 0o755))
	f.waitFor("sub")
	f.write("sub/deep/x.txt", "x")
	f.waitFor("sub/deep/x.txt")

	// Again, with the directory moved away instead of deleted.
	f.must(os.Rename(sub, filepath.Join(dir, "moved")))
	f.waitFor("sub", "moved")
	f.must(os.Mkdir(sub, 0o755))
	f.write("sub/y.txt", "x")
	f.waitFor("sub/y.txt")
	f.write("moved/deep/z.txt", "x")
	f.waitFor("moved/deep/z.txt")
}

func TestWatcherRootDeletedAndRecreated(t *testing.T) {
	parent := tempDir(t)
	root := filepath.Join(parent, "project")
	if err := os.Mkdir(root, 0o755); err != nil {
		t.Fatal(err)
	}
	f := newWatchFixture(t, root, testQuiet)
	f.write("first.txt", "x")
	f.waitFor("first.txt")

	f.must(os.RemoveAll(root))
	f.waitFor(".") // the root itself
	f.must(os.Mkdir(root, 0o755))
	f.write("new.txt", "x")
	f.waitFor("new.txt")
}

func TestWatcherFileRoot(t *testing.T) {
	dir := tempDir(t)
	target := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(target, []byte("a"), 0o644); err != nil {
		t.Fatal(err)
	}
	f := newWatchFixture(t, dir, testQuiet, Root{Path: target})

	f.write("other.yaml", "x")
	f.write("config.yaml.tmp", "b")
	f.must(os.Rename(f.path("config.yaml.tmp"), target))
	got := f.waitFor("config.yaml")
	if f.everSeen("other.yaml") || f.everSeen("config.yaml.tmp") {
		t.Errorf("paths outside the file root were reported: %v", got)
	}
}

func TestWatcherMissingRootAppears(t *testing.T) {
	dir := tempDir(t)
	root := filepath.Join(dir, "not", "yet")
	f := newWatchFixture(t, dir, testQuiet, Root{Path: root})
	f.write("unrelated.txt", "x")
	f.write("not/yet/file.txt", "x")
	f.waitFor("not/yet/file.txt")
	if f.everSeen("unrelated.txt") {
		t.Errorf("unrelated path reported: %v", f.batches)
	}
}

func TestWatcherBurstIsFewBatches(t *testing.T) {
	dir := tempDir(t)
	f := newWatchFixture(t, dir, DefaultQuiet)
	var rels []string
	for i := range 2000 {
		rel := fmt.Sprintf("d%02d/f%04d.txt", i%20, i)
		rels = append(rels, rel)
	}
	for _, r := range rels {
		f.write(r, "x")
	}
	got := f.waitFor(rels...)
	// With 150ms quiet this is normally one batch; allow for scheduler
	// hiccups on a loaded machine.
	if len(got) > 3 {
		t.Errorf("2000 files produced %d batches, want at most 3", len(got))
	}
}

func TestWatcherCloseClosesChannels(t *testing.T) {
	dir := tempDir(t)
	w, err := NewWatcher(context.Background(), WatchOptions{Roots: []Root{{Path: dir}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	for range w.Events() {
	}
	for range w.Errors() {
	}
}

func TestNewWatcherRejectsRelativeRoot(t *testing.T) {
	if _, err := NewWatcher(t.Context(), WatchOptions{Roots: []Root{{Path: "rel"}}}); err == nil {
		t.Errorf("want error for a relative root")
	}
}

// fakeBackend lets tests inject fsnotify events, errors and Add failures.
type fakeBackend struct {
	events chan fsnotify.Event
	errs   chan error
	addErr func(path string) error

	mu    sync.Mutex
	added []string
}

func newFakeBackend() *fakeBackend {
	return &fakeBackend{events: make(chan fsnotify.Event), errs: make(chan error)}
}

func (b *fakeBackend) Add(p string) error {
	if b.addErr != nil {
		if err := b.addErr(p); err != nil {
			return err
		}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.added = append(b.added, p)
	return nil
}
func (b *fakeBackend) Remove(string) error           { return nil }
func (b *fakeBackend) Events() <-chan fsnotify.Event { return b.events }
func (b *fakeBackend) Errors() <-chan error          { return b.errs }
func (b *fakeBackend) Close() error                  { return nil }

func TestWatcherOverflowRescansRoots(t *testing.T) {
	dir := tempDir(t)
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	for _, d := range []string{a, b} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	be := newFakeBackend()
	w, err := newWatcher(t.Context(), WatchOptions{Roots: []Root{{Path: a}, {Path: b}}, Quiet: time.Millisecond}, be)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()

	// A directory created while events were being lost...
	if err := os.MkdirAll(filepath.Join(a, "lost", "deeper"), 0o755); err != nil {
		t.Fatal(err)
	}
	be.errs <- fmt.Errorf("reading events: %w", fsnotify.ErrEventOverflow)
	select {
	case cb := <-w.Events():
		if got, want := changePaths(cb), []string{a, b}; !slices.Equal(got, want) {
			t.Errorf("batch after overflow = %v, want the roots %v", got, want)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no batch after overflow")
	}
	// ...is watched after the rescan.
	be.mu.Lock()
	defer be.mu.Unlock()
	if !slices.Contains(be.added, filepath.Join(a, "lost", "deeper")) {
		t.Errorf("rescan did not add watches for new dirs; added %v", be.added)
	}
}

func TestWatcherForwardsOtherErrors(t *testing.T) {
	be := newFakeBackend()
	w, err := newWatcher(t.Context(), WatchOptions{Roots: []Root{{Path: tempDir(t)}}}, be)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	boom := errors.New("boom")
	be.errs <- boom
	select {
	case err := <-w.Errors():
		if !errors.Is(err, boom) {
			t.Errorf("error = %v, want it to wrap boom", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("error not forwarded")
	}
}

func TestNewWatcherWatchLimit(t *testing.T) {
	dir := tempDir(t)
	if err := os.Mkdir(filepath.Join(dir, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	be := newFakeBackend()
	be.addErr = func(p string) error {
		if strings.HasSuffix(p, "sub") {
			return syscall.ENOSPC
		}
		return nil
	}
	_, err := newWatcher(t.Context(), WatchOptions{Roots: []Root{{Path: dir}}}, be)
	if !errors.Is(err, ErrWatchLimit) {
		t.Fatalf("err = %v, want ErrWatchLimit", err)
	}
	if !strings.Contains(err.Error(), "sudo sysctl fs.inotify.max_user_watches=524288") {
		t.Errorf("error %q does not say how to raise the limit", err)
	}
}

func TestWatchAddError(t *testing.T) {
	tests := []struct {
		err       error
		limit     bool
		substring string
	}{
		{syscall.ENOSPC, true, "too many files to watch: raise the inotify limit: sudo sysctl fs.inotify.max_user_watches=524288 (and persist it in /etc/sysctl.d/)"},
		{fmt.Errorf("wrapped: %w", syscall.ENOSPC), true, "fs.inotify.max_user_watches"},
		{syscall.EMFILE, true, "fs.inotify.max_user_instances"},
		{syscall.EACCES, false, "watching /p: permission denied"},
	}
	for _, tt := range tests {
		err := watchAddError("/p", tt.err)
		if errors.Is(err, ErrWatchLimit) != tt.limit {
			t.Errorf("watchAddError(%v): Is(ErrWatchLimit) = %v, want %v", tt.err, !tt.limit, tt.limit)
		}
		if !errors.Is(err, tt.err) && !errors.Is(err, syscall.ENOSPC) {
			t.Errorf("watchAddError(%v) = %v does not wrap the cause", tt.err, err)
		}
		if !strings.Contains(err.Error(), tt.substring) {
			t.Errorf("watchAddError(%v) = %q, want it to contain %q", tt.err, err, tt.substring)
		}
	}
}

func TestRootWants(t *testing.T) {
	m, err := NewMatcher("/src", []string{"gen"})
	if err != nil {
		t.Fatal(err)
	}
	r := Root{Path: "/src", Ignore: m}
	tests := map[string]bool{
		"/src":           true,
		"/src/main.go":   true,
		"/src/gen/x.go":  false,
		"/srcx/main.go":  false,
		"/other/main.go": false,
		"/src/.git/HEAD": false,
	}
	for p, want := range tests {
		if got := r.Wants(p); got != want {
			t.Errorf("Wants(%s) = %v, want %v", p, got, want)
		}
	}
}
