package build

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"strings"
	"testing"

	controlapi "github.com/moby/buildkit/api/services/control"
	bkclient "github.com/moby/buildkit/client"
	"github.com/moby/moby/api/types/build"
	"github.com/moby/moby/client"

	"github.com/devloop-dev/devloop/internal/config"
)

// TestReadBuildKitStreamRecorded decodes a stream recorded from Docker
// 28.5.2 (a heredoc COPY and a COPY, FROM scratch).
func TestReadBuildKitStreamRecorded(t *testing.T) {
	f, err := os.Open("testdata/buildkit-success.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var log bytes.Buffer
	id, err := ReadBuildKitStream(context.Background(), f, &log)
	if err != nil {
		t.Fatal(err)
	}
	if id != "sha256:3bfef49af39aaf6aea2f847c297be8c5211fe4cb9914a0364761441d9e4697ca" {
		t.Errorf("id = %s", id)
	}
	for _, want := range []string{"[internal] load build definition from Dockerfile", "#5 [1/2] COPY <<EOT /hello.txt", "#6 [2/2] COPY data.txt /", "#7 DONE"} {
		if !strings.Contains(log.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, log.String())
		}
	}
}

func TestDecodeBuildKitStream(t *testing.T) {
	const id = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	failed := traceMessage(&controlapi.StatusResponse{
		Vertexes: []*controlapi.Vertex{{Digest: "sha256:bbbb", Name: "[2/2] RUN go build ./...", Error: "process did not complete successfully: exit code: 1"}},
		Logs:     []*controlapi.VertexLog{{Vertex: "sha256:bbbb", Stream: 2, Msg: []byte("./main.go:7:2: undefined: fmt.Printn\n")}},
	})
	tests := []struct {
		name     string
		stream   string
		wantID   string
		wantErr  string
		statuses int
	}{
		{name: "success", stream: BuildKitSuccessStream(id), wantID: id, statuses: 1},
		{name: "failure", stream: failed + `{"errorDetail":{"message":"failed to solve: process \"/bin/sh -c go build ./...\" did not complete successfully: exit code: 1"},"error":"x"}` + "\n",
			wantErr: "did not complete successfully", statuses: 1},
		{name: "no image id", stream: failed, wantErr: "without reporting an image ID", statuses: 1},
		{name: "bad trace", stream: `{"id":"moby.buildkit.trace","aux":"!!"}`, wantErr: "reading build progress"},
		{name: "bad protobuf", stream: `{"id":"moby.buildkit.trace","aux":"/////w=="}`, wantErr: "reading build progress"},
		{name: "garbage", stream: `{"id":`, wantErr: "reading build output"},
		{name: "unknown aux ignored", stream: `{"id":"moby.future","aux":{"x":1}}` + "\n" + `{"id":"moby.image.id","aux":{"ID":"` + id + `"}}`, wantID: id},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := 0
			got, err := decodeBuildKitStream(strings.NewReader(tt.stream), func(*bkclient.SolveStatus) { n++ }, io.Discard)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
			} else if err != nil || got != tt.wantID {
				t.Fatalf("id, err = %q, %v", got, err)
			}
			if n != tt.statuses {
				t.Errorf("%d status updates, want %d", n, tt.statuses)
			}
		})
	}
}

func FuzzDecodeBuildKitStream(f *testing.F) {
	f.Add([]byte(BuildKitSuccessStream("sha256:00")))
	if b, err := os.ReadFile("testdata/buildkit-success.jsonl"); err == nil {
		f.Add(b)
	}
	f.Add([]byte(`{"id":"moby.buildkit.trace","aux":"CgA="}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var log bytes.Buffer
		id, err := ReadBuildKitStream(context.Background(), bytes.NewReader(data), &log)
		if err == nil && !strings.HasPrefix(id, "sha256:") {
			t.Fatalf("id %q without error", id)
		}
	})
}

func buildKitFake() *FakeDocker { return &FakeDocker{BuilderVersion: build.BuilderBuildKit} }

func TestBuildKitRequest(t *testing.T) {
	fake := buildKitFake()
	svc := svcIn(t, "web", map[string]string{"docker/app.Dockerfile": "FROM scratch\n", "a": "1"})
	svc.Build.Dockerfile = svc.Build.Context + "/docker/app.Dockerfile"
	svc.Build.Args = map[string]string{"V": "1"}
	svc.Build.Target = "final"
	var out bytes.Buffer
	img, err := NewBuilder(fake, WithLabels(map[string]string{"l": "v"})).Build(context.Background(), svc, &out)
	if err != nil {
		t.Fatal(err)
	}
	if out.Len() != 0 {
		t.Errorf("a successful build printed %q", out.String())
	}
	o := fake.Options[0]
	if o.Version != build.BuilderBuildKit || o.SessionID == "" || o.RemoteContext != "client-session" ||
		o.Dockerfile != "app.Dockerfile" || o.Target != "final" || *o.BuildArgs["V"] != "1" || o.Labels["l"] != "v" || o.PullParent {
		t.Errorf("options = %+v", o)
	}
	if fake.Sessions != 1 || fake.Tags[img.Ref()] != img.ID {
		t.Errorf("sessions %d, tags %v", fake.Sessions, fake.Tags)
	}
}

func TestBuildKitVerboseAndFailureOutput(t *testing.T) {
	step := traceMessage(&controlapi.StatusResponse{
		Vertexes: []*controlapi.Vertex{{Digest: "sha256:bbbb", Name: "[2/2] RUN make"}},
		Logs:     []*controlapi.VertexLog{{Vertex: "sha256:bbbb", Stream: 1, Msg: []byte("compiling main.c\n")}},
	})
	svc := svcIn(t, "web", map[string]string{"Dockerfile": "FROM scratch\n"})

	t.Run("verbose streams the steps", func(t *testing.T) {
		fake := buildKitFake()
		fake.RespondBuildKit = func(client.ImageBuildOptions) (string, error) {
			return step + `{"id":"moby.image.id","aux":{"ID":"sha256:01"}}`, nil
		}
		var out bytes.Buffer
		if _, err := NewBuilder(fake, WithVerbose(true)).Build(context.Background(), svc, &out); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(out.String(), "[2/2] RUN make") || !strings.Contains(out.String(), "compiling main.c") {
			t.Errorf("verbose output = %q", out.String())
		}
	})
	t.Run("failure shows the steps", func(t *testing.T) {
		fake := buildKitFake()
		fake.RespondBuildKit = func(client.ImageBuildOptions) (string, error) {
			return step + `{"errorDetail":{"message":"failed to solve: exit code: 2"}}`, nil
		}
		var out bytes.Buffer
		_, err := NewBuilder(fake).Build(context.Background(), svc, &out)
		var be *BuildError
		if !errors.As(err, &be) || be.Stage != "build" || !strings.Contains(err.Error(), "exit code: 2") {
			t.Fatalf("err = %v", err)
		}
		if !strings.Contains(out.String(), "compiling main.c") || !strings.Contains(be.Output, "compiling main.c") {
			t.Errorf("output = %q, BuildError.Output = %q", out.String(), be.Output)
		}
		if len(fake.Tags) != 0 {
			t.Error("a failed build was tagged")
		}
	})
}

func TestBuildKitCancelledBuildIsQuiet(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	fake := buildKitFake()
	fake.RespondBuildKit = func(client.ImageBuildOptions) (string, error) {
		cancel() // superseded while it ran
		return traceMessage(&controlapi.StatusResponse{Vertexes: []*controlapi.Vertex{{Digest: "sha256:cc", Name: "[1/1] RUN sleep"}}}) +
			`{"errorDetail":{"message":"context canceled"}}`, nil
	}
	svc := svcIn(t, "web", map[string]string{"Dockerfile": "FROM scratch\n"})
	var out bytes.Buffer
	if _, err := NewBuilder(fake).Build(ctx, svc, &out); err == nil {
		t.Fatal("a cancelled build succeeded")
	}
	if out.Len() != 0 {
		t.Errorf("a cancelled build printed %q", out.String())
	}
}

func TestBuildKitSecretEnvMissing(t *testing.T) {
	fake := buildKitFake()
	svc := svcIn(t, "web", map[string]string{"Dockerfile": "FROM scratch\n"})
	svc.Build.Secrets = []config.Secret{{ID: "token", Env: "DEVLOOP_TEST_UNSET_TOKEN"}}
	os.Unsetenv("DEVLOOP_TEST_UNSET_TOKEN")
	_, err := NewBuilder(fake).Build(context.Background(), svc, io.Discard)
	var be *BuildError
	if !errors.As(err, &be) || be.Stage != "context" || !strings.Contains(err.Error(), `build secret "token": environment variable DEVLOOP_TEST_UNSET_TOKEN is not set`) {
		t.Fatalf("err = %v", err)
	}
	if len(fake.Options) != 0 {
		t.Error("built without the secret")
	}
}

func TestSecretStoreServesValues(t *testing.T) {
	dir := t.TempDir()
	writeTree(t, dir, map[string]string{"npmrc": "file-value"})
	store, err := secretStore([]config.Secret{{ID: "f", Src: dir + "/npmrc"}, {ID: "e", Env: "E"}},
		func(k string) (string, bool) { return "", k == "E" })
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("E", "env-value")
	for id, want := range map[string]string{"f": "file-value", "e": "env-value"} {
		got, err := store.GetSecret(context.Background(), id)
		if err != nil || string(got) != want {
			t.Errorf("secret %s = %q, %v", id, got, err)
		}
	}
	if _, err := store.GetSecret(context.Background(), "other"); err == nil {
		t.Error("an unconfigured secret was served")
	}
}

func TestBuilderDetection(t *testing.T) {
	svc := svcIn(t, "web", map[string]string{"Dockerfile": "FROM scratch\n"})
	tests := []struct {
		name      string
		version   build.BuilderVersion
		env       string
		buildKit  bool
		wantNote  string
		wantPings int
	}{
		{name: "engine with BuildKit", version: "2", buildKit: true, wantPings: 1},
		{name: "engine without BuildKit", version: "1", wantNote: `no BuildKit (it reports builder version "1")`, wantPings: 1},
		{name: "DOCKER_BUILDKIT=0", version: "2", env: "0", wantNote: "DOCKER_BUILDKIT=0"},
		{name: "DOCKER_BUILDKIT=1", version: "1", env: "1", buildKit: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake := &FakeDocker{BuilderVersion: tt.version}
			b := NewBuilder(fake, WithGetenv(func(string) string { return tt.env }))
			var out bytes.Buffer
			for range 2 {
				if _, err := b.Build(context.Background(), svc, &out); err != nil {
					t.Fatal(err)
				}
			}
			if got := fake.Options[0].Version == build.BuilderBuildKit; got != tt.buildKit {
				t.Errorf("BuildKit = %v", got)
			}
			if fake.Pings != tt.wantPings {
				t.Errorf("%d pings", fake.Pings)
			}
			if tt.wantNote == "" && out.Len() != 0 || tt.wantNote != "" && (!strings.Contains(out.String(), tt.wantNote) || strings.Count(out.String(), "\n") != 1) {
				t.Errorf("output = %q, want the note %q once", out.String(), tt.wantNote)
			}
		})
	}
}

func TestSyntaxHint(t *testing.T) {
	pullErr := errors.New(`failed to solve: docker/dockerfile:1.7: failed to resolve source metadata for docker.io/docker/dockerfile:1.7: dial tcp: lookup registry-1.docker.io: no such host`)
	tests := []struct {
		name, dockerfile string
		err              error
		want             string
		same             bool
	}{
		{name: "first line", dockerfile: "# syntax=docker/dockerfile:1.7\nFROM scratch\n", err: pullErr,
			want: "/p/Dockerfile:1: `# syntax=docker/dockerfile:1.7` asks the engine to pull the Dockerfile frontend image docker/dockerfile:1.7, which failed: failed to solve"},
		{name: "after another directive", dockerfile: "# escape=`\n# syntax = docker/dockerfile:1.7\nFROM scratch\n", err: pullErr, want: "/p/Dockerfile:2: "},
		{name: "after a comment it is a comment", dockerfile: "# a comment\n# syntax=docker/dockerfile:1.7\n", err: pullErr, same: true},
		{name: "fix is named", dockerfile: "# syntax=docker/dockerfile:1.7\n", err: pullErr, want: "delete that line"},
		{name: "unrelated failure", dockerfile: "# syntax=docker/dockerfile:1.7\n", err: errors.New("exit code: 1"), same: true},
		{name: "no directive", dockerfile: "FROM scratch\n", err: pullErr, same: true},
		{name: "directive after an instruction is not one", dockerfile: "FROM scratch\n# syntax=docker/dockerfile:1.7\n", err: pullErr, same: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := syntaxHint("/p/Dockerfile", []byte(tt.dockerfile), tt.err)
			if tt.same {
				if got != tt.err {
					t.Errorf("got %v, want the error unchanged", got)
				}
				return
			}
			if !strings.Contains(got.Error(), tt.want) || !errors.Is(got, tt.err) {
				t.Errorf("got %v, want %q", got, tt.want)
			}
		})
	}
}

func FuzzSyntaxDirective(f *testing.F) {
	f.Add([]byte("# syntax=docker/dockerfile:1\nFROM scratch\n"))
	f.Add([]byte("#!/usr/bin/env buildctl\n# syntax = x\n"))
	f.Add([]byte("\xef\xbb\xbf# syntax=a\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		ref, line := SyntaxDirective(data)
		if (ref == "") != (line == 0) {
			t.Fatalf("ref %q at line %d", ref, line)
		}
		if line > bytes.Count(data, []byte("\n"))+1 {
			t.Fatalf("line %d beyond the file", line)
		}
	})
}
