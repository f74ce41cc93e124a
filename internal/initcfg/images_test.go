package initcfg

import (
	"context"
	"errors"
	"fmt"
	"testing"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/client"
)

// fakeInspector answers ImageInspect from a set, like the engine: a missing
// image is a not-found error; err, when set, fails every call.
type fakeInspector struct {
	have map[string]bool
	err  error
}

func (f fakeInspector) ImageInspect(_ context.Context, ref string, _ ...client.ImageInspectOption) (client.ImageInspectResult, error) {
	if f.err != nil {
		return client.ImageInspectResult{}, f.err
	}
	if !f.have[ref] {
		return client.ImageInspectResult{}, fmt.Errorf("No such image: %s: %w", ref, cerrdefs.ErrNotFound)
	}
	return client.ImageInspectResult{}, nil
}

func TestEngineImages(t *testing.T) {
	e := EngineImages{Client: fakeInspector{have: map[string]bool{"golang:1.26": true}}}
	if ok, err := e.HasImage(context.Background(), "golang:1.26"); !ok || err != nil {
		t.Errorf("present image: %v, %v", ok, err)
	}
	if ok, err := e.HasImage(context.Background(), "alpine:3.22"); ok || err != nil {
		t.Errorf("missing image: %v, %v (a missing image is no error)", ok, err)
	}
	down := errors.New("Cannot connect to the Docker daemon")
	if _, err := (EngineImages{Client: fakeInspector{err: down}}).HasImage(context.Background(), "x"); !errors.Is(err, down) {
		t.Errorf("unreachable engine: %v", err)
	}
	if _, err := (EngineImages{}).HasImage(context.Background(), "x"); err == nil {
		t.Error("no client, no error")
	}
	if _, err := EngineUnavailable(down).HasImage(context.Background(), "x"); !errors.Is(err, down) {
		t.Errorf("EngineUnavailable: %v", err)
	}
}
