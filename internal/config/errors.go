package config

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Error is one problem found in a config file, located at the YAML node
// that caused it.
type Error struct {
	// File is the config file path as given to Load or Parse.
	File string
	// Line and Column are 1-based; 0 when unknown (YAML syntax errors
	// carry a line but no column).
	Line, Column int
	// Path is the key path of the offending value, e.g.
	// "services[0].portForwards[1].local"; empty for the whole document.
	Path string
	// Msg says what was expected.
	Msg string
}

// Error formats the problem as "file:line:column: key.path: message".
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	switch {
	case e.Line > 0 && e.Column > 0:
		fmt.Fprintf(&b, ":%d:%d", e.Line, e.Column)
	case e.Line > 0:
		fmt.Fprintf(&b, ":%d", e.Line)
	}
	b.WriteString(": ")
	if e.Path != "" {
		b.WriteString(e.Path)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// ErrorList is every problem found in one config file, in file order.
// Load and Parse return it (as an error) when the file is invalid.
type ErrorList []*Error

// Error lists every problem, one per line.
func (l ErrorList) Error() string {
	msgs := make([]string, len(l))
	for i, e := range l {
		msgs[i] = e.Error()
	}
	return strings.Join(msgs, "\n")
}

// Unwrap exposes the individual problems to errors.Is and errors.As.
func (l ErrorList) Unwrap() []error {
	errs := make([]error, len(l))
	for i, e := range l {
		errs[i] = e
	}
	return errs
}

// sortErrors orders problems by position, keeping the discovery order of
// problems at the same position.
func sortErrors(l ErrorList) {
	sort.SliceStable(l, func(i, j int) bool {
		if l[i].Line != l[j].Line {
			return l[i].Line < l[j].Line
		}
		return l[i].Column < l[j].Column
	})
}

// Limits on what a problem echoes back of the file, so a huge value (a
// 5 MB project name) cannot flood the terminal.
const (
	maxQuoted  = 64   // bytes of a quoted value
	maxPath    = 256  // bytes of a key path or file path
	maxShown   = 1024 // bytes of any other text shown with %s
	maxMessage = 4096 // bytes of a whole message
)

// quote quotes s like %q, cut to maxQuoted bytes (on a rune boundary) and
// followed by its full length when cut.
func quote(s string) string {
	if len(s) <= maxQuoted {
		return strconv.Quote(s)
	}
	return strconv.Quote(cutRunes(s, maxQuoted)) + fmt.Sprintf("… (%d bytes)", len(s))
}

// clip cuts s to about max bytes, keeping its start and its end (where a
// path's file name is) around an ellipsis.
func clip(s string, max int) string {
	if len(s) <= max {
		return s
	}
	head := cutRunes(s, max/2)
	tail := s[len(s)-max/2:]
	for len(tail) > 0 && !utf8.RuneStart(tail[0]) {
		tail = tail[1:]
	}
	return head + fmt.Sprintf("…(%d bytes)…", len(s)-len(head)-len(tail)) + tail
}

// cutRunes returns the longest prefix of s of at most n bytes that does not
// split a UTF-8 sequence.
func cutRunes(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
