// Package imageload loads images from the local Docker engine into the nodes
// of a kind cluster: streaming (no temporary file), concurrently, skipping
// nodes that already have the image, and, when it can, sending only the
// layers a node lacks.
//
// The fast path streams `docker save` and rewrites it on the fly into an
// OCI-layout archive for `ctr images import`: containerd stores every blob of
// an OCI layout under its own digest whatever its name in the tar, and the
// manifest may reference layers that are already in the node's content store.
// It reads both layouts of docker save:
//   - docker-archive (Docker before 25: `<v1id>/layer.tar`, manifest.json): a
//     layer is left out when the node's content store already holds its
//     diffID; which diffID a `<v1id>/layer.tar` entry carries is learnt from
//     earlier saves (Docker's v1 IDs of all but the top layer depend only on
//     the layer chain);
//   - OCI layout (Docker 25+, and the containerd image store: index.json,
//     blobs/sha256/, often gzip layers): blobs are named by digest, so a blob
//     the node holds is left out. The node's image points at the image
//     manifest for the node's platform only: other platforms and BuildKit's
//     attestation manifests (whose blobs docker save may omit, which breaks
//     `kind load`: kind#3795) are dropped.
//
// With WithRelay the fast path first has the engine push the image to an
// endpoint of the loader's own on 127.0.0.1 (relay.go): the engine then sends
// only the blobs the nodes lack, without the docker save of the whole image;
// an engine that cannot reach it has its docker save read as above.
//
// When the fast path fails, the node gets the plain docker save, as `kind
// load` does. A save stream with sparse or implausibly large entries is
// refused on both paths.
package imageload

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/distribution/reference"
	"github.com/moby/moby/api/types/image"
	"github.com/moby/moby/client"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"sigs.k8s.io/kind/pkg/cluster/nodes"

	"github.com/devloop-dev/devloop/internal/ui"
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
	// Format is the layout of docker save the fast path read
	// (FormatDockerArchive or FormatOCI); empty unless Fast.
	Format string
}

// Result describes one Load.
type Result struct {
	Ref   string
	ID    string
	Nodes []NodeResult
	// Pushed is the reference the image was pushed to (a Pusher's): the
	// one manifests must use. Empty when it was loaded into the nodes.
	Pushed string
	// Push is what the push did (a Pusher's), else nil.
	Push *PushResult
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

// WithVerbose makes Load write one line per node to its out: how the image
// got there (the fast path, what it sent and left out) or that the node
// already had it. Fallbacks are always written.
func WithVerbose(on bool) Option { return func(l *Loader) { l.verbose = on } }

// Loader loads images into kind nodes. It is safe for concurrent use.
type Loader struct {
	docker  SaveAPI
	nodes   NodeLister
	fast    bool
	verbose bool
	layers  *layerCache
	relay   *relay // nil: the fast path reads docker save only

	mu            sync.Mutex
	snapshotter   map[string]string     // node name -> containerd snapshotter
	verifiedNodes map[string]bool       // nodes where a layer-skipping import was checked
	probes        map[string]*NodeProbe // cluster -> the probe later loads share
	now           func() time.Time
}

// probeShare is how long a probe serves later ProbeNodes calls, from its
// start while it runs and from its end after: the loads of one start-up
// (the ingress controller's and every service's) share one probe of each
// node rather than listing its containerd once each. A load that sends
// anything ends the sharing: the next probe sees what it sent.
const probeShare = 5 * time.Second

// probeTimeout bounds a probe: it runs on a context of its own (loads that
// share it must not fail because the first one was cancelled).
const probeTimeout = 2 * time.Minute

// NewLoader returns a Loader reading images from docker into nodes' clusters.
func NewLoader(docker SaveAPI, nodes NodeLister, opts ...Option) *Loader {
	l := &Loader{docker: docker, nodes: nodes, fast: true, layers: &layerCache{}, snapshotter: map[string]string{},
		verifiedNodes: map[string]bool{}, probes: map[string]*NodeProbe{}, now: time.Now}
	for _, o := range opts {
		o(l)
	}
	return l
}

// Close stops the image relay (WithRelay), if it started.
func (l *Loader) Close() {
	if l.relay != nil {
		l.relay.close()
	}
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
	started time.Time
	ended   time.Time // once done
	nodes   []nodes.Node
	err     error        // listing the nodes failed
	found   []*nodeHolds // per node, once done
}

// shareable reports whether a ProbeNodes call at now may return p.
func (p *NodeProbe) shareable(now time.Time) bool {
	select {
	case <-p.done:
		return p.err == nil && now.Sub(p.ended) < probeShare
	default:
		return now.Sub(p.started) < probeShare
	}
}

// nodeHolds is what one node's containerd holds.
type nodeHolds struct {
	platform ocispec.Platform
	images   map[string]bool  // normalized names
	content  map[string]bool  // blob digests
	sizes    map[string]int64 // their sizes, where the content store's files say
	err      error            // probing failed: the node is probed the slow way
}

// ProbeNodes starts probing clusterName's nodes and returns at once; or it
// returns the probe another load started less than probeShare ago (or that
// ended that recently), when no load has sent anything since. A shared
// probe's view of a node's content may miss what a concurrent load is
// sending: at worst a layer is sent twice.
func (l *Loader) ProbeNodes(ctx context.Context, clusterName string) *NodeProbe {
	l.mu.Lock()
	defer l.mu.Unlock()
	if p := l.probes[clusterName]; p != nil && p.shareable(l.now()) {
		return p
	}
	p := &NodeProbe{cluster: clusterName, done: make(chan struct{}), started: l.now()}
	l.probes[clusterName] = p
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), probeTimeout)
	go func() {
		defer cancel()
		defer close(p.done)
		defer func() { p.ended = l.now() }()
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
	want := l.hostImage(ctx, ref, insp)
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
		holds := p.found[i]
		t := &target{node: n, result: &res.Nodes[i], platform: holds.platform}
		probes[i] = t
		if l.fast {
			t.have, t.sizes, t.haveErr = holds.content, holds.sizes, holds.err
		}
		if holds.err == nil && !holds.images[name] {
			continue // no image by that name: the node needs it
		}
		// The node has an image by that name (or could not say): is it
		// this one? With content tags it nearly always is.
		wg.Add(1)
		go func() {
			defer wg.Done()
			got, err := nodeImage(ctx, n, ref, t.platform)
			t.result.Skipped = err == nil && want.same(got)
		}()
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return res, fmt.Errorf("loading image %s: %w", ref, err)
	}
	for i := range p.nodes {
		if !res.Nodes[i].Skipped {
			need = append(need, i)
		} else if l.verbose {
			fmt.Fprintf(out, "node %s already has %s\n", p.nodes[i].String(), ref)
		}
	}
	if len(need) == 0 {
		return res, nil
	}

	// What the nodes hold changes now: later loads probe again.
	l.mu.Lock()
	if l.probes[p.cluster] == p {
		delete(l.probes, p.cluster)
	}
	l.mu.Unlock()
	targets := make([]*target, len(need))
	for j, i := range need {
		targets[j] = probes[i]
	}
	start := time.Now()
	remaining := targets
	if l.fast && l.relay != nil {
		remaining = l.loadRelay(ctx, ref, want, targets, out)
		for _, t := range targets {
			if t.relayed != "" {
				want.addManifest(t.relayed)
			}
		}
		if err := ctx.Err(); err != nil {
			return res, fmt.Errorf("loading image %s: %w", ref, err)
		}
	}
	if l.fast && len(remaining) > 0 {
		remaining, err = l.loadFast(ctx, ref, want, remaining, out)
		if err != nil {
			return res, fmt.Errorf("loading image %s: %w", ref, err)
		}
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
		if !l.verbose {
			continue
		}
		r := t.result
		if r.Fast {
			fmt.Fprintf(out, "fast image load into %s (%s): %d layer(s) sent, %d already there, %s in %s\n",
				r.Name, r.Format, r.LayersSent, r.LayersSkipped, ui.Bytes(r.Bytes), r.Duration.Round(time.Millisecond))
		} else {
			fmt.Fprintf(out, "whole image loaded into %s: %s in %s\n", r.Name, ui.Bytes(r.Bytes), r.Duration.Round(time.Millisecond))
		}
	}
	return res, nil
}

// hostImage is what identifies an image of the local engine in a node.
type hostImage struct {
	id string // Docker's image ID: the config digest (classic store) or the target's (containerd store)
	mu sync.Mutex
	// manifests are digests of image manifests that are this image: on
	// the containerd image store, its per-platform manifests; after a fast
	// load, the one devloop wrote.
	manifests map[string]bool
	// multiPlatform: the image is an index with more than one platform.
	multiPlatform bool
	// index: the image is an index (the containerd store: a platform's
	// manifest and, from BuildKit, an attestation manifest).
	index bool
}

func (h *hostImage) addManifest(d string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.manifests[d] = true
}

// same says whether the image a node has by that name is this one: its
// target is the image (the containerd store's index, as a plain load
// leaves it), or one of its manifests (devloop's fast path imports the
// platform's manifest), or its config is the image ID (the classic store).
func (h *hostImage) same(n nodeImg) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return n.target == h.id || h.manifests[n.target] || (n.manifest != "" && h.manifests[n.manifest]) || n.config == h.id
}

// hostImage learns the image's manifests from the engine when it has a
// multi-platform (containerd) image store: one more inspect, API 1.48+.
func (l *Loader) hostImage(ctx context.Context, ref string, insp client.ImageInspectResult) *hostImage {
	h := &hostImage{id: insp.ID, manifests: map[string]bool{}}
	if insp.Descriptor == nil {
		return h // the classic store: the ID is the config digest
	}
	if isManifest(insp.Descriptor.MediaType) {
		h.manifests[insp.Descriptor.Digest.String()] = true
		return h
	}
	h.index = true
	full, err := l.docker.ImageInspect(ctx, ref, client.ImageInspectWithManifests(true))
	if err != nil {
		return h // only the skip check is weaker: the node's target must be the index
	}
	n := 0
	for _, m := range full.Manifests {
		if m.Kind == image.ManifestKindImage {
			h.manifests[m.ID] = true
			n++
		}
	}
	h.multiPlatform = n > 1
	return h
}

// save runs docker save of ref; for a multi-platform image, of the nodes'
// platform only (so other platforms' layers are not read at all), when the
// engine can.
func (l *Loader) save(ctx context.Context, ref string, want *hostImage, plats ...ocispec.Platform) (io.ReadCloser, error) {
	if want != nil && want.multiPlatform && len(plats) > 0 {
		if rc, err := l.docker.ImageSave(ctx, []string{ref}, client.ImageSaveWithPlatforms(plats...)); err == nil {
			return rc, nil
		}
	}
	return l.docker.ImageSave(ctx, []string{ref})
}

// target is a node that needs the image.
type target struct {
	node     nodes.Node
	result   *NodeResult
	platform ocispec.Platform
	have     map[string]bool  // digests in the node's content store
	sizes    map[string]int64 // their sizes, where known
	haveErr  error
	relayed  string // the manifest the relay imported, once it did
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
	guarded := newGuardedSave(save)
	defer guarded.close()

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
	_, cerr := io.Copy(fan, guarded)
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
	if errors.Is(cerr, errBadSave) {
		return fmt.Errorf("loading image %s: %w", ref, cerr)
	}
	if cerr != nil && !errors.Is(cerr, errAllSinksFailed) && len(all) == 0 {
		all = append(all, fmt.Errorf("loading image %s: reading docker save: %w", ref, cerr))
	}
	return errors.Join(all...)
}

var errImportEnded = errors.New("import ended")

// imageScript prints the digest of the target of the node's containerd image
// named $1 (namespace k8s.io, the CRI's), then that blob. It needs only sh and
// ctr (kind's own check uses crictl, which a node image need not ship).
const imageScript = `r=$(ctr --namespace=k8s.io images ls "name==$1") || exit 1
d=$(printf '%s\n' "$r" | { read -r _; read -r _ _ d _; printf '%s' "$d"; })
[ -n "$d" ] || { echo "image $1 not found" >&2; exit 3; }
printf '%s\n' "$d"
exec ctr --namespace=k8s.io content get "$d"`

// nodeImg is what a node's containerd has under an image name.
type nodeImg struct {
	target   string // what the name points to: a manifest or an index
	manifest string // the image manifest for the node's platform
	config   string // its config digest (Docker's image ID on the classic store)
}

// nodeImage reads which image ref names in the node's containerd: one
// cancellable exec, and one more when the name points to an index.
func nodeImage(ctx context.Context, n nodes.Node, ref string, plat ocispec.Platform) (nodeImg, error) {
	named, err := reference.ParseNormalizedNamed(ref)
	if err != nil {
		return nodeImg{}, fmt.Errorf("parsing image reference %q: %w", ref, err)
	}
	var stdout bytes.Buffer
	if err := n.CommandContext(ctx, "sh", "-c", imageScript, "sh", reference.TagNameOnly(named).String()).SetStdout(&stdout).Run(); err != nil {
		return nodeImg{}, err
	}
	first, rest, _ := bytes.Cut(stdout.Bytes(), []byte("\n"))
	img := nodeImg{target: strings.TrimSpace(string(first))}
	dg, err := digest.Parse(img.target)
	if err != nil {
		return nodeImg{}, fmt.Errorf("image %s on node %s: target %q: %w", ref, n.String(), cut(img.target), err)
	}
	get := func(d ocispec.Descriptor) ([]byte, error) {
		if d.Digest == dg {
			return rest, nil
		}
		var b bytes.Buffer
		if err := n.CommandContext(ctx, "ctr", "--namespace=k8s.io", "content", "get", d.Digest.String()).SetStdout(&b).Run(); err != nil {
			return nil, fmt.Errorf("reading %s on node %s: %w", d.Digest, n.String(), err)
		}
		return b.Bytes(), nil
	}
	r, err := resolveManifest(get, ocispec.Descriptor{Digest: dg}, plat)
	if err != nil {
		// Not an image for this platform, or its manifest is not in the
		// node: only the target can match.
		return img, nil //nolint:nilerr
	}
	img.manifest, img.config = r.desc.Digest.String(), r.manifest.Config.Digest.String()
	return img, nil
}

// probeScript prints the node's machine (`uname -m`), the image names in the
// node's containerd (the CRI's namespace), a separator line, the digests in
// its content store, another separator, and the sizes of the content store's
// blob files (`ctr content ls` rounds them; the relay must answer exactly):
// one exec for all.
const probeScript = `printf 'machine %s\n' "$(uname -m)"
ctr --namespace=k8s.io images ls -q || exit 1
echo ---
ctr --namespace=k8s.io content ls -q || exit 1
echo ---
find /var/lib/containerd/io.containerd.content.v1.content/blobs/sha256 -maxdepth 1 -type f -printf '%f %s\n' 2>/dev/null
exit 0`

// probeNode lists the images and blobs a node's containerd holds.
func probeNode(ctx context.Context, n nodes.Node) *nodeHolds {
	var stdout bytes.Buffer
	if err := n.CommandContext(ctx, "sh", "-c", probeScript).SetStdout(&stdout).Run(); err != nil {
		return &nodeHolds{platform: platformFromUname(""), err: fmt.Errorf("listing images and content of node %s: %w", n.String(), err)}
	}
	h := &nodeHolds{platform: platformFromUname(""), images: map[string]bool{}, content: map[string]bool{}, sizes: map[string]int64{}}
	sc := bufio.NewScanner(&stdout)
	sc.Buffer(nil, 1<<20)
	section := 0
	for sc.Scan() {
		switch line := strings.TrimSpace(sc.Text()); {
		case line == "---":
			section++
		case line == "":
		case section >= 2:
			hex, size, ok := strings.Cut(line, " ")
			n, err := strconv.ParseInt(size, 10, 64)
			if ok && err == nil && n >= 0 && len(hex) == 64 {
				h.sizes["sha256:"+hex] = n
			}
		case section == 1:
			if strings.HasPrefix(line, "sha256:") {
				h.content[line] = true
			}
		case strings.HasPrefix(line, "machine "):
			h.platform = platformFromUname(strings.TrimPrefix(line, "machine "))
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
