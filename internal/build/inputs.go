package build

import (
	"bytes"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/moby/buildkit/frontend/dockerfile/parser"

	"github.com/devloop-dev/devloop/internal/paths"
)

// Inputs are the build-context paths a Dockerfile puts into its image
// directly (COPY and ADD sources, RUN --mount=type=bind sources), read with
// BuildKit's parser. A restart service's change outside them cannot change
// the image except through the preBuild.
type Inputs struct {
	// Sources are context-relative, slash-separated patterns (they may hold globs).
	Sources []string
	// All: some instruction reads the whole context (COPY . ., a source with
	// a variable, a Dockerfile that does not parse): every path is an input.
	All bool
}

// ReadInputs reads the inputs of the Dockerfile at dockerfile.
func ReadInputs(dockerfile string) Inputs {
	data, err := os.ReadFile(dockerfile)
	if err != nil {
		return Inputs{All: true}
	}
	return ParseInputs(data)
}

// ParseInputs returns a Dockerfile's inputs.
func ParseInputs(data []byte) Inputs {
	res, err := parser.Parse(bytes.NewReader(data))
	if err != nil {
		return Inputs{All: true}
	}
	var in Inputs
	add := func(src string) {
		if strings.Contains(src, "$") {
			in.All = true
			return
		}
		p := path.Clean("/" + src)[1:]
		if p == "" || p == "." {
			in.All = true
			return
		}
		in.Sources = append(in.Sources, p)
	}
	var visit func(n *parser.Node)
	visit = func(n *parser.Node) {
		kw := strings.ToUpper(n.Value)
		if kw == "ONBUILD" && n.Next != nil && len(n.Next.Children) > 0 {
			visit(n.Next.Children[0])
			return
		}
		fromOther := false
		for _, f := range n.Flags {
			k, v, _ := strings.Cut(strings.TrimPrefix(f, "--"), "=")
			switch k {
			case "from":
				fromOther = true
			case "mount":
				if bind, src := bindSource(v); bind {
					add(src)
				}
			}
		}
		if (kw != "COPY" && kw != "ADD") || fromOther {
			return
		}
		var args []string
		for a := n.Next; a != nil; a = a.Next {
			args = append(args, a.Value)
		}
		if len(args) < 2 {
			return
		}
		for _, src := range args[:len(args)-1] {
			if strings.HasPrefix(src, "<<") || strings.Contains(src, "://") || strings.HasPrefix(src, "git@") {
				continue
			}
			add(src)
		}
	}
	for _, n := range res.AST.Children {
		visit(n)
	}
	return in
}

// bindSource reads a RUN --mount value: whether it binds the build context
// (type=bind without from=) and its source (default: the whole context).
func bindSource(v string) (bool, string) {
	typ, src, from := "", ".", false
	for _, kv := range strings.Split(v, ",") {
		k, val, _ := strings.Cut(kv, "=")
		switch k {
		case "type":
			typ = val
		case "source", "src":
			src = val
		case "from":
			from = true
		}
	}
	return typ == "bind" && !from, src
}

// Has reports whether rel (a context-relative path) is an input: a source,
// under a source directory, matched by a source glob, or under a directory
// a glob matches.
func (in Inputs) Has(rel string) bool {
	if in.All {
		return true
	}
	rel = filepath.ToSlash(filepath.Clean(rel))
	for _, s := range in.Sources {
		if paths.Under(rel, s) {
			return true
		}
		if strings.ContainsAny(s, "*?[") {
			for p := rel; p != "." && p != "/" && p != ""; p = path.Dir(p) {
				if ok, _ := path.Match(s, p); ok {
					return true
				}
			}
		}
	}
	return false
}
