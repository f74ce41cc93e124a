// Package doctor checks the machine and the project for what devloop needs
// and for development practices, and prints the findings as OK/WARN/FAIL
// lines, each problem with its fix.
package doctor

import (
	"fmt"
	"io"
	"strings"
)

// Level is how serious a Result is.
type Level int

// Levels, from best to worst.
const (
	// OK means the check passed.
	OK Level = iota
	// Warn means devloop will work, but something will hurt later.
	Warn
	// Fail means devloop will not work until this is fixed.
	Fail
)

// String is "OK", "WARN" or "FAIL".
func (l Level) String() string {
	switch l {
	case OK:
		return "OK"
	case Warn:
		return "WARN"
	case Fail:
		return "FAIL"
	}
	return fmt.Sprintf("Level(%d)", int(l))
}

// MarshalText renders the level in lower case ("ok", "warn", "fail") for JSON output.
func (l Level) MarshalText() ([]byte, error) { return []byte(strings.ToLower(l.String())), nil }

// Result is the outcome of one check.
type Result struct {
	Level Level `json:"level"`
	// Check is a short name for what was checked, e.g. "docker" or "probes".
	Check string `json:"check"`
	// Message says what was found, naming the object when there is one.
	Message string `json:"message"`
	// Fix says what to do about a Warn or Fail ("" for OK).
	Fix string `json:"fix,omitempty"`
}

// Worst returns the most serious level in results (OK when there are none).
func Worst(results []Result) Level {
	worst := OK
	for _, r := range results {
		if r.Level > worst {
			worst = r.Level
		}
	}
	return worst
}

const (
	ansiReset  = "\x1b[0m"
	ansiGreen  = "\x1b[32m"
	ansiYellow = "\x1b[33m"
	ansiRed    = "\x1b[31m"
	ansiDim    = "\x1b[2m"
)

func levelColor(l Level) string {
	switch l {
	case OK:
		return ansiGreen
	case Warn:
		return ansiYellow
	}
	return ansiRed
}

// indent is where messages continue and fixes start: the level column
// ("WARN") plus two spaces.
const indent = "      "

// Print writes one line per result: the level in a 4-wide column, the check
// name padded to the longest one, and the message; for WARN and FAIL the fix
// follows on the next line ("      fix: ..."). A summary line ends the output
// ("2 warnings, 1 failure"). color adds ANSI colors to the level column.
func Print(w io.Writer, results []Result, color bool) {
	width := 0
	for _, r := range results {
		width = max(width, len(r.Check))
	}
	var b strings.Builder
	for _, r := range results {
		lvl := fmt.Sprintf("%-4s", r.Level)
		if color {
			lvl = levelColor(r.Level) + lvl + ansiReset
		}
		msg := strings.ReplaceAll(strings.TrimRight(r.Message, "\n"), "\n", "\n"+indent+strings.Repeat(" ", width+2))
		fmt.Fprintf(&b, "%s  %-*s  %s\n", lvl, width, r.Check, msg)
		if r.Level != OK && r.Fix != "" {
			fix := strings.ReplaceAll(strings.TrimRight(r.Fix, "\n"), "\n", "\n"+indent+"     ")
			label := "fix:"
			if color {
				label = ansiDim + label + ansiReset
			}
			fmt.Fprintf(&b, "%s%s %s\n", indent, label, fix)
		}
	}
	if len(results) > 0 {
		b.WriteString("\n")
	}
	b.WriteString(summary(results))
	b.WriteString("\n")
	io.WriteString(w, b.String())
}

// summary is "2 warnings, 1 failure", or "all 7 checks passed".
func summary(results []Result) string {
	var warns, fails int
	for _, r := range results {
		switch r.Level {
		case Warn:
			warns++
		case Fail:
			fails++
		}
	}
	if warns == 0 && fails == 0 {
		if len(results) == 0 {
			return "nothing to check"
		}
		if len(results) == 1 {
			return "the check passed"
		}
		return fmt.Sprintf("all %d checks passed", len(results))
	}
	var parts []string
	if warns > 0 {
		parts = append(parts, plural(warns, "warning"))
	}
	if fails > 0 {
		parts = append(parts, plural(fails, "failure"))
	}
	return strings.Join(parts, ", ")
}

func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%d %ss", n, word)
}
