package cluster

import (
	"context"
	"sync"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/kind/pkg/apis/config/v1alpha4"
)

// fakeProvider is an in-memory Provider. createFn, when set, runs inside
// Create (e.g. to block until Delete is called).
type fakeProvider struct {
	mu        sync.Mutex
	clusters  map[string]bool
	server    string
	createFn  func(name string) error
	creates   []*v1alpha4.Cluster
	deletes   []string
	deleteCh  chan string // receives each deleted name, if non-nil
	createKCs []string
	// kubeconfigErr fails KubeConfig (docker exec into the node failing).
	kubeconfigErr error
	// deleteErr, when set, is called by Delete; its error fails it.
	deleteErr func(name string) error
}

func newFakeProvider(existing ...string) *fakeProvider {
	p := &fakeProvider{clusters: map[string]bool{}, server: "https://127.0.0.1:40000"}
	for _, n := range existing {
		p.clusters[n] = true
	}
	return p
}

func (p *fakeProvider) Create(name string, cfg *v1alpha4.Cluster, kubeconfigPath string) error {
	p.mu.Lock()
	p.creates = append(p.creates, cfg)
	p.createKCs = append(p.createKCs, kubeconfigPath)
	fn := p.createFn
	p.mu.Unlock()
	if fn != nil {
		if err := fn(name); err != nil {
			return err
		}
	}
	p.mu.Lock()
	p.clusters[name] = true
	p.mu.Unlock()
	return nil
}

func (p *fakeProvider) Delete(name, kubeconfigPath string) error {
	p.mu.Lock()
	if p.deleteErr != nil {
		if err := p.deleteErr(name); err != nil {
			p.mu.Unlock()
			return err
		}
	}
	delete(p.clusters, name)
	p.deletes = append(p.deletes, name)
	ch := p.deleteCh
	p.mu.Unlock()
	if ch != nil {
		ch <- name
	}
	return nil
}

func (p *fakeProvider) List() ([]string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []string
	for n := range p.clusters {
		out = append(out, n)
	}
	return out, nil
}

func (p *fakeProvider) KubeConfig(name string) ([]byte, error) {
	if p.kubeconfigErr != nil {
		return nil, p.kubeconfigErr
	}
	return fakeKindKubeconfig(name, p.server), nil
}

func (p *fakeProvider) ListNodes(name string) ([]string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.clusters[name] {
		return nil, nil
	}
	return []string{name + "-control-plane"}, nil
}

func (p *fakeProvider) counts() (creates, deletes int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.creates), len(p.deletes)
}

// fakeKindKubeconfig is shaped like kind's: one cluster/user/context named
// kind-<name>, current-context set to it.
func fakeKindKubeconfig(name, server string) []byte {
	key := ContextName(name)
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters[key] = &clientcmdapi.Cluster{Server: server, CertificateAuthorityData: []byte("ca-" + name)}
	cfg.AuthInfos[key] = &clientcmdapi.AuthInfo{ClientCertificateData: []byte("cert"), ClientKeyData: []byte("key")}
	cfg.Contexts[key] = &clientcmdapi.Context{Cluster: key, AuthInfo: key}
	cfg.CurrentContext = key
	b, err := clientcmd.Write(*cfg)
	if err != nil {
		panic(err)
	}
	return b
}

// fakeDocker answers Docker queries from maps.
type fakeDocker struct {
	mu         sync.Mutex
	images     map[string]bool
	files      map[string]bool // image+":"+path
	containers map[string]ContainerInfo
	pullErr    error
	pulls      []string
	unpaused   []string
}

func (d *fakeDocker) ImagePresent(ctx context.Context, ref string) (bool, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.images[ref], nil
}

func (d *fakeDocker) PullImage(ctx context.Context, ref string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.pulls = append(d.pulls, ref)
	if d.pullErr != nil {
		return d.pullErr
	}
	if d.images == nil {
		d.images = map[string]bool{}
	}
	d.images[ref] = true
	return nil
}

func (d *fakeDocker) ImageHasFile(ctx context.Context, ref, path string) (bool, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.files[ref+":"+path], nil
}

func (d *fakeDocker) Container(ctx context.Context, name string) (ContainerInfo, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.containers[name], nil
}

func (d *fakeDocker) Unpause(ctx context.Context, name string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	ci := d.containers[name]
	ci.Paused = false
	d.containers[name] = ci
	d.unpaused = append(d.unpaused, name)
	return nil
}
