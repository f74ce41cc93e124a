package config

import (
	"fmt"
	"sort"
	"strings"
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
