// Package build builds service images with the Docker Engine API and tags
// them with a content-derived tag (never "latest").
package build

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/moby/moby/client"
	"golang.org/x/sync/errgroup"

	"github.com/devloop-dev/devloop/internal/config"
)

// TagPrefix starts every tag devloop gives an image.
const TagPrefix = "devloop-"

// Image is a built, content-tagged image.
type Image struct {
	// Service is the name of the service it was built for.
	Service string
	// Repo is the image repository (config.Service.Image).
	Repo string
	// Tag is TagPrefix + the first 16 hex characters of ID.
	Tag string
	// ID is the full image ID, "sha256:<64 hex>".
	ID string
}

// Ref returns "Repo:Tag", the reference manifests are rewritten to.
func (i Image) Ref() string { return i.Repo + ":" + i.Tag }

// ContentTag returns the tag for an image ID: TagPrefix + its first 16 hex chars.
func ContentTag(id string) string {
	h := strings.TrimPrefix(id, "sha256:")
	if len(h) > 16 {
		h = h[:16]
	}
	return TagPrefix + h
}

// DockerAPI is the subset of *client.Client the builder needs.
type DockerAPI interface {
	ImageBuild(ctx context.Context, buildContext io.Reader, options client.ImageBuildOptions) (client.ImageBuildResult, error)
	ImageTag(ctx context.Context, options client.ImageTagOptions) (client.ImageTagResult, error)
	ImageInspect(ctx context.Context, imageID string, opts ...client.ImageInspectOption) (client.ImageInspectResult, error)
}

var _ DockerAPI = (*client.Client)(nil)

// NewDockerClient connects to the Docker engine described by the environment
// (DOCKER_HOST, DOCKER_API_VERSION, ...), negotiates the API version and
// checks that the engine answers.
func NewDockerClient(ctx context.Context) (*client.Client, error) {
	c, err := client.New(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		return nil, fmt.Errorf("creating Docker client: %w", err)
	}
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := c.Ping(pctx, client.PingOptions{NegotiateAPIVersion: true}); err != nil {
		c.Close()
		host := os.Getenv("DOCKER_HOST")
		if host == "" {
			host = "unix:///var/run/docker.sock (default)"
		}
		return nil, fmt.Errorf("cannot reach the Docker engine at %s: %w\n"+
			"is Docker running? start it with `sudo systemctl start docker` or `dockerd &`; "+
			"set DOCKER_HOST if it listens elsewhere (e.g. DOCKER_HOST=unix:///run/user/1000/docker.sock)", host, err)
	}
	return c, nil
}

// BuildError is a failed pre-build command or image build, with the tail of
// its output (a compiler's error text survives in Output).
type BuildError struct {
	Service string
	// Stage is "pre-build", "context" or "build".
	Stage string
	// Output is the last lines of output of the failed stage.
	Output string
	Err    error
}

func (e *BuildError) Error() string {
	return fmt.Sprintf("building %s: %s failed: %v", e.Service, e.Stage, e.Err)
}

func (e *BuildError) Unwrap() error { return e.Err }

// Option configures a Builder.
type Option func(*Builder)

// WithTailLines sets how many output lines a BuildError keeps (default 20).
func WithTailLines(n int) Option { return func(b *Builder) { b.tailLines = n } }

// WithLabels adds labels to every built image.
func WithLabels(labels map[string]string) Option {
	return func(b *Builder) { b.labels = labels }
}

// Builder builds services' images.
type Builder struct {
	api       DockerAPI
	tailLines int
	labels    map[string]string
}

// NewBuilder returns a Builder talking to api.
func NewBuilder(api DockerAPI, opts ...Option) *Builder {
	b := &Builder{api: api, tailLines: 20}
	for _, o := range opts {
		o(b)
	}
	return b
}

// Build runs svc's pre-build command (if any), builds its image from its
// context and tags it Repo:devloop-<id16>. Output goes to out as it comes.
func (b *Builder) Build(ctx context.Context, svc config.Service, out io.Writer) (Image, error) {
	if out == nil {
		out = io.Discard
	}
	if pb := svc.Build.PreBuild; pb != nil {
		if err := b.preBuild(ctx, svc.Name, *pb, svc.Build.Context, out); err != nil {
			return Image{}, err
		}
	}

	spec := ContextSpec{Dir: svc.Build.Context, Dockerfile: svc.Build.Dockerfile}
	name, _, err := dockerfileInContext(spec)
	if err != nil {
		return Image{}, &BuildError{Service: svc.Name, Stage: "context", Err: err}
	}
	// Stream the context through a pipe: no temporary file.
	pr, pw := io.Pipe()
	ctxErr := make(chan error, 1)
	go func() {
		_, err := WriteContext(pw, spec)
		pw.CloseWithError(err)
		ctxErr <- err
	}()
	contextFailed := func() error {
		pr.CloseWithError(errBuildDone)
		if err := <-ctxErr; err != nil && !errors.Is(err, errBuildDone) {
			return err
		}
		return nil
	}

	args := make(map[string]*string, len(svc.Build.Args))
	for k, v := range svc.Build.Args {
		args[k] = &v
	}
	res, err := b.api.ImageBuild(ctx, pr, client.ImageBuildOptions{
		Dockerfile:  name,
		Target:      svc.Build.Target,
		BuildArgs:   args,
		Labels:      b.labels,
		Remove:      true,
		ForceRemove: true,
		PullParent:  false,
	})
	if err != nil {
		if cerr := contextFailed(); cerr != nil {
			return Image{}, &BuildError{Service: svc.Name, Stage: "context", Err: cerr}
		}
		return Image{}, &BuildError{Service: svc.Name, Stage: "build", Err: fmt.Errorf("starting image build: %w", err)}
	}
	tail := newLineTail(b.tailLines)
	id, perr := ParseBuildStream(res.Body, io.MultiWriter(out, tail))
	res.Body.Close()
	if cerr := contextFailed(); cerr != nil {
		return Image{}, &BuildError{Service: svc.Name, Stage: "context", Output: tail.String(), Err: cerr}
	}
	if perr != nil {
		return Image{}, &BuildError{Service: svc.Name, Stage: "build", Output: tail.String(), Err: perr}
	}
	if !strings.HasPrefix(id, "sha256:") {
		// Only a short ID was printed ("Successfully built 0123abcd"): resolve it.
		insp, err := b.api.ImageInspect(ctx, id)
		if err != nil {
			return Image{}, &BuildError{Service: svc.Name, Stage: "build", Output: tail.String(), Err: fmt.Errorf("inspecting built image %s: %w", id, err)}
		}
		id = insp.ID
	}

	repo := svc.Image
	if repo == "" {
		repo = svc.Name
	}
	img := Image{Service: svc.Name, Repo: repo, Tag: ContentTag(id), ID: id}
	if _, err := b.api.ImageTag(ctx, client.ImageTagOptions{Source: id, Target: img.Ref()}); err != nil {
		return Image{}, &BuildError{Service: svc.Name, Stage: "build", Err: fmt.Errorf("tagging %s as %s: %w", id, img.Ref(), err)}
	}
	return img, nil
}

// preBuild runs cmd with sh -c in its own process group, killed on ctx cancel.
func (b *Builder) preBuild(ctx context.Context, service string, cmd config.Command, defaultDir string, out io.Writer) error {
	c := exec.CommandContext(ctx, "sh", "-c", cmd.Run)
	c.Dir = cmd.Dir
	if c.Dir == "" {
		c.Dir = defaultDir
	}
	env := os.Environ()
	keys := make([]string, 0, len(cmd.Env))
	for k := range cmd.Env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		env = append(env, k+"="+cmd.Env[k])
	}
	c.Env = env
	tail := newLineTail(b.tailLines)
	w := &syncWriter{w: io.MultiWriter(out, tail)}
	c.Stdout, c.Stderr = w, w
	c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	c.Cancel = func() error { return syscall.Kill(-c.Process.Pid, syscall.SIGKILL) }
	c.WaitDelay = 5 * time.Second
	if err := c.Run(); err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("%w (%v)", ctx.Err(), err)
		}
		return &BuildError{Service: service, Stage: "pre-build", Output: tail.String(), Err: fmt.Errorf("running %q: %w", cmd.Run, err)}
	}
	return nil
}

// errBuildDone closes the context pipe once the daemon has answered.
var errBuildDone = errors.New("build finished")

// buildMessage is one line of the daemon's JSON build stream.
type buildMessage struct {
	Stream      string `json:"stream"`
	Status      string `json:"status"`
	Error       string `json:"error"`
	ErrorDetail *struct {
		Message string `json:"message"`
	} `json:"errorDetail"`
	Aux json.RawMessage `json:"aux"`
}

// ParseBuildStream reads the daemon's JSON message stream, writing every
// "stream" text to out, and returns the built image ID: the full ID from the
// legacy builder's aux message ({"ID":"sha256:..."}), or the short ID of the
// last "Successfully built" line when there is no aux. An error message ends
// the build with that error.
func ParseBuildStream(r io.Reader, out io.Writer) (string, error) {
	dec := json.NewDecoder(r)
	var id, shortID string
	for {
		var m buildMessage
		if err := dec.Decode(&m); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			return "", fmt.Errorf("reading build output: %w", err)
		}
		if m.Stream != "" {
			io.WriteString(out, m.Stream)
			if s, ok := strings.CutPrefix(strings.TrimSpace(m.Stream), "Successfully built "); ok {
				shortID = strings.TrimSpace(s)
			}
		} else if m.Status != "" {
			io.WriteString(out, m.Status+"\n")
		}
		if m.ErrorDetail != nil && m.ErrorDetail.Message != "" {
			return "", errors.New(strings.TrimSpace(m.ErrorDetail.Message))
		}
		if m.Error != "" {
			return "", errors.New(strings.TrimSpace(m.Error))
		}
		if len(m.Aux) > 0 {
			var aux struct {
				ID string `json:"ID"`
			}
			if json.Unmarshal(m.Aux, &aux) == nil && strings.HasPrefix(aux.ID, "sha256:") {
				id = aux.ID
			}
		}
	}
	if id != "" {
		return id, nil
	}
	if shortID != "" {
		return shortID, nil
	}
	return "", errors.New("build finished without reporting an image ID")
}

// BuildAll builds svcs with at most parallel builds at a time. A failure does
// not stop the other builds; it returns every built image and all errors joined.
func BuildAll(ctx context.Context, b *Builder, svcs []config.Service, parallel int, out func(svc string) io.Writer) (map[string]Image, error) {
	if parallel < 1 {
		parallel = 1
	}
	var (
		mu     sync.Mutex
		images = make(map[string]Image, len(svcs))
		errs   []error
	)
	var g errgroup.Group
	g.SetLimit(parallel)
	for _, svc := range svcs {
		g.Go(func() error {
			var w io.Writer = io.Discard
			if out != nil {
				w = out(svc.Name)
			}
			img, err := b.Build(ctx, svc, w)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
			} else {
				images[svc.Name] = img
			}
			return nil
		})
	}
	g.Wait()
	return images, errors.Join(errs...)
}

// tail keeps the last n lines written to it.
type tail struct {
	mu    sync.Mutex
	n     int
	lines []string
	part  string
}

func newTail(n int) *tail { return &tail{n: n} }

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.part + string(p)
	parts := strings.Split(s, "\n")
	t.part = parts[len(parts)-1]
	for _, l := range parts[:len(parts)-1] {
		t.lines = append(t.lines, strings.TrimRight(l, "\r"))
	}
	if len(t.lines) > t.n {
		t.lines = append([]string(nil), t.lines[len(t.lines)-t.n:]...)
	}
	return len(p), nil
}

// String returns the kept lines, joined by newlines.
func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	lines := t.lines
	if t.part != "" {
		lines = append(append([]string(nil), lines...), t.part)
		if len(lines) > t.n {
			lines = lines[len(lines)-t.n:]
		}
	}
	return strings.Join(lines, "\n")
}

// syncWriter serialises writes from a process's stdout and stderr.
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}
