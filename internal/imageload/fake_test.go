package imageload

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"
	"sync"

	"github.com/moby/moby/api/types/image"
	"github.com/moby/moby/client"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"sigs.k8s.io/kind/pkg/cluster/nodes"
	kexec "sigs.k8s.io/kind/pkg/exec"
)

// runFunc executes a command on a fake node.
type runFunc func(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error

// funcNode is a nodes.Node whose commands are run by a function.
type funcNode struct {
	name string
	run  runFunc
}

var _ nodes.Node = (*funcNode)(nil)

func (n *funcNode) String() string              { return n.name }
func (n *funcNode) Role() (string, error)       { return "control-plane", nil }
func (n *funcNode) IP() (string, string, error) { return "", "", nil }
func (n *funcNode) SerialLogs(io.Writer) error  { return nil }
func (n *funcNode) Command(name string, args ...string) kexec.Cmd {
	return n.CommandContext(context.Background(), name, args...)
}
func (n *funcNode) CommandContext(ctx context.Context, name string, args ...string) kexec.Cmd {
	return &funcCmd{ctx: ctx, args: append([]string{name}, args...), run: n.run}
}

type funcCmd struct {
	ctx            context.Context
	args           []string
	run            runFunc
	stdin          io.Reader
	stdout, stderr io.Writer
}

func (c *funcCmd) Run() error {
	stdin := c.stdin
	if stdin == nil {
		stdin = strings.NewReader("")
	}
	stdout, stderr := c.stdout, c.stderr
	if stdout == nil {
		stdout = io.Discard
	}
	if stderr == nil {
		stderr = io.Discard
	}
	return c.run(c.ctx, c.args, stdin, stdout, stderr)
}
func (c *funcCmd) SetEnv(...string) kexec.Cmd      { return c }
func (c *funcCmd) SetStdin(r io.Reader) kexec.Cmd  { c.stdin = r; return c }
func (c *funcCmd) SetStdout(w io.Writer) kexec.Cmd { c.stdout = w; return c }
func (c *funcCmd) SetStderr(w io.Writer) kexec.Cmd { c.stderr = w; return c }

type fakeLister []nodes.Node

func (f fakeLister) ListInternalNodes(string) ([]nodes.Node, error) { return f, nil }

// fakeContainerd emulates the parts of a kind node's containerd the loader
// uses: content store, images by name, `ctr images import --all-platforms`
// of docker-archive and OCI-layout tars (which fails, like containerd's,
// when an image references a blob that is neither in the tar nor in the
// store: for an index that includes every child, as kind#3795 hits).
type fakeContainerd struct {
	mu         sync.Mutex
	machine    string
	content    map[string]int64  // digest -> size
	blobs      map[string][]byte // digest -> content (small blobs)
	images     map[string]string // normalized name -> target digest
	imports    int
	probes     int
	idChecks   int
	rejectOCI  bool
	misnameOCI bool // store OCI imports under a wrong name (a broken fast path)
	noContent  bool
	noSizes    bool // the probe finds no content store files
	received   int64
}

func newFakeContainerd() *fakeContainerd {
	return &fakeContainerd{machine: "x86_64", content: map[string]int64{}, blobs: map[string][]byte{}, images: map[string]string{}}
}

func normalize(ref string) string {
	if !strings.Contains(ref, "/") {
		ref = "docker.io/library/" + ref
	}
	return ref
}

// configOf returns the config digest of the image named name (following an
// index to its linux/amd64 manifest), or "".
func (f *fakeContainerd) configOf(name string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	d := f.images[name]
	for range 4 {
		var m struct {
			Config    struct{ Digest string }
			Manifests []struct {
				Digest   string
				Platform *struct{ Architecture string }
			}
		}
		if json.Unmarshal(f.blobs[d], &m) != nil {
			return ""
		}
		if m.Config.Digest != "" {
			return m.Config.Digest
		}
		next := ""
		for _, c := range m.Manifests {
			if c.Platform != nil && c.Platform.Architecture == "amd64" {
				next = c.Digest
			}
		}
		d = next
	}
	return ""
}

func (f *fakeContainerd) run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	cmd := strings.Join(args, " ")
	switch {
	case len(args) == 5 && args[0] == "sh" && args[1] == "-c" && args[2] == imageScript:
		f.mu.Lock()
		d, ok := f.images[args[4]]
		f.idChecks++
		b := f.blobs[d]
		f.mu.Unlock()
		if !ok {
			return errors.New("image not found")
		}
		fmt.Fprintln(stdout, d)
		_, err := stdout.Write(b)
		return err
	case len(args) == 5 && strings.Join(args[:4], " ") == "ctr --namespace=k8s.io content get":
		f.mu.Lock()
		b, ok := f.blobs[args[4]]
		f.mu.Unlock()
		if !ok {
			return fmt.Errorf("ctr: content digest %s: not found", args[4])
		}
		_, err := stdout.Write(b)
		return err
	case cmd == "containerd config dump":
		_, err := io.WriteString(stdout, "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".containerd]\n  snapshotter = \"overlayfs\"\n")
		return err
	case len(args) == 3 && args[0] == "sh" && args[1] == "-c" && args[2] == probeScript:
		f.mu.Lock()
		defer f.mu.Unlock()
		f.probes++
		fmt.Fprintf(stdout, "machine %s\n", f.machine)
		for name := range f.images {
			fmt.Fprintln(stdout, name)
		}
		if f.noContent {
			return errors.New("ctr: unknown command")
		}
		fmt.Fprintln(stdout, "---")
		for d := range f.content {
			fmt.Fprintln(stdout, d)
		}
		fmt.Fprintln(stdout, "---") // the content store's files and their sizes
		for d, size := range f.content {
			if !f.noSizes {
				fmt.Fprintf(stdout, "%s %d\n", strings.TrimPrefix(d, "sha256:"), size)
			}
		}
		return nil
	case strings.HasPrefix(cmd, "ctr --namespace=k8s.io images import --all-platforms --digests --snapshotter=overlayfs -"):
		return f.importTar(stdin)
	}
	return fmt.Errorf("fake node: unexpected command %q", cmd)
}

func (f *fakeContainerd) importTar(r io.Reader) error {
	cr := &countingReader{r: r}
	tr := tar.NewReader(cr)
	blobs := map[string][]byte{} // name -> content (small files only)
	byName := map[string]string{}
	newContent := map[string]int64{}
	newBlobs := map[string][]byte{}
	links := map[string]bool{}
	oci := false
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		if h.Typeflag == tar.TypeSymlink {
			links[path.Clean(h.Name)] = true
		}
		if h.Typeflag != tar.TypeReg {
			continue
		}
		d := sha256.New()
		var small bytes.Buffer
		if _, err := io.Copy(io.MultiWriter(d, &small), tr); err != nil {
			return err
		}
		dg := fmt.Sprintf("sha256:%x", d.Sum(nil))
		name := path.Clean(h.Name)
		if name == "oci-layout" {
			oci = true
			continue
		}
		if hex, ok := strings.CutPrefix(name, "blobs/sha256/"); ok && "sha256:"+hex != dg {
			return fmt.Errorf("ctr: blob %s has digest %s", name, dg)
		}
		newContent[dg] = h.Size
		byName[name] = dg
		if h.Size < 1<<20 {
			blobs[name] = small.Bytes()
			newBlobs[dg] = small.Bytes()
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.received += cr.n
	f.imports++
	has := func(d string) bool { _, a := f.content[d]; _, b := newContent[d]; return a || b }
	blobByDigest := func(d string) []byte {
		if b, ok := newBlobs[d]; ok {
			return b
		}
		return f.blobs[d]
	}
	type desc struct {
		MediaType   string
		Digest      string
		Size        int64
		Annotations map[string]string
	}
	newImages := map[string]string{}
	if oci {
		if f.rejectOCI {
			return errors.New("ctr: fake rejects OCI layout")
		}
		var idx struct{ Manifests []desc }
		if err := json.Unmarshal(blobs["index.json"], &idx); err != nil {
			return fmt.Errorf("index.json: %w", err)
		}
		// --all-platforms: every blob the image references must be there.
		var walk func(d desc, depth int) error
		walk = func(d desc, depth int) error {
			if !has(d.Digest) || depth > 4 {
				return fmt.Errorf("ctr: content digest %s: not found", d.Digest)
			}
			if sz, ok := newContent[d.Digest]; ok && sz != d.Size {
				return fmt.Errorf("size mismatch for %s", d.Digest)
			}
			var m struct {
				Config    *desc
				Layers    []desc
				Manifests []desc
			}
			if !isManifest(d.MediaType) && !isIndex(d.MediaType) {
				return nil // a layer or config
			}
			if err := json.Unmarshal(blobByDigest(d.Digest), &m); err != nil {
				return fmt.Errorf("%s %s: %w", d.MediaType, d.Digest, err)
			}
			children := append(m.Layers, m.Manifests...)
			if m.Config != nil {
				children = append(children, *m.Config)
			}
			for _, c := range children {
				if err := walk(c, depth+1); err != nil {
					return err
				}
			}
			return nil
		}
		for _, m := range idx.Manifests {
			if err := walk(m, 0); err != nil {
				return err
			}
			name := m.Annotations["io.containerd.image.name"]
			if f.misnameOCI {
				name += "-wrong"
			}
			newImages[name] = m.Digest
		}
	} else {
		var mfsts []struct {
			Config   string
			RepoTags []string
			Layers   []string
		}
		if err := json.Unmarshal(blobs["manifest.json"], &mfsts); err != nil {
			return fmt.Errorf("manifest.json: %w", err)
		}
		for _, m := range mfsts {
			var layers []map[string]any
			for _, l := range m.Layers {
				if _, ok := byName[path.Clean(l)]; !ok && !links[path.Clean(l)] {
					return fmt.Errorf("layer %q not found", l)
				}
				layers = append(layers, map[string]any{"digest": byName[path.Clean(l)]})
			}
			// containerd converts a docker-archive into a manifest of its own.
			mb, _ := json.Marshal(map[string]any{"mediaType": mediaTypeManifest, "config": map[string]any{"digest": byName[m.Config]}, "layers": layers})
			md := fmt.Sprintf("sha256:%x", sha256.Sum256(mb))
			newBlobs[md], newContent[md] = mb, int64(len(mb))
			for _, t := range m.RepoTags {
				newImages[normalize(t)] = md
			}
		}
	}
	for d, s := range newContent {
		f.content[d] = s
	}
	for d, b := range newBlobs {
		f.blobs[d] = b
	}
	for n, d := range newImages {
		f.images[n] = d
	}
	return nil
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// fakeDocker serves ImageInspect and a Docker 20.10-style `docker save`
// (legacy docker-archive) of images made of given layer contents.
type fakeDocker struct {
	images map[string]*fakeImage // ref -> image
	saves  int
}

type fakeImage struct {
	id      string
	config  []byte
	archive []byte
	// the containerd image store: the target's descriptor and the manifests
	// (ImageInspect's Descriptor and Manifests)
	desc      *ocispec.Descriptor
	manifests []image.ManifestSummary
}

// addImage builds an image from layers (each layer: file name -> content).
func (d *fakeDocker) addImage(ref string, layers [][]byte) *fakeImage {
	var diffIDs []string
	var layerTars [][]byte
	for _, content := range layers {
		var b bytes.Buffer
		tw := tar.NewWriter(&b)
		tw.WriteHeader(&tar.Header{Name: "data", Mode: 0o644, Size: int64(len(content)), Typeflag: tar.TypeReg})
		tw.Write(content)
		tw.Close()
		layerTars = append(layerTars, b.Bytes())
		diffIDs = append(diffIDs, fmt.Sprintf("sha256:%x", sha256.Sum256(b.Bytes())))
	}
	cfg, _ := json.Marshal(map[string]any{
		"architecture": "amd64", "os": "linux",
		"config": map[string]any{"Cmd": []string{"/app"}, "Label": ref},
		"rootfs": map[string]any{"type": "layers", "diff_ids": diffIDs},
	})
	id := fmt.Sprintf("sha256:%x", sha256.Sum256(cfg))
	// v1 IDs as Docker 20.10 computes them in spirit: from the chain for
	// lower layers, including the config for the top one.
	var v1ids []string
	parent := ""
	for i := range layerTars {
		h := sha256.New()
		fmt.Fprint(h, parent, strings.Join(diffIDs[:i+1], ","))
		if i == len(layerTars)-1 {
			h.Write(cfg)
		}
		parent = fmt.Sprintf("%x", h.Sum(nil))
		v1ids = append(v1ids, parent)
	}
	var files []struct {
		name string
		b    []byte
	}
	var mLayers []string
	for i, v1 := range v1ids {
		files = append(files,
			struct {
				name string
				b    []byte
			}{v1 + "/VERSION", []byte("1.0")},
			struct {
				name string
				b    []byte
			}{v1 + "/json", []byte(`{"id":"` + v1 + `"}`)},
			struct {
				name string
				b    []byte
			}{v1 + "/layer.tar", layerTars[i]})
		mLayers = append(mLayers, v1+"/layer.tar")
	}
	mj, _ := json.Marshal([]map[string]any{{"Config": id[7:] + ".json", "RepoTags": []string{ref}, "Layers": mLayers}})
	files = append(files,
		struct {
			name string
			b    []byte
		}{id[7:] + ".json", cfg},
		struct {
			name string
			b    []byte
		}{"manifest.json", mj})
	var ab bytes.Buffer
	tw := tar.NewWriter(&ab)
	seen := map[string]string{} // diffID -> v1 dir that holds it, as Docker symlinks repeats
	for _, f := range files {
		if strings.HasSuffix(f.name, "/VERSION") {
			tw.WriteHeader(&tar.Header{Name: path.Dir(f.name) + "/", Typeflag: tar.TypeDir, Mode: 0o755})
		}
		if strings.HasSuffix(f.name, "/layer.tar") {
			d := fmt.Sprintf("sha256:%x", sha256.Sum256(f.b))
			if first, ok := seen[d]; ok {
				tw.WriteHeader(&tar.Header{Name: f.name, Typeflag: tar.TypeSymlink, Linkname: "../" + first + "/layer.tar", Mode: 0o777})
				continue
			}
			seen[d] = path.Dir(f.name)
		}
		tw.WriteHeader(&tar.Header{Name: f.name, Mode: 0o644, Size: int64(len(f.b)), Typeflag: tar.TypeReg})
		tw.Write(f.b)
	}
	tw.Close()
	img := &fakeImage{id: id, config: cfg, archive: ab.Bytes()}
	if d.images == nil {
		d.images = map[string]*fakeImage{}
	}
	d.images[ref] = img
	return img
}

func (d *fakeDocker) ImageInspect(ctx context.Context, ref string, _ ...client.ImageInspectOption) (client.ImageInspectResult, error) {
	img, ok := d.images[ref]
	if !ok {
		return client.ImageInspectResult{}, fmt.Errorf("no such image: %s", ref)
	}
	return client.ImageInspectResult{InspectResponse: image.InspectResponse{ID: img.id, Descriptor: img.desc, Manifests: img.manifests}}, nil
}

func (d *fakeDocker) ImageSave(ctx context.Context, refs []string, _ ...client.ImageSaveOption) (client.ImageSaveResult, error) {
	img, ok := d.images[refs[0]]
	if !ok {
		return nil, fmt.Errorf("no such image: %s", refs[0])
	}
	d.saves++
	return io.NopCloser(bytes.NewReader(img.archive)), nil
}
