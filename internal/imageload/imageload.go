// Package imageload loads images from the local Docker engine into the nodes
// of a kind cluster: streaming (no temporary file), concurrently, skipping
// nodes that already have the image, and, when it can, sending only the
// layers a node lacks.
//
// The fast path streams `docker save` (the legacy docker-archive format of
// Docker 20.10) and rewrites it on the fly into an OCI-layout archive for
// `ctr images import`: containerd stores every blob of an OCI layout under
// its own digest whatever its name in the tar, and the manifest may reference
// layers that are already in the node's content store. A layer is left out
// when the node's content store already holds its diffID; which diffID a
// `<v1id>/layer.tar` entry carries is learnt from earlier saves (Docker's v1
// IDs of all but the top layer depend only on the layer chain). When the fast
// path fails, the node gets the plain docker-archive, as `kind load` does.
package imageload

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/distribution/reference"
	"github.com/moby/moby/client"
	"sigs.k8s.io/kind/pkg/cluster/nodes"
)

// SaveAPI is the subset of the Docker client the loader needs.
type SaveAPI interface {
	ImageInspect(ctx context.Context, imageID string, opts ...client.ImageInspectOption) (client.ImageInspectResult, error)
	ImageSave(ctx context.Context, imageIDs []string, opts ...client.ImageSaveOption) (client.ImageSaveResult, error)
}

var _ SaveAPI = (*client.Client)(nil)

// NodeLister lists a kind cluster's nodes; *cluster.Provider implements it.
type NodeLister interface {
	ListInternalNodes(name string) ([]nodes.Node, error)
}

// NodeResult is what happened on one node.
type NodeResult struct {
	Name string
	// Skipped is true when the node already had the image.
	Skipped bool
	// Fast is true when only missing layers were sent.
	Fast bool
	// LayersSent and LayersSkipped count layer blobs (fast path only).
	LayersSent, LayersSkipped int
	// Bytes is how many archive bytes were streamed into the node.
	Bytes    int64
	Duration time.Duration
}

// Result describes one Load.
type Result struct {
	Ref   string
	ID    string
	Nodes []NodeResult
}

// Sent returns how many bytes were streamed in all and into how many nodes
// (nodes that already had the image are not counted).
func (r Result) Sent() (bytes int64, nodes int) {
	for _, n := range r.Nodes {
		if !n.Skipped {
			nodes++
			bytes += n.Bytes
		}
	}
	return bytes, nodes
}

// Option configures a Loader.
type Option func(*Loader)

// WithFastPath enables or disables sending only missing layers (default on).
func WithFastPath(on bool) Option { return func(l *Loader) { l.fast = on } }

// WithLayerCacheFile persists the learnt v1-id → diffID map in path, so the
// fast path works on the first load after a restart too.
func WithLayerCacheFile(path string) Option { return func(l *Loader) { l.layers.path = path } }

// Loader loads images into kind nodes. It is safe for concurrent use.
type Loader struct {
	docker SaveAPI
	nodes  NodeLister
	fast   bool
	layers *layerCache

	mu            sync.Mutex
	snapshotter   map[string]string // node name -> containerd snapshotter
	verifiedNodes map[string]bool   // nodes where a layer-skipping import was checked
}

// NewLoader returns a Loader reading images from docker into nodes' clusters.
func NewLoader(docker SaveAPI, nodes NodeLister, opts ...Option) *Loader {
	l := &Loader{docker: docker, nodes: nodes, fast: true, layers: &layerCache{}, snapshotter: map[string]string{}, verifiedNodes: map[string]bool{}}
	for _, o := range opts {
		o(l)
	}
	return l
}

// Load makes ref (an image in the local Docker engine) present in every node
// of the kind cluster clusterName. Progress notes go to out.
func (l *Loader) Load(ctx context.Context, clusterName, ref string, out io.Writer) (Result, error) {
	return l.LoadProbed(ctx, l.ProbeNodes(ctx, clusterName), ref, out)
}

// NodeProbe is what a Load needs to know about a cluster's nodes before it
// sends an image: which nodes there are, and for each the image names and
// blobs its containerd holds (one `docker exec` per node) and its
// snapshotter. ProbeNodes starts finding out in the background, so a caller
// can overlap it with building the image; LoadProbed waits for it.
type NodeProbe struct {
	cluster string
	done    chan struct{}
	nodes   []nodes.Node
	err     error        // listing the nodes failed
	found   []*nodeHolds // per node, once done
}

// nodeHolds is what one node's containerd holds.
type nodeHolds struct {
	images  map[string]bool // normalized names
	content map[string]bool // blob digests
	err     error           // probing failed: the node is probed the slow way
}

// ProbeNodes starts probing clusterName's nodes and returns at once. The
// probe stops when ctx ends. A probe is used by one LoadProbed: what it
// learnt about a node's content is stale once an image is sent.
func (l *Loader) ProbeNodes(ctx context.Context, clusterName string) *NodeProbe {
	p := &NodeProbe{cluster: clusterName, done: make(chan struct{})}
	go func() {
		defer close(p.done)
		p.nodes, p.err = l.nodes.ListInternalNodes(clusterName)
		if p.err != nil {
			return
		}
		p.found = make([]*nodeHolds, len(p.nodes))
		var wg sync.WaitGroup
		for i, n := range p.nodes {
			wg.Add(2)
			go func() {
				defer wg.Done()
				p.found[i] = probeNode(ctx, n)
			}()
			go func() {
				defer wg.Done()
				l.nodeSnapshotter(ctx, n) // remembered; errors resurface when used
			}()
		}
		wg.Wait()
	}()
	return p
}

// LoadProbed is Load with the nodes probed by p (from ProbeNodes for the
// same cluster).
func (l *Loader) LoadProbed(ctx context.Context, p *NodeProbe, ref string, out io.Writer) (Result, error) {
	if out == nil {
		out = io.Discard
	}
	res := Result{Ref: ref}
	insp, err := l.docker.ImageInspect(ctx, ref)
	if err != nil {
		return res, fmt.Errorf("loading image %s: inspecting it in Docker: %w", ref, err)
	}
	res.ID = insp.ID
	select {
	case <-p.done:
	case <-ctx.Done():
		return res, fmt.Errorf("loading image %s: %w", ref, ctx.Err())
	}
	if p.err != nil {
		return res, fmt.Errorf("loading image %s: listing nodes of cluster %q: %w", ref, p.cluster, p.err)
	}
	if len(p.nodes) == 0 {
		return res, fmt.Errorf("loading image %s: cluster %q has no nodes", ref, p.cluster)
	}
	name := ref
	if named, err := reference.ParseNormalizedNamed(ref); err == nil {
		name = reference.TagNameOnly(named).String()
	}

	res.Nodes = make([]NodeResult, len(p.nodes))
	var need []int
	var wg sync.WaitGroup
	probes := make([]*target, len(p.nodes))
	for i, n := range p.nodes {
		res.Nodes[i].Name = n.String()
		t := &target{node: n, result: &res.Nodes[i]}
		probes[i] = t
		holds := p.found[i]
		if l.fast {
			t.have, t.haveErr = holds.content, holds.err
		}
		if holds.err == nil && !holds.images[name] {
			continue // no image by that name: the node needs it
		}
		// The node has an image by that name (or could not say): is it
		// this one? With content tags it nearly always is.
		wg.Add(1)
		go func() {
			defer wg.Done()
			id, err := nodeImageID(ctx, n, ref)
			t.result.Skipped = err == nil && id == insp.ID
		}()
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return res, fmt.Errorf("loading image %s: %w", ref, err)
	}
	for i := range p.nodes {
		if !res.Nodes[i].Skipped {
			need = append(need, i)
		}
	}
	if len(need) == 0 {
		return res, nil
	}

	targets := make([]*target, len(need))
	for j, i := range need {
		targets[j] = probes[i]
	}
	start := time.Now()
	remaining := targets
	if l.fast {
		remaining = l.loadFast(ctx, ref, insp.ID, targets, out)
	}
	if len(remaining) > 0 {
		if err := l.loadFull(ctx, ref, remaining); err != nil {
			return res, err
		}
	}
	for _, t := range targets {
		if t.result.Duration == 0 {
			t.result.Duration = time.Since(start)
		}
	}
	return res, nil
}

// target is a node that needs the image.
type target struct {
	node    nodes.Node
	result  *NodeResult
	have    map[string]bool // digests in the node's content store
	haveErr error
}

// loadFull streams one docker-archive save into every target's
// `ctr images import`, concurrently.
func (l *Loader) loadFull(ctx context.Context, ref string, targets []*target) error {
	start := time.Now()
	save, err := l.docker.ImageSave(ctx, []string{ref})
	if err != nil {
		return fmt.Errorf("loading image %s: docker save: %w", ref, err)
	}
	defer save.Close()

	fan := &fanout{}
	errs := make([]error, len(targets))
	var wg sync.WaitGroup
	for i, t := range targets {
		pr, pw := io.Pipe()
		fan.add(pw, &t.result.Bytes)
		snap, err := l.nodeSnapshotter(ctx, t.node)
		if err != nil {
			errs[i] = err
			pw.CloseWithError(err)
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := importArchive(ctx, t.node, snap, pr)
			pr.CloseWithError(errImportEnded) // unblock the fan-out if ctr exited early
			errs[i] = err
		}()
	}
	_, cerr := io.Copy(fan, save)
	fan.close(cerr)
	wg.Wait()
	var all []error
	for i, t := range targets {
		t.result.Fast = false
		t.result.Duration = time.Since(start)
		if errs[i] != nil {
			all = append(all, fmt.Errorf("loading image %s into node %s: %w", ref, t.node.String(), errs[i]))
		}
	}
	if cerr != nil && !errors.Is(cerr, errAllSinksFailed) && len(all) == 0 {
		all = append(all, fmt.Errorf("loading image %s: reading docker save: %w", ref, cerr))
	}
	return errors.Join(all...)
}

var errImportEnded = errors.New("import ended")

// imageIDScript prints the manifest that the node's containerd image named $1
// points to. It needs only sh and ctr (kind's own check uses crictl, which a
// node image need not ship).
const imageIDScript = `r=$(ctr --namespace=k8s.io images ls "name==$1") || exit 1
d=$(printf '%s\n' "$r" | { read -r _; read -r _ _ d _; printf '%s' "$d"; })
[ -n "$d" ] || { echo "image $1 not found" >&2; exit 3; }
exec ctr --namespace=k8s.io content get "$d"`

// nodeImageID returns the image ID (config digest) that ref has in the
// node's containerd (namespace k8s.io, the CRI's), in one cancellable exec.
func nodeImageID(ctx context.Context, n nodes.Node, ref string) (string, error) {
	named, err := reference.ParseNormalizedNamed(ref)
	if err != nil {
		return "", fmt.Errorf("parsing image reference %q: %w", ref, err)
	}
	var stdout bytes.Buffer
	if err := n.CommandContext(ctx, "sh", "-c", imageIDScript, "sh", reference.TagNameOnly(named).String()).SetStdout(&stdout).Run(); err != nil {
		return "", err
	}
	var m struct {
		MediaType string `json:"mediaType"`
		Config    struct {
			Digest string `json:"digest"`
		} `json:"config"`
	}
	if err := jsonUnmarshal(stdout.Bytes(), &m); err != nil {
		return "", fmt.Errorf("reading manifest of %s on node %s: %w", ref, n.String(), err)
	}
	if m.Config.Digest == "" {
		return "", fmt.Errorf("image %s on node %s is not a single-platform image manifest (%s)", ref, n.String(), m.MediaType)
	}
	return m.Config.Digest, nil
}

// probeScript prints the image names in the node's containerd (the CRI's
// namespace), a separator line, then the digests in its content store: one
// exec for both.
const probeScript = `ctr --namespace=k8s.io images ls -q || exit 1
echo ---
exec ctr --namespace=k8s.io content ls -q`

// probeNode lists the images and blobs a node's containerd holds.
func probeNode(ctx context.Context, n nodes.Node) *nodeHolds {
	var stdout bytes.Buffer
	if err := n.CommandContext(ctx, "sh", "-c", probeScript).SetStdout(&stdout).Run(); err != nil {
		return &nodeHolds{err: fmt.Errorf("listing images and content of node %s: %w", n.String(), err)}
	}
	h := &nodeHolds{images: map[string]bool{}, content: map[string]bool{}}
	sc := bufio.NewScanner(&stdout)
	sc.Buffer(nil, 1<<20)
	inContent := false
	for sc.Scan() {
		switch line := strings.TrimSpace(sc.Text()); {
		case line == "---":
			inContent = true
		case line == "":
		case inContent:
			if strings.HasPrefix(line, "sha256:") {
				h.content[line] = true
			}
		default:
			h.images[line] = true
		}
	}
	if err := sc.Err(); err != nil {
		return &nodeHolds{err: fmt.Errorf("listing images and content of node %s: %w", n.String(), err)}
	}
	return h
}

// importArchive runs kind's import command with r as stdin.
func importArchive(ctx context.Context, n nodes.Node, snapshotter string, r io.Reader) error {
	var stderr bytes.Buffer
	cmd := n.CommandContext(ctx, "ctr", "--namespace=k8s.io", "images", "import", "--all-platforms", "--digests", "--snapshotter="+snapshotter, "-").
		SetStdin(r).SetStderr(&stderr)
	if err := cmd.Run(); err != nil {
		if s := strings.TrimSpace(stderr.String()); s != "" {
			return fmt.Errorf("ctr images import: %w: %s", err, s)
		}
		return fmt.Errorf("ctr images import: %w", err)
	}
	return nil
}

// nodeSnapshotter returns (and remembers) the node's CRI snapshotter.
func (l *Loader) nodeSnapshotter(ctx context.Context, n nodes.Node) (string, error) {
	l.mu.Lock()
	s, ok := l.snapshotter[n.String()]
	l.mu.Unlock()
	if ok {
		return s, nil
	}
	var stdout bytes.Buffer
	if err := n.CommandContext(ctx, "containerd", "config", "dump").SetStdout(&stdout).Run(); err != nil {
		return "", fmt.Errorf("detecting containerd snapshotter of node %s: %w", n.String(), err)
	}
	s, err := ParseSnapshotter(stdout.String())
	if err != nil {
		return "", fmt.Errorf("detecting containerd snapshotter of node %s: %w", n.String(), err)
	}
	l.mu.Lock()
	l.snapshotter[n.String()] = s
	l.mu.Unlock()
	return s, nil
}

// ParseSnapshotter finds the CRI snapshotter in `containerd config dump`
// output: [plugins."io.containerd.grpc.v1.cri".containerd] for config
// version 2, [plugins."io.containerd.cri.v1.images"] for versions 3 and 4.
func ParseSnapshotter(config string) (string, error) {
	var section string
	for _, line := range strings.Split(config, "\n") {
		line = strings.TrimSpace(line)
		if strings.HasPrefix(line, "[") {
			section = strings.ReplaceAll(strings.Trim(line, "[] "), "'", `"`)
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok || strings.TrimSpace(k) != "snapshotter" {
			continue
		}
		switch section {
		case `plugins."io.containerd.grpc.v1.cri".containerd`, `plugins."io.containerd.cri.v1.images"`:
			if s := strings.Trim(strings.TrimSpace(v), `"'`); s != "" {
				return s, nil
			}
		}
	}
	return "", errors.New("no CRI snapshotter in containerd config")
}

// fanout copies writes to several sinks, dropping (not failing on) sinks whose
// write fails; it fails only when none is left.
type fanout struct {
	sinks []*fanSink
}

type fanSink struct {
	w     *io.PipeWriter
	count *int64
	err   error
}

var errAllSinksFailed = errors.New("every node stopped reading")

func (f *fanout) add(w *io.PipeWriter, count *int64) {
	f.sinks = append(f.sinks, &fanSink{w: w, count: count})
}

func (f *fanout) Write(p []byte) (int, error) {
	alive := 0
	for _, s := range f.sinks {
		if s.err != nil {
			continue
		}
		n, err := s.w.Write(p)
		*s.count += int64(n)
		if err != nil {
			s.err = err
			continue
		}
		alive++
	}
	if alive == 0 {
		return 0, errAllSinksFailed
	}
	return len(p), nil
}

func (f *fanout) close(err error) {
	for _, s := range f.sinks {
		s.w.CloseWithError(err)
	}
}
