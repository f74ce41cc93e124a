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
	// heredocWord is a whole shell word that opens a heredoc, like BuildKit
	// reads them: "<<EOF", "<<-EOF", "<<'EOF'", `<<"EOF"` (an fd number may
	// come first). "<<" inside a word or inside quotes ($((1 << N)), "<<EOF")
	// is no heredoc.
	heredocWord = regexp.MustCompile(`^[0-9]*<<(-?)(?:"([A-Za-z_][A-Za-z0-9_.-]*)"|'([A-Za-z_][A-Za-z0-9_.-]*)'|([A-Za-z_][A-Za-z0-9_.-]*))$`)
)

// instruction is one Dockerfile instruction, continuation lines joined.
type instruction struct {
	keyword  string   // upper case ("COPY")
	args     string   // what follows the keyword, as written (spacing kept)
	text     string   // the instruction, whitespace collapsed
	line     int      // 1-based line where the instruction starts
	heredocs []string // the bodies of its heredocs
}

// heredocInstructions are the instructions BuildKit reads heredocs in
// (ONBUILD takes them for the instruction it wraps).
var heredocInstructions = map[string]bool{"RUN": true, "COPY": true, "ADD": true}

// parseDockerfile splits a Dockerfile into instructions. It follows the
// syntax init needs and no more: the escape parser directive, line
// continuations, comment lines inside continuations and heredocs (whose
// bodies are kept apart: they are not instructions).
func parseDockerfile(data []byte) []instruction {
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
	var out []instruction
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
		raw := strings.TrimSpace(b.String())
		keyword, args := cutSpace(raw)
		in := instruction{keyword: strings.ToUpper(keyword), args: args, text: strings.Join(strings.Fields(raw), " "), line: start}
		// Heredoc bodies follow the instruction, one after the other, each
		// up to its terminator line.
		hk, hargs := in.keyword, args
		if hk == "ONBUILD" {
			hk, hargs = cutSpace(args)
			hk = strings.ToUpper(hk)
		}
		if heredocInstructions[hk] {
			for _, word := range shellWords(hargs) {
				m := heredocWord.FindStringSubmatch(word)
				if m == nil {
					continue
				}
				name := m[2] + m[3] + m[4]
				body, next, ok := heredocBody(lines, i, name, m[1] == "-")
				if !ok {
					// No terminator: not a heredoc after all (BuildKit fails
					// on it), and the lines after it are still instructions.
					break
				}
				in.heredocs = append(in.heredocs, body)
				i = next
			}
		}
		out = append(out, in)
	}
	return out
}

// heredocBody returns the heredoc body starting at lines[i] up to the line
// name (leading tabs stripped with chomp, surrounding spaces tolerated) and
// the index of the line after that terminator; ok is false when there is none.
func heredocBody(lines []string, i int, name string, chomp bool) (body string, next int, ok bool) {
	for j := i; j < len(lines); j++ {
		l := lines[j]
		if chomp {
			l = strings.TrimLeft(l, "\t")
		}
		if strings.TrimSpace(l) == name {
			return strings.Join(lines[i:j], "\n"), j + 1, true
		}
	}
	return "", i, false
}

// shellWords splits s into shell words as written, quotes and backslashes
// kept, so that a word can be told apart from text inside quotes.
func shellWords(s string) []string {
	var words []string
	for i := 0; i < len(s); {
		if s[i] == ' ' || s[i] == '\t' {
			i++
			continue
		}
		start := i
		for i < len(s) && s[i] != ' ' && s[i] != '\t' {
			switch s[i] {
			case '\\':
				i += 2
			case '\'':
				if j := strings.IndexByte(s[i+1:], '\''); j >= 0 {
					i += j + 2
				} else {
					i = len(s)
				}
			case '"':
				i++
				for i < len(s) && s[i] != '"' {
					if s[i] == '\\' {
						i++
					}
					i++
				}
				i++
			default:
				i++
			}
		}
		words = append(words, s[start:min(i, len(s))])
	}
	return words
}

// cutSpace splits s at its first run of spaces or tabs.
func cutSpace(s string) (before, after string) {
	i := strings.IndexAny(s, " \t")
	if i < 0 {
		return s, ""
	}
	return s[:i], strings.TrimLeft(s[i:], " \t")
}

// dockerfileSources returns the build-context sources of every COPY and ADD
// in a Dockerfile, in order: flags (--chown, --chmod, --link, ...), the
// JSON-array form and several sources per instruction are understood. It
// leaves out --from= sources (another stage or image), URLs and git
// repositories (ADD), heredoc sources and sources with variables, whose value
// init cannot know.
func dockerfileSources(data []byte) []copySource {
	var out []copySource
	for _, in := range parseDockerfile(data) {
		out = append(out, instructionSources(in)...)
	}
	return out
}

// instructionSources returns the build-context sources of in if it is a
// COPY or ADD.
func instructionSources(in instruction) []copySource {
	if in.keyword != "COPY" && in.keyword != "ADD" {
		return nil
	}
	rest := strings.TrimSpace(in.args)
	// Flags come first, in either form: --flag=value or --flag (--link).
	for strings.HasPrefix(rest, "--") {
		flag, after := cutSpace(rest)
		if name, _, _ := strings.Cut(flag, "="); name == "--from" {
			return nil
		}
		rest = after
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
		out = append(out, copySource{path: p, dir: strings.HasSuffix(src, "/"), line: in.line, text: in.text})
	}
	return out
}

// goBuildInRun matches a go build or go install in a RUN command, in the
// shell form or the JSON form.
var goBuildInRun = regexp.MustCompile(`(?:^|[^A-Za-z0-9_.-])go(?:\s+|"\s*,\s*")(?:build|install)\b`)

// runsGoBuild reports whether a RUN instruction (or a heredoc it runs)
// compiles Go: the image is then built from source inside Docker.
func runsGoBuild(instrs []instruction) bool {
	for _, in := range instrs {
		kw, args := in.keyword, in.args
		if kw == "ONBUILD" {
			kw, args = cutSpace(args)
			kw = strings.ToUpper(kw)
		}
		if kw != "RUN" {
			continue
		}
		if goBuildInRun.MatchString(args) {
			return true
		}
		for _, h := range in.heredocs {
			if goBuildInRun.MatchString(h) {
				return true
			}
		}
	}
	return false
}

// isRemote reports whether an ADD source is a URL or a git repository.
func isRemote(src string) bool {
	return strings.Contains(src, "://") || strings.HasPrefix(src, "git@")
}
