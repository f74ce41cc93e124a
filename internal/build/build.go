// Package build builds service images with the Docker Engine API and tags
// them with a content-derived tag (never "latest").
package build

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	buildtypes "github.com/moby/moby/api/types/build"
	"github.com/moby/moby/client"
	"google.golang.org/grpc/codes"
	grpcstatus "google.golang.org/grpc/status"

	"github.com/devloop-dev/devloop/internal/config"
	"github.com/devloop-dev/devloop/internal/dockerhost"
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
	// Delivered is the reference the nodes pull the image by when the
	// delivery gave it another one (pushed to a registry:
	// "localhost:5001/<repo>:<tag>"); empty when it is Ref.
	Delivered string
}

// Ref returns "Repo:Tag", the image's name in the local engine.
func (i Image) Ref() string { return i.Repo + ":" + i.Tag }

// DeployRef returns the reference manifests are rewritten to: Delivered,
// else Ref.
func (i Image) DeployRef() string {
	if i.Delivered != "" {
		return i.Delivered
	}
	return i.Ref()
}

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
	// DialHijack opens the /session endpoint a BuildKit build's session runs on.
	DialHijack(ctx context.Context, url, proto string, meta map[string][]string) (net.Conn, error)
	// Ping says which builder the engine has (BuilderVersion "2": BuildKit).
	Ping(ctx context.Context, options client.PingOptions) (client.PingResult, error)
}

var _ DockerAPI = (*client.Client)(nil)

// NewDockerClient connects to the Docker engine the docker CLI would use
// (DOCKER_HOST, DOCKER_CONTEXT, the current docker context: see
// internal/dockerhost), negotiates the API version and checks that the
// engine answers.
func NewDockerClient(ctx context.Context) (*client.Client, error) {
	c, _, err := NewDockerClientEndpoint(ctx, os.Getenv)
	return c, err
}

// NewDockerClientEndpoint is NewDockerClient reading the environment with
// getenv, and returning the endpoint too: give its Env() to docker CLI
// children (kind's provider) so they reach the same engine.
func NewDockerClientEndpoint(ctx context.Context, getenv func(string) string) (*client.Client, dockerhost.Endpoint, error) {
	ep, err := dockerhost.Resolve(getenv)
	if err != nil {
		return nil, ep, fmt.Errorf("finding the Docker engine: %w", err)
	}
	c, err := client.New(append(ep.ClientOptions(), client.WithAPIVersionNegotiation())...)
	if err != nil {
		return nil, ep, fmt.Errorf("creating Docker client for %s: %w", ep, err)
	}
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := c.Ping(pctx, client.PingOptions{NegotiateAPIVersion: true}); err != nil {
		c.Close()
		return nil, ep, fmt.Errorf("cannot reach the Docker engine at %s: %w\n"+
			"is Docker running? start it (Docker Desktop, colima start, `sudo systemctl start docker`), "+
			"or point devloop at it as you would the docker CLI: DOCKER_HOST (e.g. DOCKER_HOST=unix:///run/user/1000/docker.sock), "+
			"DOCKER_CONTEXT, or `docker context use NAME`", ep, err)
	}
	return c, ep, nil
}

// BuildError is a failed pre-build command or image build, with the tail of
// its output (a compiler's error text survives in Output).
type BuildError struct {
	Service string
	// Stage is "pre-build", "context", "build" or "supervisor layer".
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

// WithVerbose streams every build step to the build's output. Without it a
// build is quiet on success and prints its steps only when it fails.
func WithVerbose(v bool) Option { return func(b *Builder) { b.verbose = v } }

// WithGetenv replaces os.Getenv for DOCKER_BUILDKIT (tests).
func WithGetenv(getenv func(string) string) Option { return func(b *Builder) { b.getenv = getenv } }

// stepLines is how many lines of a build's steps are kept to print when it fails.
const stepLines = 400

// Builder builds services' images.
type Builder struct {
	api       DockerAPI
	tailLines int
	labels    map[string]string
	verbose   bool
	getenv    func(string) string

	detect      sync.Once
	hasBuildKit bool
	// classicNote is said once, by the first build, when the engine has no BuildKit.
	classicNote string
	noteOnce    sync.Once
	// supervisorNote is said once when this devloop has no supervisor to add.
	supervisorNote sync.Once
}

// NewBuilder returns a Builder talking to api.
func NewBuilder(api DockerAPI, opts ...Option) *Builder {
	b := &Builder{api: api, tailLines: 20, getenv: os.Getenv}
	for _, o := range opts {
		o(b)
	}
	return b
}

// useBuildKit reports whether builds go through BuildKit, deciding once as
// the docker CLI does: DOCKER_BUILDKIT=0/1 when set, otherwise the builder
// version the engine reports on /_ping.
func (b *Builder) useBuildKit(ctx context.Context) bool {
	b.detect.Do(func() {
		if v, err := strconv.ParseBool(b.getenv("DOCKER_BUILDKIT")); err == nil {
			b.hasBuildKit = v
			if !v {
				b.classicNote = "DOCKER_BUILDKIT=0: building with the classic builder (no RUN --mount, heredocs or COPY --link)"
			}
			return
		}
		pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		res, err := b.api.Ping(pctx, client.PingOptions{})
		if err != nil || res.BuilderVersion == "" || res.BuilderVersion == buildtypes.BuilderBuildKit {
			// Unknown: try BuildKit, which every engine since 23.0 has.
			b.hasBuildKit = true
			return
		}
		b.classicNote = fmt.Sprintf("the Docker engine has no BuildKit (it reports builder version %q): building with the classic builder "+
			"(no RUN --mount, heredocs or COPY --link); Docker 23 and later build with BuildKit", res.BuilderVersion)
	})
	return b.hasBuildKit
}

// Build runs svc's pre-build command (if any), builds its image from its
// context (with BuildKit, or the classic builder where the engine has none)
// and tags it Repo:devloop-<id16>. The pre-build's output goes to out as it
// comes; the build's steps go to out as they come with WithVerbose, and
// otherwise only when the build fails.
func (b *Builder) Build(ctx context.Context, svc config.Service, out io.Writer) (Image, error) {
	if out == nil {
		out = io.Discard
	}
	if pb := svc.Build.PreBuild; pb != nil {
		if err := b.preBuild(ctx, svc.Name, *pb, svc.Build.Context, out); err != nil {
			return Image{}, err
		}
	}

	steps := newLineTail(stepLines) // bounded, whatever the build prints
	log := io.Writer(steps)
	if b.verbose {
		log = io.MultiWriter(out, steps)
	}
	var (
		id  string
		err error
	)
	if b.useBuildKit(ctx) {
		df := svc.Build.Dockerfile
		if df == "" {
			df = "Dockerfile"
		}
		if !filepath.IsAbs(df) {
			df = filepath.Join(svc.Build.Context, df)
		}
		id, err = b.buildKit(ctx, buildKitSpec{
			contextDir: svc.Build.Context,
			dockerfile: df,
			target:     svc.Build.Target,
			args:       svc.Build.Args,
			secrets:    svc.Build.Secrets,
		}, log)
	} else {
		b.noteOnce.Do(func() { fmt.Fprintln(out, b.classicNote) })
		id, err = b.classic(ctx, svc, log)
	}
	if err != nil {
		stage := "build"
		var se *stageError
		if errors.As(err, &se) {
			stage, err = se.stage, se.err
		}
		all := steps.String()
		// A cancelled build (superseded by a newer change) is not a failure to show.
		if !b.verbose && all != "" && ctx.Err() == nil {
			io.WriteString(out, all+"\n")
		}
		return Image{}, &BuildError{Service: svc.Name, Stage: stage, Output: lastLines(all, b.tailLines), Err: err}
	}

	repo := svc.Image
	if repo == "" {
		repo = svc.Name
	}
	if svc.Restarts() {
		// A sync rule restarts the process: the dev image carries devloop's
		// supervisor in front of its entrypoint.
		wrapped, err := b.withSupervisor(ctx, svc, repo, id, log)
		var missing *noSupervisorError
		switch {
		case errors.As(err, &missing):
			// Built without its supervisor: the image runs as it is, and
			// each restart falls back to a rebuild (the loop says why).
			b.supervisorNote.Do(func() { fmt.Fprintf(out, "%v: images are built without it, restarts rebuild instead\n", missing.err) })
			err = nil
		case err == nil:
			id = wrapped
		}
		if err != nil {
			all := steps.String()
			if !b.verbose && all != "" && ctx.Err() == nil {
				io.WriteString(out, all+"\n")
			}
			return Image{}, &BuildError{Service: svc.Name, Stage: "supervisor layer", Output: lastLines(all, b.tailLines), Err: err}
		}
	}
	img := Image{Service: svc.Name, Repo: repo, Tag: ContentTag(id), ID: id}
	if _, err := b.api.ImageTag(ctx, client.ImageTagOptions{Source: id, Target: img.Ref()}); err != nil {
		return Image{}, &BuildError{Service: svc.Name, Stage: "build", Err: fmt.Errorf("tagging %s as %s: %w", id, img.Ref(), err)}
	}
	return img, nil
}

// classic builds svc with the classic builder: the context as a tar stream.
func (b *Builder) classic(ctx context.Context, svc config.Service, log io.Writer) (string, error) {
	spec := ContextSpec{Dir: svc.Build.Context, Dockerfile: svc.Build.Dockerfile}
	name, _, err := dockerfileInContext(spec)
	if err != nil {
		return "", &stageError{"context", err}
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
			return "", &stageError{"context", cerr}
		}
		return "", fmt.Errorf("starting image build: %w", err)
	}
	id, perr := ParseBuildStream(res.Body, log)
	res.Body.Close()
	if cerr := contextFailed(); cerr != nil {
		return "", &stageError{"context", cerr}
	}
	if perr != nil {
		return "", perr
	}
	if !strings.HasPrefix(id, "sha256:") {
		// Only a short ID was printed ("Successfully built 0123abcd"): resolve it.
		insp, err := b.api.ImageInspect(ctx, id)
		if err != nil {
			return "", fmt.Errorf("inspecting built image %s: %w", id, err)
		}
		id = insp.ID
	}
	return id, nil
}

// lastLines returns the last n lines of s.
func lastLines(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// PreBuild runs svc's pre-build command, if it has one, as Build would:
// what a live update runs instead of the image build.
func (b *Builder) PreBuild(ctx context.Context, svc config.Service, out io.Writer) error {
	if out == nil {
		out = io.Discard
	}
	if pb := svc.Build.PreBuild; pb != nil {
		return b.preBuild(ctx, svc.Name, *pb, svc.Build.Context, out)
	}
	return nil
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
	ID          string `json:"id"`
	Stream      string `json:"stream"`
	Status      string `json:"status"`
	Error       string `json:"error"`
	ErrorDetail *struct {
		Message string `json:"message"`
	} `json:"errorDetail"`
	Aux json.RawMessage `json:"aux"`
}

// eachMessage decodes the engine's JSON message stream of a build and
// calls fn with each message; an error message ends the build with its error.
func eachMessage(r io.Reader, fn func(buildMessage) error) error {
	dec := json.NewDecoder(r)
	for {
		var m buildMessage
		if err := dec.Decode(&m); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return fmt.Errorf("reading build output: %w", err)
		}
		if m.ErrorDetail != nil && m.ErrorDetail.Message != "" {
			return errors.New(strings.TrimSpace(m.ErrorDetail.Message))
		}
		if m.Error != "" {
			return errors.New(strings.TrimSpace(m.Error))
		}
		if err := fn(m); err != nil {
			return err
		}
	}
}

// ParseBuildStream reads the daemon's JSON message stream, writing every
// "stream" text to out, and returns the built image ID: the full ID from the
// legacy builder's aux message ({"ID":"sha256:..."}), or the short ID of the
// last "Successfully built" line when there is no aux. An error message ends
// the build with that error.
func ParseBuildStream(r io.Reader, out io.Writer) (string, error) {
	var id, shortID string
	err := eachMessage(r, func(m buildMessage) error {
		if m.Stream != "" {
			io.WriteString(out, m.Stream)
			if s, ok := strings.CutPrefix(strings.TrimSpace(m.Stream), "Successfully built "); ok {
				shortID = strings.TrimSpace(s)
			}
		} else if m.Status != "" {
			io.WriteString(out, m.Status+"\n")
		}
		if len(m.Aux) > 0 {
			var aux struct {
				ID string `json:"ID"`
			}
			if json.Unmarshal(m.Aux, &aux) == nil && strings.HasPrefix(aux.ID, "sha256:") {
				id = aux.ID
			}
		}
		return nil
	})
	if err != nil {
		return "", err
	}
	if id != "" {
		return id, nil
	}
	if shortID != "" {
		return shortID, nil
	}
	return "", errors.New("build finished without reporting an image ID")
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

// EngineConnLost reports whether err is a broken or refused connection to
// the Docker engine rather than a failure of the build itself: the engine
// stopped or restarted while the build ran (a build's own failure, a RUN
// that exits non-zero or a Dockerfile error, arrives as a message on a
// healthy stream instead).
func EngineConnLost(err error) bool {
	if err == nil {
		return false
	}
	// Not "connection refused" and the like in general: a base image's
	// registry that refuses is a build's own failure, and retrying it
	// would only fail again.
	if client.IsErrConnectionFailed(err) || errors.Is(err, io.ErrUnexpectedEOF) {
		return true
	}
	if st, ok := grpcstatus.FromError(err); ok && st.Code() == codes.Unavailable {
		return true
	}
	// The session's and the stream's errors do not always wrap their cause.
	msg := err.Error()
	for _, s := range []string{"Cannot connect to the Docker daemon", "failed to connect to the docker API",
		"reading build output: unexpected EOF", "error reading from server: EOF", "transport is closing"} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}
