package imageload

import (
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"strings"

	"github.com/distribution/reference"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// An OCI layout's index.json names the image; what it points to is an image
// manifest, or an index of manifests (the containerd image store: one per
// platform, plus BuildKit's attestation manifests, whose blobs docker save
// may leave out: kind#3795).

const (
	annotationImageName     = "io.containerd.image.name"
	annotationReferenceType = "vnd.docker.reference.type"
	referenceAttestation    = "attestation-manifest"
	maxIndexDepth           = 4
)

// pickTop returns the descriptor in index.json that names the image.
func pickTop(indexJSON []byte, named reference.Named) (ocispec.Descriptor, error) {
	var idx ocispec.Index
	if err := json.Unmarshal(indexJSON, &idx); err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("parsing index.json of docker save: %w", err)
	}
	switch len(idx.Manifests) {
	case 0:
		return ocispec.Descriptor{}, errors.New("index.json of docker save lists no image")
	case 1:
		return idx.Manifests[0], nil
	}
	tag := ""
	if t, ok := named.(reference.Tagged); ok {
		tag = t.Tag()
	}
	for _, d := range idx.Manifests {
		if d.Annotations[annotationImageName] == named.String() {
			return d, nil
		}
	}
	for _, d := range idx.Manifests {
		if tag != "" && d.Annotations[ocispec.AnnotationRefName] == tag {
			return d, nil
		}
	}
	return ocispec.Descriptor{}, fmt.Errorf("index.json of docker save lists %d images, none named %s", len(idx.Manifests), named)
}

// resolved is the image manifest chosen for a node.
type resolved struct {
	desc     ocispec.Descriptor // the manifest's descriptor (from its parent)
	manifest ocispec.Manifest
	platform *ocispec.Platform
}

func isIndex(mt string) bool { return mt == ocispec.MediaTypeImageIndex || mt == mediaTypeManifestList }

func isManifest(mt string) bool {
	return mt == ocispec.MediaTypeImageManifest || mt == mediaTypeManifest
}

// heldBlobs reads blobs from a map.
func heldBlobs(held map[string][]byte) func(ocispec.Descriptor) ([]byte, error) {
	return func(d ocispec.Descriptor) ([]byte, error) {
		b, ok := held[d.Digest.String()]
		if !ok {
			return nil, fmt.Errorf("docker save lacks %s %s (or it is too large for metadata)", orUnknown(d.MediaType), d.Digest)
		}
		return b, nil
	}
}

// resolveManifest follows d (through indexes) to the image manifest for
// platform p, reading blobs with get.
func resolveManifest(get func(ocispec.Descriptor) ([]byte, error), d ocispec.Descriptor, p ocispec.Platform) (resolved, error) {
	var plat *ocispec.Platform
	for depth := 0; ; depth++ {
		if depth > maxIndexDepth {
			return resolved{}, fmt.Errorf("docker save: indexes nested deeper than %d", maxIndexDepth)
		}
		b, err := get(d)
		if err != nil {
			return resolved{}, err
		}
		var probe struct {
			MediaType string            `json:"mediaType"`
			Manifests []json.RawMessage `json:"manifests"`
			Config    *json.RawMessage  `json:"config"`
		}
		if err := json.Unmarshal(b, &probe); err != nil {
			return resolved{}, fmt.Errorf("parsing %s in docker save: %w", d.Digest, err)
		}
		mt := d.MediaType
		if mt == "" {
			mt = probe.MediaType
		}
		if mt == "" { // media types are optional in OCI: tell them apart by shape
			if probe.Manifests != nil {
				mt = ocispec.MediaTypeImageIndex
			} else if probe.Config != nil {
				mt = ocispec.MediaTypeImageManifest
			}
		}
		d.MediaType = mt
		switch {
		case isManifest(mt):
			var m ocispec.Manifest
			if err := json.Unmarshal(b, &m); err != nil {
				return resolved{}, fmt.Errorf("parsing manifest %s in docker save: %w", d.Digest, err)
			}
			if m.Config.Digest == "" {
				return resolved{}, fmt.Errorf("manifest %s in docker save has no config", d.Digest)
			}
			if plat == nil {
				plat = d.Platform
			}
			return resolved{desc: d, manifest: m, platform: plat}, nil
		case isIndex(mt):
			var idx ocispec.Index
			if err := json.Unmarshal(b, &idx); err != nil {
				return resolved{}, fmt.Errorf("parsing index %s in docker save: %w", d.Digest, err)
			}
			child, err := pickPlatform(idx.Manifests, p)
			if err != nil {
				return resolved{}, fmt.Errorf("image index %s: %w", d.Digest, err)
			}
			d, plat = child, child.Platform
		default:
			return resolved{}, fmt.Errorf("docker save: %s is a %q, not an image manifest or index", d.Digest, cut(mt))
		}
	}
}

func orUnknown(s string) string {
	if s == "" {
		return "blob"
	}
	return s
}

// pickPlatform chooses the manifest for p among an index's manifests,
// leaving out attestations (and anything else for platform unknown/unknown).
func pickPlatform(ms []ocispec.Descriptor, p ocispec.Platform) (ocispec.Descriptor, error) {
	var images []ocispec.Descriptor
	var have []string
	for _, m := range ms {
		if m.Annotations[annotationReferenceType] == referenceAttestation {
			continue
		}
		if m.Platform != nil && (m.Platform.OS == "unknown" || m.Platform.Architecture == "unknown") {
			continue
		}
		if !isManifest(m.MediaType) && !isIndex(m.MediaType) && m.MediaType != "" {
			continue
		}
		images = append(images, m)
		if m.Platform != nil {
			have = append(have, platformString(*m.Platform))
		}
	}
	best, bestScore := -1, 0
	for i, m := range images {
		if m.Platform == nil {
			continue
		}
		if s := platformScore(*m.Platform, p); s > bestScore {
			best, bestScore = i, s
		}
	}
	if best >= 0 {
		return images[best], nil
	}
	if len(images) == 1 && images[0].Platform == nil {
		return images[0], nil
	}
	return ocispec.Descriptor{}, fmt.Errorf("no manifest for the node's platform %s (the image has: %s); build it for %s",
		platformString(p), orNone(strings.Join(have, ", ")), platformString(p))
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

// platformScore says how well have serves want: 0 not at all, 2 an exact
// match, 1 a match with the variant unsaid on one side.
func platformScore(have, want ocispec.Platform) int {
	if have.OS != want.OS || have.Architecture != want.Architecture {
		return 0
	}
	hv, wv := have.Variant, want.Variant
	if have.Architecture == "arm64" { // v8 is arm64's only variant
		hv, wv = strings.TrimPrefix(hv, "v8"), strings.TrimPrefix(wv, "v8")
	}
	switch {
	case hv == wv:
		return 2
	case hv == "" || wv == "":
		return 1
	}
	return 0
}

func platformString(p ocispec.Platform) string {
	s := p.OS + "/" + p.Architecture
	if p.Variant != "" {
		s += "/" + p.Variant
	}
	return s
}

// platformFromUname turns a node's `uname -m` into an OCI platform (kind
// nodes are Linux); empty or unknown: the platform devloop runs on.
func platformFromUname(m string) ocispec.Platform {
	switch strings.TrimSpace(m) {
	case "x86_64", "amd64":
		return ocispec.Platform{OS: "linux", Architecture: "amd64"}
	case "aarch64", "arm64":
		return ocispec.Platform{OS: "linux", Architecture: "arm64"}
	case "armv7l", "armv7":
		return ocispec.Platform{OS: "linux", Architecture: "arm", Variant: "v7"}
	case "armv6l":
		return ocispec.Platform{OS: "linux", Architecture: "arm", Variant: "v6"}
	case "s390x", "ppc64le", "riscv64":
		return ocispec.Platform{OS: "linux", Architecture: strings.TrimSpace(m)}
	case "i686", "i386":
		return ocispec.Platform{OS: "linux", Architecture: "386"}
	}
	return ocispec.Platform{OS: "linux", Architecture: runtime.GOARCH}
}
