package build

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"sync"

	"github.com/moby/moby/api/types/image"
	"github.com/moby/moby/client"
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
}

var _ DockerAPI = (*FakeDocker)(nil)

// ImageBuild implements DockerAPI.
func (f *FakeDocker) ImageBuild(ctx context.Context, r io.Reader, opts client.ImageBuildOptions) (client.ImageBuildResult, error) {
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
	return client.ImageInspectResult{InspectResponse: image.InspectResponse{ID: full}}, nil
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
