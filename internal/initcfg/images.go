package initcfg

import (
	"context"
	"fmt"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/client"
)

// ImageChecker tells whether the local Docker engine has an image. The
// real one is EngineImages; tests use a fake.
type ImageChecker interface {
	// HasImage reports whether the engine has ref (a name the docker CLI
	// takes: "golang:1.26-alpine"). An error means the engine could not
	// tell (unreachable, ...), not that the image is missing.
	HasImage(ctx context.Context, ref string) (bool, error)
}

// ImageInspector is the one method of the moby client EngineImages uses.
type ImageInspector interface {
	ImageInspect(ctx context.Context, ref string, opts ...client.ImageInspectOption) (client.ImageInspectResult, error)
}

// EngineImages asks the Docker engine through the moby client.
type EngineImages struct {
	Client ImageInspector
}

// HasImage implements ImageChecker.
func (e EngineImages) HasImage(ctx context.Context, ref string) (bool, error) {
	if e.Client == nil {
		return false, fmt.Errorf("no Docker engine client")
	}
	_, err := e.Client.ImageInspect(ctx, ref)
	switch {
	case err == nil:
		return true, nil
	case cerrdefs.IsNotFound(err):
		return false, nil
	}
	return false, err
}

// ImageStatus is a base image and whether the local engine has it.
type ImageStatus struct {
	BaseImage
	// Checked is false when the engine was not asked or could not tell.
	Checked bool
	// Present is whether the engine has it (when Checked).
	Present bool
}

// checkImages asks images (nil: nobody) about each base image, within one
// overall timeout. After the first error the engine is asked no more (it is
// unreachable, and every call would wait for it): the error is returned.
//
// known caches the answers across Dockerfiles (nil: no cache).
func checkImages(ctx context.Context, images ImageChecker, bases []BaseImage, known map[string]bool) ([]ImageStatus, error) {
	out := make([]ImageStatus, len(bases))
	var firstErr error
	for i, b := range bases {
		out[i].BaseImage = b
		if ok, seen := known[b.Ref]; seen {
			out[i].Checked, out[i].Present = true, ok
			continue
		}
		if images == nil || firstErr != nil || b.Unresolved {
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		ok, err := images.HasImage(cctx, b.Ref)
		cancel()
		if err != nil {
			firstErr = err
			continue
		}
		out[i].Checked, out[i].Present = true, ok
		if known != nil {
			known[b.Ref] = ok
		}
	}
	return out, firstErr
}

// describeImages renders statuses for a person: "golang:1.26-alpine (in the
// local engine), alpine:3.22 (not in the local engine)".
func describeImages(st []ImageStatus) string {
	var parts []string
	for _, s := range st {
		switch {
		case s.Unresolved:
			parts = append(parts, s.Ref+" (a build arg without a default: set it in build.args)")
		case !s.Checked:
			parts = append(parts, s.Ref)
		case s.Present:
			parts = append(parts, s.Ref+" (in the local engine)")
		default:
			parts = append(parts, s.Ref+" (not in the local engine)")
		}
	}
	return strings.Join(parts, ", ")
}

// missingImages returns the refs the engine said it lacks.
func missingImages(st []ImageStatus) []string {
	var out []string
	for _, s := range st {
		if s.Checked && !s.Present {
			out = append(out, s.Ref)
		}
	}
	return out
}

// EngineUnavailable is an ImageChecker for an engine that could not be
// reached: every answer is err, which init reports once.
func EngineUnavailable(err error) ImageChecker { return unavailable{err} }

type unavailable struct{ err error }

func (u unavailable) HasImage(context.Context, string) (bool, error) { return false, u.err }
