package imageload

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"github.com/distribution/reference"
	"github.com/moby/moby/api/types/image"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// ociOpts says what kind of OCI-layout docker save a fake image gets.
type ociOpts struct {
	// containerdStore: the containerd image store (Docker 28 with the
	// snapshotter, Docker 29): the image is an index (ID = its digest),
	// BuildKit's attestation manifest beside the platform's manifest, gzip
	// layers. Otherwise Docker 25+'s classic store: index.json points at the
	// manifest, layers uncompressed, ID = the config digest.
	containerdStore bool
	// omitAttestation: the index references the attestation manifest, but
	// its blobs are not in the save (what breaks `kind load`: kind#3795).
	omitAttestation bool
	// platforms of a multi-platform image (containerdStore), default amd64.
	platforms []string
}

// fakeOCIImage is what a test needs to know about an OCI-layout fake image.
type fakeOCIImage struct {
	*fakeImage
	configs   map[string]string // arch -> config digest
	manifests map[string]string // arch -> manifest digest
	blobs     map[string]int    // digest -> size, every blob in the save
}

type ociBlob struct {
	digest string
	b      []byte
}

func newOCIBlob(b []byte) ociBlob { return ociBlob{fmt.Sprintf("sha256:%x", sha256.Sum256(b)), b} }

func (b ociBlob) desc(mt string) ocispec.Descriptor {
	return ocispec.Descriptor{MediaType: mt, Digest: digest.Digest(b.digest), Size: int64(len(b.b))}
}

func layerTar(content []byte) []byte {
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	tw.WriteHeader(&tar.Header{Name: "data", Mode: 0o644, Size: int64(len(content)), Typeflag: tar.TypeReg})
	tw.Write(content)
	tw.Close()
	return b.Bytes()
}

func gz(b []byte) []byte {
	var out bytes.Buffer
	zw := gzip.NewWriter(&out)
	zw.Write(b)
	zw.Close()
	return out.Bytes()
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// addOCIImage adds an image whose docker save is an OCI layout, as Docker
// 25+ writes it: blobs/sha256/ sorted by name first, then index.json,
// manifest.json and oci-layout.
func (d *fakeDocker) addOCIImage(ref string, layers [][]byte, o ociOpts) *fakeOCIImage {
	named := reference.TagNameOnly(mustNamed(ref))
	if len(o.platforms) == 0 {
		o.platforms = []string{"amd64"}
	}
	img := &fakeOCIImage{configs: map[string]string{}, manifests: map[string]string{}, blobs: map[string]int{}}
	var all []ociBlob
	add := func(b ociBlob) ociBlob {
		all = append(all, b)
		return b
	}
	var children []ocispec.Descriptor
	var summaries []image.ManifestSummary
	var compat []map[string]any
	var firstCfg []byte
	var top ocispec.Descriptor
	for _, arch := range o.platforms {
		var diffIDs []string
		var lds []ocispec.Descriptor
		var paths []string
		for _, content := range layers {
			if arch != "amd64" {
				content = append([]byte(arch), content...)
			}
			t := layerTar(content)
			diffIDs = append(diffIDs, fmt.Sprintf("sha256:%x", sha256.Sum256(t)))
			mt := ocispec.MediaTypeImageLayer
			if o.containerdStore {
				t, mt = gz(t), ocispec.MediaTypeImageLayerGzip
			}
			lb := add(newOCIBlob(t))
			lds = append(lds, lb.desc(mt))
			paths = append(paths, "blobs/sha256/"+lb.digest[7:])
		}
		cfg := mustJSON(map[string]any{
			"architecture": arch, "os": "linux",
			"config": map[string]any{"Cmd": []string{"/app"}, "Labels": map[string]string{"ref": ref}},
			"rootfs": map[string]any{"type": "layers", "diff_ids": diffIDs},
		})
		if firstCfg == nil {
			firstCfg = cfg
		}
		cb := add(newOCIBlob(cfg))
		mb := add(newOCIBlob(mustJSON(ocispec.Manifest{
			MediaType: ocispec.MediaTypeImageManifest, Config: cb.desc(ocispec.MediaTypeImageConfig), Layers: lds,
		})))
		img.configs[arch], img.manifests[arch] = cb.digest, mb.digest
		md := mb.desc(ocispec.MediaTypeImageManifest)
		top = md
		md.Platform = &ocispec.Platform{OS: "linux", Architecture: arch}
		children = append(children, md)
		summaries = append(summaries, image.ManifestSummary{ID: mb.digest, Descriptor: md, Available: true, Kind: image.ManifestKindImage,
			ImageData: &image.ImageProperties{Platform: *md.Platform}})
		compat = append(compat, map[string]any{"Config": "blobs/sha256/" + cb.digest[7:], "RepoTags": []string{ref}, "Layers": paths})

		if o.containerdStore { // BuildKit's provenance attestation for this platform
			prov := newOCIBlob([]byte(`{"_type":"https://in-toto.io/Statement/v0.1","predicateType":"https://slsa.dev/provenance/v0.2","arch":"` + arch + `"}`))
			acfg := newOCIBlob([]byte(`{"architecture":"unknown","os":"unknown","config":{},"rootfs":{"type":"layers","diff_ids":["` + prov.digest + `"]}}`))
			am := newOCIBlob(mustJSON(ocispec.Manifest{MediaType: ocispec.MediaTypeImageManifest,
				Config: acfg.desc(ocispec.MediaTypeImageConfig), Layers: []ocispec.Descriptor{prov.desc("application/vnd.in-toto+json")}}))
			if !o.omitAttestation {
				add(prov)
				add(acfg)
				add(am)
			}
			ad := am.desc(ocispec.MediaTypeImageManifest)
			ad.Platform = &ocispec.Platform{OS: "unknown", Architecture: "unknown"}
			ad.Annotations = map[string]string{"vnd.docker.reference.digest": mb.digest, "vnd.docker.reference.type": "attestation-manifest"}
			children = append(children, ad)
			summaries = append(summaries, image.ManifestSummary{ID: am.digest, Descriptor: ad, Available: !o.omitAttestation, Kind: image.ManifestKindAttestation})
		}
	}
	fi := &fakeImage{config: firstCfg}
	if o.containerdStore {
		ib := add(newOCIBlob(mustJSON(ocispec.Index{MediaType: ocispec.MediaTypeImageIndex, Manifests: children})))
		top = ib.desc(ocispec.MediaTypeImageIndex)
		fi.id, fi.desc, fi.manifests = ib.digest, &top, summaries
	} else {
		fi.id = img.configs["amd64"]
	}
	tag := ""
	if t, ok := named.(reference.Tagged); ok {
		tag = t.Tag()
	}
	top.Annotations = map[string]string{"io.containerd.image.name": named.String(), ocispec.AnnotationRefName: tag}
	top.Platform = nil

	sort.Slice(all, func(i, j int) bool { return all[i].digest < all[j].digest })
	var ab bytes.Buffer
	tw := tar.NewWriter(&ab)
	tw.WriteHeader(&tar.Header{Name: "blobs/", Typeflag: tar.TypeDir, Mode: 0o755})
	tw.WriteHeader(&tar.Header{Name: "blobs/sha256/", Typeflag: tar.TypeDir, Mode: 0o755})
	seen := map[string]bool{}
	for _, b := range all {
		if seen[b.digest] {
			continue
		}
		seen[b.digest] = true
		img.blobs[b.digest] = len(b.b)
		tw.WriteHeader(&tar.Header{Name: "blobs/sha256/" + b.digest[7:], Mode: 0o444, Size: int64(len(b.b)), Typeflag: tar.TypeReg})
		tw.Write(b.b)
	}
	for _, f := range []struct {
		name string
		b    []byte
	}{
		{"index.json", mustJSON(ocispec.Index{MediaType: ocispec.MediaTypeImageIndex, Manifests: []ocispec.Descriptor{top}})},
		{"manifest.json", mustJSON(compat)},
		{"oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`)},
	} {
		tw.WriteHeader(&tar.Header{Name: f.name, Mode: 0o444, Size: int64(len(f.b)), Typeflag: tar.TypeReg})
		tw.Write(f.b)
	}
	tw.Close()
	fi.archive = ab.Bytes()
	if d.images == nil {
		d.images = map[string]*fakeImage{}
	}
	d.images[ref] = fi
	img.fakeImage = fi
	return img
}

func mustNamed(ref string) reference.Named {
	n, err := reference.ParseNormalizedNamed(ref)
	if err != nil {
		panic(err)
	}
	return n
}

// gnuSparseEntry is a tar entry in the old GNU sparse format (type 'S'),
// which archive/tar reads but cannot write: 512 bytes stored that read back
// as realSize bytes (zeros, then the 512 at the end).
func gnuSparseEntry(name string, realSize int64) []byte {
	h := make([]byte, 512)
	octal := func(b []byte, v int64) { copy(b, fmt.Sprintf("%0*o\x00", len(b)-1, v)) }
	copy(h[0:100], name)
	octal(h[100:108], 0o644)
	octal(h[108:116], 0)
	octal(h[116:124], 0)
	octal(h[124:136], 512) // stored
	octal(h[136:148], 0)
	h[156] = 'S'
	copy(h[257:265], "ustar  \x00")
	octal(h[386:398], realSize-512) // one fragment: offset
	octal(h[398:410], 512)          // and length
	octal(h[483:495], realSize)
	copy(h[148:156], "        ")
	sum := 0
	for _, c := range h {
		sum += int(c)
	}
	copy(h[148:156], fmt.Sprintf("%06o\x00 ", sum))
	return append(h, bytes.Repeat([]byte{'x'}, 512)...)
}

// paxSparseEntry is a tar entry in the PAX sparse format 1.0 (a PAX header
// with GNU.sparse.* records, then a regular entry starting with the sparse
// map), which archive/tar reads as a regular file of realSize bytes but
// cannot write: 512 bytes stored.
func paxSparseEntry(name string, realSize int64) []byte {
	rec := func(k, v string) string {
		n := len(k) + len(v) + 3
		for len(fmt.Sprint(n+len(fmt.Sprint(n))))+len(k)+len(v)+3 != n+len(fmt.Sprint(n)) {
			n++
		}
		l := n + len(fmt.Sprint(n))
		for len(fmt.Sprintf("%d %s=%s\n", l, k, v)) != l {
			l++
		}
		return fmt.Sprintf("%d %s=%s\n", l, k, v)
	}
	recs := rec("GNU.sparse.major", "1") + rec("GNU.sparse.minor", "0") + rec("GNU.sparse.name", name) +
		rec("GNU.sparse.realsize", fmt.Sprint(realSize))
	block := func(name string, flag byte, size int) []byte {
		h := make([]byte, 512)
		octal := func(b []byte, v int64) { copy(b, fmt.Sprintf("%0*o\x00", len(b)-1, v)) }
		copy(h[0:100], name)
		octal(h[100:108], 0o644)
		octal(h[108:116], 0)
		octal(h[116:124], 0)
		octal(h[124:136], int64(size))
		octal(h[136:148], 0)
		h[156] = flag
		copy(h[257:265], "ustar\x0000")
		copy(h[148:156], "        ")
		sum := 0
		for _, c := range h {
			sum += int(c)
		}
		copy(h[148:156], fmt.Sprintf("%06o\x00 ", sum))
		return h
	}
	pad := func(b []byte) []byte { return append(b, make([]byte, (512-len(b)%512)%512)...) }
	out := block("PaxHeaders/x", 'x', len(recs))
	out = append(out, pad([]byte(recs))...)
	sparseMap := pad([]byte(fmt.Sprintf("1\n%d\n512\n", realSize-512)))
	out = append(out, block("GNUSparseFile.0/x", '0', len(sparseMap)+512)...)
	out = append(out, sparseMap...)
	return append(out, bytes.Repeat([]byte{'x'}, 512)...)
}

// hostileSave is a small docker-archive save whose one layer.tar entry is
// replaced by raw (a crafted entry).
func hostileSave(raw []byte) []byte {
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	cfg := mustJSON(map[string]any{"architecture": "amd64", "os": "linux", "rootfs": map[string]any{"type": "layers", "diff_ids": []string{"sha256:" + strings.Repeat("0", 64)}}})
	tw.WriteHeader(&tar.Header{Name: "abc/", Typeflag: tar.TypeDir, Mode: 0o755})
	tw.Flush()
	b.Write(raw)
	for _, f := range []struct {
		name string
		b    []byte
	}{
		{"cfg.json", cfg},
		{"manifest.json", mustJSON([]map[string]any{{"Config": "cfg.json", "RepoTags": []string{"app:evil"}, "Layers": []string{"abc/layer.tar"}}})},
	} {
		tw.WriteHeader(&tar.Header{Name: f.name, Mode: 0o644, Size: int64(len(f.b)), Typeflag: tar.TypeReg})
		tw.Write(f.b)
	}
	tw.Close()
	return b.Bytes()
}
