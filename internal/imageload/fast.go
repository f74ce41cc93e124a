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
	"strings"
	"sync"
	"time"

	"github.com/distribution/reference"
)

var jsonUnmarshal = json.Unmarshal

// Media types of a Docker schema 2 image, as containerd's docker-archive
// importer writes them.
const (
	mediaTypeManifest = "application/vnd.docker.distribution.manifest.v2+json"
	mediaTypeConfig   = "application/vnd.docker.container.image.v1+json"
	mediaTypeLayer    = "application/vnd.docker.image.rootfs.diff.tar"
	mediaTypeIndex    = "application/vnd.oci.image.index.v1+json"
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
	skipped map[string]string // v1 id -> diffID assumed present
	done    chan error
	err     error
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

// loadFast loads ref into targets sending only missing layers; it returns the
// targets that must be loaded the plain way, writing why to out.
func (l *Loader) loadFast(ctx context.Context, ref, id string, targets []*target, out io.Writer) []*target {
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
			have, err := t.have, t.haveErr
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
			sinks = append(sinks, &fastSink{t: t, have: have, skipped: map[string]string{}})
		}()
	}
	wg.Wait()
	if len(sinks) == 0 {
		return fallback
	}
	if err := l.layers.load(); err != nil {
		fmt.Fprintf(out, "ignoring layer cache: %v\n", err)
	}
	for _, s := range sinks {
		pr, pw := io.Pipe()
		s.pw = pw
		s.cw = &countWriter{w: pw, n: &s.t.result.Bytes}
		s.tw = tar.NewWriter(s.cw)
		s.done = make(chan error, 1)
		snap, _ := l.nodeSnapshotter(ctx, s.t.node)
		go func() {
			err := importArchive(ctx, s.t.node, snap, pr)
			pr.CloseWithError(errImportEnded)
			s.done <- err
		}()
	}

	err := l.streamOCI(ctx, ref, sinks)
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
		if s.err == nil && s.t.result.LayersSkipped > 0 && !l.verified(s.t.node.String()) {
			// Layers were left out on the strength of the layer cache and the
			// content listing: the first time on each node, check that the
			// CRI sees the image as built (one more `docker exec`).
			got, err := nodeImageID(ctx, s.t.node, ref)
			if err != nil {
				s.err = fmt.Errorf("checking the imported image: %w", err)
			} else if got != id {
				s.err = fmt.Errorf("node reports image ID %s, want %s", got, id)
			} else {
				l.setVerified(s.t.node.String())
			}
		}
		if s.err != nil {
			if ctx.Err() == nil {
				fmt.Fprintf(out, "fast image load into %s failed, loading the whole image: %v\n", s.t.node.String(), s.err)
			}
			s.t.result.Bytes = 0
			s.t.result.LayersSent, s.t.result.LayersSkipped = 0, 0
			fallback = append(fallback, s.t)
			continue
		}
		s.t.result.Fast = true
		s.t.result.Duration = time.Since(start)
	}
	return fallback
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

// streamOCI reads one docker save of ref and writes each sink an OCI-layout
// archive holding the layers that sink's node lacks, the config, a manifest
// and an index naming ref.
func (l *Loader) streamOCI(ctx context.Context, ref string, sinks []*fastSink) error {
	named, err := reference.ParseNormalizedNamed(ref)
	if err != nil {
		return fmt.Errorf("parsing image reference %q: %w", ref, err)
	}
	named = reference.TagNameOnly(named)
	tag := ""
	if t, ok := named.(reference.Tagged); ok {
		tag = t.Tag()
	}

	save, err := l.docker.ImageSave(ctx, []string{ref})
	if err != nil {
		return fmt.Errorf("docker save: %w", err)
	}
	defer save.Close()

	var (
		sizes    = map[string]int64{}  // v1 id -> layer.tar size
		links    = map[string]string{} // v1 id -> v1 id its layer.tar links to
		jsons    = map[string][]byte{}
		manifest []byte
		blobN    int
	)
	live := func() []*fastSink {
		var ls []*fastSink
		for _, s := range sinks {
			if s.err == nil {
				ls = append(ls, s)
			}
		}
		return ls
	}
	tr := tar.NewReader(save)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("reading docker save: %w", err)
		}
		name := path.Clean(hdr.Name)
		dir, base := path.Split(name)
		dir = strings.TrimSuffix(dir, "/")
		switch {
		case base == "layer.tar" && dir != "" && !strings.Contains(dir, "/"):
			if hdr.Typeflag == tar.TypeSymlink || hdr.Typeflag == tar.TypeLink {
				links[dir] = path.Base(path.Dir(path.Join(dir, hdr.Linkname)))
				if hdr.Typeflag == tar.TypeLink {
					links[dir] = path.Base(path.Dir(path.Clean(hdr.Linkname)))
				}
				continue
			}
			if hdr.Typeflag != tar.TypeReg {
				continue
			}
			sizes[dir] = hdr.Size
			diffID, known := l.layers.get(dir)
			var to []*fastSink
			for _, s := range live() {
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
			if err := copyEntry(tr, fmt.Sprintf("blobs/devloop/layer-%d", blobN), hdr.Size, to); err != nil {
				return err
			}
			for _, s := range to {
				if s.err == nil {
					s.t.result.LayersSent++
				}
			}
		case dir == "" && base == "manifest.json":
			if manifest, err = readSmall(tr, hdr.Size); err != nil {
				return err
			}
		case dir == "" && strings.HasSuffix(base, ".json"):
			b, err := readSmall(tr, hdr.Size)
			if err != nil {
				return err
			}
			jsons[base] = b
		}
		if len(live()) == 0 {
			return errors.New("every node stopped reading")
		}
	}

	var mfsts []struct {
		Config string
		Layers []string
	}
	if err := json.Unmarshal(manifest, &mfsts); err != nil || len(mfsts) != 1 {
		return fmt.Errorf("unexpected manifest.json in docker save (%d images, %v)", len(mfsts), err)
	}
	cfg, ok := jsons[mfsts[0].Config]
	if !ok {
		return fmt.Errorf("docker save has no config %s", mfsts[0].Config)
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
		if to, ok := links[v1]; ok {
			src = to
		}
		size, ok := sizes[src]
		if !ok {
			return fmt.Errorf("docker save has no layer %s", lf)
		}
		diffID := img.RootFS.DiffIDs[i]
		learnt[src] = diffID
		layers[i] = descriptor{MediaType: mediaTypeLayer, Digest: diffID, Size: size}
	}
	for _, s := range live() {
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
	mdesc := descriptor{
		MediaType: mediaTypeManifest, Digest: digestOf(mb), Size: int64(len(mb)),
		Annotations: map[string]string{
			"io.containerd.image.name":          named.String(),
			"org.opencontainers.image.ref.name": tag,
		},
	}
	if img.OS != "" && img.Architecture != "" {
		mdesc.Platform = &platform{Architecture: img.Architecture, OS: img.OS, Variant: img.Variant}
	}
	ib, err := json.Marshal(struct {
		SchemaVersion int          `json:"schemaVersion"`
		MediaType     string       `json:"mediaType"`
		Manifests     []descriptor `json:"manifests"`
	}{2, mediaTypeIndex, []descriptor{mdesc}})
	if err != nil {
		return err
	}
	for _, s := range live() {
		for _, f := range []struct {
			name string
			b    []byte
		}{
			{"blobs/devloop/config", cfg},
			{"blobs/devloop/manifest", mb},
			{"index.json", ib},
			{"oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`)},
		} {
			if err := writeFile(s.tw, f.name, f.b); err != nil {
				s.err = err
				break
			}
		}
		if s.err == nil {
			if err := s.tw.Close(); err != nil {
				s.err = err
			}
		}
	}
	return nil
}

// copyEntry copies one tar entry's content into each sink's archive; a sink
// whose node stops reading is marked failed, the others go on.
func copyEntry(r io.Reader, name string, size int64, to []*fastSink) error {
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

func readSmall(r io.Reader, size int64) ([]byte, error) {
	if size > 64<<20 {
		return nil, fmt.Errorf("unexpectedly large metadata file in docker save (%d bytes)", size)
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
