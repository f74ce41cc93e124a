package initcfg

import (
	"bytes"
	"encoding/json"
	"go/build"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
)

// outputDirs are directory names that by convention hold build output. A
// COPY source under one of them is taken for host-built output when the
// .gitignore files cannot tell (there are none), so that a checked-in build/
// directory of scripts is not mistaken for output in a repository that says
// what it ignores.
var outputDirs = map[string]bool{"bin": true, "dist": true, "build": true, "out": true, "target": true}

// preBuildPlan is what init infers for a service whose Dockerfile copies
// files built on the host.
type preBuildPlan struct {
	// run is the inferred preBuild command; "" when nothing was inferred.
	run string
	// goos is set when run builds Go for Linux (GOOS=linux on each go command).
	goos bool
	// from are the COPY/ADD instructions run was inferred from, in file order.
	from []copySource
	// ignore are the patterns (relative to the build context) for the
	// outputs run writes, each output itself or its output directory (e.g.
	// "bin"): watching them would rebuild forever.
	ignore []string
	// unknown are the host-built-looking sources nothing was inferred for.
	unknown []string
	// noGoMod is set when run uses go build but no go.mod is in the context
	// or above it (go build needs one).
	noGoMod bool
}

// hostSource is one host-built-looking output the Dockerfile copies.
type hostSource struct {
	path string // relative to the context, slash-separated, without a trailing slash
	dir  bool   // a directory (spelled with a slash or one on disk)
	// binary is set when the path exists and is an executable binary
	// (an earlier build); go build may overwrite only such a file.
	binary bool
	exists bool
	glob   bool
	lines  []copySource
}

// inferPreBuild looks for COPY/ADD sources of df that are built on the host
// and infers the command that builds them. It returns nil when the
// Dockerfile copies nothing that looks host-built.
//
// A source looks host-built when it is missing from the directory, when a
// .gitignore ignores it, or when it is under bin/, dist/, build/, out/ or
// target/ and no .gitignore says otherwise. Its producer is, in order of
// preference: a Makefile target named exactly like it (the project's own
// recipe), `npm run build` for dist/ and build/ when package.json has a build
// script, or `go build` when the context is a Go program, a main package
// matches the output's name, the output is missing or an executable binary
// (never a file go build would clobber, like a gitignored secret) and the
// Dockerfile does not compile Go itself (a multi-stage build).
func inferPreBuild(root string, df dockerfile) *preBuildPlan {
	data, err := os.ReadFile(df.path)
	if err != nil {
		return nil
	}
	ast, err := parseDockerfile(data)
	if err != nil {
		return nil // the build will say what is wrong; there is nothing to infer from
	}
	instrs := ast.instrs
	ctx := df.dir
	top := gitTop(root)
	haveIgnores := false
	for d := ctx; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, ".gitignore")); err == nil {
			haveIgnores = true
		}
		if d == top || d == filepath.Dir(d) {
			break
		}
	}

	var srcs []*hostSource
	byPath := map[string]*hostSource{}
	for _, in := range instrs {
		for _, cs := range instructionSources(in) {
			if hs := byPath[cs.path]; hs != nil {
				hs.lines = append(hs.lines, cs)
				continue
			}
			// For a glob, judge the directory before its first wildcard.
			check, glob := cs.path, false
			if i := strings.IndexAny(cs.path, "*?["); i >= 0 {
				glob = true
				check = strings.TrimSuffix(path.Dir(cs.path[:i]+"x"), "/")
				if check == "." {
					continue // a top-level glob (*.jar): nothing to judge by
				}
			}
			abs := filepath.Join(ctx, filepath.FromSlash(check))
			fi, statErr := os.Stat(abs)
			exists := statErr == nil
			isDir := cs.dir || (exists && fi.IsDir()) || glob
			hostBuilt := !exists || gitignored(top, abs, isDir) || (outputDirs[first(cs.path)] && !haveIgnores)
			if !hostBuilt {
				continue
			}
			hs := &hostSource{path: cs.path, dir: cs.dir || (exists && fi.IsDir() && !glob), glob: glob, exists: exists, lines: []copySource{cs}}
			hs.binary = exists && !hs.dir && !glob && isExecutableBinary(abs, fi)
			byPath[cs.path] = hs
			srcs = append(srcs, hs)
		}
	}
	if len(srcs) == 0 {
		return nil
	}

	plan := &preBuildPlan{}
	targets := makeTargets(ctx)
	npm := npmBuild(ctx)
	var makeOut, npmOut []string
	var goCands []*hostSource
	goInDocker := runsGoBuild(instrs)
	producedBy := map[string]bool{}
	for _, hs := range srcs {
		switch {
		case !hs.glob && targets[hs.path]:
			makeOut = append(makeOut, hs.path)
			producedBy[hs.path] = true
		case !hs.glob && npm != "" && (first(hs.path) == "dist" || first(hs.path) == "build"):
			npmOut = append(npmOut, hs.path)
			producedBy[hs.path] = true
		case !hs.glob && !hs.dir && !strings.Contains(path.Base(hs.path), ".") && !outputDirs[hs.path] &&
			(!hs.exists || hs.binary) && !goInDocker:
			goCands = append(goCands, hs)
		}
	}
	var cmds []string
	// npm first: a Go program may embed what it builds.
	if len(npmOut) > 0 {
		cmds = append(cmds, npm)
	}
	if len(makeOut) > 0 {
		cmds = append(cmds, "make "+shJoin(makeOut))
	}
	if pkgs := goPackages(root, ctx, goCands); len(pkgs) > 0 {
		outs := make([]string, 0, len(pkgs))
		for o := range pkgs {
			outs = append(outs, o)
		}
		sort.Strings(outs)
		for _, o := range outs {
			// GOOS=linux on each go command, not in preBuild.env: the
			// image runs Linux whatever the host is, but other commands
			// (a Makefile's go run) must build for the host. GOARCH is left
			// to the host, which is the Docker engine's architecture on
			// Docker Desktop and on Linux. CGO_ENABLED=0: a static binary
			// runs in any base image, scratch and distroless included.
			cmds = append(cmds, "GOOS=linux CGO_ENABLED=0 go build -trimpath -o "+shQuote(o)+" "+shQuote(pkgs[o]))
			producedBy[o] = true
		}
		plan.goos = true
		plan.noGoMod = !goModAbove(ctx)
	}
	plan.run = strings.Join(cmds, " && ")

	seenLine := map[int]bool{}
	seenIgnore := map[string]bool{}
	for _, hs := range srcs {
		if !producedBy[hs.path] {
			p := hs.path
			if hs.dir {
				p += "/"
			}
			plan.unknown = append(plan.unknown, p)
			continue
		}
		for _, cs := range hs.lines {
			if !seenLine[cs.line] {
				seenLine[cs.line] = true
				plan.from = append(plan.from, cs)
			}
		}
		// The output itself, or its output directory: never a source
		// directory it sits in (cmd/api/api must not stop cmd/ being watched).
		ig := hs.path
		if f := first(hs.path); outputDirs[f] {
			ig = f
		}
		if pat, ok := ignorePatternFor(ig); ok && !seenIgnore[pat] {
			seenIgnore[pat] = true
			plan.ignore = append(plan.ignore, pat)
		}
	}
	sort.Slice(plan.from, func(i, j int) bool { return plan.from[i].line < plan.from[j].line })
	return plan
}

// ignorePatternFor returns the service ignore pattern (.dockerignore syntax,
// relative to the build context) that matches exactly the path p (and what
// is below it); ok is false when none can (leading or trailing spaces, which
// ignore files trim).
func ignorePatternFor(p string) (string, bool) {
	if p == "" || strings.TrimSpace(p) != p {
		return "", false
	}
	var b strings.Builder
	for i := 0; i < len(p); i++ {
		c := p[i]
		if strings.IndexByte(`*?[]\`, c) >= 0 || (i == 0 && (c == '!' || c == '#')) {
			b.WriteByte('\\')
		}
		b.WriteByte(c)
	}
	return b.String(), true
}

// isExecutableBinary reports whether the file p (fi its FileInfo) is a
// compiled program: ELF, Mach-O or PE, or an executable file that is not
// text.
func isExecutableBinary(p string, fi fs.FileInfo) bool {
	if !fi.Mode().IsRegular() {
		return false
	}
	f, err := os.Open(p)
	if err != nil {
		return false
	}
	defer f.Close()
	buf := make([]byte, 8000)
	n, _ := io.ReadFull(f, buf)
	buf = buf[:n]
	for _, magic := range []string{
		"\x7fELF",
		"\xfe\xed\xfa\xce", "\xfe\xed\xfa\xcf", "\xce\xfa\xed\xfe", "\xcf\xfa\xed\xfe", // Mach-O
		"\xca\xfe\xba\xbe", // Mach-O universal
		"MZ",               // PE
	} {
		if bytes.HasPrefix(buf, []byte(magic)) {
			return true
		}
	}
	// Like git, text is what has no NUL byte near the start.
	return fi.Mode()&0o111 != 0 && n > 0 && bytes.IndexByte(buf, 0) >= 0
}

// first returns the first element of a slash-separated path.
func first(p string) string {
	f, _, _ := strings.Cut(p, "/")
	return f
}

// gitTop returns the root of the git repository holding dir (the nearest
// directory with a .git), or dir itself outside one: .gitignore files above
// the project directory still apply to it.
func gitTop(dir string) string {
	if d := ancestorWith(dir, ".git"); d != "" {
		return d
	}
	return dir
}

// ancestorWith returns the nearest of dir and its ancestors that holds name,
// or "" when none does.
func ancestorWith(dir, name string) string {
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, name)); err == nil {
			return d
		}
		if d == filepath.Dir(d) {
			return ""
		}
	}
}

// goPackages maps the outputs of cands that a Go main package builds to its
// package path relative to ctx ("./toolbox", "./cmd/api" or "."). ctx must be
// a Go program: a module (go.mod in ctx or above, up to root) or a main
// package itself.
//
// An output bin/X is built from a main package in the directory X, cmd/X, or
// the only directory named X further down. The context's own package (".")
// goes to at most one output, under an output directory (bin/, dist/, ...) or
// named like the context directory or the module: the only such one, or the
// first one so named. Giving it to several would build the same program
// under several names, which is never what the Dockerfile means, and giving
// it to any other file (credentials, VERSION) would overwrite that.
func goPackages(root, ctx string, cands []*hostSource) map[string]string {
	if len(cands) == 0 {
		return nil
	}
	module := goModule(root, ctx)
	ctxMain := isMainPackage(ctx)
	if module == "" && !ctxMain {
		return nil
	}
	out := map[string]string{}
	var rest []string
	for _, hs := range cands {
		if pkg := findMainPackage(ctx, path.Base(hs.path)); pkg != "" {
			out[hs.path] = pkg
		} else {
			rest = append(rest, hs.path)
		}
	}
	if ctxMain && len(rest) > 0 {
		var eligible, named []string
		for _, o := range rest {
			b := path.Base(o)
			isNamed := b == filepath.Base(ctx) || (module != "" && b == path.Base(module))
			if isNamed {
				named = append(named, o)
			}
			if isNamed || (strings.Contains(o, "/") && outputDirs[first(o)]) {
				eligible = append(eligible, o)
			}
		}
		pick := ""
		switch {
		case len(eligible) == 1:
			pick = eligible[0]
		case len(named) > 0:
			pick = named[0]
		}
		if pick != "" {
			out[pick] = "."
		}
	}
	return out
}

// goModule returns the module path of the go.mod in ctx or its nearest
// ancestor up to root; "" when there is none.
func goModule(root, ctx string) string {
	for d := ctx; ; d = filepath.Dir(d) {
		if data, err := os.ReadFile(filepath.Join(d, "go.mod")); err == nil {
			if m := moduleLine.FindSubmatch(data); m != nil {
				return strings.Trim(string(m[1]), `"`)
			}
			return "module" // a go.mod without a module line is still a module
		}
		if d == root || d == filepath.Dir(d) || !strings.HasPrefix(d, root) {
			return ""
		}
	}
}

var moduleLine = regexp.MustCompile(`(?m)^\s*module\s+(\S+)`)

// goModAbove reports whether go build run in ctx finds a go.mod (in ctx or
// any ancestor, like the go command looks).
func goModAbove(ctx string) bool {
	return ancestorWith(ctx, "go.mod") != ""
}

// isMainPackage reports whether dir holds a main package when built for
// Linux (build constraints apply: a `//go:build ignore` generator is no main
// package; test files do not count).
func isMainPackage(dir string) bool {
	c := build.Default
	c.GOOS, c.CgoEnabled = "linux", false
	p, err := c.ImportDir(dir, 0)
	// Test files alone (package main_test) make no program.
	return err == nil && p.Name == "main" && len(p.GoFiles)+len(p.CgoFiles) > 0
}

// findMainPackage returns "./name" or "./cmd/name" when that directory of ctx
// is a main package, else "./<dir>" for the only main package directory
// called name within a few levels; "" when there is none or several.
func findMainPackage(ctx, name string) string {
	for _, rel := range []string{name, "cmd/" + name} {
		if isMainPackage(filepath.Join(ctx, filepath.FromSlash(rel))) {
			return "./" + rel
		}
	}
	var found []string
	_ = filepath.WalkDir(ctx, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return nil
		}
		r := rel(ctx, p)
		base := d.Name()
		if p != ctx && (strings.HasPrefix(base, ".") || strings.HasPrefix(base, "_") || base == "vendor" ||
			base == "testdata" || base == "node_modules" || outputDirs[base]) {
			return filepath.SkipDir
		}
		if strings.Count(r, "/") >= 4 {
			return filepath.SkipDir
		}
		if base == name && p != ctx && isMainPackage(p) {
			found = append(found, "./"+r)
		}
		return nil
	})
	if len(found) == 1 {
		return found[0]
	}
	return ""
}

// makeTargets returns the explicit targets of the Makefile in dir (none
// without one). Only rule lines count ("bin/a bin/b: deps"), not variable
// assignments (":=", "::=") nor pattern rules.
func makeTargets(dir string) map[string]bool {
	out := map[string]bool{}
	for _, name := range []string{"GNUmakefile", "makefile", "Makefile"} {
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			continue
		}
		for _, l := range strings.Split(string(data), "\n") {
			if l == "" || l[0] == ' ' || l[0] == '\t' || l[0] == '#' {
				continue // recipes, comments
			}
			before, after, ok := strings.Cut(l, ":")
			if !ok || strings.ContainsAny(before, "=#") || strings.HasPrefix(after, "=") ||
				strings.HasPrefix(after, ":=") || strings.HasPrefix(after, "::=") {
				continue // not a rule, or an assignment (A = b:c, A := b, A ::= b)
			}
			for _, t := range strings.Fields(before) {
				if !strings.ContainsAny(t, "%$") {
					out[path.Clean(t)] = true
				}
			}
		}
		break // make reads the first of these names it finds
	}
	return out
}

// npmBuild returns the command that runs package.json's build script in
// dir with the project's package manager (by lock file); "" without one.
func npmBuild(dir string) string {
	data, err := os.ReadFile(filepath.Join(dir, "package.json"))
	if err != nil {
		return ""
	}
	var pkg struct {
		Scripts map[string]string `json:"scripts"`
	}
	if json.Unmarshal(data, &pkg) != nil || pkg.Scripts["build"] == "" {
		return ""
	}
	for _, lock := range []struct{ file, cmd string }{
		{"pnpm-lock.yaml", "pnpm run build"},
		{"yarn.lock", "yarn run build"},
		{"bun.lockb", "bun run build"},
		{"bun.lock", "bun run build"},
	} {
		if _, err := os.Stat(filepath.Join(dir, lock.file)); err == nil {
			return lock.cmd
		}
	}
	return "npm run build"
}

var shellSafe = regexp.MustCompile(`^[A-Za-z0-9._/+@%=:,-]+$`)

// shQuote quotes s for sh when it needs it.
func shQuote(s string) string {
	if shellSafe.MatchString(s) {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

func shJoin(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		q[i] = shQuote(a)
	}
	return strings.Join(q, " ")
}
