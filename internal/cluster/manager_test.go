package cluster

import (
	"bytes"
	"context"
	"errors"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/devloop-dev/devloop/internal/config"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

const testImage = "devloop.local/kind-node:v1.37.2"

type fixture struct {
	prov       *fakeProvider
	docker     *fakeDocker
	registry   *fakeRegistry
	kubeconfig string
	m          *Manager
	log        *bytes.Buffer
	// apiErr is what the fake API server probe returns.
	apiErr error
	// ready, when set, answers the new cluster's readiness check (default: Ready).
	ready func(ctx context.Context) (bool, error)
}

func newFixture(t *testing.T, existing ...string) *fixture {
	t.Helper()
	f := &fixture{
		prov:       newFakeProvider(existing...),
		docker:     &fakeDocker{images: map[string]bool{testImage: true}, files: map[string]bool{}, containers: map[string]ContainerInfo{}},
		kubeconfig: writeUserKubeconfig(t),
		log:        &bytes.Buffer{},
		registry:   newFakeRegistry(),
	}
	for _, n := range existing {
		f.docker.containers[n+"-control-plane"] = ContainerInfo{Exists: true, Running: true, KindCluster: n}
	}
	f.m = NewManager(f.log,
		withProvider(f.prov),
		withDocker(f.docker),
		withRegistryDocker(f.registry),
		withRegistryProbe(func(context.Context, string) error { return nil }),
		withKubeconfigPath(f.kubeconfig),
		withCgroupV1Detector(func() (bool, error) { return true, nil }),
		withMarks(filepath.Join(t.TempDir(), "marks")),
		withAPIProbe(func(context.Context, *rest.Config) error { return f.apiErr }),
		withNodesReady(func(ctx context.Context, _, _ string) (bool, error) {
			if f.ready != nil {
				return f.ready(ctx)
			}
			return true, nil
		}),
	)
	return f
}

// testSpec uses free host ports so the port check passes.
func testSpec(t *testing.T, name string) config.Cluster {
	return config.Cluster{Name: name, NodeImage: testImage,
		Ingress: config.Ingress{HTTPPort: freePort(t), HTTPSPort: freePort(t)}}
}

func TestEnsureCreates(t *testing.T) {
	f := newFixture(t)
	spec := testSpec(t, "cx-new")
	info, err := f.m.Ensure(context.Background(), spec)
	if err != nil {
		t.Fatal(err)
	}
	if !info.Created || info.Name != "cx-new" || info.Context != "kind-cx-new" {
		t.Errorf("info = %+v", info)
	}
	if ok, err := f.m.Owned("cx-new"); !ok || err != nil {
		t.Errorf("a cluster devloop created is not marked as devloop's: %v, %v", ok, err)
	}
	if info.RESTConfig == nil || info.RESTConfig.Host != f.prov.server {
		t.Errorf("RESTConfig = %+v", info.RESTConfig)
	}
	if len(info.Nodes) != 1 || info.Nodes[0] != "cx-new-control-plane" {
		t.Errorf("Nodes = %v", info.Nodes)
	}
	if len(f.prov.creates) != 1 {
		t.Fatalf("creates = %d", len(f.prov.creates))
	}
	cfg := f.prov.creates[0]
	if cfg.Nodes[0].Image != testImage || len(cfg.KubeadmConfigPatches) != 1 {
		t.Errorf("kind config = %+v", cfg)
	}
	if !cfg.Networking.DisableDefaultCNI {
		t.Error("image without default-cni.yaml: want DisableDefaultCNI")
	}
	if kc := f.prov.createKCs[0]; kc == "" || kc == f.kubeconfig {
		t.Errorf("kind wrote kubeconfig %q: want a private temp file", kc)
	}
	user, err := clientcmd.LoadFromFile(f.kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := user.Contexts["kind-cx-new"]; !ok || user.CurrentContext != "work" {
		t.Errorf("user kubeconfig: contexts %v current %q", user.Contexts, user.CurrentContext)
	}
}

func TestEnsureKeepsDefaultCNIWhenImageHasIt(t *testing.T) {
	f := newFixture(t)
	f.docker.files[testImage+":"+defaultCNIManifest] = true
	if _, err := f.m.Ensure(context.Background(), testSpec(t, "cx-cni")); err != nil {
		t.Fatal(err)
	}
	if f.prov.creates[0].Networking.DisableDefaultCNI {
		t.Error("DisableDefaultCNI set although the image ships kindnetd")
	}
}

func TestEnsureAdopts(t *testing.T) {
	f := newFixture(t, "cx-old")
	// Ports are irrelevant when adopting: the cluster itself holds them.
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	spec := config.Cluster{Name: "cx-old", Ingress: config.Ingress{HTTPPort: busy.Addr().(*net.TCPAddr).Port}}
	info, err := f.m.Ensure(context.Background(), spec)
	if err != nil {
		t.Fatal(err)
	}
	if info.Created {
		t.Error("Created = true for an existing cluster")
	}
	if c, _ := f.prov.counts(); c != 0 {
		t.Errorf("Create called %d times", c)
	}
	user, _ := clientcmd.LoadFromFile(f.kubeconfig)
	if _, ok := user.Contexts["kind-cx-old"]; !ok || user.CurrentContext != "work" {
		t.Errorf("adopt did not export the context or changed current-context: %v %q", user.Contexts, user.CurrentContext)
	}
}

func TestEnsureErrors(t *testing.T) {
	tests := []struct {
		name    string
		setup   func(f *fixture, spec *config.Cluster)
		wantSub []string
	}{
		{
			name: "name clash with a foreign container",
			setup: func(f *fixture, spec *config.Cluster) {
				f.docker.containers["cx-e-control-plane"] = ContainerInfo{Exists: true, Running: true}
			},
			wantSub: []string{"cx-e-control-plane", "not a node of that cluster", "no kind cluster label"},
		},
		{
			name: "name clash with another cluster's node",
			setup: func(f *fixture, spec *config.Cluster) {
				f.docker.containers["cx-e-control-plane"] = ContainerInfo{Exists: true, KindCluster: "other"}
			},
			wantSub: []string{`belongs to kind cluster "other"`},
		},
		{
			name: "node image missing and not pullable",
			setup: func(f *fixture, spec *config.Cluster) {
				spec.NodeImage = "devloop.local/kind-node:v9.9.9"
				f.docker.pullErr = errors.New("dial tcp: lookup registry: no such host")
			},
			wantSub: []string{"devloop.local/kind-node:v9.9.9", "DEVLOOP_NODE_IMAGE", "cluster.nodeImage", "e2e/setup.sh", "no such host"},
		},
		{
			name: "create fails",
			setup: func(f *fixture, spec *config.Cluster) {
				f.prov.createFn = func(string) error { return errors.New("failed to init node with kubeadm") }
			},
			wantSub: []string{`creating kind cluster "cx-e"`, testImage, "kubeadm"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			spec := testSpec(t, "cx-e")
			tt.setup(f, &spec)
			_, err := f.m.Ensure(context.Background(), spec)
			if err == nil {
				t.Fatal("want error")
			}
			for _, s := range tt.wantSub {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not mention %q", err, s)
				}
			}
		})
	}
}

func TestEnsurePortInUse(t *testing.T) {
	f := newFixture(t)
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	spec := testSpec(t, "cx-p")
	spec.Ingress.HTTPPort = busy.Addr().(*net.TCPAddr).Port
	_, err = f.m.Ensure(context.Background(), spec)
	var pe *PortInUseError
	if !errors.As(err, &pe) || pe.Setting != "cluster.ingress.httpPort" {
		t.Fatalf("err = %v, want PortInUseError for httpPort", err)
	}
	if c, _ := f.prov.counts(); c != 0 {
		t.Error("Create called despite a busy port")
	}
}

func TestEnsureAdoptStoppedNode(t *testing.T) {
	f := newFixture(t, "cx-s")
	f.docker.containers["cx-s-control-plane"] = ContainerInfo{Exists: true, Running: false, KindCluster: "cx-s"}
	_, err := f.m.Ensure(context.Background(), config.Cluster{Name: "cx-s"})
	if err == nil || !strings.Contains(err.Error(), "docker start cx-s-control-plane") {
		t.Fatalf("err = %v", err)
	}
}

// TestEnsureCancelDeletesHalfMadeCluster: kind's Create blocks until the
// cluster is deleted underneath it (as a real Create fails once its node
// container is gone); cancelling ctx must trigger that delete, wait for
// Create to return, and delete again.
func TestEnsureCancelDeletesHalfMadeCluster(t *testing.T) {
	f := newFixture(t)
	started := make(chan struct{})
	deleted := make(chan string, 4)
	f.prov.deleteCh = deleted
	createReturned := make(chan struct{})
	f.prov.createFn = func(name string) error {
		close(started)
		<-deleted // the concurrent delete from the cancel path
		close(createReturned)
		return errors.New("node container vanished")
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := f.m.Ensure(ctx, testSpec(t, "cx-c"))
		errc <- err
	}()
	<-started
	cancel()
	err := <-errc
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	select {
	case <-createReturned:
	default:
		t.Fatal("Ensure returned before Create did")
	}
	// The second delete (after Create returned) must have happened too.
	if _, d := f.prov.counts(); d < 2 {
		t.Errorf("deletes = %d, want at least 2", d)
	}
	if ok, _ := f.m.Exists("cx-c"); ok {
		t.Error("half-made cluster left behind")
	}
}

// A Ctrl-C while the new cluster's control plane is awaited returns at once
// and deletes the cluster: kind's own wait polled on for minutes after the
// nodes were gone.
func TestEnsureCancelWhileWaitingForReady(t *testing.T) {
	f := newFixture(t)
	waiting := make(chan struct{})
	var once sync.Once
	f.ready = func(ctx context.Context) (bool, error) {
		once.Do(func() { close(waiting) })
		return false, errors.New("node devloop-control-plane is not Ready yet")
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := f.m.Ensure(ctx, testSpec(t, "cx-w"))
		errc <- err
	}()
	<-waiting
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if ok, _ := f.m.Exists("cx-w"); ok {
		t.Error("a cluster cancelled while its control plane was awaited was left behind")
	}
	if ok, _ := f.m.Owned("cx-w"); ok {
		t.Error("a deleted cluster is marked as devloop's")
	}
}

// The cleanup of a cancelled create removes the nodes as Delete does: a
// first removal the engine fails ("did not receive an exit event", seen
// after a Ctrl-C right after the node started) is tried again, though the
// command's context is already done.
func TestEnsureCancelRetriesAFailedNodeRemoval(t *testing.T) {
	f := newFixture(t)
	f.m.deleteRetry = time.Millisecond
	waiting := make(chan struct{})
	var once sync.Once
	f.ready = func(ctx context.Context) (bool, error) {
		once.Do(func() { close(waiting) })
		return false, errors.New("node devloop-control-plane is not Ready yet")
	}
	tries := 0
	f.prov.deleteErr = func(string) error {
		if tries++; tries == 1 {
			return errors.New("failed to delete nodes: could not kill container: tried to kill container, but did not receive an exit event")
		}
		return nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := f.m.Ensure(ctx, testSpec(t, "cx-z"))
		errc <- err
	}()
	<-waiting
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) || strings.Contains(err.Error(), "deleting it failed") {
		t.Fatalf("err = %v, want only context.Canceled", err)
	}
	if ok, _ := f.m.Exists("cx-z"); ok || tries != 2 {
		t.Errorf("cluster left behind: %v, after %d removal(s)", ok, tries)
	}
}

// A control plane that never becomes Ready is warned about, as kind does,
// and the cluster is kept: the rollouts say what is wrong.
func TestEnsureReadyTimeoutWarns(t *testing.T) {
	f := newFixture(t)
	f.m.readyTimeout = time.Nanosecond
	f.ready = func(context.Context) (bool, error) { return false, errors.New("node x is not Ready yet") }
	if _, err := f.m.Ensure(context.Background(), testSpec(t, "cx-t")); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(f.log.String(), "was not Ready after") || !strings.Contains(f.log.String(), "node x is not Ready yet") {
		t.Errorf("no warning naming the reason:\n%s", f.log.String())
	}
	if ok, _ := f.m.Exists("cx-t"); !ok {
		t.Error("the cluster was deleted")
	}
}

func TestDelete(t *testing.T) {
	f := newFixture(t, "cx-d")
	if ok, _ := f.m.Owned("cx-d"); ok {
		t.Error("an adopted cluster (made by another tool) counts as devloop's")
	}
	if _, err := f.m.Ensure(context.Background(), testSpec(t, "cx-d")); err != nil {
		t.Fatal(err)
	}
	if ok, _ := f.m.Owned("cx-d"); ok {
		t.Error("adopting a cluster marked it as devloop's")
	}
	if err := f.m.Marks().Created("cx-d"); err != nil {
		t.Fatal(err)
	}
	if err := f.m.Delete(context.Background(), "cx-d"); err != nil {
		t.Fatal(err)
	}
	if ok, _ := f.m.Owned("cx-d"); ok {
		t.Error("a deleted cluster is still marked")
	}
	if ok, _ := f.m.Exists("cx-d"); ok {
		t.Error("cluster still exists")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := f.m.Delete(ctx, "cx-d"); !errors.Is(err, context.Canceled) {
		t.Errorf("Delete with cancelled ctx = %v", err)
	}
}

func TestRESTConfigAndNodeNames(t *testing.T) {
	f := newFixture(t, "cx-r")
	rc, err := f.m.RESTConfig("cx-r")
	if err != nil {
		t.Fatal(err)
	}
	if rc.Host != f.prov.server {
		t.Errorf("Host = %q", rc.Host)
	}
	nodes, err := f.m.NodeNames("cx-r")
	if err != nil || len(nodes) != 1 {
		t.Errorf("NodeNames = %v, %v", nodes, err)
	}
}
