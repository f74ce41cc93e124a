package initcfg

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	dsync "github.com/devloop-dev/devloop/internal/watch"
)

const (
	goMod    = "module example.com/app\n\ngo 1.26\n"
	mainGo   = "package main\n\nfunc main() {}\n"
	goBuild  = "GOOS=linux CGO_ENABLED=0 go build -trimpath -o "
	elf      = "\x7fELF\x02\x01\x01\x00old build"
	secret   = "[default]\naws_secret_access_key = hunter2\n"
	goosNote = "# GOOS=linux: the image runs Linux whatever the host is."
	hintLine = "#   run: <the command that builds it>"
)

// TestInferPreBuild runs Write on small projects and loads the result back:
// the inferred preBuild must be what devloop up will run.
func TestInferPreBuild(t *testing.T) {
	for _, tc := range []struct {
		name  string
		files map[string]string
		// exec are files made executable (mode 0755).
		exec []string
		// want is preBuild.run ("" for no preBuild); goos whether the
		// GOOS=linux note is there (preBuild.env is always empty: GOOS=linux
		// goes on each go command).
		want   string
		goos   bool
		ignore []string
		// ignored and watched are paths (relative to the context) the
		// service's ignore patterns must and must not match, checked with
		// the matcher devloop up uses.
		ignored, watched []string
		// in and notIn are checked against the file; lines against the summary.
		in, notIn []string
		lines     []string
	}{
		{
			name: "go root package",
			files: map[string]string{
				"go.mod": goMod, "main.go": mainGo, "util.go": "package main\n",
				"Dockerfile": "FROM scratch\nCOPY bin/app /app\nENTRYPOINT [\"/app\"]\n",
			},
			want: goBuild + "bin/app .", goos: true, ignore: []string{"bin"},
			in:    []string{"#   2: COPY bin/app /app", goosNote},
			notIn: []string{hintLine, "No go.mod"},
			lines: []string{"  pre-build proj (inferred from Dockerfile line 2, check it): " + goBuild + "bin/app ."},
		},
		{
			name: "go subpackages X and cmd/X, duplicates once",
			files: map[string]string{
				"go.mod": goMod, "lib.go": "package app\n",
				"api/main.go": mainGo, "cmd/worker/main.go": mainGo, "cmd/worker/gen.go": "//go:build ignore\n\npackage gen\n",
				"Dockerfile": "FROM scratch\nCOPY bin/worker /usr/bin/worker\nCOPY bin/api /api\nCOPY bin/worker /usr/bin/w2\n",
			},
			want: goBuild + "bin/api ./api && " + goBuild + "bin/worker ./cmd/worker", goos: true, ignore: []string{"bin"},
			in: []string{"#   2: COPY bin/worker /usr/bin/worker", "#   3: COPY bin/api /api", "#   4: COPY bin/worker /usr/bin/w2"},
		},
		{
			name: "go main package found further down",
			files: map[string]string{
				"go.mod": goMod, "internal/tools/migrate/main.go": mainGo,
				"Dockerfile": "FROM scratch\nCOPY out/migrate /migrate\n",
			},
			want: goBuild + "out/migrate ./internal/tools/migrate", goos: true, ignore: []string{"out"},
		},
		{
			name: "chown flags and the JSON-array form",
			files: map[string]string{
				"go.mod": goMod, "main.go": mainGo,
				"Dockerfile": "FROM scratch\nCOPY --chown=65532:65532 --chmod=755 [\"bin/app\", \"/app\"]\n",
			},
			want: goBuild + "bin/app .", goos: true, ignore: []string{"bin"},
			in: []string{`#   2: COPY --chown=65532:65532 --chmod=755 ["bin/app", "/app"]`},
		},
		{
			name: "stage copies skipped",
			files: map[string]string{
				"go.mod": goMod, "main.go": mainGo,
				"Dockerfile": "FROM golang:1.26 AS build\nWORKDIR /src\nCOPY . .\nRUN go build -o bin/app .\n" +
					"FROM scratch\nCOPY --from=build /src/bin/app /app\nCOPY --from=build bin/app /app2\n",
			},
			notIn: []string{"preBuild", "ignore:"},
		},
		{
			name: "makefile target preferred",
			files: map[string]string{
				"go.mod": goMod, "main.go": mainGo,
				"Makefile":   "GO := go\nVERSION ::= 1\nbin/server: main.go\n\t$(GO) build -o $@ .\n\n.PHONY: all\nall: bin/server\n",
				"Dockerfile": "FROM scratch\nCOPY ./bin/server /server\n",
			},
			want: "make bin/server", ignore: []string{"bin"},
		},
		{
			name: "makefile for one output, go for another",
			files: map[string]string{
				"go.mod": goMod, "main.go": mainGo, "tool/main.go": mainGo,
				"Makefile":   "bin/assets.tar bin/other: x\n\ttar cf $@ x\n",
				"Dockerfile": "FROM scratch\nCOPY bin/assets.tar bin/tool /\n",
			},
			want: "make bin/assets.tar && " + goBuild + "bin/tool ./tool", goos: true, ignore: []string{"bin"},
			lines: []string{"  pre-build proj (inferred from Dockerfile line 2, check it): make bin/assets.tar && " + goBuild + "bin/tool ./tool"},
		},
		{
			name: "npm build for dist",
			files: map[string]string{
				"package.json": `{"scripts": {"build": "vite build"}}`, "yarn.lock": "",
				"Dockerfile": "FROM nginx\nCOPY dist /usr/share/nginx/html\n",
			},
			want: "yarn run build", ignore: []string{"dist"},
			lines: []string{"  pre-build proj (inferred from Dockerfile line 2, check it): yarn run build"},
		},
		{
			name: "gitignored root binary named like the module",
			files: map[string]string{
				"go.mod": goMod, "main.go": mainGo, ".gitignore": "/app\n", "app": elf,
				"Dockerfile": "FROM scratch\nCOPY app /app\n",
			},
			want: goBuild + "app .", goos: true, ignore: []string{"app"},
			ignored: []string{"app"}, watched: []string{"main.go"},
		},
		{
			name: "gitignored root binary of another name is not the root package's",
			files: map[string]string{
				"go.mod": goMod, "main.go": mainGo, ".gitignore": "/server\n", "server": elf,
				"Dockerfile": "FROM scratch\nCOPY server /server\n",
			},
			in: []string{"# The Dockerfile copies server, which looks built on the host", hintLine},
		},
		{
			name: "gitignored secret is never a go build output",
			files: map[string]string{
				"go.mod": goMod, "main.go": mainGo, ".gitignore": "credentials\n", "credentials": secret,
				"Dockerfile": "FROM scratch\nCOPY credentials /root/.aws/credentials\n",
			},
			in: []string{"# The Dockerfile copies credentials"}, notIn: []string{"-o credentials", "ignore:"},
		},
		{
			name: "gitignored secret named like the module is never a go build output",
			files: map[string]string{
				"go.mod": goMod, "main.go": mainGo, ".gitignore": "/app\n", "app": secret,
				"Dockerfile": "FROM scratch\nCOPY app /etc/app\n",
			},
			notIn: []string{"-o app", "ignore:"},
		},
		{
			name: "executable script is never a go build output",
			files: map[string]string{
				"go.mod": goMod, "main.go": mainGo, ".gitignore": "/app\n", "app": "#!/bin/sh\nexec /real-app\n",
				"Dockerfile": "FROM scratch\nCOPY app /app\n",
			},
			exec:  []string{"app"},
			notIn: []string{"-o app", "ignore:"},
		},
		{
			name: "executable non-text file is an earlier build",
			files: map[string]string{
				"go.mod": goMod, "main.go": mainGo, ".gitignore": "/app\n", "app": "\x00\x01old build",
				"Dockerfile": "FROM scratch\nCOPY app /app\n",
			},
			exec: []string{"app"},
			want: goBuild + "app .", goos: true, ignore: []string{"app"},
		},
		{
			name: "multi-stage go build: the secret copied too is left alone",
			files: map[string]string{
				"go.mod": goMod, "main.go": mainGo, ".gitignore": "credentials\n", "credentials": secret,
				"Dockerfile": "FROM golang:1.26 AS build\nWORKDIR /app\nCOPY . .\nRUN CGO_ENABLED=0 go build -o /app/server .\n" +
					"FROM alpine\nCOPY --from=build /app /app\nCOPY credentials /root/.aws/credentials\n",
			},
			notIn: []string{"-o credentials", "ignore:", "\n        run: "},
		},
		{
			name: "multi-stage go build: no go inference at all",
			files: map[string]string{
				"go.mod": goMod, "main.go": mainGo,
				"Dockerfile": "FROM golang:1.26 AS build\nRUN <<EOF\nset -e\ngo build -o /out/app .\nEOF\nFROM scratch\nCOPY bin/app /app\n",
			},
			in: []string{"# The Dockerfile copies bin/app", hintLine},
		},
		{
			name: "allow-list gitignore re-includes a tracked file",
			files: map[string]string{
				"go.mod": goMod, "main.go": mainGo, ".gitignore": "*\n!*/\n!VERSION\n!*.go\n!go.mod\n", "VERSION": "1.2.3\n",
				"Dockerfile": "FROM scratch\nCOPY VERSION /VERSION\n",
			},
			notIn: []string{"-o VERSION", "preBuild", "ignore:"},
		},
		{
			name: "allow-list gitignore still ignores build output",
			files: map[string]string{
				"go.mod": goMod, "main.go": mainGo, ".gitignore": "*\n!*/\n!VERSION\n", "VERSION": "1.2.3\n", "bin/app": elf,
				"Dockerfile": "FROM scratch\nCOPY VERSION /VERSION\nCOPY bin/app /app\n",
			},
			want: goBuild + "bin/app .", goos: true, ignore: []string{"bin"},
			notIn: []string{"-o VERSION", "#   2:"},
		},
		{
			name: "existing text file under bin is not overwritten",
			files: map[string]string{
				"go.mod": goMod, "main.go": mainGo, "bin/app": "not a program\n",
				"Dockerfile": "FROM scratch\nCOPY bin/app /app\n",
			},
			in: []string{"# The Dockerfile copies bin/app", hintLine},
		},
		{
			name: "only test files are no main package",
			files: map[string]string{
				"go.mod": goMod, "lib.go": "package app\n", "app/app_test.go": "package main_test\n", "cmd/tool/main_test.go": "package main\n",
				"Dockerfile": "FROM scratch\nCOPY bin/app bin/tool /\n",
			},
			in: []string{"# The Dockerfile copies bin/app, bin/tool"},
		},
		{
			name: "output in a source tree: ignore the output, not the tree",
			files: map[string]string{
				"go.mod": goMod, "lib.go": "package app\n", "cmd/api/main.go": mainGo, "cmd/worker/main.go": mainGo,
				"Dockerfile": "FROM scratch\nCOPY cmd/api/api /api\n",
			},
			want: goBuild + "cmd/api/api ./cmd/api", goos: true, ignore: []string{"cmd/api/api"},
			ignored: []string{"cmd/api/api"}, watched: []string{"cmd/api/main.go", "cmd/worker/main.go", "cmd", "cmd/api"},
		},
		{
			name: "makefile output in a source tree",
			files: map[string]string{
				"Makefile":       "web/static/app.js: web/src/app.ts\n\ttsc -p web\n",
				"web/src/app.ts": "", "web/static/index.html": "",
				"Dockerfile": "FROM nginx\nCOPY web/static/app.js web/static/index.html /usr/share/nginx/html/\n",
			},
			want: "make web/static/app.js", ignore: []string{"web/static/app.js"},
			ignored: []string{"web/static/app.js"}, watched: []string{"web/src/app.ts", "web/static/index.html"},
		},
		{
			name: "a long instruction is cut between characters",
			files: map[string]string{
				"go.mod": goMod, "main.go": mainGo,
				"Dockerfile": "FROM scratch\nCOPY bin/app /" + strings.Repeat("é", 100) + "\n",
			},
			want: goBuild + "bin/app .", goos: true, ignore: []string{"bin"},
			in: []string{"#   2: COPY bin/app /" + strings.Repeat("é", 83) + "..."},
		},
		{
			name: "invalid UTF-8 in an instruction",
			files: map[string]string{
				"go.mod": goMod, "main.go": mainGo,
				"Dockerfile": "FROM scratch\nCOPY bin/app /\xff\xfe\n",
			},
			want: goBuild + "bin/app .", goos: true, ignore: []string{"bin"},
			in: []string{"#   2: COPY bin/app /??\n"},
		},
		{
			name: "checked-in build directory is not output",
			files: map[string]string{
				"go.mod": goMod, "main.go": mainGo, ".gitignore": "*.log\n", "build/entry": "#!/bin/sh\n",
				"Dockerfile": "FROM alpine\nCOPY build/entry /entry\n",
			},
			notIn: []string{"preBuild", "ignore:"},
		},
		{
			name: "nothing inferable keeps the comment",
			files: map[string]string{
				"requirements.txt": "flask\n",
				"Dockerfile":       "FROM python:3\nCOPY requirements.txt /\nCOPY bin/tool /usr/bin/tool\n",
			},
			in:    []string{"# The Dockerfile copies bin/tool, which looks built on the host", hintLine},
			notIn: []string{"ignore:"},
			lines: []string{"  pre-build proj: no command inferred for bin/tool, which Dockerfile copies from the host: add it to preBuild in devloop.yaml"},
		},
		{
			name: "a library is no Go program",
			files: map[string]string{
				"go.mod": goMod, "lib.go": "package app\n", "gen.go": "//go:build ignore\n\npackage main\n",
				"Dockerfile": "FROM scratch\nCOPY bin/app /app\n",
			},
			in: []string{"# The Dockerfile copies bin/app", hintLine},
		},
		{
			name: "root package goes to one output only",
			files: map[string]string{
				"go.mod": goMod, "main.go": mainGo,
				"Dockerfile": "FROM scratch\nCOPY bin/proj bin/other bin/ /\n",
			},
			want: goBuild + "bin/proj .", goos: true, ignore: []string{"bin"},
			in: []string{"# The Dockerfile also copies bin/other, bin/, which look built on the host"},
			lines: []string{
				"  pre-build proj (inferred from Dockerfile line 2, check it): " + goBuild + "bin/proj .",
				"  pre-build proj: no command inferred for bin/other, bin/, which Dockerfile copies from the host: add it to preBuild in devloop.yaml",
			},
		},
		{
			name: "root package ambiguous",
			files: map[string]string{
				"go.mod": goMod, "main.go": mainGo,
				"Dockerfile": "FROM scratch\nCOPY bin/a bin/b /\n",
			},
			in: []string{"# The Dockerfile copies bin/a, bin/b, which look built on the host", "#   run: <the command that builds them>"},
		},
		{
			name: "main package without go.mod",
			files: map[string]string{
				"main.go":    mainGo,
				"Dockerfile": "FROM scratch\nCOPY bin/app /app\n",
			},
			want: goBuild + "bin/app .", goos: true, ignore: []string{"bin"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "proj")
			writeFiles(t, dir, tc.files)
			for _, f := range tc.exec {
				if err := os.Chmod(filepath.Join(dir, f), 0o755); err != nil {
					t.Fatal(err)
				}
			}
			cfg, data, sum := writeAndLoad(t, dir, Options{PortFree: allFree})
			s := cfg.Services[0]
			run := ""
			if s.Build.PreBuild != nil {
				run = s.Build.PreBuild.Run
				if s.Build.PreBuild.Dir != dir {
					t.Errorf("preBuild dir = %s, want the context %s", s.Build.PreBuild.Dir, dir)
				}
			}
			if run != tc.want {
				t.Errorf("preBuild.run = %q, want %q\n%s", run, tc.want, data)
			}
			if s.Build.PreBuild != nil && len(s.Build.PreBuild.Env) > 0 {
				t.Errorf("preBuild.env = %v, want none: it would apply to every command\n%s", s.Build.PreBuild.Env, data)
			}
			if goos := strings.Contains(string(data), goosNote); goos != tc.goos {
				t.Errorf("GOOS=linux note: %v, want %v\n%s", goos, tc.goos, data)
			}
			if n, m := strings.Count(run, "go build"), strings.Count(run, "GOOS=linux CGO_ENABLED=0 go build"); n != m {
				t.Errorf("%d of %d go builds without GOOS=linux: %q", n-m, n, run)
			}
			if strings.Join(s.Ignore, ",") != strings.Join(tc.ignore, ",") {
				t.Errorf("ignore = %q, want %q\n%s", s.Ignore, tc.ignore, data)
			}
			m, err := dsync.NewMatcher(s.Build.Context, s.Ignore)
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range tc.ignored {
				if !m.Matches(filepath.Join(s.Build.Context, filepath.FromSlash(p))) {
					t.Errorf("ignore %q does not match %s", s.Ignore, p)
				}
			}
			for _, p := range tc.watched {
				abs := filepath.Join(s.Build.Context, filepath.FromSlash(p))
				if m.Matches(abs) || m.MatchesEntireDir(abs) {
					t.Errorf("ignore %q matches %s, which must stay watched", s.Ignore, p)
				}
			}
			for _, want := range tc.in {
				if !strings.Contains(string(data), want) {
					t.Errorf("file lacks %q:\n%s", want, data)
				}
			}
			for _, not := range tc.notIn {
				if strings.Contains(string(data), not) {
					t.Errorf("file has %q:\n%s", not, data)
				}
			}
			got := strings.Join(sum.Lines(), "\n") + "\n"
			for _, want := range tc.lines {
				if !strings.Contains(got, want+"\n") {
					t.Errorf("summary lacks %q:\n%s", want, got)
				}
			}
			if (sum.Services[0].PreBuild != "") != (tc.want != "") {
				t.Errorf("summary pre-build = %q, want %q", sum.Services[0].PreBuild, tc.want)
			}
		})
	}
}

// TestNoGoModNote: go build needs a go.mod; init says so when there is none.
func TestNoGoModNote(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "proj")
	for d := dir; d != filepath.Dir(d); d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			t.Skipf("%s has a go.mod above it", dir)
		}
	}
	writeFiles(t, dir, map[string]string{"main.go": mainGo, "Dockerfile": "FROM scratch\nCOPY bin/app /app\n"})
	data, sum, err := Generate(dir, Options{PortFree: allFree})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(data), "# No go.mod in the build context or above it") || !sum.Services[0].NoGoMod {
		t.Errorf("no note about the missing go.mod:\n%s", data)
	}
	writeFiles(t, dir, map[string]string{"go.mod": goMod})
	data, sum, err = Generate(dir, Options{PortFree: allFree})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(data), "No go.mod") || sum.Services[0].NoGoMod {
		t.Errorf("note about a missing go.mod although there is one:\n%s", data)
	}
}

// TestPreBuildInSubdirectoryContext: paths are relative to the build context
// (where preBuild runs), and a go.mod above the context counts.
func TestPreBuildInSubdirectoryContext(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "mono")
	writeFiles(t, dir, map[string]string{
		"go.mod":                   goMod,
		".gitignore":               "services/*/bin/\n",
		"services/api/main.go":     mainGo,
		"services/api/Dockerfile":  "FROM scratch\nCOPY bin/api /api\n",
		"services/api/bin/api":     elf,
		"services/web/Dockerfile":  "FROM nginx\nCOPY static /usr/share/nginx/html\n",
		"services/web/static/a.js": "",
	})
	cfg, _, _ := writeAndLoad(t, dir, Options{PortFree: allFree})
	api, web := findService(cfg, "api"), findService(cfg, "web")
	if api == nil || web == nil {
		t.Fatalf("services = %+v", cfg.Services)
	}
	if api.Build.PreBuild == nil || api.Build.PreBuild.Run != goBuild+"bin/api ." || api.Build.PreBuild.Dir != filepath.Join(dir, "services", "api") {
		t.Errorf("api preBuild = %+v", api.Build.PreBuild)
	}
	if web.Build.PreBuild != nil || len(web.Ignore) != 0 {
		t.Errorf("web preBuild = %+v, ignore %v", web.Build.PreBuild, web.Ignore)
	}
}

func TestText(t *testing.T) {
	for in, want := range map[string]string{
		"CGO_ENABLED=0 go build -o bin/a . && make x": "CGO_ENABLED=0 go build -o bin/a . && make x",
		"echo a: b":  `"echo a: b"`,
		"make # x":   `"make # x"`,
		"*x":         `"*x"`,
		"true":       `"true"`,
		"- x":        `"- x"`,
		"x:":         `"x:"`,
		" x":         `" x"`,
		"'quoted' x": `"'quoted' x"`,
		"héllo":      `"héllo"`,
	} {
		if got := text(in); got != want {
			t.Errorf("text(%q) = %s, want %s", in, got, want)
		}
	}
}

// TestIgnorePatternFor: the pattern matches the path (and what is below it)
// and nothing else, with the matcher devloop up uses.
func TestIgnorePatternFor(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		path  string
		other []string // paths that must stay watched
	}{
		{"cmd/api/api", []string{"cmd/api/main.go", "cmd/api", "cmd/api/api2"}},
		{"bin", []string{"bin2", "cmd/bin"}},
		{"web/a[1].js", []string{"web/a1.js"}},
		{"out*", []string{"outx"}},
		{"a?b", []string{"axb"}},
		{"!x", []string{"x"}},
		{"#x", []string{"x"}},
	} {
		pat, ok := ignorePatternFor(tc.path)
		if !ok {
			t.Errorf("ignorePatternFor(%q): none", tc.path)
			continue
		}
		m, err := dsync.NewMatcher(dir, []string{pat})
		if err != nil {
			t.Errorf("ignorePatternFor(%q) = %q: %v", tc.path, pat, err)
			continue
		}
		abs := func(p string) string { return filepath.Join(dir, filepath.FromSlash(p)) }
		if !m.Matches(abs(tc.path)) || !m.Matches(abs(tc.path+"/below")) {
			t.Errorf("ignorePatternFor(%q) = %q does not match it", tc.path, pat)
		}
		for _, o := range tc.other {
			if m.Matches(abs(o)) {
				t.Errorf("ignorePatternFor(%q) = %q matches %s", tc.path, pat, o)
			}
		}
	}
	if _, ok := ignorePatternFor(" x"); ok {
		t.Error("a pattern for a name with a leading space, which ignore files trim")
	}
}

func TestCommentText(t *testing.T) {
	for _, tc := range []struct {
		in   string
		max  int
		want string
	}{
		{"COPY bin/app /app", 100, "COPY bin/app /app"},
		{strings.Repeat("é", 101), 100, strings.Repeat("é", 97) + "..."},
		{strings.Repeat("é", 100), 100, strings.Repeat("é", 100)},
		{"a\tb\x00c\xffd", 0, "a b?c?d"},
		{strings.Repeat("日本", 60), 0, strings.Repeat("日本", 60)},
	} {
		if got := commentText(tc.in, tc.max); got != tc.want {
			t.Errorf("commentText(%q, %d) = %q, want %q", tc.in, tc.max, got, tc.want)
		}
	}
}
