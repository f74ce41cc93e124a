package build

import (
	"fmt"
	"strings"
	"testing"
)

func TestLineTail(t *testing.T) {
	tests := []struct {
		name   string
		n      int
		chunks []string
		want   string
	}{
		{"last n lines", 2, []string{"a\nb\nc\n"}, "b\nc"},
		{"partial line last", 2, []string{"a\nb\nc"}, "b\nc"},
		{"lines across writes", 3, []string{"a", "b\nc", "d\n"}, "ab\ncd"},
		{"CR LF", 3, []string{"a\r\nb\r\n"}, "a\nb"},
		{"progress bar is its last state", 3, []string{"1%\r50%\r", "100%\nerror: boom\n"}, "100%\nerror: boom"},
		{"progress bar never ended", 3, []string{"start\n1%\r50%\r99%"}, "start\n99%"},
		{"fewer lines than n", 20, []string{"only\n"}, "only"},
		{"nothing", 20, nil, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tl := newLineTail(tc.n)
			for _, c := range tc.chunks {
				fmt.Fprint(tl, c)
			}
			if got := tl.String(); got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

// TestLineTailBounded: a long line is kept in pieces of linebuf.DefaultMax,
// so the tail holds n of those at most.
func TestLineTailBounded(t *testing.T) {
	tl := newLineTail(3)
	chunk := strings.Repeat("x", 1000)
	for range 10_000 { // 10 MB without a newline
		fmt.Fprint(tl, chunk)
	}
	if got := len(tl.String()); got > 3*(16<<10)+2 {
		t.Errorf("tail of %d bytes", got)
	}
}
