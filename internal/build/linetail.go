package build

import (
	"strings"
	"sync"

	"github.com/devloop-dev/devloop/internal/linebuf"
)

// lineTail keeps the last n lines written to it, for the output a failed
// step reports, in bounded memory: lines are split like a terminal shows
// them (a progress bar redrawn with \r is its last state) and cut at
// linebuf.DefaultMax bytes, so n lines and one partial line are all it holds
// however much output, with or without newlines, a command writes.
type lineTail struct {
	mu    sync.Mutex
	n     int
	lines []string // a ring of at most n lines; next is the oldest once full
	next  int
	split linebuf.Splitter
}

func newLineTail(n int) *lineTail { return &lineTail{n: max(n, 1)} }

func (t *lineTail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.split.Write(p, t.add)
	return len(p), nil
}

func (t *lineTail) add(line []byte) {
	l := string(line)
	if len(t.lines) < t.n {
		t.lines = append(t.lines, l)
		return
	}
	t.lines[t.next] = l
	t.next = (t.next + 1) % t.n
}

// String returns the kept lines, oldest first, with the partial line last,
// joined by newlines.
func (t *lineTail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	lines := append(append([]string(nil), t.lines[t.next:]...), t.lines[:t.next]...)
	if t.split.Pending() {
		lines = append(lines, string(t.split.Partial()))
	}
	if len(lines) > t.n {
		lines = lines[len(lines)-t.n:]
	}
	return strings.Join(lines, "\n")
}
