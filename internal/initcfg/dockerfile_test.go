package initcfg

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestDockerfileSources(t *testing.T) {
	for _, tc := range []struct {
		name, dockerfile string
		want             []string // "line:path" ("/" suffix for directories)
	}{
		{"plain", "FROM scratch\nCOPY bin/app /app\n", []string{"2:bin/app"}},
		{"add and lower case", "FROM scratch\nadd bin/app /app\n", []string{"2:bin/app"}},
		{"several sources", "FROM scratch\nCOPY bin/a bin/b ./c /dst/\n", []string{"2:bin/a", "2:bin/b", "2:c"}},
		{"flags", "FROM scratch\nCOPY --chown=65532:65532 --chmod=755 --link bin/app /app\n", []string{"2:bin/app"}},
		{"json array", "FROM scratch\nCOPY --chown=1:1 [\"bin/app\", \"bin/my tool\", \"/dst/\"]\n", []string{"2:bin/app", "2:bin/my tool"}},
		{"invalid json is the shell form", "FROM scratch\nCOPY [bin/app /app\n", []string{"2:[bin/app"}},
		{"from stage skipped", "FROM golang AS build\nRUN go build -o /out/app .\nFROM scratch\nCOPY --from=build /out/app /app\nCOPY --from=build bin/x /x\n", nil},
		{"urls and git skipped", "FROM scratch\nADD https://example.com/a.tgz git@github.com:a/b.git bin/c /\n", []string{"2:bin/c"}},
		{"variables, heredocs and the whole context skipped", "FROM scratch\nARG B=bin\nCOPY $B/app ${B}/x . /\nCOPY <<EOF /etc/x\nCOPY bin/not-an-instruction /\nEOF\nCOPY bin/app /app\n", []string{"7:bin/app"}},
		{"heredoc in run", "FROM alpine\nRUN <<-'END' sh\n  COPY bin/nope /\nEND\nCOPY bin/yes /\n", []string{"5:bin/yes"}},
		{"continuation and comments inside", "FROM scratch\nCOPY \\\n# a comment\n  bin/a \\\n\n  /a\n", []string{"2:bin/a"}},
		{"escape directive", "# escape=`\nFROM scratch\nCOPY bin\\app `\n  C:\\app\n", []string{"3:bin\\app"}},
		{"cleaned paths", "FROM scratch\nCOPY ./bin/../bin/app /bin/x bin/dir/ /\n", []string{"2:bin/app", "2:bin/x", "2:bin/dir/"}},
		{"crlf", "FROM scratch\r\nCOPY bin/app /app\r\n", []string{"2:bin/app"}},
		{"not copy", "FROM scratch\nRUN cp bin/a /a\nCOPYRIGHT bin/a /a\n", nil},
		// "<<" is a heredoc only as a whole word, outside quotes, in RUN, COPY and ADD.
		// BuildKit reads "<< SHIFT" (spaces around) as a heredoc that never ends
		// and fails the build ("unterminated heredoc"): no sources, like the
		// build (TestDockerfileBuildKitRejects).
		{"shift with spaces is what BuildKit rejects", "FROM alpine\nRUN echo $((1 << SHIFT))\nCOPY bin/a /a\nSHIFT\nCOPY bin/b /b\n", nil},
		{"shift without spaces is no heredoc", "FROM alpine\nRUN echo $((1<<SHIFT))\nCOPY bin/a /a\nSHIFT\n", []string{"3:bin/a"}},
		{"quoted marker is no heredoc", "FROM alpine\nRUN echo \"<<EOF\" '<<END'\nCOPY bin/a /a\nEOF\nEND\nCOPY bin/b /b\n", []string{"3:bin/a", "6:bin/b"}},
		{"marker in another instruction is no heredoc", "FROM alpine\nLABEL x=<<EOF\nCOPY bin/a /a\nEOF\n", []string{"3:bin/a"}},
		{"unterminated heredoc fails like the build", "FROM alpine\nRUN cat <<EOF >/x\nCOPY bin/a /a\n", nil},
		{"two heredocs, fd and quotes", "FROM alpine\nRUN 3<<\"A\" cat - <<-B\nCOPY bin/no1 /\nA\n\tCOPY bin/no2 /\n\tB\nCOPY bin/yes /\n", []string{"7:bin/yes"}},
		{"onbuild heredoc", "FROM alpine\nONBUILD RUN <<EOF\nCOPY bin/no /\nEOF\nCOPY bin/yes /\n", []string{"5:bin/yes"}},
		{"json array keeps spacing", "FROM scratch\nCOPY [\"bin/my  tool\", \"/a  b\"]\n", []string{"2:bin/my  tool"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			for _, s := range dockerfileSources([]byte(tc.dockerfile)) {
				p := s.path
				if s.dir {
					p += "/"
				}
				got = append(got, fmt.Sprintf("%d:%s", s.line, p))
			}
			if strings.Join(got, "|") != strings.Join(tc.want, "|") {
				t.Errorf("sources = %q, want %q", got, tc.want)
			}
		})
	}
}

// TestDockerfileBuildKitRejects: what BuildKit's parser rejects, init
// reports as unparseable (it used to guess, differently from the build).
func TestDockerfileBuildKitRejects(t *testing.T) {
	for _, df := range []string{
		"FROM alpine\nRUN cat <<EOF >/x\nCOPY bin/a /a\n",
		"FROM alpine\nRUN echo $((1 << SHIFT))\nCOPY bin/a /a\n",
		"# escape=x\nFROM alpine\n",
	} {
		if _, err := parseDockerfile([]byte(df)); err == nil {
			t.Errorf("parsed %q, want BuildKit's error", df)
		}
	}
}

func TestDockerfileSourcesKeepInstructionText(t *testing.T) {
	got := dockerfileSources([]byte("FROM scratch\nCOPY   --chown=1:1 \\\n   bin/app   /app\n"))
	if len(got) != 1 || got[0].text != "COPY --chown=1:1 bin/app /app" || got[0].line != 2 {
		t.Fatalf("got %+v", got)
	}
}

func TestGitignored(t *testing.T) {
	root := t.TempDir()
	writeFiles(t, root, map[string]string{
		".gitignore": "# build output\nbin/\n/server\n*.log\n!keep.log\ndocs/**/gen\nfoo**bar\n" +
			"gen/[[:digit:]]*\nweird/[[:nope:]]\nlib/*\n!lib/keep\ndist/\n!dist/index.js\ncafé.txt\nna[ïi]ve/\n",
		"sub/.gitignore":   "out\n!/again.log\n",
		"allow/.gitignore": "*\n!*/\n!VERSION\n",
		"bin/app":          "x",
		"server":           "x",
		"src/server":       "x",
		"sub/out/a":        "x",
		"out/a":            "x",
	})
	for _, tc := range []struct {
		path  string
		isDir bool
		want  bool
	}{
		{"bin/app", false, true},          // under an ignored directory
		{"bin", true, true},               // the directory itself
		{"bin", false, false},             // "bin/" matches directories only
		{"server", false, true},           // anchored
		{"src/server", false, false},      // anchored to the root only
		{"a/b/x.log", false, true},        // unanchored, any depth
		{"sub/out/a", false, true},        // a nested .gitignore
		{"out/a", false, false},           // that one applies under sub/ only
		{"docs/x/y/gen", false, true},     // **
		{"docs/gen", false, true},         // ** matches no directory too
		{"missing/file", false, false},    // nothing says so
		{"keep.log", false, false},        // re-included
		{"a/keep.log", false, false},      // re-included at any depth
		{"sub/again.log", false, false},   // re-included by a deeper .gitignore
		{"again.log", false, true},        // which applies under sub/ only
		{"foozbar", false, true},          // ** next to no slash is *
		{"foo/bar", false, false},         // which stays within a name
		{"foo/x/bar", false, false},       //
		{"gen/1.go", false, true},         // POSIX class
		{"gen/a.go", false, false},        //
		{"weird/x", false, false},         // an unknown class matches nothing
		{"lib/a", false, true},            //
		{"lib/keep", false, false},        // re-included (its directory is not ignored)
		{"dist/index.js", false, true},    // no re-including below an ignored directory
		{"allow/VERSION", false, false},   // an allow-list
		{"allow/x/VERSION", false, false}, //
		{"allow/notes", false, true},      //
		{"allow/bin/app", false, true},    //
		{"allow/bin", true, false},        // directories re-included by !*/
		{"café.txt", false, true},         // non-ASCII names match themselves
		{"naïve/x", false, true},          // in a class too
	} {
		if got := gitignored(root, filepath.Join(root, filepath.FromSlash(tc.path)), tc.isDir); got != tc.want {
			t.Errorf("gitignored(%s, dir=%v) = %v, want %v", tc.path, tc.isDir, got, tc.want)
		}
	}
	if gitignored(root, root, true) || gitignored(root, filepath.Dir(root), true) {
		t.Error("the root or a path outside it counted as ignored")
	}
	_ = os.Remove(filepath.Join(root, ".gitignore"))
	if gitignored(root, filepath.Join(root, "bin", "app"), false) {
		t.Error("ignored without a .gitignore")
	}
}

func TestRunsGoBuild(t *testing.T) {
	for _, tc := range []struct {
		name, dockerfile string
		want             bool
	}{
		{"multi-stage", "FROM golang AS build\nRUN CGO_ENABLED=0 go build -o /out/app .\nFROM scratch\nCOPY --from=build /out/app /app\n", true},
		{"go install", "FROM golang\nRUN --mount=type=cache,target=/root/.cache go install ./cmd/x\n", true},
		{"path to go", "FROM golang\nRUN /usr/local/go/bin/go build .\n", true},
		{"json form", "FROM golang\nRUN [\"go\", \"build\", \".\"]\n", true},
		{"heredoc", "FROM golang\nRUN <<EOF\nset -e\ngo build -o /app .\nEOF\n", true},
		{"prebuilt", "FROM scratch\nCOPY bin/app /app\n", false},
		{"any go build in a RUN counts", "FROM rust\nRUN cargo build\nRUN echo go build\n", true},
		{"not a run", "FROM scratch\nLABEL note=\"go build\"\nCOPY bin/app /app\n", false},
		{"cargo", "FROM rust\nRUN cargo build --release\n", false},
	} {
		ast, err := parseDockerfile([]byte(tc.dockerfile))
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if got := runsGoBuild(ast.instrs); got != tc.want {
			t.Errorf("%s: runsGoBuild = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestBaseImages(t *testing.T) {
	for _, tc := range []struct {
		name, dockerfile string
		args             map[string]string
		want             string // "ref@line" joined by ","; "?" marks unresolved
	}{
		{"stages and scratch", "FROM golang:1.26-alpine AS build\nRUN go build -o /x .\nFROM build AS test\nFROM scratch\nCOPY --from=build /x /x\n", nil, "golang:1.26-alpine@1"},
		{"arg defaults before FROM", "ARG GO=1.26\nARG BASE=alpine:3.22\nFROM golang:${GO}-alpine AS b\nFROM $BASE\n", nil, "golang:1.26-alpine@3,alpine:3.22@4"},
		{"build args override", "ARG GO=1.26\nFROM golang:${GO}\n", map[string]string{"GO": "1.25"}, "golang:1.25@2"},
		{"arg without default", "ARG BASE\nFROM ${BASE}\n", nil, "${BASE}?@2"},
		{"arg after FROM does not count", "FROM alpine\nARG X=1\nFROM img:$X\n", nil, "alpine@1,img:$X?@3"},
		{"copy from an image and a mount from one", "FROM alpine\nCOPY --from=busybox:1.36 /bin/busybox /bb\nCOPY --from=0 /a /b\nRUN --mount=type=bind,from=tools:2,target=/t true\n", nil, "alpine@1,busybox:1.36@2,tools:2@4"},
		{"stage names are case-insensitive, each image once", "FROM alpine AS Base\nFROM base\nFROM alpine\n", nil, "alpine@1"},
		{"platform flag", "FROM --platform=$BUILDPLATFORM golang:1.26 AS b\n", nil, "golang:1.26@1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := BaseImages([]byte(tc.dockerfile), tc.args)
			if err != nil {
				t.Fatal(err)
			}
			var s []string
			for _, b := range got {
				mark := ""
				if b.Unresolved {
					mark = "?"
				}
				s = append(s, fmt.Sprintf("%s%s@%d", b.Ref, mark, b.Line))
			}
			if strings.Join(s, ",") != tc.want {
				t.Errorf("got %s, want %s", strings.Join(s, ","), tc.want)
			}
		})
	}
	if _, err := BaseImages([]byte("FROM alpine\nRUN <<EOF\n"), nil); err == nil {
		t.Error("no error for an unterminated heredoc")
	}
}

func TestBuiltNames(t *testing.T) {
	ast, err := parseDockerfile([]byte("FROM golang AS b\nRUN CGO_ENABLED=0 go build -trimpath -o /out/API ./cmd/api && go build -o=/out/tool ./t\n" +
		"FROM scratch\nCOPY --from=b /out/API /usr/bin/api\nCOPY bin/helper /h\nENTRYPOINT [\"/usr/bin/server\", \"-v\"]\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(builtNames(ast.instrs), ","); got != "api,tool,helper,server" {
		t.Errorf("builtNames = %s", got)
	}
}
