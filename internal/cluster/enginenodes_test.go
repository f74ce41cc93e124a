package cluster

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/netip"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"
	"k8s.io/client-go/tools/clientcmd"
	kindexec "sigs.k8s.io/kind/pkg/exec"
)

// fakeEngine is the Engine API of an engine running kind node containers:
// listing filters on labels, and an exec runs a Go function that gets the
// command, its stdin and stdout/stderr writers and returns the exit code.
type fakeEngine struct {
	t          *testing.T
	containers []container.Summary
	inspect    map[string]container.InspectResponse
	run        func(node string, argv, env []string, stdin io.Reader, stdout, stderr io.Writer) int

	mu    sync.Mutex
	execs map[string]*fakeExec
	lists int
}

type fakeExec struct {
	node string
	opts client.ExecCreateOptions
	exit int
	done chan struct{}
}

func (f *fakeEngine) ContainerList(_ context.Context, o client.ContainerListOptions) (client.ContainerListResult, error) {
	f.mu.Lock()
	f.lists++
	f.mu.Unlock()
	var out []container.Summary
	for _, c := range f.containers {
		ok := true
		for term, values := range o.Filters {
			if term != "label" {
				f.t.Fatalf("unexpected filter %q", term)
			}
			for v := range values {
				k, want, hasValue := strings.Cut(v, "=")
				got, has := c.Labels[k]
				if !has || hasValue && got != want {
					ok = false
				}
			}
		}
		if ok {
			out = append(out, c)
		}
	}
	return client.ContainerListResult{Items: out}, nil
}

func (f *fakeEngine) ContainerInspect(_ context.Context, id string, _ client.ContainerInspectOptions) (client.ContainerInspectResult, error) {
	c, ok := f.inspect[id]
	if !ok {
		return client.ContainerInspectResult{}, cerrdefs.ErrNotFound.WithMessage("No such container: " + id)
	}
	return client.ContainerInspectResult{Container: c}, nil
}

func (f *fakeEngine) ExecCreate(_ context.Context, id string, o client.ExecCreateOptions) (client.ExecCreateResult, error) {
	if _, ok := f.inspect[id]; !ok {
		return client.ExecCreateResult{}, cerrdefs.ErrNotFound.WithMessage("No such container: " + id)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.execs == nil {
		f.execs = map[string]*fakeExec{}
	}
	eid := "exec" + string(rune('a'+len(f.execs)))
	f.execs[eid] = &fakeExec{node: id, opts: o, done: make(chan struct{})}
	return client.ExecCreateResult{ID: eid}, nil
}

// ExecAttach serves the exec on one end of a Unix socket pair (which can be
// half-closed, as the engine's connection can), multiplexing its output as
// the engine does for an exec without a TTY.
func (f *fakeEngine) ExecAttach(_ context.Context, id string, _ client.ExecAttachOptions) (client.ExecAttachResult, error) {
	f.mu.Lock()
	e := f.execs[id]
	f.mu.Unlock()
	sock := filepath.Join(f.t.TempDir(), "s")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		return client.ExecAttachResult{}, err
	}
	defer ln.Close()
	clientConn, err := net.Dial("unix", sock)
	if err != nil {
		return client.ExecAttachResult{}, err
	}
	server, err := ln.Accept()
	if err != nil {
		return client.ExecAttachResult{}, err
	}
	go func() {
		defer close(e.done)
		defer server.Close()
		var stdin io.Reader = strings.NewReader("")
		if e.opts.AttachStdin {
			stdin = server
		}
		var wmu sync.Mutex
		frame := func(stream byte) io.Writer {
			return writerFunc(func(p []byte) (int, error) {
				wmu.Lock()
				defer wmu.Unlock()
				hdr := make([]byte, 8)
				hdr[0] = stream
				binary.BigEndian.PutUint32(hdr[4:], uint32(len(p)))
				if _, err := server.Write(append(hdr, p...)); err != nil {
					return 0, err
				}
				return len(p), nil
			})
		}
		e.exit = f.run(e.node, e.opts.Cmd, e.opts.Env, stdin, frame(1), frame(2))
		if e.opts.AttachStdin {
			io.Copy(io.Discard, server) // as a close with input unread would reset the connection
		}
	}()
	return client.ExecAttachResult{HijackedResponse: client.NewHijackedResponse(clientConn, "")}, nil
}

func (f *fakeEngine) ExecInspect(_ context.Context, id string, _ client.ExecInspectOptions) (client.ExecInspectResult, error) {
	f.mu.Lock()
	e := f.execs[id]
	f.mu.Unlock()
	<-e.done
	return client.ExecInspectResult{ID: id, ExitCode: e.exit}, nil
}

type writerFunc func([]byte) (int, error)

func (w writerFunc) Write(p []byte) (int, error) { return w(p) }

func node(name, cluster, role string) container.Summary {
	return container.Summary{ID: name + "-id", Names: []string{"/" + name}, Labels: map[string]string{kindClusterLabel: cluster, kindRoleLabel: role}}
}

func published(port uint16, hostIP, hostPort string) container.InspectResponse {
	p := network.MustParsePort("6443/tcp")
	if port != 6443 {
		p = network.MustParsePort("80/tcp")
	}
	return container.InspectResponse{
		ID:     "id",
		State:  &container.State{Running: true},
		Config: &container.Config{Labels: map[string]string{}},
		NetworkSettings: &container.NetworkSettings{
			Ports:    network.PortMap{p: {{HostIP: netip.MustParseAddr(hostIP), HostPort: hostPort}}},
			Networks: map[string]*network.EndpointSettings{"kind": {IPAddress: netip.MustParseAddr("172.18.0.3")}},
		},
	}
}

const adminConf = `apiVersion: v1
kind: Config
clusters:
- cluster:
    certificate-authority-data: Q0E=
    server: https://a-control-plane:6443
  name: kubernetes
contexts:
- context:
    cluster: kubernetes
    user: kubernetes-admin
  name: kubernetes-admin@kubernetes
current-context: kubernetes-admin@kubernetes
users:
- name: kubernetes-admin
  user:
    client-certificate-data: Q0VSVA==
    client-key-data: S0VZ
`

func twoClusters(t *testing.T) *fakeEngine {
	return &fakeEngine{
		t: t,
		containers: []container.Summary{
			node("b-worker", "b", "worker"),
			node("a-worker", "a", "worker"),
			node("a-control-plane", "a", "control-plane"),
			node("b-control-plane", "b", "control-plane"),
			node("b-external-load-balancer", "b", "external-load-balancer"),
			{ID: "x", Names: []string{"/unrelated"}, Labels: map[string]string{}},
		},
		inspect: map[string]container.InspectResponse{
			"a-control-plane":          published(6443, "127.0.0.1", "40001"),
			"a-worker":                 published(80, "127.0.0.1", "8080"),
			"b-control-plane":          published(6443, "127.0.0.1", "40002"),
			"b-external-load-balancer": published(6443, "127.0.0.1", "40003"),
		},
		run: func(node string, argv, _ []string, _ io.Reader, stdout, _ io.Writer) int {
			if strings.Join(argv, " ") == "cat /etc/kubernetes/admin.conf" && strings.HasSuffix(node, "control-plane") {
				io.WriteString(stdout, adminConf)
				return 0
			}
			return 1
		},
	}
}

// The node containers are the ones kind labels, as kind lists them: by
// cluster, sorted by name, the load balancer left out of the internal nodes.
func TestEngineNodesList(t *testing.T) {
	f := twoClusters(t)
	e := EngineNodes{API: f}
	ctx := context.Background()
	if got, err := e.Clusters(ctx); err != nil || !reflect.DeepEqual(got, []string{"a", "b"}) {
		t.Errorf("Clusters = %v, %v", got, err)
	}
	if got, err := e.NodeNames(ctx, "b"); err != nil || !reflect.DeepEqual(got, []string{"b-control-plane", "b-external-load-balancer", "b-worker"}) {
		t.Errorf("NodeNames(b) = %v, %v", got, err)
	}
	ns, err := e.ListInternalNodes("b")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, n := range ns {
		role, _ := n.Role()
		names = append(names, n.String()+"/"+role)
	}
	if want := []string{"b-control-plane/control-plane", "b-worker/worker"}; !reflect.DeepEqual(names, want) {
		t.Errorf("ListInternalNodes(b) = %v, want %v", names, want)
	}
	if got, err := e.NodeNames(ctx, "none"); err != nil || len(got) != 0 {
		t.Errorf("NodeNames(none) = %v, %v", got, err)
	}
	v4, _, err := ns[0].IP()
	if err != nil || v4 != "172.18.0.3" {
		t.Errorf("IP = %q, %v", v4, err)
	}
}

// The kubeconfig is kind's: kubeadm's admin.conf renamed kind-<name>, its
// server the host port published for 6443 (the load balancer's when there
// is one, Docker Desktop's label when set).
func TestEngineNodesKubeConfig(t *testing.T) {
	f := twoClusters(t)
	desktop := published(6443, "127.0.0.1", "40001")
	desktop.Config.Labels["desktop.docker.io/ports/6443/tcp"] = "10.0.1.7:6443"
	f.inspect["c-control-plane"] = desktop
	f.containers = append(f.containers, node("c-control-plane", "c", "control-plane"))
	e := EngineNodes{API: f}
	for cluster, server := range map[string]string{"a": "https://127.0.0.1:40001", "b": "https://127.0.0.1:40003", "c": "https://10.0.1.7:6443"} {
		raw, err := e.KubeConfig(context.Background(), cluster)
		if err != nil {
			t.Fatalf("%s: %v", cluster, err)
		}
		cfg, err := clientcmd.Load(raw)
		if err != nil {
			t.Fatal(err)
		}
		key := "kind-" + cluster
		c, u, x := cfg.Clusters[key], cfg.AuthInfos[key], cfg.Contexts[key]
		if cfg.CurrentContext != key || c == nil || u == nil || x == nil || len(cfg.Clusters) != 1 {
			t.Fatalf("%s: kubeconfig not renamed:\n%s", cluster, raw)
		}
		if c.Server != server || string(c.CertificateAuthorityData) != "CA" || string(u.ClientKeyData) != "KEY" || x.Cluster != key || x.AuthInfo != key {
			t.Errorf("%s: server %s (want %s), context %+v:\n%s", cluster, c.Server, server, x, raw)
		}
	}
	if _, err := e.KubeConfig(context.Background(), "none"); err == nil || !strings.Contains(err.Error(), "control plane") {
		t.Errorf("a cluster without nodes: %v", err)
	}
}

// A command in a node gets its arguments, environment and stdin, and its
// output split as the engine multiplexed it; a non-zero exit is kind's
// RunError carrying the command's standard error.
func TestEngineNodeCommand(t *testing.T) {
	f := twoClusters(t)
	f.run = func(node string, argv, env []string, stdin io.Reader, stdout, stderr io.Writer) int {
		switch argv[0] {
		case "import":
			in, _ := io.ReadAll(stdin)
			io.WriteString(stdout, node+" got "+string(in)+" with "+strings.Join(env, ","))
			io.WriteString(stderr, "progress")
			return 0
		case "ignore-stdin":
			io.WriteString(stdout, "done")
			return 0
		default:
			io.WriteString(stderr, "ctr: image not found\n")
			return 3
		}
	}
	ns, err := EngineNodes{API: f}.ListInternalNodes("a")
	if err != nil {
		t.Fatal(err)
	}
	n := ns[0]
	var out, errOut bytes.Buffer
	err = n.Command("import", "-").SetEnv("A=1").SetStdin(strings.NewReader(strings.Repeat("x", 100000))).SetStdout(&out).SetStderr(&errOut).Run()
	if err != nil {
		t.Fatal(err)
	}
	if want := "a-control-plane got " + strings.Repeat("x", 100000) + " with A=1"; out.String() != want || errOut.String() != "progress" {
		t.Errorf("stdout %d bytes, stderr %q", out.Len(), errOut.String())
	}
	// A command that never reads its (large) stdin still ends.
	out.Reset()
	if err := n.Command("ignore-stdin").SetStdin(bufio.NewReader(io.LimitReader(zeros{}, 64<<20))).SetStdout(&out).Run(); err != nil || out.String() != "done" {
		t.Errorf("ignore-stdin: %q, %v", out.String(), err)
	}
	err = n.CommandContext(context.Background(), "ctr", "images", "ls").Run()
	var re *kindexec.RunError
	if !errors.As(err, &re) || !strings.Contains(err.Error(), "exit status 3") || string(re.Output) != "ctr: image not found\n" || re.Command[0] != "ctr" {
		t.Errorf("err = %v (%#v)", err, re)
	}
	for _, e := range f.execs {
		if e.opts.Privileged {
			t.Error("exec is privileged (Docker 20.10 refuses that on hosts lacking a capability)")
		}
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }

// A cancelled command returns, with ctx's error, though it never ends.
func TestEngineNodeCommandCancel(t *testing.T) {
	f := twoClusters(t)
	block := make(chan struct{})
	t.Cleanup(func() { close(block) })
	started := make(chan struct{})
	f.run = func(string, []string, []string, io.Reader, io.Writer, io.Writer) int {
		close(started)
		<-block
		return 0
	}
	ns, _ := EngineNodes{API: f}.ListInternalNodes("a")
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- ns[0].CommandContext(ctx, "sleep", "inf").Run() }()
	<-started
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want context.Canceled", err)
	}
}

// The Manager adopts a cluster through the Engine API when given one: no
// kind List/ListNodes/KubeConfig (each a docker CLI process) is called.
func TestManagerWithEngineAdopts(t *testing.T) {
	f := twoClusters(t)
	m := NewManager(io.Discard, withKubeconfigPath(filepath.Join(t.TempDir(), "kubeconfig")), withMarks(filepath.Join(t.TempDir(), "marks")),
		withProvider(panicProvider{}), WithEngine(func(context.Context) (EngineAPI, error) { return f, nil }))
	ok, err := m.Exists("a")
	if err != nil || !ok {
		t.Fatalf("Exists(a) = %v, %v", ok, err)
	}
	nodes, err := m.NodeNames("a")
	if err != nil || !reflect.DeepEqual(nodes, []string{"a-control-plane", "a-worker"}) {
		t.Errorf("NodeNames = %v, %v", nodes, err)
	}
	ci, err := m.docker.Container(context.Background(), "a-control-plane")
	if err != nil || !ci.Exists || !ci.Running {
		t.Errorf("Container = %+v, %v", ci, err)
	}
	if ci, err := m.docker.Container(context.Background(), "gone"); err != nil || ci.Exists {
		t.Errorf("Container(gone) = %+v, %v", ci, err)
	}
	kc, err := m.provider.KubeConfig("a")
	if err != nil || !strings.Contains(string(kc), "https://127.0.0.1:40001") {
		t.Errorf("KubeConfig = %s, %v", kc, err)
	}
}

// panicProvider is kind, which the Manager must not ask what the engine answers.
type panicProvider struct{ Provider }

func (panicProvider) List() ([]string, error)            { panic("kind List called") }
func (panicProvider) ListNodes(string) ([]string, error) { panic("kind ListNodes called") }
func (panicProvider) KubeConfig(string) ([]byte, error)  { panic("kind KubeConfig called") }
