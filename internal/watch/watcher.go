package watch

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/fsnotify/fsnotify"
	"k8s.io/utils/clock"

	"github.com/devloop-dev/devloop/internal/paths"
)

// Root is one file or directory to watch, with the matcher deciding which
// changes below it are ignored. Several roots may overlap (two services
// sharing a build context): a path is reported if any root that contains it
// does not ignore it.
type Root struct {
	// Path is an absolute file or directory. It need not exist yet.
	Path string
	// Name says whose root this is (a service's name); changes carry the
	// names of the roots that want them, so routing never matches again.
	// Empty for roots routed by path alone (manifests, devloop.yaml).
	Name string
	// Ignore decides which paths under Path are ignored; nil means DefaultIgnore.
	Ignore PathMatcher
}

func (r Root) ignore() PathMatcher {
	if r.Ignore == nil {
		return DefaultIgnore{}
	}
	return r.Ignore
}

// Wants reports whether a change to absPath concerns this root: absPath is
// the root or below it, and not ignored.
func (r Root) Wants(absPath string) bool {
	p := filepath.Clean(absPath)
	return paths.Under(p, filepath.Clean(r.Path)) && !r.ignore().Matches(p)
}

// WatchOptions configures NewWatcher.
type WatchOptions struct {
	// Roots are the files and directories to watch, recursively.
	Roots []Root
	// Quiet is how long no change must arrive before a batch is emitted.
	// Default DefaultQuiet.
	Quiet time.Duration
	// Cap bounds how long a batch may keep growing. Default DefaultCap.
	Cap time.Duration
	// Clock defaults to the real clock (tests run in testing/synctest).
	Clock clock.Clock
}

// Change is one changed path of a batch and the names of the roots that
// want it (its services; empty when only unnamed roots do).
type Change struct {
	Path  string
	Roots []string
}

// ErrWatchLimit is matched (errors.Is) by the error returned when the kernel
// refuses another inotify watch.
var ErrWatchLimit = errors.New("too many files to watch")

// watchLimitError explains how to raise the limit that was hit.
type watchLimitError struct {
	path   string
	sysctl string
	value  int
	err    error
}

func (e *watchLimitError) Error() string {
	return fmt.Sprintf("too many files to watch: raise the inotify limit: sudo sysctl %s=%d (and persist it in /etc/sysctl.d/) (watching %s: %v)",
		e.sysctl, e.value, e.path, e.err)
}

func (e *watchLimitError) Is(target error) bool { return target == ErrWatchLimit }
func (e *watchLimitError) Unwrap() error        { return e.err }

// watchAddError maps an error from adding an inotify watch on path (or from
// creating the inotify instance) to an actionable one.
func watchAddError(path string, err error) error {
	switch {
	case errors.Is(err, syscall.ENOSPC):
		return &watchLimitError{path: path, sysctl: "fs.inotify.max_user_watches", value: 524288, err: err}
	case errors.Is(err, syscall.EMFILE):
		return &watchLimitError{path: path, sysctl: "fs.inotify.max_user_instances", value: 1024, err: err}
	}
	return fmt.Errorf("watching %s: %w", path, err)
}

// backend is the part of *fsnotify.Watcher the Watcher uses; tests replace
// it to inject overflows and Add errors.
type backend interface {
	Add(path string) error
	Remove(path string) error
	Events() <-chan fsnotify.Event
	Errors() <-chan error
	Close() error
}

type fsnotifyBackend struct{ w *fsnotify.Watcher }

func (b fsnotifyBackend) Add(p string) error            { return b.w.Add(p) }
func (b fsnotifyBackend) Remove(p string) error         { return b.w.Remove(p) }
func (b fsnotifyBackend) Events() <-chan fsnotify.Event { return b.w.Events }
func (b fsnotifyBackend) Errors() <-chan error          { return b.w.Errors }
func (b fsnotifyBackend) Close() error                  { return b.w.Close() }

// Watcher watches roots recursively and emits debounced batches of changed
// paths. Consumers must drain both Events and Errors.
type Watcher struct {
	roots   []Root
	anchors []string // per root: nearest existing strict ancestor at start
	be      backend
	watched map[string]bool // owned by the run goroutine after NewWatcher returns

	raw    chan fsChange
	events <-chan []Change
	errs   chan error

	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}
}

// fsChange is one raw change; op 0 means "rescan" (always kept).
type fsChange struct {
	path string
	op   fsnotify.Op
}

// NewWatcher starts watching opts.Roots. Changes made after it returns are
// reported. It stops when ctx is done or Close is called.
func NewWatcher(ctx context.Context, opts WatchOptions) (*Watcher, error) {
	fw, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, watchAddError("(inotify init)", err)
	}
	return newWatcher(ctx, opts, fsnotifyBackend{fw})
}

func newWatcher(ctx context.Context, opts WatchOptions, be backend) (*Watcher, error) {
	ctx, cancel := context.WithCancel(ctx)
	w := &Watcher{
		be:      be,
		watched: map[string]bool{},
		raw:     make(chan fsChange, 256),
		errs:    make(chan error, 16),
		ctx:     ctx,
		cancel:  cancel,
		done:    make(chan struct{}),
	}
	for _, r := range opts.Roots {
		if !filepath.IsAbs(r.Path) {
			cancel()
			_ = be.Close()
			return nil, fmt.Errorf("watching %q: path is not absolute", r.Path)
		}
		r.Path = filepath.Clean(r.Path)
		w.roots = append(w.roots, r)
		w.anchors = append(w.anchors, nearestExistingAncestor(r.Path))
	}
	// Watching starts at each root's anchor (its nearest existing ancestor),
	// so a root that is deleted and recreated, or created later, is picked
	// up; addTree descends from there into the root.
	for _, a := range w.anchors {
		if err := w.addTree(a, false); err != nil {
			cancel()
			_ = be.Close()
			return nil, err
		}
	}
	w.events = coalesce(ctx, opts.Clock, opts.Quiet, opts.Cap, w.raw, &changeSet{classify: w.wanters})
	go w.run()
	return w, nil
}

// Events delivers batches of changes (one per absolute path, sorted by
// path). A change of a root path means "anything under it may have changed"
// (sent after an event-queue overflow). Closed after Close.
func (w *Watcher) Events() <-chan []Change { return w.events }

// Errors delivers non-fatal watch errors. Closed after Close.
func (w *Watcher) Errors() <-chan error { return w.errs }

// Close stops watching and releases the inotify instance.
func (w *Watcher) Close() error {
	w.cancel()
	<-w.done
	return nil
}

func (w *Watcher) run() {
	defer close(w.done)
	defer close(w.errs)
	defer func() { _ = w.be.Close() }()
	for {
		select {
		case <-w.ctx.Done():
			return
		case ev, ok := <-w.be.Events():
			if !ok {
				return
			}
			w.handle(ev)
		case err, ok := <-w.be.Errors():
			if !ok {
				return
			}
			if errors.Is(err, fsnotify.ErrEventOverflow) {
				w.rescan()
				continue
			}
			w.reportError(fmt.Errorf("watching files: %w", err))
		}
	}
}

func (w *Watcher) handle(ev fsnotify.Event) {
	p := filepath.Clean(ev.Name)
	if ev.Has(fsnotify.Remove) || ev.Has(fsnotify.Rename) {
		w.unwatchTree(p)
	}
	if ev.Has(fsnotify.Create) {
		if fi, err := os.Lstat(p); err == nil && fi.IsDir() {
			// Watch first, then walk: files created in the new directory
			// before its watch existed are found by the walk, later ones
			// by the watch (a path seen twice is deduplicated).
			if err := w.addTree(p, true); err != nil {
				w.reportError(err)
			}
		}
	}
	if w.underRoot(p) {
		w.send(fsChange{path: p, op: ev.Op})
	}
}

// rescan re-adds watches everywhere (directories created while events were
// lost) and reports every root as changed.
func (w *Watcher) rescan() {
	for _, a := range w.anchors {
		if err := w.addTree(a, false); err != nil {
			w.reportError(err)
		}
	}
	for _, r := range w.roots {
		w.send(fsChange{path: r.Path})
	}
}

func (w *Watcher) send(c fsChange) {
	select {
	case w.raw <- c:
	case <-w.ctx.Done():
	}
}

func (w *Watcher) reportError(err error) {
	select {
	case w.errs <- err:
	case <-w.ctx.Done():
	}
}

// underRoot is the cheap first look at an event: is p (under) a root at all.
// Whether a root ignores it is decided once per path and batch, by wanters.
func (w *Watcher) underRoot(p string) bool {
	for _, r := range w.roots {
		if paths.Under(p, r.Path) {
			return true
		}
	}
	return false
}

// wanters returns the names of the roots that want a change to p, and
// whether any root (named or not) does.
func (w *Watcher) wanters(p string) (names []string, wanted bool) {
	for _, r := range w.roots {
		if r.Wants(p) {
			wanted = true
			if r.Name != "" && !slices.Contains(names, r.Name) {
				names = append(names, r.Name)
			}
		}
	}
	slices.Sort(names)
	return names, wanted
}

// wantDir reports whether directory d must be watched: it is (under) a root
// and not entirely ignored by it, or it lies on the path from a root's anchor
// down to a root that does not exist (yet).
func (w *Watcher) wantDir(d string) bool {
	for i, r := range w.roots {
		if paths.Under(d, r.Path) && !r.ignore().MatchesEntireDir(d) {
			return true
		}
		if d != r.Path && paths.Under(r.Path, d) && paths.Under(d, w.anchors[i]) {
			return true
		}
	}
	return false
}

// addTree watches d and every wanted directory below it. With emit, every
// relevant file found is reported as created.
func (w *Watcher) addTree(d string, emit bool) error {
	if !w.wantDir(d) {
		return nil
	}
	if err := w.be.Add(d); err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
			return nil // vanished (or is a file root's missing parent); its parent's watch reports it
		}
		return watchAddError(d, err)
	}
	w.watched[d] = true
	entries, err := os.ReadDir(d)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("listing %s: %w", d, err)
	}
	var errs []error
	for _, e := range entries {
		c := filepath.Join(d, e.Name())
		if e.IsDir() {
			if err := w.addTree(c, emit); err != nil {
				if errors.Is(err, ErrWatchLimit) {
					return err
				}
				errs = append(errs, err)
			}
		}
		if emit && w.underRoot(c) {
			w.send(fsChange{path: c, op: fsnotify.Create})
		}
	}
	return errors.Join(errs...)
}

// unwatchTree drops the watches on p and below it (p was removed or renamed).
func (w *Watcher) unwatchTree(p string) {
	if !w.watched[p] {
		return
	}
	for d := range w.watched {
		if paths.Under(d, p) {
			_ = w.be.Remove(d) // usually already gone with the directory
			delete(w.watched, d)
		}
	}
}

// changeSet accumulates raw changes, asking classify once per path and
// batch which roots want it (a path no root wants is dropped), and drops, at
// flush time, paths whose first change in the batch was a creation and which
// no longer exist: the temp file of an atomic save (write temp, rename over
// the real file) was born and died within the batch, so it is no change.
type changeSet struct {
	classify func(string) ([]string, bool)
	lstat    func(string) (fs.FileInfo, error) // nil: os.Lstat
	first    map[string]fsnotify.Op
	roots    map[string][]string
}

// add records c and reports whether it belongs to the batch.
func (s *changeSet) add(c fsChange) bool {
	if s.first == nil {
		s.first, s.roots = map[string]fsnotify.Op{}, map[string][]string{}
	}
	if _, ok := s.first[c.path]; ok {
		return true
	}
	names, wanted := s.classify(c.path)
	if !wanted {
		return false
	}
	s.first[c.path], s.roots[c.path] = c.op, names
	return true
}

func (s *changeSet) flush() []Change {
	lstat := s.lstat
	if lstat == nil {
		lstat = os.Lstat
	}
	out := make([]Change, 0, len(s.first))
	for p, op := range s.first {
		if op.Has(fsnotify.Create) {
			if _, err := lstat(p); errors.Is(err, fs.ErrNotExist) {
				continue
			}
		}
		out = append(out, Change{Path: p, Roots: s.roots[p]})
	}
	s.first, s.roots = nil, nil
	slices.SortFunc(out, func(a, b Change) int { return strings.Compare(a.Path, b.Path) })
	return out
}

// nearestExistingAncestor returns the closest strict ancestor of p that exists.
func nearestExistingAncestor(p string) string {
	d := filepath.Dir(p)
	for {
		if fi, err := os.Stat(d); err == nil && fi.IsDir() {
			return d
		}
		parent := filepath.Dir(d)
		if parent == d {
			return d
		}
		d = parent
	}
}
