package imageload

import (
	"bytes"
	"context"
	"io"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/kind/pkg/cluster/nodes"
)

func layer(seed string, size int) []byte {
	return bytes.Repeat([]byte(seed), size/len(seed))
}

func twoNodes() ([]*fakeContainerd, fakeLister) {
	a, b := newFakeContainerd(), newFakeContainerd()
	return []*fakeContainerd{a, b}, fakeLister{
		&funcNode{name: "c-control-plane", run: a.run},
		&funcNode{name: "c-worker", run: b.run},
	}
}

func TestLoadFirstThenSkipThenOneLayerChange(t *testing.T) {
	ctx := context.Background()
	docker := &fakeDocker{}
	base, deps := layer("base", 40000), layer("deps", 30000)
	v1 := docker.addImage("app:devloop-1", [][]byte{base, deps, layer("app v1", 6000)})
	v2 := docker.addImage("app:devloop-2", [][]byte{base, deps, layer("app v2", 6000)})
	fakes, lister := twoNodes()
	l := NewLoader(docker, lister)

	// First load: every layer goes to both nodes.
	var out bytes.Buffer
	res, err := l.Load(ctx, "c", "app:devloop-1", &out)
	if err != nil {
		t.Fatalf("first load: %v\n%s", err, out.String())
	}
	if res.ID != v1.id || len(res.Nodes) != 2 {
		t.Fatalf("result = %+v", res)
	}
	var firstBytes int64
	for i, n := range res.Nodes {
		if n.Skipped || !n.Fast || n.LayersSent != 3 || n.LayersSkipped != 0 || n.Bytes < 76000 {
			t.Errorf("first load node %d = %+v", i, n)
		}
		if got := fakes[i].configOf("docker.io/library/app:devloop-1"); got != v1.id {
			t.Errorf("node %d image id = %q, want %q", i, got, v1.id)
		}
		firstBytes = n.Bytes
	}
	if docker.saves != 1 {
		t.Errorf("docker saves = %d, want 1 (one stream shared by both nodes)", docker.saves)
	}

	// Same image again: nothing to do.
	res, err = l.Load(ctx, "c", "app:devloop-1", &out)
	if err != nil {
		t.Fatal(err)
	}
	for i, n := range res.Nodes {
		if !n.Skipped || n.Bytes != 0 {
			t.Errorf("reload node %d = %+v", i, n)
		}
	}
	if docker.saves != 1 {
		t.Errorf("docker saves = %d, want still 1", docker.saves)
	}

	// One-layer change: only the new top layer is sent.
	res, err = l.Load(ctx, "c", "app:devloop-2", &out)
	if err != nil {
		t.Fatalf("second load: %v\n%s", err, out.String())
	}
	for i, n := range res.Nodes {
		if n.Skipped || !n.Fast || n.LayersSent != 1 || n.LayersSkipped != 2 {
			t.Errorf("changed load node %d = %+v", i, n)
		}
		if n.Bytes*5 > firstBytes {
			t.Errorf("changed load node %d sent %d bytes, first load %d", i, n.Bytes, firstBytes)
		}
		if got := fakes[i].configOf("docker.io/library/app:devloop-2"); got != v2.id {
			t.Errorf("node %d image id = %q, want %q", i, got, v2.id)
		}
	}
	if out.Len() != 0 {
		t.Errorf("unexpected notes: %s", out.String())
	}
}

func TestLoadFallsBackToFullArchive(t *testing.T) {
	tests := []struct {
		name     string
		setup    func(*fakeContainerd)
		wantNote string
	}{
		{"import rejects OCI layout", func(f *fakeContainerd) { f.rejectOCI = true }, "fake rejects OCI layout"},
		{"content listing fails", func(f *fakeContainerd) { f.noContent = true }, "unavailable"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			docker := &fakeDocker{}
			img := docker.addImage("example.com/team/app:devloop-1", [][]byte{layer("a", 1000), layer("b", 1000)})
			fakes, lister := twoNodes()
			tt.setup(fakes[1])
			var out bytes.Buffer
			res, err := NewLoader(docker, lister).Load(context.Background(), "c", "example.com/team/app:devloop-1", &out)
			if err != nil {
				t.Fatalf("load: %v", err)
			}
			if !res.Nodes[0].Fast || res.Nodes[1].Fast || res.Nodes[1].Bytes == 0 {
				t.Fatalf("nodes = %+v", res.Nodes)
			}
			for i, f := range fakes {
				if f.configOf("example.com/team/app:devloop-1") != img.id {
					t.Errorf("node %d lacks the image: %v", i, f.images)
				}
			}
			if !strings.Contains(out.String(), tt.wantNote) || !strings.Contains(out.String(), "c-worker") {
				t.Errorf("notes = %q", out.String())
			}
		})
	}
}

func TestLoadRepeatedLayer(t *testing.T) {
	// Docker writes a repeated layer once and symlinks the repeat.
	docker := &fakeDocker{}
	a, b := layer("same", 4000), layer("other", 2000)
	img := docker.addImage("app:rep", [][]byte{a, b, a})
	fakes, lister := twoNodes()
	l := NewLoader(docker, lister)
	res, err := l.Load(context.Background(), "c", "app:rep", nil)
	if err != nil {
		t.Fatal(err)
	}
	for i, n := range res.Nodes {
		if !n.Fast || n.LayersSent != 2 || fakes[i].configOf("docker.io/library/app:rep") != img.id {
			t.Errorf("node %d = %+v", i, n)
		}
	}
	// The full path handles the symlink too.
	fakes, lister = twoNodes()
	if _, err := NewLoader(docker, lister, WithFastPath(false)).Load(context.Background(), "c", "app:rep", nil); err != nil {
		t.Fatal(err)
	}
	if fakes[0].configOf("docker.io/library/app:rep") != img.id {
		t.Error("full path did not load the image")
	}
}

func TestLoadVerifiesFirstLayerSkippingImport(t *testing.T) {
	docker := &fakeDocker{}
	base := layer("base", 10000)
	docker.addImage("app:1", [][]byte{base, layer("one", 1000)})
	img2 := docker.addImage("app:2", [][]byte{base, layer("two", 1000)})
	fakes, lister := twoNodes()
	l := NewLoader(docker, lister)
	if _, err := l.Load(context.Background(), "c", "app:1", nil); err != nil {
		t.Fatal(err)
	}
	fakes[0].misnameOCI = true
	var out bytes.Buffer
	res, err := l.Load(context.Background(), "c", "app:2", &out)
	if err != nil {
		t.Fatal(err)
	}
	if res.Nodes[0].Fast || !res.Nodes[1].Fast || fakes[0].configOf("docker.io/library/app:2") != img2.id {
		t.Fatalf("nodes = %+v, images %v", res.Nodes, fakes[0].images)
	}
	if !strings.Contains(out.String(), "c-control-plane") || !strings.Contains(out.String(), "checking the imported image") {
		t.Fatalf("notes = %q", out.String())
	}
}

func TestLoadFullPathOnly(t *testing.T) {
	docker := &fakeDocker{}
	img := docker.addImage("app:devloop-1", [][]byte{layer("a", 1000)})
	fakes, lister := twoNodes()
	res, err := NewLoader(docker, lister, WithFastPath(false)).Load(context.Background(), "c", "app:devloop-1", io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	for i, n := range res.Nodes {
		if n.Fast || n.Bytes != int64(len(img.archive)) || fakes[i].configOf("docker.io/library/app:devloop-1") != img.id {
			t.Errorf("node %d = %+v", i, n)
		}
	}
}

func TestLoadErrors(t *testing.T) {
	docker := &fakeDocker{}
	docker.addImage("app:1", [][]byte{layer("a", 100)})
	if _, err := NewLoader(docker, fakeLister{}).Load(context.Background(), "c", "app:1", nil); err == nil || !strings.Contains(err.Error(), "no nodes") {
		t.Errorf("no nodes: err = %v", err)
	}
	_, lister := twoNodes()
	if _, err := NewLoader(docker, lister).Load(context.Background(), "c", "missing:1", nil); err == nil || !strings.Contains(err.Error(), "missing:1") {
		t.Errorf("missing image: err = %v", err)
	}
	// A node whose import always fails reports an error naming it.
	broken := &funcNode{name: "c-broken", run: func(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
		f := newFakeContainerd()
		if args[0] == "ctr" && args[2] == "images" {
			io.Copy(io.Discard, stdin)
			io.WriteString(stderr, "disk full")
			return io.ErrUnexpectedEOF
		}
		return f.run(ctx, args, stdin, stdout, stderr)
	}}
	_, err := NewLoader(docker, fakeLister{broken}).Load(context.Background(), "c", "app:1", nil)
	if err == nil || !strings.Contains(err.Error(), "c-broken") || !strings.Contains(err.Error(), "disk full") {
		t.Errorf("broken node: err = %v", err)
	}
}

func TestLayerCacheFilePersists(t *testing.T) {
	docker := &fakeDocker{}
	base := layer("base", 20000)
	docker.addImage("app:1", [][]byte{base, layer("one", 3000)})
	docker.addImage("app:2", [][]byte{base, layer("two", 3000)})
	fakes, lister := twoNodes()
	cache := filepath.Join(t.TempDir(), "layers.json")
	if _, err := NewLoader(docker, lister, WithLayerCacheFile(cache)).Load(context.Background(), "c", "app:1", nil); err != nil {
		t.Fatal(err)
	}
	// A new Loader (as after a restart) still knows the base layer's v1 ID.
	res, err := NewLoader(docker, lister, WithLayerCacheFile(cache)).Load(context.Background(), "c", "app:2", nil)
	if err != nil {
		t.Fatal(err)
	}
	for i, n := range res.Nodes {
		if n.LayersSent != 1 || n.LayersSkipped != 1 || fakes[i].imports != 2 {
			t.Errorf("node %d = %+v (imports %d)", i, n, fakes[i].imports)
		}
	}
}

func TestLoadCanceled(t *testing.T) {
	docker := &fakeDocker{}
	docker.addImage("app:1", [][]byte{layer("a", 100)})
	_, lister := twoNodes()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := NewLoader(docker, lister).Load(ctx, "c", "app:1", nil); err == nil {
		t.Fatal("canceled load succeeded")
	}
}

func TestParseSnapshotter(t *testing.T) {
	tests := []struct {
		name, config, want string
	}{
		{"v2", "version = 2\n[plugins]\n  [plugins.\"io.containerd.grpc.v1.cri\".containerd]\n    default_runtime_name = \"runc\"\n    snapshotter = \"overlayfs\"\n", "overlayfs"},
		{"v3", "version = 3\n[plugins.'io.containerd.cri.v1.images']\n  snapshotter = 'native'\n", "native"},
		{"v3 double quotes", "version = 3\n[plugins.\"io.containerd.cri.v1.images\"]\n  snapshotter = \"native\"\n", "native"},
		{"other section only", "[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.runc]\n snapshotter = \"\"\n", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseSnapshotter(tt.config)
			if tt.want == "" {
				if err == nil {
					t.Fatalf("got %q, want error", got)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("got %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

var _ nodes.Node = (*funcNode)(nil)

// TestProbeOverlapsBuild: the nodes are probed before the image exists (as
// `up` does while it builds); the load then needs no further probe of a
// node that has no image by that name, and checks the ID of one that has.
func TestProbeOverlapsBuild(t *testing.T) {
	ctx := context.Background()
	docker := &fakeDocker{}
	fakes, lister := twoNodes()
	l := NewLoader(docker, lister)

	probe := l.ProbeNodes(ctx, "c") // before the build
	v1 := docker.addImage("app:devloop-1", [][]byte{layer("base", 40000), layer("app v1", 6000)})
	res, err := l.LoadProbed(ctx, probe, "app:devloop-1", io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	for i, n := range res.Nodes {
		if n.Skipped || !n.Fast || n.LayersSent != 2 {
			t.Errorf("node %d = %+v", i, n)
		}
		if fakes[i].probes != 1 || fakes[i].idChecks != 0 {
			t.Errorf("node %d: %d probes, %d image ID checks; want 1 probe and no ID check (no image by that name)", i, fakes[i].probes, fakes[i].idChecks)
		}
		if fakes[i].configOf("docker.io/library/app:devloop-1") != v1.id {
			t.Errorf("node %d lacks the image", i)
		}
	}

	// The name is there now: its ID is checked, and the node is skipped.
	res, err = l.LoadProbed(ctx, l.ProbeNodes(ctx, "c"), "app:devloop-1", io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	for i, n := range res.Nodes {
		if !n.Skipped || fakes[i].idChecks != 1 {
			t.Errorf("node %d = %+v after %d ID checks, want skipped after 1", i, n, fakes[i].idChecks)
		}
	}

	// Same name, another image on one node (a re-tag): that node gets it.
	fakes[1].images["docker.io/library/app:devloop-1"] = "sha256:other"
	res, err = l.Load(ctx, "c", "app:devloop-1", io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Nodes[0].Skipped || res.Nodes[1].Skipped || fakes[1].configOf("docker.io/library/app:devloop-1") != v1.id {
		t.Errorf("nodes = %+v; node 1 has %s", res.Nodes, fakes[1].configOf("docker.io/library/app:devloop-1"))
	}
}

// TestProbeFailsLoadsAnyway: a node whose containerd cannot be listed gets
// the whole image (after an ID check), not an error.
func TestProbeFailsLoadsAnyway(t *testing.T) {
	ctx := context.Background()
	docker := &fakeDocker{}
	docker.addImage("app:devloop-1", [][]byte{layer("base", 40000)})
	fakes, lister := twoNodes()
	fakes[0].noContent = true
	var out bytes.Buffer
	res, err := NewLoader(docker, lister).Load(ctx, "c", "app:devloop-1", &out)
	if err != nil {
		t.Fatal(err)
	}
	if n := res.Nodes[0]; n.Skipped || n.Fast || n.Bytes == 0 || fakes[0].idChecks != 1 {
		t.Errorf("node 0 = %+v (%d ID checks)", n, fakes[0].idChecks)
	}
	if !strings.Contains(out.String(), "loading the whole image") {
		t.Errorf("no note about the fallback: %q", out.String())
	}
	if n := res.Nodes[1]; !n.Fast {
		t.Errorf("node 1 = %+v", n)
	}
}

// The loads of one start-up share one probe of each node: a second
// ProbeNodes while the first runs, or soon after it ended, gets the same
// probe, even when the first caller was cancelled; a load that sends
// something ends the sharing, and so does time.
func TestLoadsShareAProbe(t *testing.T) {
	docker := &fakeDocker{}
	docker.addImage("app:devloop-1", [][]byte{layer("app v1", 6000)})
	docker.addImage("ingress:v3", [][]byte{layer("ingress", 9000)})
	fakes, lister := twoNodes()
	l := NewLoader(docker, lister)
	now := time.Unix(1000, 0)
	l.now = func() time.Time { return now }
	probeCount := func() int {
		n := 0
		for _, f := range fakes {
			f.mu.Lock()
			n += f.probes
			f.mu.Unlock()
		}
		return n
	}

	first, cancel := context.WithCancel(context.Background())
	p1 := l.ProbeNodes(first, "c")
	cancel() // the first caller's build was superseded
	p2 := l.ProbeNodes(context.Background(), "c")
	if p1 != p2 {
		t.Fatal("a second ProbeNodes while the first runs made a probe of its own")
	}
	if _, err := l.LoadProbed(context.Background(), p2, "ingress:v3", io.Discard); err != nil {
		t.Fatalf("a shared probe failed with its first caller's context: %v", err)
	}
	if n := probeCount(); n != 2 {
		t.Fatalf("%d node probes, want 2 (one per node)", n)
	}

	// The ingress was sent: the next load probes again and sees it.
	if _, err := l.Load(context.Background(), "c", "ingress:v3", io.Discard); err != nil {
		t.Fatal(err)
	}
	if n := probeCount(); n != 4 {
		t.Fatalf("%d node probes after a load that sent, want 4", n)
	}
	// Nothing was sent by that one: a load right after shares its probe...
	now = now.Add(probeShare - time.Millisecond)
	res, err := l.Load(context.Background(), "c", "ingress:v3", io.Discard)
	if err != nil || !res.Nodes[0].Skipped || !res.Nodes[1].Skipped {
		t.Fatalf("res = %+v, %v", res, err)
	}
	if n := probeCount(); n != 4 {
		t.Fatalf("%d node probes, want the last probe shared (4)", n)
	}
	// ...and one later does not.
	now = now.Add(probeShare)
	if _, err := l.Load(context.Background(), "c", "app:devloop-1", io.Discard); err != nil {
		t.Fatal(err)
	}
	if n := probeCount(); n != 6 {
		t.Fatalf("%d node probes, want 6 (a probe older than %s is not shared)", n, probeShare)
	}
}
