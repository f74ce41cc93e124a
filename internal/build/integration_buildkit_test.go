package build

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
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

// dockerCLI runs the docker CLI, failing the test on error.
func dockerCLI(t *testing.T, args ...string) []byte {
	t.Helper()
	out, err := exec.Command("docker", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("docker %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// baseImage builds a tiny shell image from the host's static busybox (no
// registry here) and returns its reference.
func (it *itBuilder) baseImage() string {
	it.t.Helper()
	bb, err := os.ReadFile("/bin/busybox")
	if err != nil {
		it.t.Fatalf("a static busybox is needed for the base image: %v", err)
	}
	dir := it.t.TempDir()
	writeTree(it.t, dir, map[string]string{
		"Dockerfile": "FROM scratch\nCOPY busybox /bin/busybox\nRUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]\n",
		"busybox":    string(bb),
	})
	os.Chmod(dir+"/busybox", 0o755)
	img, out, err := it.build(config.Service{Name: "base", Image: it.repo + "-base", Build: config.Build{Context: dir, Dockerfile: dir + "/Dockerfile"}})
	if err != nil {
		it.t.Fatalf("building the busybox base: %v\n%s", err, out)
	}
	repo := it.repo + "-base"
	it.t.Cleanup(func() { it.removeRepo(repo) })
	return img.Ref()
}

func (it *itBuilder) removeRepo(repo string) {
	imgs, err := it.c.ImageList(context.Background(), client.ImageListOptions{})
	if err != nil {
		return
	}
	for _, img := range imgs.Items {
		for _, tag := range img.RepoTags {
			if strings.HasPrefix(tag, repo+":") {
				it.c.ImageRemove(context.Background(), tag, client.ImageRemoveOptions{Force: true, PruneChildren: true})
			}
		}
	}
}

// cat returns a file of an image, read by running it.
func (it *itBuilder) cat(img Image, path string) string {
	it.t.Helper()
	return string(dockerCLI(it.t, "run", "--rm", "--entrypoint", "cat", img.Ref(), path))
}

// mustBuild builds svc, failing the test with the build's output.
func (it *itBuilder) mustBuild(svc config.Service) (Image, string) {
	it.t.Helper()
	img, out, err := it.build(svc)
	if err != nil {
		it.t.Fatalf("build: %v\n%s", err, out)
	}
	return img, out
}

func uniqueID(t *testing.T) string {
	return fmt.Sprintf("devloop-it-%d", time.Now().UnixNano())
}

// TestIntegrationBuildKitFeatures builds, on the real engine, what users'
// Dockerfiles use; each subtest checks the image.
func TestIntegrationBuildKitFeatures(t *testing.T) {
	it := newITBuilder(t)
	base := it.baseImage()

	t.Run("quiet on success, heredocs and COPY --link", func(t *testing.T) {
		svc := svcIn(t, "it", map[string]string{
			"Dockerfile": "FROM " + base + "\nCOPY <<EOT /hello.txt\nhello\nEOT\nRUN <<EOF\nset -e\necho from-heredoc > /run.txt\nEOF\nCOPY --link data.txt /data.txt\n",
			"data.txt":   "data\n",
		})
		img, out := it.mustBuild(svc)
		if out != "" {
			t.Errorf("a successful build printed %q", out)
		}
		if got := it.cat(img, "/hello.txt") + it.cat(img, "/run.txt") + it.cat(img, "/data.txt"); got != "hello\nfrom-heredoc\ndata\n" {
			t.Errorf("files = %q", got)
		}
	})

	t.Run("cache mount survives between builds", func(t *testing.T) {
		id := uniqueID(t)
		svc := svcIn(t, "it", map[string]string{
			"Dockerfile": "FROM " + base + "\nARG N\nRUN --mount=type=cache,id=" + id + ",target=/cache sh -c 'echo $N >> /cache/log; cp /cache/log /out'\n",
		})
		svc.Build.Args = map[string]string{"N": "1"}
		first, _ := it.mustBuild(svc)
		svc.Build.Args = map[string]string{"N": "2"}
		second, _ := it.mustBuild(svc)
		if got := it.cat(first, "/out"); got != "1\n" {
			t.Errorf("first /out = %q", got)
		}
		if got := it.cat(second, "/out"); got != "1\n2\n" {
			t.Errorf("second /out = %q, want the first build's line kept in the cache", got)
		}
	})

	t.Run("bind mount", func(t *testing.T) {
		svc := svcIn(t, "it", map[string]string{
			"Dockerfile": "FROM " + base + "\nRUN --mount=type=bind,source=data.txt,target=/mnt/d.txt cp /mnt/d.txt /out\n",
			"data.txt":   "bound\n",
		})
		img, _ := it.mustBuild(svc)
		if got := it.cat(img, "/out"); got != "bound\n" {
			t.Errorf("/out = %q", got)
		}
	})

	t.Run("build args", func(t *testing.T) {
		svc := svcIn(t, "it", map[string]string{
			"Dockerfile": "FROM " + base + "\nARG GREETING=default\nARG FILE\nCOPY ${FILE} /copied\nRUN echo $GREETING > /out\n",
			"x.txt":      "x\n",
		})
		svc.Build.Args = map[string]string{"GREETING": "hello args", "FILE": "x.txt"}
		img, _ := it.mustBuild(svc)
		if got := it.cat(img, "/out") + it.cat(img, "/copied"); got != "hello args\nx\n" {
			t.Errorf("files = %q", got)
		}
	})

	t.Run("parallel independent stages", func(t *testing.T) {
		// Each stage waits (up to 60 s) for the other's mark in a shared
		// cache mount: the build finishes only if both run at once.
		id := uniqueID(t)
		stage := func(name, me, other string) string {
			return "FROM " + base + " AS " + name + "\nRUN --mount=type=cache,id=" + id + ",target=/r,sharing=shared sh -c " +
				"'touch /r/" + me + "; i=0; while [ ! -e /r/" + other + " ]; do i=$((i+1)); [ $i -gt 600 ] && exit 1; sleep 0.1; done; echo " + name + " > /" + name + "'\n"
		}
		svc := svcIn(t, "it", map[string]string{
			"Dockerfile": stage("a", "a", "b") + stage("b", "b", "a") +
				"FROM " + base + "\nCOPY --from=a /a /a\nCOPY --from=b /b /b\n",
		})
		img, _ := it.mustBuild(svc)
		if got := it.cat(img, "/a") + it.cat(img, "/b"); got != "a\nb\n" {
			t.Errorf("files = %q", got)
		}
	})

	t.Run("target", func(t *testing.T) {
		svc := svcIn(t, "it", map[string]string{
			"Dockerfile": "FROM " + base + " AS mid\nRUN echo mid > /stage\nFROM mid AS final\nRUN echo final > /stage\n",
		})
		svc.Build.Target = "mid"
		img, _ := it.mustBuild(svc)
		if got := it.cat(img, "/stage"); got != "mid\n" {
			t.Errorf("/stage = %q", got)
		}
	})

	t.Run("dockerignore and Dockerfile.dockerignore", func(t *testing.T) {
		svc := svcIn(t, "it", map[string]string{
			"Dockerfile":    "FROM " + base + "\nCOPY . /ctx\nRUN cd /ctx && find . -type f | sort > /out\n",
			".dockerignore": "*.log\nsecret/\n",
			"a.txt":         "a", "x.log": "x", "secret/key": "k", "sub/b.txt": "b",
			"docker/app.Dockerfile":              "FROM " + base + "\nCOPY . /ctx\nRUN cd /ctx && find . -type f | sort > /out\n",
			"docker/app.Dockerfile.dockerignore": "a.txt\ndocker\n",
		})
		img, _ := it.mustBuild(svc)
		if got := it.cat(img, "/out"); got != "./.dockerignore\n./Dockerfile\n./a.txt\n./docker/app.Dockerfile\n./docker/app.Dockerfile.dockerignore\n./sub/b.txt\n" {
			t.Errorf(".dockerignore: files = %q", got)
		}
		svc.Build.Dockerfile = svc.Build.Context + "/docker/app.Dockerfile"
		img, _ = it.mustBuild(svc)
		// app.Dockerfile.dockerignore replaces .dockerignore.
		if got := it.cat(img, "/out"); got != "./.dockerignore\n./Dockerfile\n./secret/key\n./sub/b.txt\n./x.log\n" {
			t.Errorf("app.Dockerfile.dockerignore: files = %q", got)
		}
	})

	t.Run("failure shows the steps", func(t *testing.T) {
		svc := svcIn(t, "it", map[string]string{
			"Dockerfile": "FROM " + base + "\nRUN echo compiling; echo 'main.go:3: undefined: x' >&2; exit 3\n",
		})
		_, out, err := it.build(svc)
		var be *BuildError
		if !errors.As(err, &be) || be.Stage != "build" || !strings.Contains(err.Error(), "exit code: 3") {
			t.Fatalf("err = %v", err)
		}
		if !strings.Contains(out, "main.go:3: undefined: x") || !strings.Contains(out, "RUN echo compiling") {
			t.Errorf("output lacks the failed step:\n%s", out)
		}
		if !strings.Contains(be.Output, "main.go:3: undefined: x") {
			t.Errorf("BuildError.Output = %q", be.Output)
		}
	})

	t.Run("syntax line naming a frontend image", func(t *testing.T) {
		svc := svcIn(t, "it", map[string]string{
			"Dockerfile": "# syntax=docker/dockerfile:1.99\nFROM " + base + "\n",
		})
		_, out, err := it.build(svc)
		if err == nil {
			t.Fatal("built without pulling the frontend")
		}
		msg := err.Error()
		t.Logf("the error a user sees: %v", err)
		if !strings.Contains(msg, "Dockerfile:1: `# syntax=docker/dockerfile:1.99`") || !strings.Contains(msg, "delete that line") {
			t.Errorf("err = %v\n%s", err, out)
		}
	})
}

// TestIntegrationBuildKitSecrets checks a secret reaches RUN and nothing
// else: not devloop's output, the image history, or the saved image.
func TestIntegrationBuildKitSecrets(t *testing.T) {
	it := newITBuilder(t, WithVerbose(true))
	base := it.baseImage()
	fileValue := fmt.Sprintf("file-secret-%d", time.Now().UnixNano())
	envValue := fmt.Sprintf("env-secret-%d", time.Now().UnixNano())
	canary := fmt.Sprintf("canary-%d", time.Now().UnixNano())
	t.Setenv("DEVLOOP_IT_TOKEN", envValue)
	svc := svcIn(t, "it", map[string]string{
		"Dockerfile": "FROM " + base + "\nARG CANARY\n" +
			"RUN --mount=type=secret,id=npmrc --mount=type=secret,id=token sh -c " +
			"'cat /run/secrets/npmrc /run/secrets/token | sha256sum > /out; echo $CANARY > /canary'\n",
		"npmrc": fileValue,
	})
	svc.Build.Args = map[string]string{"CANARY": canary}
	svc.Build.Secrets = []config.Secret{{ID: "npmrc", Src: svc.Build.Context + "/npmrc"}, {ID: "token", Env: "DEVLOOP_IT_TOKEN"}}
	// The secret file is in the context: .dockerignore keeps it from the image.
	writeTree(t, svc.Build.Context, map[string]string{".dockerignore": "npmrc\n"})
	img, out := it.mustBuild(svc)

	sum := sha256.Sum256([]byte(fileValue + envValue))
	if got := it.cat(img, "/out"); !strings.HasPrefix(got, hex.EncodeToString(sum[:])) {
		t.Fatalf("RUN did not see the secrets: /out = %q", got)
	}
	history := string(dockerCLI(t, "history", "--no-trunc", img.Ref()))
	saved := savedImage(t, it.c, img.Ref())
	for _, v := range []string{fileValue, envValue} {
		if strings.Contains(out, v) {
			t.Errorf("devloop's output holds a secret:\n%s", out)
		}
		if strings.Contains(history, v) {
			t.Errorf("docker history holds a secret:\n%s", history)
		}
		if saved.contains(v) {
			t.Errorf("the saved image holds a secret")
		}
	}
	// The searches can fail: the canary, written like the secret, is found.
	if !saved.contains(canary) || !strings.Contains(history, canary) {
		t.Errorf("canary %s not found in the saved image or the history: the search is broken", canary)
	}

	// A missing environment variable fails before the build, naming it only.
	os.Unsetenv("DEVLOOP_IT_TOKEN")
	_, _, err := it.build(svc)
	if err == nil || !strings.Contains(err.Error(), "environment variable DEVLOOP_IT_TOKEN is not set") {
		t.Errorf("err = %v", err)
	}
}

// savedBlobs is a `docker save` archive: every file, and every gzip file
// decompressed.
type savedBlobs [][]byte

func (s savedBlobs) contains(v string) bool {
	for _, b := range s {
		if bytes.Contains(b, []byte(v)) {
			return true
		}
	}
	return false
}

func savedImage(t *testing.T, c *client.Client, ref string) savedBlobs {
	t.Helper()
	res, err := c.ImageSave(context.Background(), []string{ref})
	if err != nil {
		t.Fatal(err)
	}
	defer res.Close()
	var blobs savedBlobs
	tr := tar.NewReader(res)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		blobs = append(blobs, b)
		if len(b) > 2 && b[0] == 0x1f && b[1] == 0x8b {
			zr, err := gzip.NewReader(bytes.NewReader(b))
			if err != nil {
				t.Fatalf("%s: %v", h.Name, err)
			}
			d, err := io.ReadAll(zr)
			if err != nil {
				t.Fatalf("%s: %v", h.Name, err)
			}
			blobs = append(blobs, d)
		}
	}
	return blobs
}

// TestIntegrationClassicBuilder builds with DOCKER_BUILDKIT=0, saying so once.
func TestIntegrationClassicBuilder(t *testing.T) {
	it := newITBuilder(t, WithGetenv(func(k string) string {
		if k == "DOCKER_BUILDKIT" {
			return "0"
		}
		return ""
	}))
	svc := svcIn(t, "it", map[string]string{"Dockerfile": "FROM scratch\nCOPY a /a\n", "a": "a"})
	_, out := it.mustBuild(svc)
	if !strings.HasPrefix(out, "DOCKER_BUILDKIT=0: building with the classic builder") {
		t.Errorf("output = %q", out)
	}
	if _, out := it.mustBuild(svc); out != "" {
		t.Errorf("second build said %q", out)
	}
}

// TestIntegrationMultistageExample builds examples/multistage on golang:1.26
// (built offline into the engine by the e2e harness): the final stage is
// small, and after an edit the warm build cache mount means the standard
// library is not compiled again.
func TestIntegrationMultistageExample(t *testing.T) {
	it := newITBuilder(t)
	if _, err := it.c.ImageInspect(context.Background(), "golang:1.26"); err != nil {
		if os.Getenv("DEVLOOP_REQUIRE_DOCKER") == "1" {
			t.Fatalf("golang:1.26 is not in the engine (e2e/setup.sh builds it): %v", err)
		}
		if os.Getenv("DEVLOOP_REQUIRE_DOCKER") == "1" {
			t.Fatalf("DEVLOOP_REQUIRE_DOCKER=1 but golang:1.26 is not in the engine (e2e/setup.sh builds it): %v", err)
		}
		t.Skipf("golang:1.26 is not in the engine (e2e/setup.sh builds it): %v", err)
	}
	dir := t.TempDir()
	if err := os.CopyFS(dir, os.DirFS("../../examples/multistage")); err != nil {
		t.Fatal(err)
	}
	svc := config.Service{Name: "multistage", Build: config.Build{Context: dir, Dockerfile: dir + "/Dockerfile"}}
	img, _ := it.mustBuild(svc)
	insp, err := it.c.ImageInspect(context.Background(), img.Ref())
	if err != nil {
		t.Fatal(err)
	}
	if insp.Config == nil || strings.Join(insp.Config.Entrypoint, " ") != "/app" || insp.Size > 20<<20 {
		t.Errorf("final image: entrypoint %v, %d bytes", insp.Config, insp.Size)
	}

	// The same build, listing what it compiles (go build -v) into a log read
	// from the build stage, with the build cache under a test-only id.
	df, err := os.ReadFile(dir + "/Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	probe := strings.NewReplacer(
		"target=/root/.cache/go-build", "id=devloop-buildtest-gocache,target=/root/.cache/go-build",
		"go build -trimpath", "go build -v -trimpath",
		"-o /out/app .", "-o /out/app . 2> /build.log",
	).Replace(string(df))
	if probe == string(df) || !strings.Contains(probe, "2> /build.log") {
		t.Fatalf("the example's Dockerfile changed shape; update this test:\n%s", df)
	}
	writeTree(t, dir, map[string]string{"Dockerfile": probe})
	svc.Build.Target = "build"
	it.mustBuild(svc) // warms the test cache (it may be warm already)
	// A new edit each run, so BuildKit's layer cache cannot answer for the compile.
	main, _ := os.ReadFile(dir + "/main.go")
	writeTree(t, dir, map[string]string{"main.go": strings.Replace(string(main), "hello from a multi-stage build", fmt.Sprintf("edited %d", time.Now().UnixNano()), 1)})
	warm, _ := it.mustBuild(svc)
	log := it.cat(warm, "/build.log")
	if !strings.Contains(log, "example.com/multistage") || strings.Contains(log, "net/http") {
		t.Errorf("after an edit the warm build compiled:\n%s\nwant only example.com/multistage", log)
	}
}
