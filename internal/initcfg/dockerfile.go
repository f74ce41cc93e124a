package initcfg

import (
	"bytes"
	"fmt"
	"path"
	"regexp"
	"strings"

	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/buildkit/frontend/dockerfile/shell"
)

// copySource is one path a Dockerfile's COPY or ADD reads from the build
// context (not from another stage, not from a URL).
type copySource struct {
	path string // relative to the build context, slash-separated and cleaned
	dir  bool   // spelled with a trailing slash
	line int    // 1-based line where the instruction starts
	text string // the instruction, whitespace collapsed
}

// instruction is one Dockerfile instruction as BuildKit's parser reads it.
type instruction struct {
	keyword  string   // upper case ("COPY")
	args     []string // its arguments (the JSON form's elements, or the shell form's words; RUN's shell form is one)
	flags    []string // "--from=build", "--mount=type=cache,target=/c"
	text     string   // the instruction, whitespace collapsed
	line     int      // 1-based line where the instruction starts
	heredocs []string // the bodies of its heredocs
	// onbuild is the instruction an ONBUILD wraps (nil otherwise).
	onbuild *instruction
}

// dockerfileAST is a parsed Dockerfile.
type dockerfileAST struct {
	instrs []instruction
	escape rune
}

// parseDockerfile reads a Dockerfile with BuildKit's own parser (parser
// directives, continuations, comments, the JSON and shell forms, heredocs),
// so init reads a Dockerfile exactly like the build will.
func parseDockerfile(data []byte) (*dockerfileAST, error) {
	res, err := parser.Parse(bytes.NewReader(data))
	if err != nil {
		return nil, err
	}
	out := &dockerfileAST{escape: res.EscapeToken}
	for _, n := range res.AST.Children {
		out.instrs = append(out.instrs, fromNode(n))
	}
	return out, nil
}

func fromNode(n *parser.Node) instruction {
	in := instruction{
		keyword: strings.ToUpper(n.Value),
		flags:   n.Flags,
		text:    strings.Join(strings.Fields(n.Original), " "),
		line:    n.StartLine,
	}
	for _, h := range n.Heredocs {
		in.heredocs = append(in.heredocs, h.Content)
	}
	if in.keyword == "ONBUILD" && n.Next != nil && len(n.Next.Children) > 0 {
		sub := fromNode(n.Next.Children[0])
		in.onbuild = &sub
		return in
	}
	for a := n.Next; a != nil; a = a.Next {
		in.args = append(in.args, a.Value)
	}
	return in
}

// flag returns the value of --name=value among flags, and whether it is there.
func flag(flags []string, name string) (string, bool) {
	for _, f := range flags {
		k, v, _ := strings.Cut(strings.TrimPrefix(f, "--"), "=")
		if k == name {
			return v, true
		}
	}
	return "", false
}

// dockerfileSources returns the build-context sources of every COPY and ADD
// in a Dockerfile, in order: flags (--chown, --chmod, --link, ...), the
// JSON-array form and several sources per instruction are understood. It
// leaves out --from= sources (another stage or image), URLs and git
// repositories (ADD), heredoc sources and sources with variables, whose value
// init cannot know. A Dockerfile BuildKit cannot parse has none.
func dockerfileSources(data []byte) []copySource {
	ast, err := parseDockerfile(data)
	if err != nil {
		return nil
	}
	var out []copySource
	for _, in := range ast.instrs {
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
	if _, ok := flag(in.flags, "from"); ok {
		return nil
	}
	if len(in.args) < 2 {
		return nil
	}
	var out []copySource
	for _, src := range in.args[:len(in.args)-1] {
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

// goBuildInRun matches a go build or go install in a RUN command.
var goBuildInRun = regexp.MustCompile(`(?:^|[^A-Za-z0-9_.-])go\s+(?:build|install)\b`)

// runsGoBuild reports whether a RUN instruction (or a heredoc it runs)
// compiles Go: the image is then built from source inside Docker.
func runsGoBuild(instrs []instruction) bool {
	for _, in := range instrs {
		if in.onbuild != nil {
			in = *in.onbuild
		}
		if in.keyword != "RUN" {
			continue
		}
		if goBuildInRun.MatchString(strings.Join(in.args, " ")) {
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

// BaseImage is an image a Dockerfile's build pulls from a registry: a FROM
// that names no earlier stage, or a COPY --from= / RUN --mount=from= that
// names an image.
type BaseImage struct {
	// Ref is the image as the build resolves it, variables expanded with the
	// ARG defaults and the given build args ("golang:1.26-alpine").
	Ref string
	// Line is the 1-based line of its first use.
	Line int
	// Unresolved is set when Ref still holds a variable init cannot know
	// (an ARG without a default): it is shown as written.
	Unresolved bool
}

// mapEnv is a shell.EnvGetter over a map.
type mapEnv map[string]string

func (m mapEnv) Get(k string) (string, bool) { v, ok := m[k]; return v, ok }
func (m mapEnv) Keys() []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	return keys
}

// BaseImages returns the images the build of a Dockerfile needs from a
// registry, in order of first use, each once; "scratch" and stage names are
// not images. buildArgs override the ARG defaults before the first FROM
// (nil: the defaults only). A Dockerfile BuildKit cannot parse is an error.
func BaseImages(data []byte, buildArgs map[string]string) ([]BaseImage, error) {
	ast, err := parseDockerfile(data)
	if err != nil {
		return nil, fmt.Errorf("parsing the Dockerfile: %w", err)
	}
	lex := shell.NewLex(ast.escape)
	env := mapEnv{}
	stages := map[string]bool{}
	seen := map[string]bool{}
	var out []BaseImage
	add := func(word string, line int) {
		res, err := lex.ProcessWordWithMatches(word, env)
		ref, unresolved := res.Result, err != nil || len(res.Unmatched) > 0
		if unresolved {
			ref = word
		}
		if ref == "" || strings.EqualFold(ref, "scratch") || stages[strings.ToLower(ref)] || seen[ref] {
			return
		}
		seen[ref] = true
		out = append(out, BaseImage{Ref: ref, Line: line, Unresolved: unresolved})
	}
	sawFrom := false
	for _, in := range ast.instrs {
		switch in.keyword {
		case "ARG":
			if sawFrom {
				continue // a stage's ARGs do not reach FROM lines
			}
			for _, a := range in.args {
				k, v, hasDefault := strings.Cut(a, "=")
				if bv, ok := buildArgs[k]; ok {
					env[k] = bv
				} else if hasDefault {
					if ev, _, err := lex.ProcessWord(v, env); err == nil {
						v = ev
					}
					env[k] = strings.Trim(v, `"'`)
				}
			}
		case "FROM":
			sawFrom = true
			if len(in.args) == 0 {
				continue
			}
			add(in.args[0], in.line)
			if len(in.args) == 3 && strings.EqualFold(in.args[1], "AS") {
				stages[strings.ToLower(in.args[2])] = true
			}
		case "COPY", "ADD":
			if from, ok := flag(in.flags, "from"); ok && !isStageIndex(from) {
				add(from, in.line)
			}
		case "RUN":
			for _, f := range in.flags {
				k, v, _ := strings.Cut(strings.TrimPrefix(f, "--"), "=")
				if k != "mount" {
					continue
				}
				for _, kv := range strings.Split(v, ",") {
					if mk, mv, _ := strings.Cut(kv, "="); mk == "from" && !isStageIndex(mv) {
						add(mv, in.line)
					}
				}
			}
		}
	}
	return out, nil
}

// isStageIndex reports whether a --from value is a stage number ("0").
func isStageIndex(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

// goBuildOutput matches the -o output of a go build in a RUN command.
var goBuildOutput = regexp.MustCompile(`\bgo\s+build\b[^;&|\n]*?\s-o(?:\s+|=)("[^"]+"|'[^']+'|\S+)`)

// builtNames returns the names of the programs a Dockerfile builds or
// runs, most telling first: go build -o outputs, what the final stages
// copy from other stages, then the ENTRYPOINT and CMD programs. They are
// matched against the last path element of the manifests' image
// repositories.
func builtNames(instrs []instruction) []string {
	var out []string
	seen := map[string]bool{}
	addName := func(p string) {
		p = strings.Trim(p, `"'`)
		if p == "" || strings.ContainsAny(p, "$*?[") || strings.HasSuffix(p, "/") {
			return
		}
		b := strings.ToLower(path.Base(p))
		if b == "." || b == "/" || seen[b] {
			return
		}
		seen[b] = true
		out = append(out, b)
	}
	var copies, hostCopies, runs []string
	for _, in := range instrs {
		switch in.keyword {
		case "RUN":
			for _, text := range append([]string{strings.Join(in.args, " ")}, in.heredocs...) {
				for _, m := range goBuildOutput.FindAllStringSubmatch(text, -1) {
					addName(m[1])
				}
			}
		case "COPY":
			if from, ok := flag(in.flags, "from"); ok && from != "" && len(in.args) >= 2 {
				copies = append(copies, in.args[:len(in.args)-1]...)
			} else {
				for _, cs := range instructionSources(in) {
					if !cs.dir && !strings.Contains(path.Base(cs.path), ".") {
						hostCopies = append(hostCopies, cs.path) // a program built on the host (bin/api)
					}
				}
			}
		case "ENTRYPOINT", "CMD":
			if len(in.args) > 0 {
				first, _, _ := strings.Cut(strings.TrimSpace(in.args[0]), " ")
				runs = append(runs, first)
			}
		}
	}
	for _, c := range copies {
		addName(c)
	}
	for _, c := range hostCopies {
		addName(c)
	}
	for _, r := range runs {
		addName(r)
	}
	return out
}
