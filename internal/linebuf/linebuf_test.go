package linebuf

import (
	"bytes"
	"strings"
	"testing"
	"unicode/utf8"
)

// lines feeds each chunk in turn and returns the lines emitted, the
// partial line flushed at the end last.
func lines(max int, chunks ...string) []string {
	s := &Splitter{Max: max}
	var out []string
	emit := func(l []byte) { out = append(out, string(l)) }
	for _, c := range chunks {
		s.Write([]byte(c), emit)
	}
	s.Flush(emit)
	return out
}

func TestSplitter(t *testing.T) {
	tests := []struct {
		name   string
		max    int
		chunks []string
		want   []string
	}{
		{"lines", 0, []string{"a\nb\n"}, []string{"a", "b"}},
		{"partial line flushed", 0, []string{"a\nb"}, []string{"a", "b"}},
		{"line split across writes", 0, []string{"ab", "c\nd", "e\n"}, []string{"abc", "de"}},
		{"empty lines kept", 0, []string{"\n\na\n"}, []string{"", "", "a"}},
		{"CR LF", 0, []string{"a\r\nb\r\n"}, []string{"a", "b"}},
		{"CR LF split across writes", 0, []string{"a\r", "\nb\r", "\n"}, []string{"a", "b"}},
		{"progress bar", 0, []string{"10%\r20%\r", "30%\rdone\n"}, []string{"done"}},
		{"progress bar never ended", 0, []string{"10%\r20%\r30%"}, []string{"30%"}},
		{"progress bar ending in CR", 0, []string{"10%\r20%\r"}, []string{"20%"}},
		{"CR CR LF", 0, []string{"a\r\r\nb\n"}, []string{"a", "b"}},
		{"long line cut at max", 4, []string{"abcdefghij\nk\n"}, []string{"abcd", "efgh", "ij", "k"}},
		{"long line cut across writes", 4, []string{"ab", "cdef", "g\n"}, []string{"abcd", "efg"}},
		{"cut keeps characters whole", 4, []string{"abcé\n"}, []string{"abc", "é"}},
		{"nothing", 0, nil, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := lines(tc.max, tc.chunks...)
			if strings.Join(got, "|") != strings.Join(tc.want, "|") || len(got) != len(tc.want) {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

// TestCarriageReturnsOnlyStayBounded: a stream of progress updates that
// never ends its line holds one update, not the stream.
func TestCarriageReturnsOnlyStayBounded(t *testing.T) {
	s := &Splitter{}
	chunk := []byte(strings.Repeat("downloading 42% [=====>    ]\r", 1000))
	for range 1000 { // 28 MB
		s.Write(chunk, func([]byte) { t.Fatal("a line was emitted") })
		if cap(s.buf) > 2*DefaultMax {
			t.Fatalf("holding %d bytes", cap(s.buf))
		}
	}
	if got := string(s.Partial()); got != "downloading 42% [=====>    ]" {
		t.Errorf("partial %q after a final CR, want the last update", got)
	}
	s.Write([]byte("x"), func([]byte) {})
	if got := string(s.Partial()); got != "x" {
		t.Errorf("partial %q", got)
	}
}

// reference is what a terminal shows for each line of s, for lines of any
// length: the text after the last carriage return that something followed.
func reference(s string) []string {
	if s == "" {
		return nil
	}
	parts := strings.Split(s, "\n")
	if parts[len(parts)-1] == "" {
		parts = parts[:len(parts)-1]
	}
	var out []string
	for i, p := range parts {
		p = strings.TrimRight(p, "\r")
		if j := strings.LastIndexByte(p, '\r'); j >= 0 {
			p = p[j+1:]
		}
		if i == len(parts)-1 && p == "" && !strings.HasSuffix(s, "\n") {
			continue // a partial line that is empty is not flushed
		}
		out = append(out, p)
	}
	return out
}

func FuzzSplitter(f *testing.F) {
	for _, s := range []string{"a\nb", "10%\r20%\r30%\n", "a\r\n\r\n", "\r\r\n\n", "abcé\n", strings.Repeat("x", 40) + "\ry\n"} {
		f.Add([]byte(s), uint8(3))
	}
	f.Fuzz(func(t *testing.T, data []byte, split uint8) {
		// In two writes, cut anywhere, lines as long as they come.
		cut := int(split) % (len(data) + 1)
		got := lines(1<<20, string(data[:cut]), string(data[cut:]))
		want := reference(string(data))
		if strings.Join(got, "\x00") != strings.Join(want, "\x00") || len(got) != len(want) {
			t.Fatalf("got %q, want %q", got, want)
		}
		// With a small Max, every line fits and, without carriage returns,
		// nothing is lost.
		const max = 8
		small := lines(max, string(data[:cut]), string(data[cut:]))
		for _, l := range small {
			if len(l) > max {
				t.Fatalf("line of %d bytes > %d: %q", len(l), max, l)
			}
		}
		if !bytes.ContainsRune(data, '\r') {
			if a, b := strings.Join(small, ""), strings.ReplaceAll(string(data), "\n", ""); a != b {
				t.Fatalf("pieces %q do not make %q", small, b)
			}
			if utf8.Valid(data) {
				for _, l := range small {
					if !utf8.ValidString(l) {
						t.Fatalf("a piece splits a character: %q", l)
					}
				}
			}
		}
	})
}
