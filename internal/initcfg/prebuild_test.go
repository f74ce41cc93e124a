package initcfg

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/devloop-dev/devloop/internal/config"
)

const (
	goMod    = "module example.com/app\n\ngo 1.26\n"
	mainGo   = "package main\n\nfunc main() {}\n"
	goBuild  = "CGO_ENABLED=0 go build -trimpath -o "
	hintLine = "#   run: <the command that builds it>"
)

// TestInferPreBuild runs Write on small projects and loads the result back:
// the inferred preBuild must be what devloop up will run.
func TestInferPreBuild(t *testing.T) {
	for _, tc := range []struct {
		name  string
		files map[string]string
		// want is preBuild.run ("" for no preBuild); goos whether env is GOOS=linux.
		want   string
		goos   bool
		ignore []string
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
			in:    []string{"#   2: COPY bin/app /app", "GOOS: linux  # the image runs on Linux"},
			notIn: []string{hintLine, "No go.mod"},
			lines: []string{"  pre-build proj (inferred from Dockerfile line 2, check it): GOOS=linux " + goBuild + "bin/app ."},
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
			name: "gitignored root binary",
			files: map[string]string{
				"go.mod": goMod, "main.go": mainGo, ".gitignore": "/server\n", "server": "old build",
				"Dockerfile": "FROM scratch\nCOPY server /server\n",
			},
			want: goBuild + "server .", goos: true, ignore: []string{"server"},
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
				"  pre-build proj (inferred from Dockerfile line 2, check it): GOOS=linux " + goBuild + "bin/proj .",
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
			path, sum, err := Write(dir, Options{PortFree: allFree})
			if err != nil {
				t.Fatal(err)
			}
			data, _ := os.ReadFile(path)
			cfg, err := config.Load(path)
			if err != nil {
				t.Fatalf("%v\n%s", err, data)
			}
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
			if goos := s.Build.PreBuild != nil && s.Build.PreBuild.Env["GOOS"] == "linux"; goos != tc.goos {
				t.Errorf("GOOS=linux set: %v, want %v\n%s", goos, tc.goos, data)
			}
			if strings.Join(s.Ignore, ",") != strings.Join(tc.ignore, ",") {
				t.Errorf("ignore = %q, want %q\n%s", s.Ignore, tc.ignore, data)
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
		"services/api/bin/api":     "old build",
		"services/web/Dockerfile":  "FROM nginx\nCOPY static /usr/share/nginx/html\n",
		"services/web/static/a.js": "",
	})
	path, _, err := Write(dir, Options{PortFree: allFree})
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
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
