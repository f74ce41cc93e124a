package imageload

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/devloop-dev/devloop/internal/ui"
)

// A docker save stream comes from the engine devloop talks to, which need not
// be the one the user thinks (DOCKER_HOST, a context): it is parsed as
// untrusted input. Go's tar reader expands sparse entries, so a few kilobytes
// of stream can declare gigabytes of zeros; every entry is checked before its
// content is read or passed on.

// errBadSave marks a save stream that is refused outright: neither the fast
// nor the plain path sends it to a node.
var errBadSave = errors.New("docker save stream refused")

// Limits on what one entry of a save stream may declare. Docker writes
// metadata files of a few kilobytes and layers as plain files.
const (
	maxEntrySize    = 64 << 30 // one layer
	maxMetadataSize = 16 << 20 // manifest.json, index.json, a config, a manifest
)

// checkEntry refuses entries a save stream from Docker never has: sparse
// files (which expand on reading) and sizes that are negative or implausible.
func checkEntry(hdr *tar.Header) error {
	if hdr.Typeflag == tar.TypeGNUSparse {
		return fmt.Errorf("%w: entry %q is a sparse file (GNU sparse, declares %s); Docker never writes one: check which engine DOCKER_HOST or the docker context points at", errBadSave, cut(hdr.Name), ui.Bytes(hdr.Size))
	}
	for k := range hdr.PAXRecords {
		if strings.HasPrefix(k, "GNU.sparse.") {
			return fmt.Errorf("%w: entry %q is a sparse file (PAX %s, declares %s); Docker never writes one: check which engine DOCKER_HOST or the docker context points at", errBadSave, cut(hdr.Name), k, ui.Bytes(hdr.Size))
		}
	}
	if hdr.Size < 0 || hdr.Size > maxEntrySize {
		return fmt.Errorf("%w: entry %q declares %d bytes (limit %s)", errBadSave, cut(hdr.Name), hdr.Size, ui.Bytes(maxEntrySize))
	}
	return nil
}

// cut shortens a name from the stream for an error message.
func cut(s string) string {
	if len(s) > 120 {
		return s[:120] + "..."
	}
	return s
}

// readCounter counts the bytes read from the save stream itself, so that what
// is passed on can be bounded by what was actually read.
type readCounter struct {
	r io.Reader
	n int64
}

func (c *readCounter) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// guardedSave passes a save stream through unchanged while a tar reader
// checks every header in step with it: a refused entry fails the read before
// the chunk holding its header reaches the caller. It guards the plain path,
// where the stream goes to the node's `ctr images import` as it is.
type guardedSave struct {
	r    io.Reader
	pw   *io.PipeWriter
	done chan error
}

func newGuardedSave(r io.Reader) *guardedSave {
	pr, pw := io.Pipe()
	g := &guardedSave{r: r, pw: pw, done: make(chan error, 1)}
	go func() {
		err := checkStream(pr)
		if err != nil {
			pr.CloseWithError(err)
		} else {
			// The tar's end may be followed by padding: keep reading it.
			_, err = io.Copy(io.Discard, pr)
		}
		g.done <- err
	}()
	return g
}

// checkStream reads a tar stream, checking every header.
func checkStream(r io.Reader) error {
	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("reading docker save: %w", err)
		}
		if err := checkEntry(hdr); err != nil {
			return err
		}
	}
}

func (g *guardedSave) Read(p []byte) (int, error) {
	n, err := g.r.Read(p)
	if n > 0 {
		if _, werr := g.pw.Write(p[:n]); werr != nil {
			return 0, werr
		}
	}
	if err != nil {
		// Let the checker see the end, and report what it found.
		g.pw.CloseWithError(err)
		if errors.Is(err, io.EOF) {
			if cerr := <-g.done; cerr != nil {
				g.done <- cerr
				return 0, cerr
			}
			g.done <- nil
		}
	}
	return n, err
}

// close stops the checker.
func (g *guardedSave) close() { g.pw.CloseWithError(errImportEnded) }
