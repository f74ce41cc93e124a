package imageload

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/distribution/reference"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/devloop-dev/devloop/internal/ui"
)

var jsonUnmarshal = json.Unmarshal

// Media types of a Docker schema 2 image, as containerd's docker-archive
// importer writes them.
const (
	mediaTypeManifest     = "application/vnd.docker.distribution.manifest.v2+json"
	mediaTypeManifestList = "application/vnd.docker.distribution.manifest.list.v2+json"
	mediaTypeConfig       = "application/vnd.docker.container.image.v1+json"
	mediaTypeLayer        = "application/vnd.docker.image.rootfs.diff.tar"
	mediaTypeIndex        = ocispec.MediaTypeImageIndex
)

// Formats of docker save, as reported in NodeResult.Format.
const (
	FormatDockerArchive = "docker-archive" // Docker before 25: <v1id>/layer.tar, manifest.json
	FormatOCI           = "oci"            // Docker 25+ and the containerd image store: index.json, blobs/sha256/
)

type descriptor struct {
	MediaType   string            `json:"mediaType,omitempty"`
	Digest      string            `json:"digest"`
	Size        int64             `json:"size"`
	Annotations map[string]string `json:"annotations,omitempty"`
	Platform    *platform         `json:"platform,omitempty"`
}

type platform struct {
	Architecture string `json:"architecture"`
	OS           string `json:"os"`
	Variant      string `json:"variant,omitempty"`
}

// fastSink is one node's OCI-layout import in progress.
type fastSink struct {
	t       *target
	have    map[string]bool
	pw      *io.PipeWriter
	tw      *tar.Writer
	cw      *countWriter
	skipped map[string]string // v1 id -> diffID assumed present (docker-archive)
	sent    map[string]bool   // blob digests already written (OCI layout)
	// manifest is the digest of the image manifest the node's image will
	// point to (OCI layout: the original one; docker-archive: devloop's).
	manifest string
	done     chan error
	err      error
}

type countWriter struct {
	w io.Writer
	n *int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	*c.n += int64(n)
	return n, err
}

func newFastSink(t *target, w io.Writer) *fastSink {
	s := &fastSink{t: t, have: t.have, skipped: map[string]string{}, sent: map[string]bool{}}
	s.cw = &countWriter{w: w, n: &t.result.Bytes}
	s.tw = tar.NewWriter(s.cw)
	return s
}

// loadFast loads ref into targets sending only missing layers; it returns the
// targets that must be loaded the plain way, writing why to out. A save
// stream that is refused (errBadSave) is returned as an error: no path sends it.
func (l *Loader) loadFast(ctx context.Context, ref string, want *hostImage, targets []*target, out io.Writer) ([]*target, error) {
	start := time.Now()
	var (
		sinks    []*fastSink
		fallback []*target
		mu       sync.Mutex
		wg       sync.WaitGroup
	)
	for _, t := range targets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := t.haveErr
			if err == nil {
				_, err = l.nodeSnapshotter(ctx, t.node)
			}
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				fmt.Fprintf(out, "fast image load into %s unavailable, loading the whole image: %v\n", t.node.String(), err)
				fallback = append(fallback, t)
				return
			}
			sinks = append(sinks, &fastSink{t: t})
		}()
	}
	wg.Wait()
	if len(sinks) == 0 {
		return fallback, nil
	}
	if err := l.layers.load(); err != nil {
		fmt.Fprintf(out, "ignoring layer cache: %v\n", err)
	}
	for i, s := range sinks {
		imp := l.startImport(ctx, s.t) // the snapshotter is known by now: it cannot fail
		s = newFastSink(s.t, imp.pw)
		s.pw, s.done = imp.pw, imp.done
		sinks[i] = s
	}

	format, err := l.streamOCI(ctx, ref, want, sinks)
	for _, s := range sinks {
		if err != nil && s.err == nil {
			s.err = err
		}
		if s.err != nil {
			s.pw.CloseWithError(s.err)
		} else {
			s.pw.Close()
		}
	}
	for _, s := range sinks {
		ierr := <-s.done
		if s.err == nil && ierr != nil {
			s.err = ierr
		}
		if s.err == nil && len(s.skipped) > 0 && !l.verified(s.t.node.String()) {
			// Layers were left out on the strength of the layer cache (v1 IDs
			// of a docker-archive) and the content listing: the first time
			// on each node, check that the CRI sees the image as built (one
			// more `docker exec`). An OCI layout names every blob by its
			// digest: nothing is guessed there.
			got, err := nodeImage(ctx, s.t.node, ref, s.t.platform)
			if err != nil {
				s.err = fmt.Errorf("checking the imported image: %w", err)
			} else if !want.same(got) && got.config != want.id {
				s.err = fmt.Errorf("node reports image %s (config %s), want %s", got.target, got.config, want.id)
			} else {
				l.setVerified(s.t.node.String())
			}
		}
		if s.err != nil {
			if errors.Is(s.err, errBadSave) {
				return nil, s.err
			}
			if ctx.Err() == nil {
				fmt.Fprintf(out, "fast image load into %s failed, loading the whole image: %v\n", s.t.node.String(), s.err)
			}
			s.t.result.Bytes = 0
			s.t.result.LayersSent, s.t.result.LayersSkipped = 0, 0
			fallback = append(fallback, s.t)
			continue
		}
		s.t.result.Fast = true
		s.t.result.Format = format
		s.t.result.Duration = time.Since(start)
		if s.manifest != "" {
			want.addManifest(s.manifest)
		}
	}
	return fallback, nil
}

func (l *Loader) verified(node string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.verifiedNodes[node]
}

func (l *Loader) setVerified(node string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.verifiedNodes[node] = true
}

// saveState is what one pass over a docker save stream collected.
type saveState struct {
	// docker-archive
	sizes    map[string]int64  // v1 id -> layer.tar size
	links    map[string]string // v1 id -> v1 id its layer.tar links to
	jsons    map[string][]byte // top-level *.json files
	manifest []byte            // manifest.json
	// OCI layout
	index     []byte            // index.json
	blobs     map[string][]byte // small blobs by digest (metadata, small layers)
	blobSizes map[string]int64  // every blob in the stream, by digest
	kept      int64             // bytes held in blobs
}

// Small blobs are held in memory until the index says what they are; larger
// ones are layers, streamed to the nodes that lack them as they come.
const (
	maxHeldBlob  = 4 << 20
	maxHeldTotal = 64 << 20
)

// streamOCI reads one docker save of ref (either layout) and writes each sink
// an OCI-layout archive holding the blobs that sink's node lacks, the config,
// the manifest and an index naming ref. It returns the save's format.
func (l *Loader) streamOCI(ctx context.Context, ref string, want *hostImage, sinks []*fastSink) (string, error) {
	named, err := reference.ParseNormalizedNamed(ref)
	if err != nil {
		return "", fmt.Errorf("parsing image reference %q: %w", ref, err)
	}
	named = reference.TagNameOnly(named)

	var plats []ocispec.Platform
	for _, s := range sinks {
		if !slices.ContainsFunc(plats, func(p ocispec.Platform) bool { return platformString(p) == platformString(s.t.platform) }) {
			plats = append(plats, s.t.platform)
		}
	}
	save, err := l.save(ctx, ref, want, plats...)
	if err != nil {
		return "", fmt.Errorf("docker save: %w", err)
	}
	defer save.Close()
	rc := &readCounter{r: save}
	st, err := readSave(rc, sinks, l.layers)
	if err != nil {
		return "", err
	}
	if st.index != nil && len(st.blobSizes) > 0 {
		return FormatOCI, finishOCI(st, named, sinks)
	}
	return FormatDockerArchive, l.finishDockerArchive(st, named, sinks)
}

func liveSinks(sinks []*fastSink) []*fastSink {
	var ls []*fastSink
	for _, s := range sinks {
		if s.err == nil {
			ls = append(ls, s)
		}
	}
	return ls
}

// readSave reads a save stream, sending large blobs and docker-archive layers
// to the sinks that lack them as they come, and collecting the rest.
func readSave(rc *readCounter, sinks []*fastSink, layers *layerCache) (*saveState, error) {
	st := &saveState{
		sizes: map[string]int64{}, links: map[string]string{}, jsons: map[string][]byte{},
		blobs: map[string][]byte{}, blobSizes: map[string]int64{},
	}
	blobN := 0
	tr := tar.NewReader(rc)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return st, nil
		}
		if err != nil {
			return nil, fmt.Errorf("reading docker save: %w", err)
		}
		if err := checkEntry(hdr); err != nil {
			return nil, err
		}
		name := path.Clean(hdr.Name)
		dir, base := path.Split(name)
		dir = strings.TrimSuffix(dir, "/")
		switch {
		case base == "layer.tar" && dir != "" && !strings.Contains(dir, "/"):
			if hdr.Typeflag == tar.TypeSymlink || hdr.Typeflag == tar.TypeLink {
				st.links[dir] = path.Base(path.Dir(path.Join(dir, hdr.Linkname)))
				if hdr.Typeflag == tar.TypeLink {
					st.links[dir] = path.Base(path.Dir(path.Clean(hdr.Linkname)))
				}
				continue
			}
			if hdr.Typeflag != tar.TypeReg {
				continue
			}
			st.sizes[dir] = hdr.Size
			diffID, known := layers.get(dir)
			var to []*fastSink
			for _, s := range liveSinks(sinks) {
				if known && s.have[diffID] {
					s.skipped[dir] = diffID
					s.t.result.LayersSkipped++
					continue
				}
				to = append(to, s)
			}
			if len(to) == 0 {
				continue // tar.Reader skips the content
			}
			blobN++
			if err := copyEntry(tr, rc, fmt.Sprintf("blobs/devloop/layer-%d", blobN), hdr.Size, to); err != nil {
				return nil, err
			}
			for _, s := range to {
				if s.err == nil {
					s.t.result.LayersSent++
				}
			}
		case strings.HasPrefix(name, "blobs/") && hdr.Typeflag == tar.TypeReg:
			dg, ok := blobDigest(name)
			if !ok {
				continue
			}
			if _, dup := st.blobSizes[dg]; dup {
				continue
			}
			st.blobSizes[dg] = hdr.Size
			if hdr.Size <= maxHeldBlob && st.kept+hdr.Size <= maxHeldTotal {
				// Metadata or a small layer: what it is is known once the
				// index is read.
				b, err := readSmall(tr, hdr.Size, maxHeldBlob)
				if err != nil {
					return nil, err
				}
				if got := digestOf(b); got != dg {
					return nil, fmt.Errorf("docker save: blob %s has digest %s", cut(name), got)
				}
				st.blobs[dg] = b
				st.kept += hdr.Size
				continue
			}
			var to []*fastSink
			for _, s := range liveSinks(sinks) {
				if !s.have[dg] {
					to = append(to, s)
				}
			}
			if len(to) == 0 {
				continue
			}
			if err := copyEntry(tr, rc, "blobs/sha256/"+strings.TrimPrefix(dg, "sha256:"), hdr.Size, to); err != nil {
				return nil, err
			}
			for _, s := range to {
				s.sent[dg] = true
			}
		case dir == "" && base == "manifest.json":
			if st.manifest, err = readSmall(tr, hdr.Size, maxMetadataSize); err != nil {
				return nil, err
			}
		case dir == "" && base == "index.json":
			if st.index, err = readSmall(tr, hdr.Size, maxMetadataSize); err != nil {
				return nil, err
			}
		case dir == "" && strings.HasSuffix(base, ".json"):
			b, err := readSmall(tr, hdr.Size, maxMetadataSize)
			if err != nil {
				return nil, err
			}
			st.jsons[base] = b
		}
		if len(liveSinks(sinks)) == 0 {
			return nil, errors.New("every node stopped reading")
		}
	}
}

// blobDigest returns the digest a blobs/sha256/<hex> entry names.
func blobDigest(name string) (string, bool) {
	hex, ok := strings.CutPrefix(name, "blobs/sha256/")
	if !ok || len(hex) != 64 {
		return "", false
	}
	for _, c := range hex {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return "", false
		}
	}
	return "sha256:" + hex, true
}

// finishDockerArchive completes a docker-archive save (Docker before 25):
// the layers were sent as they came; the config, devloop's manifest and the
// index follow, once the config's diff_ids are known.
func (l *Loader) finishDockerArchive(st *saveState, named reference.Named, sinks []*fastSink) error {
	var mfsts []struct {
		Config string
		Layers []string
	}
	if err := json.Unmarshal(st.manifest, &mfsts); err != nil || len(mfsts) != 1 {
		return fmt.Errorf("unexpected manifest.json in docker save (%d images, %v)", len(mfsts), err)
	}
	cfg, ok := st.jsons[mfsts[0].Config]
	if !ok {
		return fmt.Errorf("docker save has no config %s", cut(mfsts[0].Config))
	}
	var img struct {
		Architecture string `json:"architecture"`
		OS           string `json:"os"`
		Variant      string `json:"variant"`
		RootFS       struct {
			DiffIDs []string `json:"diff_ids"`
		} `json:"rootfs"`
	}
	if err := json.Unmarshal(cfg, &img); err != nil {
		return fmt.Errorf("parsing image config: %w", err)
	}
	if len(img.RootFS.DiffIDs) != len(mfsts[0].Layers) {
		return fmt.Errorf("image config lists %d layers, manifest.json %d", len(img.RootFS.DiffIDs), len(mfsts[0].Layers))
	}
	layers := make([]descriptor, len(img.RootFS.DiffIDs))
	learnt := map[string]string{}
	for i, lf := range mfsts[0].Layers {
		v1 := path.Dir(path.Clean(lf))
		src := v1
		if to, ok := st.links[v1]; ok {
			src = to
		}
		size, ok := st.sizes[src]
		if !ok {
			return fmt.Errorf("docker save has no layer %s", cut(lf))
		}
		diffID := img.RootFS.DiffIDs[i]
		learnt[src] = diffID
		layers[i] = descriptor{MediaType: mediaTypeLayer, Digest: diffID, Size: size}
	}
	for _, s := range liveSinks(sinks) {
		for v1, assumed := range s.skipped {
			if learnt[v1] != assumed {
				s.err = fmt.Errorf("layer cache said %s is %s, the image says %s", v1, assumed, learnt[v1])
			}
		}
	}
	l.layers.put(learnt)
	// The cache only speeds up the next load: a failure to persist it is not
	// worth failing this one.
	_ = l.layers.save()

	cfgDesc := descriptor{MediaType: mediaTypeConfig, Digest: digestOf(cfg), Size: int64(len(cfg))}
	mb, err := json.Marshal(struct {
		SchemaVersion int          `json:"schemaVersion"`
		MediaType     string       `json:"mediaType"`
		Config        descriptor   `json:"config"`
		Layers        []descriptor `json:"layers"`
	}{2, mediaTypeManifest, cfgDesc, layers})
	if err != nil {
		return err
	}
	mdesc := descriptor{MediaType: mediaTypeManifest, Digest: digestOf(mb), Size: int64(len(mb))}
	if img.OS != "" && img.Architecture != "" {
		mdesc.Platform = &platform{Architecture: img.Architecture, OS: img.OS, Variant: img.Variant}
	}
	for _, s := range liveSinks(sinks) {
		s.manifest = mdesc.Digest
		s.err = writeLayout(s.tw, named, mdesc, []blob{{"blobs/devloop/config", cfg}, {"blobs/devloop/manifest", mb}})
	}
	return nil
}

type blob struct {
	name string
	b    []byte
}

// writeLayout ends a sink's archive: the given blobs, then index.json naming
// the image (mdesc, named) and oci-layout.
func writeLayout(tw *tar.Writer, named reference.Named, mdesc descriptor, blobs []blob) error {
	tag := ""
	if t, ok := named.(reference.Tagged); ok {
		tag = t.Tag()
	}
	mdesc.Annotations = map[string]string{
		"io.containerd.image.name": named.String(),
		ocispec.AnnotationRefName:  tag,
	}
	ib, err := json.Marshal(struct {
		SchemaVersion int          `json:"schemaVersion"`
		MediaType     string       `json:"mediaType"`
		Manifests     []descriptor `json:"manifests"`
	}{2, mediaTypeIndex, []descriptor{mdesc}})
	if err != nil {
		return err
	}
	blobs = append(blobs, blob{"index.json", ib}, blob{"oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`)})
	for _, f := range blobs {
		if err := writeFile(tw, f.name, f.b); err != nil {
			return err
		}
	}
	return tw.Close()
}

// finishOCI completes an OCI-layout save (Docker 25+, the containerd image
// store): it picks the image manifest for each node's platform (attestation
// manifests and other platforms are left out: the node's index names only
// that manifest, so `ctr images import --all-platforms` needs nothing else),
// and sends what the node lacks of it and was not sent yet.
func finishOCI(st *saveState, named reference.Named, sinks []*fastSink) error {
	top, err := pickTop(st.index, named)
	if err != nil {
		return err
	}
	for _, s := range liveSinks(sinks) {
		m, err := resolveManifest(heldBlobs(st.blobs), top, s.t.platform)
		if err != nil {
			return err
		}
		var send []blob
		add := func(d ocispec.Descriptor, layer bool) error {
			dg := d.Digest.String()
			b, held := st.blobs[dg]
			switch {
			case s.sent[dg]:
			case held && (!layer || !s.have[dg]):
				send = append(send, blob{"blobs/sha256/" + d.Digest.Encoded(), b})
				s.sent[dg] = true
			case s.have[dg]:
				if layer {
					s.t.result.LayersSkipped++
				}
				return nil
			default:
				if _, inSave := st.blobSizes[dg]; !inSave {
					return fmt.Errorf("docker save lacks blob %s of %s (%s), and node %s does not have it", dg, named, d.MediaType, s.t.node.String())
				}
				return fmt.Errorf("blob %s of %s was not sent to node %s", dg, named, s.t.node.String())
			}
			if layer {
				s.t.result.LayersSent++
			}
			return nil
		}
		if err := add(m.desc, false); err != nil {
			s.err = err
			continue
		}
		if err := add(m.manifest.Config, false); err != nil {
			s.err = err
			continue
		}
		for _, ld := range m.manifest.Layers {
			if err := add(ld, true); err != nil {
				s.err = err
				break
			}
		}
		if s.err != nil {
			continue
		}
		mdesc := descriptor{MediaType: m.desc.MediaType, Digest: m.desc.Digest.String(), Size: m.desc.Size}
		if p := m.platform; p != nil && p.OS != "" && p.Architecture != "" {
			mdesc.Platform = &platform{Architecture: p.Architecture, OS: p.OS, Variant: p.Variant}
		}
		s.manifest = mdesc.Digest
		s.err = writeLayout(s.tw, named, mdesc, send)
	}
	return nil
}

// copyEntry copies one tar entry's content into each sink's archive; a sink
// whose node stops reading is marked failed, the others go on.
// What is passed on is bounded by what was read from the stream (rc): an
// entry's content is stored verbatim in a tar, so it can never be more.
func copyEntry(r io.Reader, rc *readCounter, name string, size int64, to []*fastSink) error {
	start := rc.n
	for _, s := range to {
		if err := s.tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: size, Typeflag: tar.TypeReg, ModTime: time.Unix(0, 0)}); err != nil {
			s.err = fmt.Errorf("streaming layer: %w", err)
		}
	}
	buf := make([]byte, 256<<10)
	var copied int64
	for copied < size {
		n, err := r.Read(buf)
		if n > 0 {
			copied += int64(n)
			if copied > rc.n-start {
				return fmt.Errorf("%w: entry %q yields more bytes (%d) than the stream holds (%d)", errBadSave, cut(name), copied, rc.n-start)
			}
			alive := 0
			for _, s := range to {
				if s.err != nil {
					continue
				}
				if _, werr := s.tw.Write(buf[:n]); werr != nil {
					s.err = fmt.Errorf("streaming layer: %w", werr)
					continue
				}
				alive++
			}
			if alive == 0 {
				return nil
			}
		}
		if err != nil {
			if errors.Is(err, io.EOF) && copied == size {
				break
			}
			return fmt.Errorf("reading docker save: %w", err)
		}
	}
	return nil
}

func writeFile(tw *tar.Writer, name string, b []byte) error {
	if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(b)), Typeflag: tar.TypeReg, ModTime: time.Unix(0, 0)}); err != nil {
		return err
	}
	_, err := tw.Write(b)
	return err
}

func readSmall(r io.Reader, size, limit int64) ([]byte, error) {
	if size > limit {
		return nil, fmt.Errorf("%w: metadata file of %d bytes (limit %s)", errBadSave, size, ui.Bytes(limit))
	}
	b := make([]byte, size)
	if _, err := io.ReadFull(r, b); err != nil {
		return nil, fmt.Errorf("reading docker save: %w", err)
	}
	return b, nil
}

func digestOf(b []byte) string { return fmt.Sprintf("sha256:%x", sha256.Sum256(b)) }

// layerCache maps Docker's v1 layer IDs (directory names in docker save) to
// diffIDs, optionally persisted as JSON.
type layerCache struct {
	mu     sync.Mutex
	path   string
	loaded bool
	m      map[string]string
}

func (c *layerCache) load() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.loaded {
		return nil
	}
	c.loaded = true
	c.m = map[string]string{}
	if c.path == "" {
		return nil
	}
	b, err := os.ReadFile(c.path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading layer cache: %w", err)
	}
	if err := json.Unmarshal(b, &c.m); err != nil {
		c.m = map[string]string{}
		return fmt.Errorf("parsing layer cache %s: %w", c.path, err)
	}
	return nil
}

func (c *layerCache) get(v1 string) (string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	d, ok := c.m[v1]
	return d, ok
}

func (c *layerCache) put(m map[string]string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[string]string{}
	}
	for k, v := range m {
		c.m[k] = v
	}
}

func (c *layerCache) save() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.path == "" {
		return nil
	}
	b, err := json.Marshal(c.m)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(c.path), 0o755); err != nil {
		return err
	}
	tmp := c.path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, c.path)
}
