package initcfg

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzDockerfile feeds BuildKit's parser and everything init reads from its
// result: nothing panics, sources are clean paths inside the context, base
// images are never stage names or scratch.
func FuzzDockerfile(f *testing.F) {
	for _, seed := range []string{
		"FROM scratch\nCOPY bin/app /app\n",
		"# escape=`\nFROM scratch\nCOPY bin\\app `\n  C:\\app\n",
		"ARG V=1\nFROM golang:${V}-alpine AS b\nRUN go build -o /out/x .\nFROM b\nCOPY --from=b /out/x /x\nENTRYPOINT [\"/x\"]\n",
		"FROM alpine\nRUN <<EOF\ngo build -o /a .\nEOF\nCOPY <<X /etc/x\nhi\nX\n",
		"FROM alpine\nONBUILD RUN <<EOF\nCOPY bin/no /\nEOF\n",
		"FROM a\nRUN --mount=type=cache,from=img:1,target=/c true\nCOPY --from=0 /x /y\nADD https://x/y /z\n",
		"FROM ${X:-y}\nCOPY [\"a b\", \"c\"]\n",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, df string) {
		ast, err := parseDockerfile([]byte(df))
		if err != nil {
			if dockerfileSources([]byte(df)) != nil {
				t.Fatal("sources from a Dockerfile BuildKit rejects")
			}
			if _, err := BaseImages([]byte(df), nil); err == nil {
				t.Fatal("BaseImages accepted what the parser rejects")
			}
			return
		}
		_ = runsGoBuild(ast.instrs)
		for _, n := range builtNames(ast.instrs) {
			if n == "" || strings.Contains(n, "/") {
				t.Fatalf("built name %q", n)
			}
		}
		for _, s := range dockerfileSources([]byte(df)) {
			if s.path == "" || s.path == "." || strings.HasPrefix(s.path, "/") || strings.HasPrefix(s.path, "../") || s.path == ".." || strings.Contains(s.path, "$") {
				t.Fatalf("source %q is not a clean path in the context", s.path)
			}
			if s.line < 1 {
				t.Fatalf("source %q at line %d", s.path, s.line)
			}
		}
		bases, err := BaseImages([]byte(df), map[string]string{"V": "2"})
		if err != nil {
			t.Fatal(err)
		}
		seen := map[string]bool{}
		for _, b := range bases {
			if b.Ref == "" || strings.EqualFold(b.Ref, "scratch") || seen[b.Ref] {
				t.Fatalf("base image %+v (seen: %v)", b, seen)
			}
			seen[b.Ref] = true
		}
	})
}

// FuzzGitignore: any pattern file parses, and matching never panics; a
// plain name pattern ignores a file of that name.
func FuzzGitignore(f *testing.F) {
	for _, seed := range []string{"bin/\n/server\n*.log\n!keep.log\n", "docs/**/gen\nfoo**bar\n", "gen/[[:digit:]]*\n[]x]\n[!a-\n", "\\#x\n\\!y\na\\ \n"} {
		f.Add(seed, "a/b/c.log", false)
	}
	f.Fuzz(func(t *testing.T, patterns, p string, isDir bool) {
		pats := parseGitignore([]byte(patterns))
		parts := strings.Split(strings.Trim(p, "/"), "/")
		for _, pat := range pats {
			_ = pat.match(parts, isDir)
		}
		name := parts[len(parts)-1]
		if name == "" || !utf8.ValidString(name) || strings.ContainsAny(name, "*?[]\\!# \t\r\n") {
			return
		}
		lit := parseGitignore([]byte(name + "\n"))
		if len(lit) != 1 || !lit[0].match([]string{name}, false) {
			t.Fatalf("pattern %q does not match the file %q", name, name)
		}
	})
}

// FuzzManifestScan writes fuzzed YAML as a manifest and as a kustomization
// next to a Dockerfile and runs Write: it may refuse, but it never panics,
// and never produces a file internal/config rejects.
func FuzzManifestScan(f *testing.F) {
	f.Add(deploy("app", "ghcr.io/x/app:1", "80"), "resources: [../base]\n")
	f.Add("apiVersion: v1\nkind: Service\nmetadata: {name: app}\nspec: {selector: {app: app}, ports: [{port: 80}]}\n", "resources: [../../base, https://x/y]\nnamespace: dev\n")
	f.Add("apiVersion: v1\nkind: {{ x }}\n", "bases: [../base]\ncomponents: [../nope]\n")
	f.Fuzz(func(t *testing.T, manifest, kustomization string) {
		dir := filepath.Join(t.TempDir(), "proj")
		writeFiles(t, dir, map[string]string{
			"app/Dockerfile":                      "FROM scratch\nCOPY bin/app /app\n",
			"k8s/base/kustomization.yaml":         "resources: [m.yaml]\n",
			"k8s/base/m.yaml":                     manifest,
			"k8s/overlays/dev/kustomization.yaml": kustomization,
			"deploy/m.yaml":                       manifest,
		})
		_, _, err := Write(dir, Options{PortFree: allFree, Images: &fakeImages{}})
		if err != nil && strings.Contains(err.Error(), "does not validate") {
			t.Fatal(err)
		}
		if err != nil && !errors.Is(err, ErrNothingFound) {
			if _, statErr := os.Stat(filepath.Join(dir, FileName)); statErr == nil {
				t.Fatalf("wrote %s although Write failed: %v", FileName, err)
			}
		}
	})
}
