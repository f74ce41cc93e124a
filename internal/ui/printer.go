// Package ui prints what devloop does: prefixed, optionally colored lines
// that never interleave mid-line, whoever writes them (the loop, build
// output, log tails).
package ui

import (
	"bytes"
	"fmt"
	"hash/fnv"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/devloop-dev/devloop/internal/linebuf"
)

// ANSI colors used for prefixes; chosen to read on dark and light terminals.
var palette = []string{"36", "32", "35", "33", "34", "96", "92", "95", "93", "94"}

// Printer writes whole lines to one writer.
type Printer struct {
	mu    sync.Mutex
	out   io.Writer
	color bool
	stamp bool
	now   func() time.Time
	width int
}

// NewPrinter makes a printer. color adds ANSI colors; stamp prefixes each
// line with the time (for logs and CI, where there is no live screen).
func NewPrinter(out io.Writer, color, stamp bool) *Printer {
	return &Printer{out: out, color: color, stamp: stamp, now: time.Now, width: 8}
}

// IsTerminal reports whether w is a character device (a terminal).
func IsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// Color reports whether the printer colors its output.
func (p *Printer) Color() bool { return p.color }

// SetPrefixWidth pads prefixes to n characters so columns line up.
func (p *Printer) SetPrefixWidth(n int) {
	p.mu.Lock()
	p.width = n
	p.mu.Unlock()
}

// ColorFor picks a stable color for a name.
func ColorFor(name string) string {
	h := fnv.New32a()
	_, _ = h.Write([]byte(name))
	return palette[h.Sum32()%uint32(len(palette))]
}

// Paint wraps s in an ANSI color when the printer colors.
func (p *Printer) Paint(code, s string) string {
	if !p.color || code == "" {
		return s
	}
	return "\x1b[" + code + "m" + s + "\x1b[0m"
}

// Line prints one line under prefix (colored by its name).
func (p *Printer) Line(prefix, format string, args ...any) {
	p.write(prefix, ColorFor(prefix), fmt.Sprintf(format, args...))
}

// Error prints one line (or block) in red under prefix.
func (p *Printer) Error(prefix, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	p.write(prefix, ColorFor(prefix), p.Paint("31", msg))
}

// RawBlock prints already-prefixed complete lines (a log tail's output) as one write.
func (p *Printer) RawBlock(block string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stamp {
		var b strings.Builder
		for _, l := range strings.Split(strings.TrimRight(block, "\n"), "\n") {
			b.WriteString(p.now().Format("15:04:05") + " " + l + "\n")
		}
		block = b.String()
	}
	_, _ = io.WriteString(p.out, block)
}

func (p *Printer) write(prefix, color, msg string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var b strings.Builder
	for _, l := range strings.Split(strings.TrimRight(msg, "\n"), "\n") {
		if p.stamp {
			b.WriteString(p.now().Format("15:04:05") + " ")
		}
		if prefix != "" {
			pad := p.width - len(prefix)
			if pad < 0 {
				pad = 0
			}
			b.WriteString(p.Paint(color, prefix) + strings.Repeat(" ", pad) + " │ ")
		}
		b.WriteString(l)
		b.WriteByte('\n')
	}
	_, _ = io.WriteString(p.out, b.String())
}

// Writer returns an io.Writer that prints each complete line under prefix,
// dimmed (for build output). Close flushes a last partial line. A progress
// bar redrawn with carriage returns prints as its last state, and lines are
// held in bounded memory (see linebuf): a stream that never ends its line
// does not grow.
func (p *Printer) Writer(prefix string) io.WriteCloser {
	return &lineWriter{p: p, prefix: prefix}
}

type lineWriter struct {
	p      *Printer
	prefix string
	mu     sync.Mutex
	lines  linebuf.Splitter
}

func (w *lineWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.lines.Write(b, w.emit)
	return len(b), nil
}

func (w *lineWriter) emit(line []byte) {
	if len(bytes.TrimSpace(line)) == 0 {
		return
	}
	w.p.write(w.prefix, ColorFor(w.prefix), w.p.Paint("2", string(line)))
}

func (w *lineWriter) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.lines.Flush(w.emit)
	return nil
}

// Progress intervals: the first "still ..." line comes after progressFirst,
// then one every progressEvery. Steps that finish sooner print nothing extra.
const (
	progressFirst = 5 * time.Second
	progressEvery = 10 * time.Second
)

// Progress says, while a long step runs, that it is still running and for how
// long so far: "still <what> (15s so far)" under prefix, after 5 s and then
// every 10 s, until the returned stop is called (stop is idempotent).
func (p *Printer) Progress(prefix, what string) (stop func()) {
	return p.ProgressFunc(prefix, func() string { return what })
}

// ProgressFunc is Progress with what asked for each time a line is printed
// (it may say what the step is waiting for right now).
func (p *Printer) ProgressFunc(prefix string, what func() string) (stop func()) {
	done := make(chan struct{})
	finished := make(chan struct{})
	begin := time.Now()
	go func() {
		defer close(finished)
		t := time.NewTimer(progressFirst)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				p.Line(prefix, "still %s (%s so far)", what(), time.Since(begin).Round(time.Second))
				t.Reset(progressEvery)
			}
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() { close(done); <-finished })
	}
}
