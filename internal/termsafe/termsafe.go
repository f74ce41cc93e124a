// Package termsafe makes text from elsewhere (an app's log lines) safe to
// print on the user's terminal.
package termsafe

import (
	"fmt"
	"unicode/utf8"
)

// Sanitize returns line (one line of text, without its line end) made safe to
// print on a terminal: escape sequences (CSI, such as colours and cursor
// movement; OSC, such as window titles and hyperlinks; DCS, SOS, PM, APC and
// two-byte escapes such as the reset ESC c) are removed, other control
// characters (C0 but tab, DEL and C1) are shown escaped, as \r or \x07, and
// bytes that are not UTF-8 become U+FFFD. An app's log can then neither
// recolour, move, clear or retitle the user's terminal nor overwrite the
// prefix devloop prints before it. Lines with nothing to change are returned
// as they are.
func Sanitize(line []byte) []byte {
	clean := true
	for _, c := range line {
		if c < 0x20 && c != '\t' || c >= 0x7f {
			clean = false
			break
		}
	}
	if clean {
		return line
	}
	out := make([]byte, 0, len(line))
	for i := 0; i < len(line); {
		c := line[i]
		switch {
		case c == 0x1b:
			i = skipEscape(line, i+1)
		case c == '\t' || c >= 0x20 && c < 0x7f:
			out = append(out, c)
			i++
		case c < 0x80: // C0 and DEL
			out = appendEscaped(out, rune(c))
			i++
		default:
			r, size := utf8.DecodeRune(line[i:])
			switch {
			case r == utf8.RuneError && size == 1:
				out = utf8.AppendRune(out, utf8.RuneError)
			case r >= 0x80 && r <= 0x9f: // C1, e.g. U+009B, the one-character CSI
				out = appendEscaped(out, r)
			default:
				out = append(out, line[i:i+size]...)
			}
			i += size
		}
	}
	return out
}

func appendEscaped(out []byte, r rune) []byte {
	switch r {
	case '\r':
		return append(out, `\r`...)
	case '\b':
		return append(out, `\b`...)
	case '\a':
		return append(out, `\a`...)
	case '\f':
		return append(out, `\f`...)
	case '\v':
		return append(out, `\v`...)
	}
	if r < 0x80 {
		return fmt.Appendf(out, `\x%02x`, r)
	}
	return fmt.Appendf(out, `\u%04x`, r)
}

// skipEscape returns the index just past the escape sequence whose ESC is
// at i-1, or len(b) for a sequence the line cuts short.
func skipEscape(b []byte, i int) int {
	if i >= len(b) {
		return i
	}
	switch b[i] {
	case '[': // CSI: parameters and intermediates, then a final byte
		for i++; i < len(b); i++ {
			if b[i] >= 0x40 && b[i] <= 0x7e {
				return i + 1
			}
			if b[i] < 0x20 || b[i] >= 0x7f {
				return i // not a CSI byte: the sequence is broken; show what follows
			}
		}
		return i
	case ']', 'P', 'X', '^', '_': // strings: up to BEL (OSC only) or ST (ESC \)
		osc := b[i] == ']'
		for i++; i < len(b); i++ {
			if osc && b[i] == 0x07 {
				return i + 1
			}
			if b[i] == 0x1b && i+1 < len(b) && b[i+1] == '\\' {
				return i + 2
			}
		}
		return i
	}
	// nF escapes: intermediates (0x20-0x2f), then a final byte (0x30-0x7e);
	// Fp, Fe and Fs escapes: a final byte alone.
	for ; i < len(b) && b[i] >= 0x20 && b[i] <= 0x2f; i++ {
	}
	if i < len(b) && b[i] >= 0x30 && b[i] <= 0x7e {
		return i + 1
	}
	return i
}
