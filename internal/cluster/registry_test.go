package cluster

import (
	"context"
	"errors"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/devloop-dev/devloop/internal/config"
	"k8s.io/client-go/kubernetes/fake"
	"sigs.k8s.io/kind/pkg/apis/config/v1alpha4"
	"sigs.k8s.io/yaml"
)

// fakeRegistry is RegistryDocker in memory: containers, volumes and the
// files of node containers.
type fakeRegistry struct {
	mu         sync.Mutex
	containers map[string]RegistryInfo
	volumes    map[string]string // name -> RegistryLabel value
	files      map[string]string // container+":"+path -> content
	runs       []RegistryRun
	started    []string
	connected  []string
	removed    []string
	removedVol []string
}

func newFakeRegistry() *fakeRegistry {
	return &fakeRegistry{containers: map[string]RegistryInfo{}, volumes: map[string]string{}, files: map[string]string{}}
}

func (r *fakeRegistry) Registry(_ context.Context, name string) (RegistryInfo, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.containers[name], nil
}

func (r *fakeRegistry) RunRegistry(_ context.Context, run RegistryRun) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.runs = append(r.runs, run)
	r.volumes[run.Volume] = run.Labels[RegistryLabel]
	r.containers[run.Name] = RegistryInfo{Exists: true, Running: true, Label: run.Labels[RegistryLabel], Networks: []string{run.Network}}
	return nil
}

func (r *fakeRegistry) Start(_ context.Context, name string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	ri := r.containers[name]
	ri.Running = true
	r.containers[name] = ri
	r.started = append(r.started, name)
	return nil
}

func (r *fakeRegistry) Connect(_ context.Context, network, name string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	ri := r.containers[name]
	ri.Networks = append(ri.Networks, network)
	r.containers[name] = ri
	r.connected = append(r.connected, network+"/"+name)
	return nil
}

func (r *fakeRegistry) Remove(_ context.Context, name string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.containers, name)
	r.removed = append(r.removed, name)
	return nil
}

func (r *fakeRegistry) VolumeLabel(_ context.Context, volume, label string) (string, bool, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	v, ok := r.volumes[volume]
	return v, ok, nil
}

func (r *fakeRegistry) RemoveVolume(_ context.Context, volume string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.volumes, volume)
	r.removedVol = append(r.removedVol, volume)
	return nil
}

func (r *fakeRegistry) ReadFile(_ context.Context, container, path string) (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.files[container+":"+path], nil
}

func (r *fakeRegistry) WriteFile(_ context.Context, container, path, content string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.files[container+":"+path] = content
	return nil
}

// patchedConfig is a node's containerd config after kind merged the patch.
const patchedConfig = "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".registry]\n  config_path = \"/etc/containerd/certs.d\"\n"

func registrySpec(name string, port int, delivery string) config.Cluster {
	return config.Cluster{Name: name, NodeImage: testImage, Workers: 1, Delivery: delivery,
		Registry: config.Registry{Enabled: true, Port: port, Image: "devloop.local/registry:3.1.2"},
		Ingress:  config.Ingress{Enabled: new(bool)}}.WithDefaults()
}

func TestKindConfigWorkersAndRegistry(t *testing.T) {
	spec := registrySpec("cx-w", 5001, config.DeliveryPush)
	spec.Workers = 2
	spec.Ingress.Enabled = nil
	cfg := kindConfig(spec, kindConfigOptions{})
	var roles []string
	for _, n := range cfg.Nodes {
		roles = append(roles, string(n.Role))
		if n.Image != testImage {
			t.Errorf("node %s image %q", n.Role, n.Image)
		}
		if n.Role == v1alpha4.WorkerRole && (len(n.ExtraPortMappings) > 0 || n.Labels[IngressReadyLabel] != "") {
			t.Errorf("a worker got the ingress: %+v", n)
		}
	}
	if strings.Join(roles, ",") != "control-plane,worker,worker" {
		t.Errorf("roles %v", roles)
	}
	if len(cfg.Nodes[0].ExtraPortMappings) != 2 || cfg.Nodes[0].Labels[IngressReadyLabel] != "true" {
		t.Errorf("the control plane lost the ingress: %+v", cfg.Nodes[0])
	}
	if len(cfg.ContainerdConfigPatches) != 1 || !readsCertsDir(cfg.ContainerdConfigPatches[0]) {
		t.Errorf("containerd patches %q", cfg.ContainerdConfigPatches)
	}
	// Without the registry: no patch.
	spec.Registry.Enabled = false
	if cfg := kindConfig(spec, kindConfigOptions{}); len(cfg.ContainerdConfigPatches) != 0 {
		t.Errorf("patched without a registry: %q", cfg.ContainerdConfigPatches)
	}
}

func TestHostsTOMLAndConfigMap(t *testing.T) {
	want := "server = \"http://cx-r-registry:5000\"\n\n[host.\"http://cx-r-registry:5000\"]\n  capabilities = [\"pull\", \"resolve\"]\n"
	if got := hostsTOML("cx-r"); got != want {
		t.Errorf("hosts.toml =\n%s\nwant\n%s", got, want)
	}
	spec := registrySpec("cx-r", 5055, config.DeliveryPush)
	cs := fake.NewClientset()
	if err := ApplyRegistryConfigMap(context.Background(), cs, spec); err != nil {
		t.Fatal(err)
	}
	cm, err := registryConfigMap(spec)
	if err != nil {
		t.Fatal(err)
	}
	if cm.Namespace != "kube-public" || cm.Name != "local-registry-hosting" {
		t.Errorf("ConfigMap %s/%s", cm.Namespace, cm.Name)
	}
	var lrh map[string]string
	if err := yaml.Unmarshal([]byte(cm.Data["localRegistryHosting.v1"]), &lrh); err != nil {
		t.Fatal(err)
	}
	if lrh["host"] != "localhost:5055" || lrh["hostFromContainerRuntime"] != "localhost:5055" || lrh["hostFromClusterNetwork"] != "cx-r-registry:5000" || lrh["help"] == "" {
		t.Errorf("localRegistryHosting.v1 = %v", lrh)
	}
	var applied bool
	for _, a := range cs.Actions() {
		if a.GetVerb() == "patch" && a.GetNamespace() == "kube-public" {
			applied = true
		}
	}
	if !applied {
		t.Errorf("not applied: %v", cs.Actions())
	}
}

func TestReadsCertsDir(t *testing.T) {
	for conf, want := range map[string]bool{
		patchedConfig: true,
		"version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".registry]\n  config_path = '/etc/containerd/certs.d'\n": true,
		"version = 2\n": false,
		"":              false,
		"config_path = \"/etc/docker/certs.d\"\n":       false,
		"# config_path = \"/etc/containerd/certs.d\"\n": false,
	} {
		if got := readsCertsDir(conf); got != want {
			t.Errorf("readsCertsDir(%q) = %v, want %v", conf, got, want)
		}
	}
}

// A new cluster with the registry: the container is made (labelled, on the
// kind network, with its volume, on 127.0.0.1:<port>) and every node gets
// the hosts.toml.
func TestEnsureStartsRegistryAndConfiguresNodes(t *testing.T) {
	f := newFixture(t)
	f.prov.createFn = func(name string) error {
		f.registry.files[name+"-control-plane:/etc/containerd/config.toml"] = patchedConfig
		return nil
	}
	port := freePort(t)
	spec := registrySpec("cx-n", port, config.DeliveryPush)
	if _, err := f.m.Ensure(context.Background(), spec); err != nil {
		t.Fatal(err)
	}
	if len(f.registry.runs) != 1 {
		t.Fatalf("runs %+v", f.registry.runs)
	}
	run := f.registry.runs[0]
	if run.Name != "cx-n-registry" || run.Volume != "cx-n-registry-data" || run.Network != "kind" || run.HostPort != port ||
		run.Labels[RegistryLabel] != "cx-n" || run.Image != "devloop.local/registry:3.1.2" {
		t.Errorf("run %+v", run)
	}
	host := "localhost:" + strconv.Itoa(port)
	if got := f.registry.files["cx-n-control-plane:/etc/containerd/certs.d/"+host+"/hosts.toml"]; got != hostsTOML("cx-n") {
		t.Errorf("hosts.toml %q; files %v", got, f.registry.files)
	}
	// A second up adopts it: nothing is run again; a stopped registry is
	// started and put back on the kind network.
	f.registry.containers["cx-n-registry"] = RegistryInfo{Exists: true, Label: "cx-n"}
	if _, err := f.m.Ensure(context.Background(), spec); err != nil {
		t.Fatal(err)
	}
	if len(f.registry.runs) != 1 || !slices.Equal(f.registry.started, []string{"cx-n-registry"}) || !slices.Equal(f.registry.connected, []string{"kind/cx-n-registry"}) {
		t.Errorf("runs %d, started %v, connected %v", len(f.registry.runs), f.registry.started, f.registry.connected)
	}
}

// An adopted cluster made without the containerd patch cannot pull from the
// registry: with push delivery that is an error saying what to do; with
// streamed delivery a warning.
func TestEnsureRefusesAnUnpatchedClusterForPush(t *testing.T) {
	f := newFixture(t, "cx-u")
	f.registry.files["cx-u-control-plane:/etc/containerd/config.toml"] = "version = 2\n"
	port := freePort(t)
	_, err := f.m.Ensure(context.Background(), registrySpec("cx-u", port, config.DeliveryPush))
	var np *NoRegistryPatchError
	if !errors.As(err, &np) || !strings.Contains(err.Error(), "cannot pull from localhost:"+strconv.Itoa(port)) ||
		!strings.Contains(err.Error(), "devloop down --cluster") || !strings.Contains(err.Error(), "cluster.delivery: stream") {
		t.Fatalf("Ensure = %v", err)
	}
	if _, err := f.m.Ensure(context.Background(), registrySpec("cx-u", port, config.DeliveryStream)); err != nil {
		t.Fatalf("streamed: %v", err)
	}
	if !strings.Contains(f.log.String(), "created without the registry's containerd configuration") {
		t.Errorf("no warning:\n%s", f.log.String())
	}
}

// A taken host port is refused before anything is made.
func TestEnsureRegistryPortInUse(t *testing.T) {
	f := newFixture(t, "cx-p")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	port := l.Addr().(*net.TCPAddr).Port
	_, err = f.m.Ensure(context.Background(), registrySpec("cx-p", port, config.DeliveryPush))
	var pe *PortInUseError
	if !errors.As(err, &pe) || pe.Setting != "cluster.registry.port" || len(f.registry.runs) != 0 {
		t.Fatalf("Ensure = %v, runs %v", err, f.registry.runs)
	}
}

// down --cluster removes the registry container and its volume only when
// devloop made them for this cluster.
func TestDownRemovesOnlyDevloopsRegistry(t *testing.T) {
	f := newFixture(t, "cx-d", "cx-o")
	f.registry.containers["cx-d-registry"] = RegistryInfo{Exists: true, Running: true, Label: "cx-d"}
	f.registry.volumes["cx-d-registry-data"] = "cx-d"
	f.registry.containers["cx-o-registry"] = RegistryInfo{Exists: true, Running: true}
	f.registry.volumes["cx-o-registry-data"] = ""
	if _, err := f.m.Down(context.Background(), "cx-d", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := f.m.Down(context.Background(), "cx-o", nil); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(f.registry.removed, []string{"cx-d-registry"}) || !slices.Equal(f.registry.removedVol, []string{"cx-d-registry-data"}) {
		t.Errorf("removed %v, volumes %v", f.registry.removed, f.registry.removedVol)
	}
	if !strings.Contains(f.log.String(), "Left the container cx-o-registry alone") || !strings.Contains(f.log.String(), "Left the volume cx-o-registry-data alone") {
		t.Errorf("log:\n%s", f.log.String())
	}
}

// An adopted cluster with another number of workers than configured is said.
func TestEnsureSaysWorkersDiffer(t *testing.T) {
	f := newFixture(t, "cx-k")
	spec := config.Cluster{Name: "cx-k", Workers: 2}.WithDefaults()
	if _, err := f.m.Ensure(context.Background(), spec); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(f.log.String(), `kind cluster "cx-k" has 0 worker node(s) but cluster.workers is 2`) {
		t.Errorf("log:\n%s", f.log.String())
	}
	if n := countWorkers("cx-k", []string{"cx-k-control-plane", "cx-k-worker", "cx-k-worker2"}); n != 2 {
		t.Errorf("countWorkers = %d", n)
	}
}
