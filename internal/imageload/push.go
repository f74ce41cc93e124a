package imageload

import (
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/distribution/reference"
	"github.com/moby/moby/client"
)

// PushAPI is the subset of the Docker client the Pusher needs.
type PushAPI interface {
	ImageTag(ctx context.Context, options client.ImageTagOptions) (client.ImageTagResult, error)
	ImagePush(ctx context.Context, image string, options client.ImagePushOptions) (client.ImagePushResponse, error)
}

var _ PushAPI = (*client.Client)(nil)

// Pusher delivers images by pushing them to a registry the nodes pull from
// (cluster.registry, delivery push): the image is tagged
// <host>/<repo>:<tag> in the local engine and pushed through the Docker
// Engine API, which sends only the layers the registry lacks. No node is
// involved, so it serves any cluster that pulls from that registry.
type Pusher struct {
	docker  PushAPI
	host    string
	verbose bool
	auth    func() (string, error)
}

// NewPusher returns a Pusher to the registry at host (e.g.
// "localhost:5001"; Docker pushes to a loopback registry over plain HTTP).
func NewPusher(docker PushAPI, host string, verbose bool) *Pusher {
	return &Pusher{docker: docker, host: host, verbose: verbose}
}

// WithAuth makes the pushes send auth's X-Registry-Auth header (what `docker
// login` stored for the registry: dockerhost.AuthHeader); without it, none.
func (p *Pusher) WithAuth(auth func() (string, error)) *Pusher {
	p.auth = auth
	return p
}

// RegistryRef is ref (a repository with a tag) as pushed to the registry at
// host: "hello:devloop-1a2b" → "localhost:5001/hello:devloop-1a2b". A
// repository with its own registry host keeps it as a path
// ("example.com/team/api" → "localhost:5001/example.com/team/api",
// "localhost:5000/api" → "localhost:5001/localhost-5000/api").
func RegistryRef(host, ref string) (string, error) {
	named, err := reference.ParseNormalizedNamed(ref)
	if err != nil {
		return "", err
	}
	tagged, ok := reference.TagNameOnly(named).(reference.Tagged)
	if !ok {
		return "", fmt.Errorf("image %s has no tag", ref)
	}
	path := reference.Path(named)
	if d := reference.Domain(named); d != "docker.io" {
		path = strings.ReplaceAll(d, ":", "-") + "/" + path // a port is no path component
	} else {
		path = strings.TrimPrefix(path, "library/")
	}
	out := host + "/" + path + ":" + tagged.Tag()
	if _, err := reference.ParseNormalizedNamed(out); err != nil {
		return "", err
	}
	return out, nil
}

// ProbeNodes implements the loader's probe: a push needs to know nothing
// about the nodes.
func (p *Pusher) ProbeNodes(ctx context.Context, clusterName string) *NodeProbe {
	np := &NodeProbe{cluster: clusterName, done: make(chan struct{})}
	close(np.done)
	return np
}

// Load pushes ref; clusterName is not used.
func (p *Pusher) Load(ctx context.Context, clusterName, ref string, out io.Writer) (Result, error) {
	return p.Push(ctx, ref, out)
}

// LoadProbed pushes ref (the probe is not used).
func (p *Pusher) LoadProbed(ctx context.Context, _ *NodeProbe, ref string, out io.Writer) (Result, error) {
	return p.Push(ctx, ref, out)
}

// Push tags ref as RegistryRef(host, ref) and pushes it. The Result's
// Pushed is the reference the manifests must use.
func (p *Pusher) Push(ctx context.Context, ref string, out io.Writer) (Result, error) {
	if out == nil {
		out = io.Discard
	}
	res := Result{Ref: ref}
	target, err := RegistryRef(p.host, ref)
	if err != nil {
		return res, fmt.Errorf("pushing image %s: %w", ref, err)
	}
	begin := time.Now()
	if _, err := p.docker.ImageTag(ctx, client.ImageTagOptions{Source: ref, Target: target}); err != nil {
		return res, fmt.Errorf("pushing image %s: tagging it %s: %w", ref, target, err)
	}
	header := noAuth
	if p.auth != nil {
		if header, err = p.auth(); err != nil {
			return res, fmt.Errorf("pushing image %s to %s: the registry's credentials: %w", ref, p.host, err)
		}
	}
	resp, err := p.docker.ImagePush(ctx, target, client.ImagePushOptions{RegistryAuth: header})
	if err != nil {
		return res, fmt.Errorf("pushing image %s to %s: %w", ref, p.host, err)
	}
	pushed, existed, err := readPush(ctx, resp)
	if err != nil {
		return res, fmt.Errorf("pushing image %s to %s: %w", ref, p.host, err)
	}
	res.Pushed = target
	res.Push = &PushResult{Registry: p.host, LayersPushed: len(pushed), LayersExisted: len(existed), Duration: time.Since(begin)}
	if p.verbose {
		fmt.Fprintf(out, "pushed %s: %d layer(s) sent, %d already in the registry, in %s\n", target,
			res.Push.LayersPushed, res.Push.LayersExisted, res.Push.Duration.Round(time.Millisecond))
	}
	return res, nil
}

// noAuth is the X-Registry-Auth header of a push without credentials: a
// registry on loopback needs none, and the engine wants the header all the
// same (an empty JSON object, as the docker CLI sends).
var noAuth = base64.URLEncoding.EncodeToString([]byte("{}"))

// engineSaid is an error the engine reported from its push (as opposed to
// one reaching the engine itself: a restarting engine is not an unreachable
// relay).
type engineSaid struct{ msg string }

func (e engineSaid) Error() string { return e.msg }

// readPush reads a push's progress to its end (closing it): the layers
// pushed and those the registry had (by the engine's short IDs), or the
// error the engine reported (an engineSaid) or reading failed with.
func readPush(ctx context.Context, resp client.ImagePushResponse) (pushed, existed map[string]bool, err error) {
	defer resp.Close()
	pushed, existed = map[string]bool{}, map[string]bool{}
	for msg, err := range resp.JSONMessages(ctx) {
		if err != nil {
			return nil, nil, err
		}
		if msg.Error != nil {
			return nil, nil, engineSaid{msg.Error.Message}
		}
		switch {
		case msg.ID == "":
		case msg.Status == "Pushed":
			pushed[msg.ID] = true
		case msg.Status == "Layer already exists" || strings.HasPrefix(msg.Status, "Mounted from"):
			existed[msg.ID] = true
		}
	}
	return pushed, existed, nil
}

// PushResult is what a push did.
type PushResult struct {
	// Registry is the registry's host.
	Registry string
	// LayersPushed and LayersExisted count the layers sent and those the
	// registry already had.
	LayersPushed, LayersExisted int
	Duration                    time.Duration
}
