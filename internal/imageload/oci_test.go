package imageload

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/types/image"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// TestLoadOCILayouts: the fast path reads the OCI layout that Docker 25+
// writes (classic store) and that the containerd image store writes (an
// index with BuildKit's attestation manifests, gzip layers, possibly several
// platforms); every node gets the manifest for its platform only, and only
// the blobs it lacks; a second load, by a new Loader as in a new `devloop
// up`, finds the image already there.
func TestLoadOCILayouts(t *testing.T) {
	tests := []struct {
		name    string
		opts    ociOpts
		machine string
		arch    string
	}{
		{"classic store, uncompressed layers", ociOpts{}, "x86_64", "amd64"},
		{"containerd store, gzip layers and attestation", ociOpts{containerdStore: true}, "x86_64", "amd64"},
		{"containerd store, attestation blobs missing from the save (kind#3795)", ociOpts{containerdStore: true, omitAttestation: true}, "x86_64", "amd64"},
		{"multi-platform index, amd64 node", ociOpts{containerdStore: true, platforms: []string{"arm64", "amd64"}}, "x86_64", "amd64"},
		{"multi-platform index, arm64 node", ociOpts{containerdStore: true, platforms: []string{"amd64", "arm64"}}, "aarch64", "arm64"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			docker := &fakeDocker{}
			base, deps := noise("base", 40000), noise("deps", 30000) // gzip cannot shrink them
			v1 := docker.addOCIImage("app:devloop-1", [][]byte{base, deps, noise("app v1", 6000)}, tt.opts)
			v2 := docker.addOCIImage("app:devloop-2", [][]byte{base, deps, noise("app v2", 6000)}, tt.opts)
			fakes, lister := twoNodes()
			for _, f := range fakes {
				f.machine = tt.machine
			}
			var out bytes.Buffer
			res, err := NewLoader(docker, lister).Load(ctx, "c", "app:devloop-1", &out)
			if err != nil {
				t.Fatalf("first load: %v\n%s", err, out.String())
			}
			var firstBytes int64
			for i, n := range res.Nodes {
				if n.Skipped || !n.Fast || n.Format != FormatOCI || n.LayersSent != 3 || n.LayersSkipped != 0 {
					t.Errorf("first load node %d = %+v", i, n)
				}
				if got := fakes[i].configOf("docker.io/library/app:devloop-1"); got != v1.configs[tt.arch] {
					t.Errorf("node %d config = %q, want %s's %q", i, got, tt.arch, v1.configs[tt.arch])
				}
				if got := fakes[i].images["docker.io/library/app:devloop-1"]; got != v1.manifests[tt.arch] {
					t.Errorf("node %d image points to %q, want the %s manifest %q", i, got, tt.arch, v1.manifests[tt.arch])
				}
				firstBytes = n.Bytes
			}
			for i, f := range fakes { // nothing of another platform, no attestation
				for arch, cfg := range v1.configs {
					if _, ok := f.content[cfg]; ok != (arch == tt.arch) {
						t.Errorf("node %d: has %s config: %v", i, arch, ok)
					}
				}
				if f.received > int64(len(v1.archive))+8<<10 {
					t.Errorf("node %d received %d bytes, the whole save is %d", i, f.received, len(v1.archive))
				}
			}

			// A new devloop (new Loader, new probe): the node has it.
			res, err = NewLoader(docker, lister).Load(ctx, "c", "app:devloop-1", &out)
			if err != nil {
				t.Fatal(err)
			}
			for i, n := range res.Nodes {
				if !n.Skipped || n.Bytes != 0 {
					t.Errorf("reload node %d = %+v", i, n)
				}
			}

			// One layer changed: only it goes.
			res, err = NewLoader(docker, lister).Load(ctx, "c", "app:devloop-2", &out)
			if err != nil {
				t.Fatalf("changed load: %v\n%s", err, out.String())
			}
			for i, n := range res.Nodes {
				if !n.Fast || n.LayersSent != 1 || n.LayersSkipped != 2 || n.Bytes*4 > firstBytes {
					t.Errorf("changed load node %d = %+v (first load sent %d bytes)", i, n, firstBytes)
				}
				if got := fakes[i].configOf("docker.io/library/app:devloop-2"); got != v2.configs[tt.arch] {
					t.Errorf("node %d config = %q, want %q", i, got, v2.configs[tt.arch])
				}
			}
			if out.Len() != 0 {
				t.Errorf("unexpected notes (a fallback?):\n%s", out.String())
			}
		})
	}
}

// TestLoadOCIPlainLoadIsRecognised: an image a plain load put in the node
// (its target is the containerd store's index, as `kind load` leaves it) is
// recognised as the same image.
// noise is size pseudo-random bytes seeded by seed.
func noise(seed string, size int) []byte {
	var key [32]byte
	copy(key[:], seed)
	b := make([]byte, size)
	rand.NewChaCha8(key).Read(b)
	return b
}

func TestLoadOCIPlainLoadIsRecognised(t *testing.T) {
	docker := &fakeDocker{}
	img := docker.addOCIImage("app:1", [][]byte{layer("a", 1000)}, ociOpts{containerdStore: true})
	fakes, lister := twoNodes()
	for _, f := range fakes {
		f.blobs[img.id] = []byte(`{"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}`)
		f.images["docker.io/library/app:1"] = img.id
	}
	res, err := NewLoader(docker, lister).Load(context.Background(), "c", "app:1", nil)
	if err != nil {
		t.Fatal(err)
	}
	for i, n := range res.Nodes {
		if !n.Skipped {
			t.Errorf("node %d = %+v", i, n)
		}
	}
}

// TestLoadOCINoManifestForPlatform: an image for another platform only is
// a clear error on the fast path (the plain load then says what ctr says).
func TestLoadOCINoManifestForPlatform(t *testing.T) {
	docker := &fakeDocker{}
	docker.addOCIImage("app:1", [][]byte{layer("a", 1000)}, ociOpts{containerdStore: true, platforms: []string{"arm64"}})
	fakes, lister := twoNodes()
	var out bytes.Buffer
	NewLoader(docker, lister).Load(context.Background(), "c", "app:1", &out)
	if !strings.Contains(out.String(), "no manifest for the node's platform linux/amd64 (the image has: linux/arm64)") {
		t.Errorf("notes = %q", out.String())
	}
	_ = fakes
}

// TestLoadVerboseSaysFastPath: with WithVerbose, each node's line says how
// the image got there, so devloop -v (and the e2e) can tell the fast path
// from a fallback.
func TestLoadVerboseSaysFastPath(t *testing.T) {
	docker := &fakeDocker{}
	docker.addOCIImage("app:1", [][]byte{layer("a", 1000), layer("b", 1000)}, ociOpts{containerdStore: true})
	_, lister := twoNodes()
	var out bytes.Buffer
	l := NewLoader(docker, lister, WithVerbose(true))
	if _, err := l.Load(context.Background(), "c", "app:1", &out); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Load(context.Background(), "c", "app:1", &out); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"fast image load into c-control-plane (oci): 2 layer(s) sent, 0 already there",
		"fast image load into c-worker (oci)",
		"node c-worker already has app:1",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}

// TestHostileSaveRefused: a docker save with a sparse entry (13 kB that read
// as 10 GiB) or an entry declaring an implausible size is refused on the fast
// and the plain path, before it reaches a node (issue 16, item 7).
func TestHostileSaveRefused(t *testing.T) {
	var huge bytes.Buffer
	tw := tar.NewWriter(&huge)
	tw.WriteHeader(&tar.Header{Name: "abc/layer.tar", Mode: 0o644, Size: 100 << 30, Typeflag: tar.TypeReg})
	// no content: the stream ends long before 100 GiB
	tests := []struct {
		name, want string
		raw        []byte
	}{
		{"GNU sparse layer.tar", "sparse file", gnuSparseEntry("abc/layer.tar", 10<<30)},
		{"PAX sparse layer.tar", "sparse file", paxSparseEntry("abc/layer.tar", 10<<30)},
		{"100 GiB declared", "declares 107374182400 bytes", huge.Bytes()},
	}
	for _, tt := range tests {
		for _, fast := range []bool{true, false} {
			t.Run(tt.name+map[bool]string{true: " fast", false: " plain"}[fast], func(t *testing.T) {
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				defer cancel()
				docker := &fakeDocker{}
				docker.addImage("app:evil", [][]byte{layer("a", 100)})
				docker.images["app:evil"].archive = hostileSave(tt.raw)
				fakes, lister := twoNodes()
				var out bytes.Buffer
				_, err := NewLoader(docker, lister, WithFastPath(fast)).Load(ctx, "c", "app:evil", &out)
				if err == nil || !errors.Is(err, errBadSave) || !strings.Contains(err.Error(), tt.want) {
					t.Fatalf("err = %v, want a refusal saying %q", err, tt.want)
				}
				if strings.Contains(out.String(), "loading the whole image") {
					t.Errorf("a refused stream fell back to the plain path:\n%s", out.String())
				}
				for i, f := range fakes {
					if f.received > 1<<20 {
						t.Errorf("node %d received %d bytes", i, f.received)
					}
				}
			})
		}
	}
}

// TestCheckEntryPAXSparse: PAX sparse records (which archive/tar expands as
// well) are refused too.
func TestCheckEntryPAXSparse(t *testing.T) {
	err := checkEntry(&tar.Header{Name: "x", Typeflag: tar.TypeReg, Size: 10, PAXRecords: map[string]string{"GNU.sparse.major": "1"}})
	if !errors.Is(err, errBadSave) {
		t.Fatalf("err = %v", err)
	}
}

func TestPickPlatform(t *testing.T) {
	p := func(os, arch, v string) *ocispec.Platform {
		return &ocispec.Platform{OS: os, Architecture: arch, Variant: v}
	}
	ms := []ocispec.Descriptor{
		{MediaType: ocispec.MediaTypeImageManifest, Digest: "sha256:a", Platform: p("linux", "arm", "v6")},
		{MediaType: ocispec.MediaTypeImageManifest, Digest: "sha256:b", Platform: p("linux", "arm", "v7")},
		{MediaType: ocispec.MediaTypeImageManifest, Digest: "sha256:c", Platform: p("linux", "arm64", "v8")},
		{MediaType: ocispec.MediaTypeImageManifest, Digest: "sha256:d", Platform: p("unknown", "unknown", ""),
			Annotations: map[string]string{annotationReferenceType: referenceAttestation}},
	}
	for _, tt := range []struct {
		want ocispec.Platform
		dg   string
	}{
		{ocispec.Platform{OS: "linux", Architecture: "arm", Variant: "v7"}, "sha256:b"},
		{ocispec.Platform{OS: "linux", Architecture: "arm64"}, "sha256:c"},
	} {
		got, err := pickPlatform(ms, tt.want)
		if err != nil || string(got.Digest) != tt.dg {
			t.Errorf("%v: got %v, %v; want %s", tt.want, got.Digest, err, tt.dg)
		}
	}
	if _, err := pickPlatform(ms, ocispec.Platform{OS: "linux", Architecture: "amd64"}); err == nil {
		t.Error("amd64: no error")
	}
	// An index of one manifest without a platform: that one.
	if got, err := pickPlatform(ms[:1:1][:0], ocispec.Platform{}); err == nil {
		t.Errorf("empty index: %v", got)
	}
}

// FuzzReadSave feeds arbitrary bytes as docker save (input from the engine:
// untrusted) through the fast path's parser and rewriter: it must not panic,
// and never write a node more than the stream held plus the few kilobytes of
// metadata devloop adds.
func FuzzReadSave(f *testing.F) {
	docker := &fakeDocker{}
	f.Add(docker.addImage("app:1", [][]byte{layer("a", 600), layer("b", 300), layer("a", 600)}).archive)
	f.Add(docker.addOCIImage("app:2", [][]byte{layer("a", 600)}, ociOpts{}).archive)
	f.Add(docker.addOCIImage("app:3", [][]byte{layer("a", 600), layer("b", 300)}, ociOpts{containerdStore: true, platforms: []string{"arm64", "amd64"}}).archive)
	f.Add(docker.addOCIImage("app:4", [][]byte{layer("a", 600)}, ociOpts{containerdStore: true, omitAttestation: true}).archive)
	f.Add(hostileSave(gnuSparseEntry("abc/layer.tar", 1<<20)))
	f.Add(hostileSave(paxSparseEntry("abc/layer.tar", 1<<20)))
	f.Fuzz(func(t *testing.T, data []byte) {
		d := &fakeDocker{images: map[string]*fakeImage{"app:1": {id: "sha256:x", archive: data}}}
		l := NewLoader(d, fakeLister{})
		var n int64
		res := NodeResult{}
		s := newFastSink(&target{node: &funcNode{name: "n"}, result: &res, platform: platformFromUname("x86_64"), have: map[string]bool{}}, io.Discard)
		s.t.result.Bytes = 0
		_, _ = l.streamOCI(context.Background(), "app:1", &hostImage{id: "sha256:x", manifests: map[string]bool{}}, []*fastSink{s})
		n = res.Bytes
		if n > int64(len(data))+64<<10 {
			t.Fatalf("wrote %d bytes from a %d-byte stream", n, len(data))
		}
	})
}

// TestLoadRealDockerSaves: saves written by Docker 28.5.2 (BuildKit) of a
// two-layer FROM scratch image, kept in testdata: the containerd image store
// with the default provenance attestation (8 blobs) and without it, and the
// classic store (Docker 25+'s OCI layout).
func TestLoadRealDockerSaves(t *testing.T) {
	const cfg = "sha256:7579da5f9aeb090e04935a9a9acd7fdf1d33212d02203439a8e652956437b0c1"
	tests := []struct {
		file, id, manifest string
		desc               *ocispec.Descriptor
		cfg                string // when not the containerd store's
	}{
		{file: "docker28-classic-store.tar", id: "sha256:da082803ce1aabc406f97d43a78e1fd83de016ab259a7a5ed2318b8ec056196c",
			manifest: "sha256:35e167578f5909976427e466cfe94f618e621ec31eb9c97c172fa7c723fee858",
			cfg:      "sha256:da082803ce1aabc406f97d43a78e1fd83de016ab259a7a5ed2318b8ec056196c"},
		{"docker28-containerd-store.tar", "sha256:c90e94f92f028537cd127267d07a3f0725fe2f85694abe86de9b1e6fcfa02d6a",
			"sha256:34c86dfe39b9e021f2331805a3de12ece824307de6d8691821d0bee9a787b796",
			&ocispec.Descriptor{MediaType: ocispec.MediaTypeImageIndex, Digest: "sha256:c90e94f92f028537cd127267d07a3f0725fe2f85694abe86de9b1e6fcfa02d6a", Size: 855}, ""},
		{"docker28-containerd-store-no-provenance.tar", "sha256:c1c04a862a65d998028f212d1bf6f0f533f5d55e6204fdf2e9f36dd10f390bc1",
			"sha256:c1c04a862a65d998028f212d1bf6f0f533f5d55e6204fdf2e9f36dd10f390bc1",
			&ocispec.Descriptor{MediaType: mediaTypeManifest, Digest: "sha256:c1c04a862a65d998028f212d1bf6f0f533f5d55e6204fdf2e9f36dd10f390bc1", Size: 692}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			cfg := cfg
			if tt.cfg != "" {
				cfg = tt.cfg
			}
			archive, err := os.ReadFile(filepath.Join("testdata", tt.file))
			if err != nil {
				t.Fatal(err)
			}
			ref := "loader-probe:1"
			fi := &fakeImage{id: tt.id, archive: archive, desc: tt.desc}
			if tt.desc != nil && tt.desc.MediaType == ocispec.MediaTypeImageIndex {
				fi.manifests = []image.ManifestSummary{{ID: tt.manifest, Kind: image.ManifestKindImage, Available: true}}
			}
			docker := &fakeDocker{images: map[string]*fakeImage{ref: fi}}
			fakes, lister := twoNodes()
			var out bytes.Buffer
			res, err := NewLoader(docker, lister).Load(context.Background(), "c", ref, &out)
			if err != nil {
				t.Fatalf("load: %v\n%s", err, out.String())
			}
			for i, n := range res.Nodes {
				if !n.Fast || n.Format != FormatOCI || n.LayersSent != 2 {
					t.Errorf("node %d = %+v", i, n)
				}
				name := "docker.io/library/loader-probe:1"
				if got := fakes[i].images[name]; got != tt.manifest {
					t.Errorf("node %d: image points to %s, want the amd64 manifest %s", i, got, tt.manifest)
				}
				if got := fakes[i].configOf(name); got != cfg {
					t.Errorf("node %d: config %s", i, got)
				}
			}
			if out.Len() > 0 {
				t.Errorf("notes: %s", out.String())
			}
			res, err = NewLoader(docker, lister).Load(context.Background(), "c", ref, &out)
			if err != nil || !res.Nodes[0].Skipped || !res.Nodes[1].Skipped {
				t.Errorf("second load: %+v, %v", res.Nodes, err)
			}
		})
	}
}

// TestSparseEntriesAreSparse: the crafted entries do read as large files
// (so the refusal tests test something).
func TestSparseEntriesAreSparse(t *testing.T) {
	for name, raw := range map[string][]byte{"gnu": gnuSparseEntry("abc/layer.tar", 1<<20), "pax": paxSparseEntry("abc/layer.tar", 1<<20)} {
		tr := tar.NewReader(bytes.NewReader(append(raw, make([]byte, 1024)...)))
		hdr, err := tr.Next()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		n, err := io.Copy(io.Discard, tr)
		if err != nil || n != 1<<20 || hdr.Name != "abc/layer.tar" {
			t.Errorf("%s: %q read %d bytes, %v; stream %d bytes", name, hdr.Name, n, err, len(raw))
		}
	}
}
