package build

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"github.com/devloop-dev/devloop/internal/config"
)

func writeTree(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func tarNames(t *testing.T, b []byte) []string {
	t.Helper()
	var names []string
	tr := tar.NewReader(bytes.NewReader(b))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeDir {
			continue
		}
		names = append(names, h.Name)
	}
	sort.Strings(names)
	return names
}

func TestWriteContextDockerignore(t *testing.T) {
	tests := []struct {
		name       string
		ignore     string
		dockerfile string
		files      []string
		want       []string
	}{
		{
			name:       "Dockerfile in an ignored directory",
			ignore:     "build\n",
			dockerfile: "build/app.Dockerfile",
			files:      []string{"build/app.Dockerfile", "build/other", "main.go"},
			want:       []string{".dockerignore", "build/app.Dockerfile", "main.go"},
		},
		{
			name:  "no dockerignore",
			files: []string{"Dockerfile", "a.go", "sub/b.go"},
			want:  []string{"Dockerfile", "a.go", "sub/b.go"},
		},
		{
			name:   "excludes files and dirs",
			ignore: "*.log\nnode_modules\n",
			files:  []string{"Dockerfile", "a.go", "x.log", "node_modules/m/i.js", "sub/y.log"},
			want:   []string{".dockerignore", "Dockerfile", "a.go", "sub/y.log"},
		},
		{
			name:   "exception re-includes",
			ignore: "docs\n!docs/keep.md\n**/*.tmp\n",
			files:  []string{"Dockerfile", "docs/a.md", "docs/keep.md", "src/x.tmp", "src/x.go"},
			want:   []string{".dockerignore", "Dockerfile", "docs/keep.md", "src/x.go"},
		},
		{
			name:   "Dockerfile and .dockerignore always sent",
			ignore: "*\n",
			files:  []string{"Dockerfile", "main.go"},
			want:   []string{".dockerignore", "Dockerfile"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			files := map[string]string{}
			if tt.dockerfile == "" {
				tt.dockerfile = "Dockerfile"
			}
			for _, f := range tt.files {
				files[f] = "content of " + f
			}
			if tt.ignore != "" {
				files[".dockerignore"] = tt.ignore
			}
			writeTree(t, dir, files)
			var buf bytes.Buffer
			df, err := WriteContext(&buf, ContextSpec{Dir: dir, Dockerfile: filepath.Join(dir, tt.dockerfile)})
			if err != nil {
				t.Fatal(err)
			}
			if df != tt.dockerfile {
				t.Errorf("dockerfile = %q", df)
			}
			if got := tarNames(t, buf.Bytes()); strings.Join(got, ",") != strings.Join(tt.want, ",") {
				t.Errorf("context files = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestWriteContextDeterministic(t *testing.T) {
	files := map[string]string{"Dockerfile": "FROM scratch\n", "a/b/c.txt": "c", "z.txt": "z", "m.txt": "m"}
	dir1, dir2 := t.TempDir(), t.TempDir()
	writeTree(t, dir1, files)
	writeTree(t, dir2, files)
	// Different mtimes must not matter.
	if err := os.Chtimes(filepath.Join(dir2, "z.txt"), time.Unix(12345, 0), time.Unix(12345, 0)); err != nil {
		t.Fatal(err)
	}
	var b1, b2, b3 bytes.Buffer
	for _, c := range []struct {
		dir string
		buf *bytes.Buffer
	}{{dir1, &b1}, {dir2, &b2}, {dir1, &b3}} {
		if _, err := WriteContext(c.buf, ContextSpec{Dir: c.dir}); err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(b1.Bytes(), b3.Bytes()) || !bytes.Equal(b1.Bytes(), b2.Bytes()) {
		t.Fatal("same content gave different context tars")
	}
	writeTree(t, dir2, map[string]string{"z.txt": "changed"})
	var b4 bytes.Buffer
	if _, err := WriteContext(&b4, ContextSpec{Dir: dir2}); err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(b1.Bytes(), b4.Bytes()) {
		t.Fatal("changed content gave the same context tar")
	}
}

func TestWriteContextExternalDockerfile(t *testing.T) {
	root := t.TempDir()
	writeTree(t, root, map[string]string{"build/app.Dockerfile": "FROM scratch\n", "src/main.go": "package main"})
	var buf bytes.Buffer
	df, err := WriteContext(&buf, ContextSpec{Dir: filepath.Join(root, "src"), Dockerfile: filepath.Join(root, "build/app.Dockerfile")})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(df, ".devloop-dockerfile-") {
		t.Fatalf("dockerfile name = %q", df)
	}
	got := tarNames(t, buf.Bytes())
	want := []string{df, "main.go"}
	sort.Strings(want)
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("files = %v, want %v", got, want)
	}

	// A Dockerfile inside the context is passed by relative path.
	buf.Reset()
	df, err = WriteContext(&buf, ContextSpec{Dir: root, Dockerfile: filepath.Join(root, "build/app.Dockerfile")})
	if err != nil || df != "build/app.Dockerfile" {
		t.Fatalf("inside context: df=%q err=%v", df, err)
	}
}

func TestParseBuildStream(t *testing.T) {
	const id = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	tests := []struct {
		name    string
		stream  string
		wantID  string
		wantErr string
		wantOut string
	}{
		{name: "aux id", stream: SuccessStream(id), wantID: id, wantOut: "Step 1/2 : FROM scratch\n"},
		{name: "short id only", stream: `{"stream":"Successfully built 0123456789ab\n"}`, wantID: "0123456789ab"},
		{
			name: "compiler error",
			stream: `{"stream":"Step 3/4 : RUN go build ./...\n"}` + "\n" +
				`{"stream":"./main.go:7:2: undefined: fmt.Printn\n"}` + "\n" +
				`{"errorDetail":{"code":2,"message":"The command '/bin/sh -c go build ./...' returned a non-zero code: 2"},"error":"The command '/bin/sh -c go build ./...' returned a non-zero code: 2"}` + "\n",
			wantErr: "returned a non-zero code: 2",
			wantOut: "undefined: fmt.Printn",
		},
		{name: "no id", stream: `{"stream":"hi\n"}`, wantErr: "without reporting an image ID"},
		{name: "garbage", stream: `{"stream":`, wantErr: "reading build output"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			got, err := ParseBuildStream(strings.NewReader(tt.stream), &out)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
			} else if err != nil {
				t.Fatal(err)
			}
			if got != tt.wantID {
				t.Errorf("id = %q, want %q", got, tt.wantID)
			}
			if !strings.Contains(out.String(), tt.wantOut) {
				t.Errorf("out = %q, want it to contain %q", out.String(), tt.wantOut)
			}
		})
	}
}

func TestContentTag(t *testing.T) {
	img := Image{Repo: "example.com/team/hello", Tag: ContentTag("sha256:0123456789abcdef0123456789abcdef")}
	if img.Tag != "devloop-0123456789abcdef" {
		t.Fatalf("tag = %q", img.Tag)
	}
	if img.Ref() != "example.com/team/hello:devloop-0123456789abcdef" {
		t.Fatalf("ref = %q", img.Ref())
	}
}

func svcIn(t *testing.T, name string, files map[string]string) config.Service {
	dir := t.TempDir()
	writeTree(t, dir, files)
	return config.Service{Name: name, Build: config.Build{Context: dir, Dockerfile: filepath.Join(dir, "Dockerfile")}}
}

func TestBuildTagsByContent(t *testing.T) {
	fake := &FakeDocker{}
	b := NewBuilder(fake)
	svc := svcIn(t, "web", map[string]string{"Dockerfile": "FROM scratch\nCOPY a /a\n", "a": "1"})
	svc.Image = "registry.local/web"
	svc.Build.Args = map[string]string{"V": "1"}
	svc.Build.Target = "final"
	var out bytes.Buffer
	img, err := b.Build(context.Background(), svc, &out)
	if err != nil {
		t.Fatal(err)
	}
	wantID := fakeID(fake.Contexts[0])
	if img.ID != wantID || img.Tag != ContentTag(wantID) || img.Repo != "registry.local/web" || img.Service != "web" {
		t.Fatalf("image = %+v", img)
	}
	if fake.Tags[img.Ref()] != wantID {
		t.Fatalf("tags = %v", fake.Tags)
	}
	o := fake.Options[0]
	if o.Dockerfile != "Dockerfile" || o.Target != "final" || *o.BuildArgs["V"] != "1" || !o.Remove || !o.ForceRemove || o.PullParent || len(o.Tags) != 0 {
		t.Fatalf("options = %+v", o)
	}
	// Quiet on success: only the classic-builder note, said once.
	if got := out.String(); !strings.HasPrefix(got, "the Docker engine has no BuildKit") || strings.Count(got, "\n") != 1 {
		t.Fatalf("output = %q", got)
	}
	out.Reset()
	img2, err := b.Build(context.Background(), svc, &out)
	if err != nil || img2 != img {
		t.Fatalf("rebuild = %+v, %v; want %+v", img2, err, img)
	}
	if out.Len() != 0 || fake.Pings != 1 {
		t.Fatalf("second build said %q after %d pings", out.String(), fake.Pings)
	}
}

func TestBuildErrorKeepsCompilerOutput(t *testing.T) {
	fake := &FakeDocker{Respond: func([]byte, client.ImageBuildOptions) (string, error) {
		return `{"stream":"main.go:3:1: syntax error: unexpected }\n"}` + "\n" +
			`{"errorDetail":{"message":"returned a non-zero code: 1"},"error":"returned a non-zero code: 1"}` + "\n", nil
	}}
	svc := svcIn(t, "api", map[string]string{"Dockerfile": "FROM scratch\n"})
	_, err := NewBuilder(fake).Build(context.Background(), svc, io.Discard)
	var be *BuildError
	if !errors.As(err, &be) || be.Stage != "build" || be.Service != "api" {
		t.Fatalf("err = %#v", err)
	}
	if !strings.Contains(be.Output, "syntax error: unexpected }") {
		t.Fatalf("output = %q", be.Output)
	}
	if len(fake.Tags) != 0 {
		t.Fatal("failed build was tagged")
	}
}

func TestPreBuild(t *testing.T) {
	t.Run("failure", func(t *testing.T) {
		fake := &FakeDocker{}
		svc := svcIn(t, "api", map[string]string{"Dockerfile": "FROM scratch\n"})
		svc.Build.PreBuild = &config.Command{Run: `for i in $(seq 1 30); do echo line$i; done; echo "boom: $GREETING" >&2; exit 3`, Env: map[string]string{"GREETING": "hi"}}
		var out bytes.Buffer
		_, err := NewBuilder(fake).Build(context.Background(), svc, &out)
		var be *BuildError
		if !errors.As(err, &be) || be.Stage != "pre-build" {
			t.Fatalf("err = %v", err)
		}
		if !strings.Contains(be.Output, "boom: hi") || strings.Contains(be.Output, "line10\n") || !strings.Contains(be.Output, "line30") {
			t.Fatalf("output tail = %q", be.Output)
		}
		if !strings.Contains(out.String(), "line1\n") {
			t.Fatalf("streamed output = %q", out.String())
		}
		if len(fake.Contexts) != 0 {
			t.Fatal("image built after failed pre-build")
		}
	})
	t.Run("success runs in dir", func(t *testing.T) {
		fake := &FakeDocker{}
		svc := svcIn(t, "api", map[string]string{"Dockerfile": "FROM scratch\n"})
		svc.Build.PreBuild = &config.Command{Run: "echo built > artifact"}
		if _, err := NewBuilder(fake).Build(context.Background(), svc, io.Discard); err != nil {
			t.Fatal(err)
		}
		names := tarNames(t, fake.Contexts[0])
		if strings.Join(names, ",") != "Dockerfile,artifact" {
			t.Fatalf("context = %v", names)
		}
	})
	t.Run("cancel kills the process group", func(t *testing.T) {
		svc := svcIn(t, "api", map[string]string{"Dockerfile": "FROM scratch\n"})
		svc.Build.PreBuild = &config.Command{Run: "echo started; sleep 60 & wait"}
		ctx, cancel := context.WithCancel(context.Background())
		pr, pw := io.Pipe()
		done := make(chan error, 1)
		go func() {
			_, err := NewBuilder(&FakeDocker{}).Build(ctx, svc, pw)
			done <- err
		}()
		buf := make([]byte, 8)
		if _, err := io.ReadFull(pr, buf); err != nil { // "started\n": the command runs
			t.Fatal(err)
		}
		go io.Copy(io.Discard, pr)
		cancel()
		err := <-done
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v", err)
		}
	})
}

// A lost connection to the engine is told apart from a build's own failure
// that mentions a refused connection (a registry that refuses a pull):
// only the first is retried by itself.
func TestEngineConnLost(t *testing.T) {
	for _, tt := range []struct {
		err  error
		want bool
	}{
		{errors.New("reading build output: unexpected EOF"), true},
		{fmt.Errorf("starting image build: %w", errors.New("Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?")), true},
		{fmt.Errorf("wrapped: %w", io.ErrUnexpectedEOF), true},
		{errors.New(`failed to resolve source metadata for docker.io/library/alpine:3: dial tcp 127.0.0.1:443: connect: connection refused`), false},
		{errors.New(`process "/bin/sh -c make" did not complete successfully: exit code: 2`), false},
		{nil, false},
	} {
		if got := EngineConnLost(tt.err); got != tt.want {
			t.Errorf("EngineConnLost(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
}

// tarFiles reads a build context tar.
func tarFiles(t *testing.T, b []byte) map[string]string {
	t.Helper()
	out := map[string]string{}
	tr := tar.NewReader(bytes.NewReader(b))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(tr)
		out[h.Name] = string(body)
	}
}

func TestBuildAddsTheSupervisorLayerForRestartRules(t *testing.T) {
	defer func(f func(string) ([]byte, error)) { supervisorBinary = f }(supervisorBinary)
	supervisorBinary = func(arch string) ([]byte, error) { return []byte("supervisor for " + arch), nil }
	fake := &FakeDocker{Entrypoint: []string{"/hello"}, Cmd: []string{"--port", "8080"}}
	b := NewBuilder(fake)
	svc := svcIn(t, "web", map[string]string{"Dockerfile": "FROM scratch\nCOPY a /a\n", "a": "1"})
	svc.Sync = []config.SyncRule{{Src: svc.Build.Context + "/a", Dest: "/a", Restart: true}}
	img, err := b.Build(context.Background(), svc, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if len(fake.Contexts) != 2 {
		t.Fatalf("%d builds, want the image and the supervisor layer", len(fake.Contexts))
	}
	app := fakeID(fake.Contexts[0])
	layer := tarFiles(t, fake.Contexts[1])
	wantDF := "FROM web:" + ContentTag(app) + "-app\nCOPY supervisor /.devloop/supervisor\n" +
		`ENTRYPOINT ["/.devloop/supervisor","/hello"]` + "\n" + `CMD ["--port","8080"]` + "\n"
	if layer["Dockerfile"] != wantDF || layer["supervisor"] != "supervisor for amd64" {
		t.Fatalf("layer context: %q", layer)
	}
	if fake.Tags["web:"+ContentTag(app)+"-app"] != app {
		t.Fatalf("the layer's base is not tagged: %v", fake.Tags)
	}
	if want := fakeID(fake.Contexts[1]); img.ID != want || img.Tag != ContentTag(want) {
		t.Fatalf("image %+v is not the layer's %s", img, want)
	}

	// A devloop built without the supervisor builds the image as it is and says so once.
	supervisorBinary = func(arch string) ([]byte, error) { return nil, errors.New("no supervisor here") }
	fake2 := &FakeDocker{}
	b2 := NewBuilder(fake2)
	var out bytes.Buffer
	for range 2 {
		img, err = b2.Build(context.Background(), svc, &out)
		if err != nil {
			t.Fatal(err)
		}
	}
	if img.ID != fakeID(fake2.Contexts[0]) || strings.Count(out.String(), "no supervisor here: images are built without it, restarts rebuild instead") != 1 {
		t.Fatalf("image %+v, output %q", img, out.String())
	}
}
