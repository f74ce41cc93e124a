package termsafe

import (
	"bytes"
	"testing"
	"unicode/utf8"
)

func TestSanitize(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"plain", "GET /health 200 3ms", "GET /health 200 3ms"},
		{"tab kept", "a\tb", "a\tb"},
		{"unicode kept", "café ✓ 日本", "café ✓ 日本"},
		{"colours removed", "\x1b[1;31mERROR\x1b[0m boom", "ERROR boom"},
		{"clear screen and home", "\x1b[2J\x1b[Hgotcha", "gotcha"},
		{"private mode (hide cursor)", "\x1b[?25lx", "x"},
		{"window title, BEL", "\x1b]0;pwned\x07after", "after"},
		{"hyperlink, ST", "\x1b]8;;http://evil\x1b\\click\x1b]8;;\x1b\\", "click"},
		{"DCS", "\x1bPq#0;2;0;0;0\x1b\\x", "x"},
		{"reset terminal", "\x1bcx", "x"},
		{"charset designation", "\x1b(0lqk\x1b(B", "lqk"},
		{"save and restore cursor", "\x1b7x\x1b8", "x"},
		{"ESC at the end", "x\x1b", "x"},
		{"CSI cut short", "x\x1b[31", "x"},
		{"OSC cut short", "x\x1b]0;title", "x"},
		{"broken CSI shows what follows", "\x1b[3\x07x", `\ax`},
		{"carriage return cannot overwrite the prefix", "fake prefix\rreal", `fake prefix\rreal`},
		{"backspace", "abc\b\b\bxyz", `abc\b\b\bxyz`},
		{"NUL and DEL", "a\x00b\x7fc", `a\x00b\x7fc`},
		{"C1 CSI", "\u009b31mred", `\u009b31mred`},
		{"invalid UTF-8", "a\xffb\xc3", "a\ufffdb\ufffd"},
		{"raw 8-bit CSI byte", "\x9b2J", "\ufffd2J"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := string(Sanitize([]byte(tc.in))); got != tc.want {
				t.Errorf("Sanitize(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

// FuzzSanitize: the result never holds an escape or control character or
// invalid UTF-8, is stable when sanitised again, and leaves printable text
// alone.
func FuzzSanitize(f *testing.F) {
	for _, s := range []string{"plain", "\x1b[1;31mERROR\x1b[0m", "\x1b]0;t\x07x", "\x1b]8;;u\x1b\\l", "\x1bPq\x1b\\", "a\rb\x00\x7f", "\u009b2J", "\xff\xc3", "\x1b", "\x1b[", "\x1b(B", "é\t日"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		out := Sanitize(in)
		if !utf8.Valid(out) {
			t.Fatalf("invalid UTF-8 in %q", out)
		}
		for _, r := range string(out) {
			if r < 0x20 && r != '\t' || r >= 0x7f && r <= 0x9f {
				t.Fatalf("control character %U in %q (from %q)", r, out, in)
			}
		}
		if again := Sanitize(out); !bytes.Equal(again, out) {
			t.Fatalf("not stable: %q then %q", out, again)
		}
		printable := utf8.Valid(in)
		for _, r := range string(in) {
			if r < 0x20 && r != '\t' || r >= 0x7f && r <= 0x9f {
				printable = false
			}
		}
		if printable && !bytes.Equal(out, in) {
			t.Fatalf("printable %q changed to %q", in, out)
		}
	})
}
