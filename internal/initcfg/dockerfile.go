package initcfg

import (
	"encoding/json"
	"path"
	"regexp"
	"strings"
)

// copySource is one path a Dockerfile's COPY or ADD reads from the build
// context (not from another stage, not from a URL).
type copySource struct {
	path string // relative to the build context, slash-separated and cleaned
	dir  bool   // spelled with a trailing slash
	line int    // 1-based line where the instruction starts
	text string // the instruction, whitespace collapsed
}

var (
	parserDirective = regexp.MustCompile(`^#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(\S+)\s*$`)
	// heredocMarker finds "<<EOF", "<<-EOF", "<<'EOF'" and `<<"EOF"` in an instruction.
	heredocMarker = regexp.MustCompile(`<<-?\s*["']?([A-Za-z_][A-Za-z0-9_]*)["']?`)
)

// dockerfileSources returns the build-context sources of every COPY and ADD
// in a Dockerfile, in order. It follows the Dockerfile syntax init needs and
// no more: the escape parser directive, line continuations, comment lines
// inside continuations, heredocs (skipped, their bodies are not
// instructions), flags (--chown, --chmod, --link, ...), the JSON-array form
// and several sources per instruction. It leaves out --from= sources (another
// stage or image), URLs and git repositories (ADD), heredoc sources and
// sources with variables, whose value init cannot know.
func dockerfileSources(data []byte) []copySource {
	lines := strings.Split(strings.ReplaceAll(string(data), "\r\n", "\n"), "\n")
	escape := byte('\\')
	i := 0
	// Parser directives come first, before any other line.
	for ; i < len(lines); i++ {
		m := parserDirective.FindStringSubmatch(strings.TrimSpace(lines[i]))
		if m == nil {
			break
		}
		if strings.EqualFold(m[1], "escape") && (m[2] == "`" || m[2] == `\`) {
			escape = m[2][0]
		}
	}
	var out []copySource
	for i < len(lines) {
		trimmed := strings.TrimSpace(lines[i])
		if trimmed == "" || strings.HasPrefix(trimmed, "#") {
			i++
			continue
		}
		start := i + 1
		// Join continuation lines; comment and empty lines inside are dropped.
		var b strings.Builder
		for ; i < len(lines); i++ {
			l := strings.TrimRight(lines[i], " \t")
			if i+1 != start {
				if t := strings.TrimSpace(l); t == "" || strings.HasPrefix(t, "#") {
					continue
				}
			}
			if n := len(l); n > 0 && l[n-1] == escape {
				b.WriteString(l[:n-1])
				b.WriteByte(' ')
				continue
			}
			b.WriteString(l)
			i++
			break
		}
		instr := strings.Join(strings.Fields(b.String()), " ")
		// Skip heredoc bodies (up to each terminator, in order).
		for _, m := range heredocMarker.FindAllStringSubmatch(instr, -1) {
			for i < len(lines) && strings.TrimSpace(lines[i]) != m[1] {
				i++
			}
			if i < len(lines) {
				i++
			}
		}
		out = append(out, instructionSources(instr, start)...)
	}
	return out
}

// instructionSources returns the build-context sources of one joined
// instruction if it is a COPY or ADD.
func instructionSources(instr string, line int) []copySource {
	keyword, rest, _ := strings.Cut(instr, " ")
	keyword = strings.ToUpper(keyword)
	if keyword != "COPY" && keyword != "ADD" {
		return nil
	}
	rest = strings.TrimSpace(rest)
	// Flags come first, in either form: --flag=value or --flag (--link).
	for strings.HasPrefix(rest, "--") {
		flag, after, _ := strings.Cut(rest, " ")
		if name, _, _ := strings.Cut(flag, "="); name == "--from" {
			return nil
		}
		rest = strings.TrimSpace(after)
	}
	var args []string
	if strings.HasPrefix(rest, "[") {
		if err := json.Unmarshal([]byte(rest), &args); err != nil {
			args = nil // not valid JSON: Docker reads it as the shell form
		}
	}
	if args == nil {
		args = strings.Fields(rest)
	}
	if len(args) < 2 {
		return nil
	}
	var out []copySource
	for _, src := range args[:len(args)-1] {
		if src == "" || strings.HasPrefix(src, "<<") || strings.Contains(src, "$") || isRemote(src) {
			continue
		}
		// Sources are relative to the context; a leading slash means its root.
		p := path.Clean("/" + src)[1:]
		if p == "" || p == "." {
			continue // the whole context
		}
		out = append(out, copySource{path: p, dir: strings.HasSuffix(src, "/"), line: line, text: instr})
	}
	return out
}

// isRemote reports whether an ADD source is a URL or a git repository.
func isRemote(src string) bool {
	return strings.Contains(src, "://") || strings.HasPrefix(src, "git@")
}
