package build

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"sync"

	controlapi "github.com/moby/buildkit/api/services/control"
	dockerspec "github.com/moby/docker-image-spec/specs-go/v1"
	"github.com/moby/moby/api/types/build"
	"github.com/moby/moby/api/types/image"
	"github.com/moby/moby/client"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// FakeDocker is an in-memory DockerAPI for tests. ImageBuild reads the whole
// context and answers with Respond's stream (default: a success whose image
// ID is derived from the context bytes).
type FakeDocker struct {
	mu sync.Mutex
	// Respond returns the JSON message stream for a build of ctxTar.
	Respond func(ctxTar []byte, opts client.ImageBuildOptions) (string, error)
	// Contexts and Options record every build.
	Contexts [][]byte
	Options  []client.ImageBuildOptions
	// Tags maps each tagged reference to its source ID.
	Tags map[string]string
	// TagErr, when set, fails ImageTag.
	TagErr error
	// BuilderVersion is what Ping reports: "1" (the default) has the classic
	// builder answer, "2" BuildKit.
	BuilderVersion build.BuilderVersion
	// RespondBuildKit returns the message stream of a BuildKit build
	// (default: BuildKitSuccessStream of an ID derived from the options).
	RespondBuildKit func(opts client.ImageBuildOptions) (string, error)
	// Entrypoint and Cmd are every inspected image's config.
	Entrypoint, Cmd []string
	// Pings counts Ping calls; Sessions counts hijacked /session connections.
	Pings, Sessions int
	// dialed is closed by the first DialHijack: like the daemon, a BuildKit
	// build waits for its session.
	dialed      chan struct{}
	dialedOnce  sync.Once
	closeDialed sync.Once
}

func (f *FakeDocker) dialedCh() chan struct{} {
	f.dialedOnce.Do(func() { f.dialed = make(chan struct{}) })
	return f.dialed
}

var _ DockerAPI = (*FakeDocker)(nil)

// ImageBuild implements DockerAPI.
func (f *FakeDocker) ImageBuild(ctx context.Context, r io.Reader, opts client.ImageBuildOptions) (client.ImageBuildResult, error) {
	if opts.Version == build.BuilderBuildKit {
		select {
		case <-f.dialedCh():
		case <-ctx.Done():
			return client.ImageBuildResult{}, ctx.Err()
		}
		f.mu.Lock()
		f.Options = append(f.Options, opts)
		respond := f.RespondBuildKit
		f.mu.Unlock()
		if respond == nil {
			respond = func(opts client.ImageBuildOptions) (string, error) {
				key := fmt.Sprint(opts.Dockerfile, opts.Target, opts.BuildArgs, opts.Labels)
				return BuildKitSuccessStream(fakeID([]byte(key))), nil
			}
		}
		s, err := respond(opts)
		if err != nil {
			return client.ImageBuildResult{}, err
		}
		return client.ImageBuildResult{Body: io.NopCloser(bytes.NewBufferString(s))}, nil
	}
	b, err := io.ReadAll(r)
	if err != nil {
		return client.ImageBuildResult{}, err
	}
	f.mu.Lock()
	f.Contexts = append(f.Contexts, b)
	f.Options = append(f.Options, opts)
	respond := f.Respond
	f.mu.Unlock()
	if respond == nil {
		respond = func(ctxTar []byte, _ client.ImageBuildOptions) (string, error) {
			return SuccessStream(fakeID(ctxTar)), nil
		}
	}
	s, err := respond(b, opts)
	if err != nil {
		return client.ImageBuildResult{}, err
	}
	return client.ImageBuildResult{Body: io.NopCloser(bytes.NewBufferString(s))}, nil
}

// ImageTag implements DockerAPI.
func (f *FakeDocker) ImageTag(ctx context.Context, opts client.ImageTagOptions) (client.ImageTagResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.TagErr != nil {
		return client.ImageTagResult{}, f.TagErr
	}
	if f.Tags == nil {
		f.Tags = map[string]string{}
	}
	f.Tags[opts.Target] = opts.Source
	return client.ImageTagResult{}, nil
}

// ImageInspect implements DockerAPI: it expands a short ID to a fake full one.
func (f *FakeDocker) ImageInspect(ctx context.Context, id string, _ ...client.ImageInspectOption) (client.ImageInspectResult, error) {
	full := "sha256:" + id
	for len(full) < 71 {
		full += "0"
	}
	return client.ImageInspectResult{InspectResponse: image.InspectResponse{ID: full, Architecture: "amd64",
		Config: &dockerspec.DockerOCIImageConfig{ImageConfig: ocispec.ImageConfig{Entrypoint: f.Entrypoint, Cmd: f.Cmd}}}}, nil
}

// SuccessStream is a legacy-builder message stream ending in an aux ID.
func SuccessStream(id string) string {
	return `{"stream":"Step 1/2 : FROM scratch\n"}` + "\n" +
		`{"stream":" ---\u003e Running in 1234\n"}` + "\n" +
		fmt.Sprintf(`{"aux":{"ID":%q}}`, id) + "\n" +
		fmt.Sprintf(`{"stream":"Successfully built %s\n"}`, id[7:19]) + "\n"
}

func fakeID(b []byte) string {
	return fmt.Sprintf("sha256:%x", sha256.Sum256(b))
}

// Ping implements DockerAPI.
func (f *FakeDocker) Ping(ctx context.Context, _ client.PingOptions) (client.PingResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.Pings++
	v := f.BuilderVersion
	if v == "" {
		v = build.BuilderV1
	}
	return client.PingResult{BuilderVersion: v}, nil
}

// DialHijack implements DockerAPI: the session gets one end of a pipe whose
// other end is closed, so it ends at once.
func (f *FakeDocker) DialHijack(ctx context.Context, url, proto string, meta map[string][]string) (net.Conn, error) {
	if url != "/session" || proto != "h2c" {
		return nil, fmt.Errorf("unexpected hijack %s %s", url, proto)
	}
	a, b := net.Pipe()
	b.Close()
	f.mu.Lock()
	f.Sessions++
	f.mu.Unlock()
	ch := f.dialedCh()
	f.closeDialed.Do(func() { close(ch) })
	return a, nil
}

// BuildKitSuccessStream is a BuildKit build's message stream: one progress
// update (a cached vertex) and the image ID.
func BuildKitSuccessStream(id string) string {
	return traceMessage(&controlapi.StatusResponse{Vertexes: []*controlapi.Vertex{{
		Digest: "sha256:aaaa", Name: "[1/1] COPY a /a", Cached: true,
	}}}) + fmt.Sprintf(`{"id":"moby.image.id","aux":{"ID":%q}}`, id) + "\n"
}

// traceMessage encodes resp as the daemon does: protobuf bytes in a JSON
// string, the aux of a moby.buildkit.trace message.
func traceMessage(resp *controlapi.StatusResponse) string {
	dt, err := resp.MarshalVT()
	if err != nil {
		panic(err)
	}
	aux, _ := json.Marshal(dt)
	return fmt.Sprintf(`{"id":"moby.buildkit.trace","aux":%s}`, aux) + "\n"
}
