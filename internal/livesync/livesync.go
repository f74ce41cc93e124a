package livesync

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/devloop-dev/devloop/internal/config"
	"github.com/devloop-dev/devloop/internal/paths"
)

// Execer runs a command in a container, streaming stdin/stdout/stderr. A
// non-zero exit is an error that implements ExitStatus() int (client-go's
// k8s.io/client-go/util/exec.ExitError does).
type Execer interface {
	Exec(ctx context.Context, namespace, pod, container string, cmd []string, stdin io.Reader, stdout, stderr io.Writer) error
}

// Target is the container files are synced into.
type Target struct {
	Namespace, Pod, Container string
	// ContainerID is the runtime's ID of the running container ("" when
	// unknown): a restarted container has a new one.
	ContainerID string
	// Image is the image the pod's spec gives the container.
	Image string
}

func (t Target) String() string { return t.Namespace + "/" + t.Pod + "/" + t.Container }

// ErrNoTar is matched (errors.Is) when the container has no tar binary, so
// live sync is impossible and the service must be rebuilt instead.
var ErrNoTar = errors.New("container has no tar binary")

// FileCopy is one planned live-sync operation.
type FileCopy struct {
	// Local is the absolute local path.
	Local string
	// Dest is the absolute path in the container.
	Dest string
	// Delete is set when Local no longer exists: Dest is removed.
	Delete bool
	// Run is the command of the sync rule that matched (may be empty).
	Run string
}

// PlanSync maps changed local paths onto sync rules, checking with os.Lstat
// which paths were deleted. See PlanSyncWith.
func PlanSync(rules []config.SyncRule, changed []string) (files []FileCopy, rest []string) {
	return PlanSyncWith(rules, changed, os.Lstat)
}

// PlanSyncWith maps each changed path under some rule's Src (the first rule
// that covers it wins) to Dest plus its path relative to Src; a path that no
// longer exists (per lstat) becomes a removal. rest holds the paths no rule
// can sync, which need a rebuild: paths outside every rule, a rule's Src
// directory itself (after a watch overflow it means "anything below may have
// changed"), a deleted Src, and paths lstat fails on for other reasons.
func PlanSyncWith(rules []config.SyncRule, changed []string, lstat func(string) (fs.FileInfo, error)) (files []FileCopy, rest []string) {
	for _, p := range changed {
		p = filepath.Clean(p)
		rule, ok := RuleFor(rules, p)
		if !ok {
			rest = append(rest, p)
			continue
		}
		src := filepath.Clean(rule.Src)
		fi, err := lstat(p)
		gone := errors.Is(err, fs.ErrNotExist)
		switch {
		case err != nil && !gone:
			rest = append(rest, p)
			continue
		case p == src && (gone || fi.IsDir()):
			rest = append(rest, p)
			continue
		}
		dest := path.Clean(rule.Dest)
		if p != src {
			rel, _ := filepath.Rel(src, p) // p is strictly under src
			dest = path.Join(dest, filepath.ToSlash(rel))
		}
		files = append(files, FileCopy{Local: p, Dest: dest, Delete: gone, Run: rule.Run})
	}
	return files, rest
}

// RuleFor returns the first rule whose Src is p or contains it.
func RuleFor(rules []config.SyncRule, p string) (config.SyncRule, bool) {
	for _, r := range rules {
		if r.Src != "" && r.Dest != "" && paths.Under(p, filepath.Clean(r.Src)) {
			return r, true
		}
	}
	return config.SyncRule{}, false
}

// Runs returns the distinct non-empty Run commands of files, in order of
// first appearance.
func Runs(files []FileCopy) []string {
	var out []string
	for _, f := range files {
		if f.Run != "" && !slices.Contains(out, f.Run) {
			out = append(out, f.Run)
		}
	}
	return out
}

// tarCmd extracts a tar stream at the container's root, like kubectl cp;
// -m leaves modification times to the container's clock.
var tarCmd = []string{"tar", "-xmf", "-", "-C", "/"}

// Copy puts files into the target container: one tar stream (regular files
// with their mode, directories, symlinks) extracted at /, then one
// `rm -rf --` for the deleted paths, then `sh -c run` if run is set. A file
// that vanished since planning is removed instead. If the container has no
// tar, the error matches ErrNoTar and nothing was changed.
func Copy(ctx context.Context, ex Execer, target Target, files []FileCopy, run string) error {
	var copies []FileCopy
	var deletes []string
	for _, f := range files {
		if f.Delete {
			deletes = append(deletes, f.Dest)
		} else {
			copies = append(copies, f)
		}
	}

	if len(copies) > 0 {
		gone, err := streamTar(ctx, ex, target, copies)
		if err != nil {
			return err
		}
		deletes = append(deletes, gone...)
	}

	if len(deletes) > 0 {
		for _, d := range deletes {
			if d == "" || path.Clean(d) == "/" {
				return fmt.Errorf("syncing into %s: refusing to delete %q", target, d)
			}
		}
		var out limitedBuffer
		cmd := append([]string{"rm", "-rf", "--"}, deletes...)
		if err := ex.Exec(ctx, target.Namespace, target.Pod, target.Container, cmd, nil, &out, &out); err != nil {
			return fmt.Errorf("removing %d deleted files in %s: %w%s", len(deletes), target, err, out.suffix())
		}
	}

	if run != "" {
		var out limitedBuffer
		if err := ex.Exec(ctx, target.Namespace, target.Pod, target.Container, []string{"sh", "-c", run}, nil, &out, &out); err != nil {
			return fmt.Errorf("running %q in %s after sync: %w%s", run, target, err, out.suffix())
		}
	}
	return nil
}

// streamTar runs tar in the container, feeding it copies. It returns the
// destinations of files that vanished locally before they could be sent.
func streamTar(ctx context.Context, ex Execer, target Target, copies []FileCopy) (gone []string, err error) {
	pr, pw := io.Pipe()
	type result struct {
		gone []string
		err  error
	}
	done := make(chan result, 1)
	go func() {
		g, err := writeTar(pw, copies)
		_ = pw.CloseWithError(err)
		done <- result{g, err}
	}()

	var stderr limitedBuffer
	execErr := ex.Exec(ctx, target.Namespace, target.Pod, target.Container, tarCmd, pr, io.Discard, &stderr)
	_ = pr.CloseWithError(errors.New("tar exec finished")) // unblock the writer if tar stopped reading
	res := <-done

	if execErr != nil {
		if isNoTar(execErr, stderr.String()) {
			return nil, fmt.Errorf("syncing files into %s: %w (%v%s)", target, ErrNoTar, execErr, stderr.suffix())
		}
		return nil, fmt.Errorf("syncing %d files into %s: tar: %w%s", len(copies), target, execErr, stderr.suffix())
	}
	if res.err != nil {
		return nil, fmt.Errorf("syncing files into %s: writing tar stream: %w", target, res.err)
	}
	return res.gone, nil
}

// writeTar writes one entry per copy, named by its container path without
// the leading slash. Contents are read whole, so a file changing while it is
// sent cannot make the entry's size lie (the next batch resends it).
func writeTar(w io.Writer, copies []FileCopy) (gone []string, err error) {
	tw := tar.NewWriter(w)
	for _, c := range copies {
		fi, err := os.Lstat(c.Local)
		if errors.Is(err, fs.ErrNotExist) {
			gone = append(gone, c.Dest)
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", c.Local, err)
		}
		name := strings.TrimPrefix(path.Clean(c.Dest), "/")
		hdr := &tar.Header{
			Name:    name,
			Mode:    int64(fi.Mode().Perm()),
			ModTime: fi.ModTime(),
			Format:  tar.FormatPAX,
		}
		var data []byte
		switch {
		case fi.Mode().IsRegular():
			data, err = os.ReadFile(c.Local)
			if errors.Is(err, fs.ErrNotExist) {
				gone = append(gone, c.Dest)
				continue
			}
			if err != nil {
				return nil, fmt.Errorf("reading %s: %w", c.Local, err)
			}
			hdr.Typeflag = tar.TypeReg
			hdr.Size = int64(len(data))
		case fi.IsDir():
			hdr.Typeflag = tar.TypeDir
			hdr.Name += "/"
		case fi.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(c.Local)
			if err != nil {
				return nil, fmt.Errorf("reading link %s: %w", c.Local, err)
			}
			hdr.Typeflag = tar.TypeSymlink
			hdr.Linkname = target
		default:
			continue // sockets, devices, fifos: nothing sensible to sync
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return nil, fmt.Errorf("writing tar header for %s: %w", name, err)
		}
		if _, err := tw.Write(data); err != nil {
			return nil, fmt.Errorf("writing %s into tar: %w", name, err)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("finishing tar stream: %w", err)
	}
	return gone, nil
}

// isNoTar reports whether an exec of tar failed because there is no tar:
// the runtime could not find the executable, or a shell said so (127).
func isNoTar(err error, stderr string) bool {
	var exit interface{ ExitStatus() int }
	if errors.As(err, &exit) && exit.ExitStatus() == 127 {
		return true
	}
	msg := err.Error() + "\n" + stderr
	return strings.Contains(msg, "executable file not found") ||
		strings.Contains(msg, "tar: not found") ||
		strings.Contains(msg, `"tar": no such file or directory`)
}

// limitedBuffer keeps the last 4 KiB written to it, for error messages. It
// is safe for concurrent writes (stdout and stderr may share one).
type limitedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

const limitedBufferMax = 4 << 10

func (l *limitedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := len(p)
	l.b.Write(p)
	if over := l.b.Len() - limitedBufferMax; over > 0 {
		l.b.Next(over)
	}
	return n, nil
}

func (l *limitedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// suffix formats the captured output for appending to an error message.
func (l *limitedBuffer) suffix() string {
	s := strings.TrimSpace(l.String())
	if s == "" {
		return ""
	}
	return ": " + s
}
