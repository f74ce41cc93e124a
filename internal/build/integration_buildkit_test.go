package build

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"github.com/devloop-dev/devloop/internal/config"
)

// dockerForTest connects to the local engine. Without one the test is
// skipped, or fails when DEVLOOP_REQUIRE_DOCKER=1 (CI: Docker must be there).
func dockerForTest(t *testing.T) *client.Client {
	t.Helper()
	if testing.Short() {
		t.Skip("integration test (-short)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	c, err := NewDockerClient(ctx)
	if err != nil {
		if os.Getenv("DEVLOOP_REQUIRE_DOCKER") == "1" {
			t.Fatalf("DEVLOOP_REQUIRE_DOCKER=1 but Docker is unreachable: %v", err)
		}
		t.Skipf("Docker unreachable: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// recordingAPI tees every build's message stream into streams.
type recordingAPI struct {
	*client.Client
	mu      sync.Mutex
	streams []*bytes.Buffer
}

func (r *recordingAPI) ImageBuild(ctx context.Context, body io.Reader, opts client.ImageBuildOptions) (client.ImageBuildResult, error) {
	res, err := r.Client.ImageBuild(ctx, body, opts)
	if err != nil {
		return res, err
	}
	buf := &bytes.Buffer{}
	r.mu.Lock()
	r.streams = append(r.streams, buf)
	r.mu.Unlock()
	res.Body = struct {
		io.Reader
		io.Closer
	}{io.TeeReader(res.Body, buf), res.Body}
	return res, nil
}

func (r *recordingAPI) DialHijack(ctx context.Context, url, proto string, meta map[string][]string) (net.Conn, error) {
	return r.Client.DialHijack(ctx, url, proto, meta)
}

// itBuilder is a BuildKit builder on the real engine, and a cleanup of every
// image it tagged.
type itBuilder struct {
	t    *testing.T
	c    *client.Client
	rec  *recordingAPI
	b    *Builder
	repo string
}

func newITBuilder(t *testing.T, opts ...Option) *itBuilder {
	c := dockerForTest(t)
	rec := &recordingAPI{Client: c}
	repo := "devloop-buildtest-" + strings.ToLower(strings.NewReplacer("/", "-", "_", "-").Replace(t.Name()))
	it := &itBuilder{t: t, c: c, rec: rec, b: NewBuilder(rec, append([]Option{WithLabels(map[string]string{"devloop.dev/test": "build"})}, opts...)...), repo: repo}
	t.Cleanup(func() {
		imgs, err := c.ImageList(context.Background(), client.ImageListOptions{})
		if err != nil {
			return
		}
		for _, img := range imgs.Items {
			for _, tag := range img.RepoTags {
				if strings.HasPrefix(tag, repo+":") {
					c.ImageRemove(context.Background(), tag, client.ImageRemoveOptions{Force: true, PruneChildren: true})
				}
			}
		}
	})
	return it
}

func (it *itBuilder) build(svc config.Service) (Image, string, error) {
	it.t.Helper()
	if svc.Image == "" {
		svc.Image = it.repo
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var out bytes.Buffer
	img, err := it.b.Build(ctx, svc, &out)
	return img, out.String(), err
}

// run runs a command of the built image's... docker CLI, returning its output.
func dockerCLI(t *testing.T, args ...string) []byte {
	t.Helper()
	out, err := exec.Command("docker", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("docker %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

func TestIntegrationBuildKitSmoke(t *testing.T) {
	it := newITBuilder(t, WithVerbose(true))
	svc := svcIn(t, "it", map[string]string{
		"Dockerfile":    "FROM scratch\nCOPY <<EOT /hello.txt\nhi\nEOT\nCOPY data.txt /\n",
		"data.txt":      "data\n",
		"ignored.txt":   "x",
		".dockerignore": "ignored.txt\n",
	})
	img, out, err := it.build(svc)
	if err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	fmt.Println(out)
	for i, s := range it.rec.streams {
		os.WriteFile(fmt.Sprintf("/tmp/bk-stream-%d.json", i), s.Bytes(), 0o644)
	}
	if !strings.HasPrefix(img.ID, "sha256:") {
		t.Fatal(img)
	}
	var be *BuildError
	_ = errors.As(err, &be)
}
