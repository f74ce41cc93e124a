package livesync

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/devloop-dev/devloop/internal/config"
	"k8s.io/client-go/util/exec"
)

// fakeFileInfo is the part of fs.FileInfo PlanSyncWith looks at.
type fakeFileInfo struct {
	fs.FileInfo
	dir bool
}

func (f fakeFileInfo) IsDir() bool { return f.dir }

// fakeLstat serves a fixed tree: files and dirs exist, everything else is gone.
func fakeLstat(files, dirs []string, broken string) func(string) (fs.FileInfo, error) {
	return func(p string) (fs.FileInfo, error) {
		switch {
		case p == broken:
			return nil, fs.ErrPermission
		case contains(files, p):
			return fakeFileInfo{}, nil
		case contains(dirs, p):
			return fakeFileInfo{dir: true}, nil
		}
		return nil, fmt.Errorf("lstat %s: %w", p, fs.ErrNotExist)
	}
}

func contains(xs []string, s string) bool {
	for _, x := range xs {
		if x == s {
			return true
		}
	}
	return false
}

func TestPlanSync(t *testing.T) {
	rules := []config.SyncRule{
		{Src: "/p/web/static", Dest: "/usr/share/nginx/html", Run: ""},
		{Src: "/p/web", Dest: "/app/", Run: "kill -HUP 1"},
		{Src: "/p/conf/app.yaml", Dest: "/etc/app/app.yaml"},
	}
	lstat := fakeLstat(
		[]string{"/p/web/static/index.html", "/p/web/main.py", "/p/conf/app.yaml", "/p/Dockerfile", "/p/web/lib/util.py"},
		[]string{"/p/web/newdir", "/p/web", "/p/web/static"},
		"/p/web/secret.py",
	)
	tests := []struct {
		name      string
		changed   []string
		wantFiles []FileCopy
		wantRest  []string
	}{
		{
			name:      "first matching rule wins",
			changed:   []string{"/p/web/static/index.html", "/p/web/main.py"},
			wantFiles: []FileCopy{{Local: "/p/web/static/index.html", Dest: "/usr/share/nginx/html/index.html"}, {Local: "/p/web/main.py", Dest: "/app/main.py", Run: "kill -HUP 1"}},
		},
		{
			name:      "nested path keeps its relative dirs",
			changed:   []string{"/p/web/lib/util.py"},
			wantFiles: []FileCopy{{Local: "/p/web/lib/util.py", Dest: "/app/lib/util.py", Run: "kill -HUP 1"}},
		},
		{
			name:      "deleted file becomes a removal",
			changed:   []string{"/p/web/old.py"},
			wantFiles: []FileCopy{{Local: "/p/web/old.py", Dest: "/app/old.py", Delete: true, Run: "kill -HUP 1"}},
		},
		{
			name:      "new directory",
			changed:   []string{"/p/web/newdir"},
			wantFiles: []FileCopy{{Local: "/p/web/newdir", Dest: "/app/newdir", Run: "kill -HUP 1"}},
		},
		{
			name:      "file rule maps onto its dest",
			changed:   []string{"/p/conf/app.yaml"},
			wantFiles: []FileCopy{{Local: "/p/conf/app.yaml", Dest: "/etc/app/app.yaml"}},
		},
		{
			name:     "uncovered paths need a rebuild",
			changed:  []string{"/p/Dockerfile", "/p/webby/x", "/p/conf/other.yaml"},
			wantRest: []string{"/p/Dockerfile", "/p/webby/x", "/p/conf/other.yaml"},
		},
		{
			name:     "a rule's src dir itself (rescan) needs a rebuild",
			changed:  []string{"/p/web"},
			wantRest: []string{"/p/web"},
		},
		{
			name:      "deleted file src needs a rebuild",
			changed:   []string{"/p/web/static/../../conf/app.yaml/"},
			wantFiles: []FileCopy{{Local: "/p/conf/app.yaml", Dest: "/etc/app/app.yaml"}},
		},
		{
			name:     "unreadable path needs a rebuild",
			changed:  []string{"/p/web/secret.py"},
			wantRest: []string{"/p/web/secret.py"},
		},
		{
			name: "empty",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			files, rest := PlanSyncWith(rules, tt.changed, lstat)
			if !reflect.DeepEqual(files, tt.wantFiles) {
				t.Errorf("files = %+v\nwant %+v", files, tt.wantFiles)
			}
			if !reflect.DeepEqual(rest, tt.wantRest) {
				t.Errorf("rest = %v, want %v", rest, tt.wantRest)
			}
		})
	}
}

func TestPlanSyncDeletedFileSrc(t *testing.T) {
	rules := []config.SyncRule{{Src: "/p/conf/app.yaml", Dest: "/etc/app.yaml"}}
	files, rest := PlanSyncWith(rules, []string{"/p/conf/app.yaml"}, fakeLstat(nil, nil, ""))
	if len(files) != 0 || !reflect.DeepEqual(rest, []string{"/p/conf/app.yaml"}) {
		t.Errorf("files=%v rest=%v; want the deleted src to need a rebuild", files, rest)
	}
}

func TestPlanSyncRealFS(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "a.txt"), []byte("a"), 0o644); err != nil {
		t.Fatal(err)
	}
	files, rest := PlanSync([]config.SyncRule{{Src: dir, Dest: "/app"}},
		[]string{filepath.Join(dir, "a.txt"), filepath.Join(dir, "gone.txt")})
	want := []FileCopy{
		{Local: filepath.Join(dir, "a.txt"), Dest: "/app/a.txt"},
		{Local: filepath.Join(dir, "gone.txt"), Dest: "/app/gone.txt", Delete: true},
	}
	if !reflect.DeepEqual(files, want) || rest != nil {
		t.Errorf("files=%+v rest=%v; want %+v", files, rest, want)
	}
}

func TestRuns(t *testing.T) {
	got := Runs([]FileCopy{{Run: "b"}, {Run: ""}, {Run: "a"}, {Run: "b"}})
	if want := []string{"b", "a"}; !reflect.DeepEqual(got, want) {
		t.Errorf("Runs = %v, want %v", got, want)
	}
}

// execCall records one Exec.
type execCall struct {
	target Target
	cmd    []string
	stdin  []byte
}

// fakeExecer records calls, reading stdin fully like a real tar would. A
// handler may fail a call and write output.
type fakeExecer struct {
	calls   []execCall
	handler func(cmd []string, stdout, stderr io.Writer) error
}

func (f *fakeExecer) Exec(ctx context.Context, ns, pod, container string, cmd []string, stdin io.Reader, stdout, stderr io.Writer) error {
	c := execCall{target: Target{Namespace: ns, Pod: pod, Container: container}, cmd: cmd}
	if f.handler != nil {
		if err := f.handler(cmd, stdout, stderr); err != nil {
			f.calls = append(f.calls, c)
			return err
		}
	}
	if stdin != nil {
		b, err := io.ReadAll(stdin)
		if err != nil {
			return err
		}
		c.stdin = b
	}
	f.calls = append(f.calls, c)
	return nil
}

type tarEntry struct {
	name     string
	typ      byte
	mode     int64
	content  string
	linkname string
}

func readTar(t *testing.T, b []byte) []tarEntry {
	t.Helper()
	tr := tar.NewReader(bytes.NewReader(b))
	var out []tarEntry
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("reading tar: %v", err)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, tarEntry{h.Name, h.Typeflag, h.Mode, string(data), h.Linkname})
	}
}

func TestCopy(t *testing.T) {
	dir := t.TempDir()
	write := func(rel, content string, mode os.FileMode) string {
		p := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil { // umask-proof
			t.Fatal(err)
		}
		return p
	}
	script := write("bin/run.sh", "#!/bin/sh\necho hi\n", 0o755)
	page := write("index.html", "<h1>hi</h1>", 0o640)
	sub := filepath.Join(dir, "assets")
	if err := os.Mkdir(sub, 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(sub, 0o750); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "current")
	if err := os.Symlink("index.html", link); err != nil {
		t.Fatal(err)
	}

	files := []FileCopy{
		{Local: script, Dest: "/app/bin/run.sh"},
		{Local: page, Dest: "/app/index.html"},
		{Local: sub, Dest: "/app/assets"},
		{Local: link, Dest: "/app/current"},
		{Local: filepath.Join(dir, "old.txt"), Dest: "/app/old.txt", Delete: true},
		{Local: filepath.Join(dir, "vanished.txt"), Dest: "/app/vanished.txt"}, // gone since planning
	}
	ex := &fakeExecer{}
	target := Target{Namespace: "ns", Pod: "web-1", Container: "app"}
	if err := Copy(t.Context(), ex, target, files, "kill -HUP 1"); err != nil {
		t.Fatal(err)
	}
	if len(ex.calls) != 3 {
		t.Fatalf("got %d exec calls %+v, want tar, rm, run", len(ex.calls), ex.calls)
	}
	for _, c := range ex.calls {
		if c.target != target {
			t.Errorf("exec in %v, want %v", c.target, target)
		}
	}
	if want := []string{"tar", "-xmf", "-", "-C", "/"}; !reflect.DeepEqual(ex.calls[0].cmd, want) {
		t.Errorf("tar cmd = %v, want %v", ex.calls[0].cmd, want)
	}
	gotEntries := readTar(t, ex.calls[0].stdin)
	wantEntries := []tarEntry{
		{name: "app/bin/run.sh", typ: tar.TypeReg, mode: 0o755, content: "#!/bin/sh\necho hi\n"},
		{name: "app/index.html", typ: tar.TypeReg, mode: 0o640, content: "<h1>hi</h1>"},
		{name: "app/assets/", typ: tar.TypeDir, mode: 0o750},
		{name: "app/current", typ: tar.TypeSymlink, mode: 0o777, linkname: "index.html"},
	}
	if !reflect.DeepEqual(gotEntries, wantEntries) {
		t.Errorf("tar entries = %+v\nwant %+v", gotEntries, wantEntries)
	}
	if want := []string{"rm", "-rf", "--", "/app/old.txt", "/app/vanished.txt"}; !reflect.DeepEqual(ex.calls[1].cmd, want) {
		t.Errorf("rm cmd = %v, want %v", ex.calls[1].cmd, want)
	}
	if want := []string{"sh", "-c", "kill -HUP 1"}; !reflect.DeepEqual(ex.calls[2].cmd, want) {
		t.Errorf("run cmd = %v, want %v", ex.calls[2].cmd, want)
	}
}

func TestCopyOnlyWhatIsNeeded(t *testing.T) {
	ex := &fakeExecer{}
	if err := Copy(t.Context(), ex, Target{}, []FileCopy{{Dest: "/app/x", Delete: true}}, ""); err != nil {
		t.Fatal(err)
	}
	if len(ex.calls) != 1 || ex.calls[0].cmd[0] != "rm" {
		t.Errorf("calls = %+v, want only rm", ex.calls)
	}
	ex = &fakeExecer{}
	if err := Copy(t.Context(), ex, Target{}, nil, ""); err != nil || len(ex.calls) != 0 {
		t.Errorf("nothing to do: err=%v calls=%+v", err, ex.calls)
	}
}

func TestCopyRefusesToDeleteRoot(t *testing.T) {
	ex := &fakeExecer{}
	err := Copy(t.Context(), ex, Target{}, []FileCopy{{Dest: "/", Delete: true}}, "")
	if err == nil || len(ex.calls) != 0 {
		t.Errorf("err=%v calls=%+v; want refusal without exec", err, ex.calls)
	}
}

func TestCopyNoTar(t *testing.T) {
	file := filepath.Join(t.TempDir(), "a.txt")
	if err := os.WriteFile(file, []byte("a"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		err     error
		stderr  string
		wantNoT bool
	}{
		{"runtime cannot find tar", errors.New(`OCI runtime exec failed: exec failed: unable to start container process: exec: "tar": executable file not found in $PATH: unknown`), "", true},
		{"shell exit 127", exec.CodeExitError{Err: errors.New("command terminated with exit code 127"), Code: 127}, "sh: tar: not found", true},
		{"stderr says so", errors.New("command terminated with exit code 1"), "sh: tar: not found\n", true},
		{"other failure", exec.CodeExitError{Err: errors.New("command terminated with exit code 2"), Code: 2}, "tar: app: Cannot open: Permission denied", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ex := &fakeExecer{handler: func(cmd []string, stdout, stderr io.Writer) error {
				if cmd[0] == "tar" {
					_, _ = io.WriteString(stderr, tt.stderr)
					return tt.err
				}
				return nil
			}}
			err := Copy(t.Context(), ex, Target{Namespace: "ns", Pod: "p", Container: "c"}, []FileCopy{{Local: file, Dest: "/app/a.txt"}, {Dest: "/app/b", Delete: true}}, "make")
			if err == nil {
				t.Fatal("want error")
			}
			if got := errors.Is(err, ErrNoTar); got != tt.wantNoT {
				t.Errorf("errors.Is(%v, ErrNoTar) = %v, want %v", err, got, tt.wantNoT)
			}
			if len(ex.calls) != 1 {
				t.Errorf("after a failed tar, got %d exec calls, want 1 (nothing else ran)", len(ex.calls))
			}
			if tt.stderr != "" && !strings.Contains(err.Error(), strings.TrimSpace(tt.stderr)) {
				t.Errorf("error %q does not include tar's stderr", err)
			}
		})
	}
}

func TestCopyRunFailureIncludesOutput(t *testing.T) {
	ex := &fakeExecer{handler: func(cmd []string, stdout, stderr io.Writer) error {
		if cmd[0] == "sh" {
			_, _ = io.WriteString(stdout, "compiling...\n")
			_, _ = io.WriteString(stderr, "main.c:1: error\n")
			return exec.CodeExitError{Err: errors.New("command terminated with exit code 2"), Code: 2}
		}
		return nil
	}}
	err := Copy(t.Context(), ex, Target{Namespace: "ns", Pod: "p", Container: "c"}, []FileCopy{{Dest: "/x", Delete: true}}, "make")
	if err == nil || !strings.Contains(err.Error(), "main.c:1: error") || !strings.Contains(err.Error(), `"make"`) {
		t.Errorf("err = %v, want the command and its output", err)
	}
}

// blockingExecer fails tar without reading stdin, which must not deadlock
// the tar writer.
func TestCopyTarFailsWithoutReadingStdin(t *testing.T) {
	dir := t.TempDir()
	big := filepath.Join(dir, "big")
	if err := os.WriteFile(big, bytes.Repeat([]byte("x"), 1<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	ex := &fakeExecer{handler: func(cmd []string, _, _ io.Writer) error { return errors.New("connection refused") }}
	done := make(chan error, 1)
	go func() { done <- Copy(t.Context(), ex, Target{}, []FileCopy{{Local: big, Dest: "/big"}}, "") }()
	select {
	case err := <-done:
		if err == nil || errors.Is(err, ErrNoTar) {
			t.Errorf("err = %v, want a plain tar failure", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Copy deadlocked when tar did not read its input")
	}
}

func TestLimitedBufferKeepsTail(t *testing.T) {
	var l limitedBuffer
	_, _ = l.Write(bytes.Repeat([]byte("a"), limitedBufferMax))
	_, _ = l.Write([]byte("END"))
	if s := l.String(); len(s) != limitedBufferMax || !strings.HasSuffix(s, "END") {
		t.Errorf("len=%d suffix=%q", len(s), s[len(s)-3:])
	}
}
