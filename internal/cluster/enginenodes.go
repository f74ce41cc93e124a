package cluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/kind/pkg/cluster/nodes"
	kindexec "sigs.k8s.io/kind/pkg/exec"
)

// EngineAPI is the part of the Docker Engine API that reaches kind's node
// containers: listing them, inspecting one, and running a command in one.
type EngineAPI interface {
	ContainerList(ctx context.Context, options client.ContainerListOptions) (client.ContainerListResult, error)
	ContainerInspect(ctx context.Context, id string, options client.ContainerInspectOptions) (client.ContainerInspectResult, error)
	ExecCreate(ctx context.Context, id string, options client.ExecCreateOptions) (client.ExecCreateResult, error)
	ExecAttach(ctx context.Context, id string, options client.ExecAttachOptions) (client.ExecAttachResult, error)
	ExecInspect(ctx context.Context, id string, options client.ExecInspectOptions) (client.ExecInspectResult, error)
}

var _ EngineAPI = (*client.Client)(nil)

// EngineNodes finds kind's node containers and runs commands in them
// through the Docker Engine API, where kind's own provider runs the docker
// CLI for every list, inspect and exec: an adopted cluster and its image
// checks cost about twenty docker processes (30-60 ms of CPU each, on a
// machine that is building at the same time); here each is one request.
// It reads the same labels kind writes (io.x-k8s.kind.cluster, .role), so
// it sees exactly the nodes kind does. It implements imageload.NodeLister.
type EngineNodes struct {
	API EngineAPI
}

// kindRoleLabel is the label kind puts on every node container: its role.
const kindRoleLabel = "io.x-k8s.kind.role"

// The roles kind gives its node containers.
const (
	roleControlPlane = "control-plane"
	roleLoadBalancer = "external-load-balancer"
)

// apiServerPort is the port of the API server inside the control-plane
// (or load-balancer) container, published on the host by kind.
const apiServerPort = 6443

// engineTimeout bounds one list or inspect (the Provider interface,
// like kind's, takes no context).
const engineTimeout = 30 * time.Second

// containers lists the node containers of cluster name, sorted by name;
// an empty name lists every kind node container.
func (e EngineNodes) containers(ctx context.Context, name string) ([]container.Summary, error) {
	label := kindClusterLabel
	if name != "" {
		label += "=" + name
	}
	res, err := e.API.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: make(client.Filters).Add("label", label)})
	if err != nil {
		return nil, err
	}
	items := res.Items
	sort.Slice(items, func(i, j int) bool { return containerName(items[i]) < containerName(items[j]) })
	return items, nil
}

// containerName is a listed container's name without the engine's "/".
func containerName(c container.Summary) string {
	if len(c.Names) == 0 {
		return c.ID
	}
	return strings.TrimPrefix(c.Names[0], "/")
}

// Clusters returns the names of the kind clusters whose nodes exist.
func (e EngineNodes) Clusters(ctx context.Context) ([]string, error) {
	items, err := e.containers(ctx, "")
	if err != nil {
		return nil, err
	}
	var names []string
	for _, c := range items {
		if n := c.Labels[kindClusterLabel]; n != "" && !slices.Contains(names, n) {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	return names, nil
}

// NodeNames returns the names of cluster name's node containers, as kind's
// ListNodes does.
func (e EngineNodes) NodeNames(ctx context.Context, name string) ([]string, error) {
	items, err := e.containers(ctx, name)
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(items))
	for _, c := range items {
		names = append(names, containerName(c))
	}
	return names, nil
}

// ListInternalNodes returns the cluster's nodes other than its external
// load balancer, as kind's provider does.
func (e EngineNodes) ListInternalNodes(name string) ([]nodes.Node, error) {
	ctx, cancel := context.WithTimeout(context.Background(), engineTimeout)
	defer cancel()
	items, err := e.containers(ctx, name)
	if err != nil {
		return nil, err
	}
	var out []nodes.Node
	for _, c := range items {
		if c.Labels[kindRoleLabel] == roleLoadBalancer {
			continue
		}
		out = append(out, &engineNode{api: e.API, name: containerName(c), role: c.Labels[kindRoleLabel]})
	}
	return out, nil
}

// KubeConfig returns cluster name's kubeconfig for use from the host, as
// kind's provider builds it: kubeadm's admin.conf from the first
// control-plane node, with the cluster, user and context renamed
// kind-<name> and the server set to the API server's host endpoint (the
// load balancer's when there is one; Docker Desktop's port label when set).
func (e EngineNodes) KubeConfig(ctx context.Context, name string) ([]byte, error) {
	items, err := e.containers(ctx, name)
	if err != nil {
		return nil, err
	}
	var cp, endpoint *container.Summary
	var cps int
	for i, c := range items {
		switch c.Labels[kindRoleLabel] {
		case roleControlPlane:
			if cp == nil {
				cp = &items[i]
			}
			cps++
		case roleLoadBalancer:
			endpoint = &items[i]
		}
	}
	if cp == nil {
		return nil, fmt.Errorf("could not locate any control plane nodes for cluster named %q", name)
	}
	if endpoint == nil {
		if cps > 1 {
			return nil, fmt.Errorf("cluster %q has %d control-plane nodes and no external load balancer", name, cps)
		}
		endpoint = cp
	}
	server, err := e.apiServer(ctx, containerName(*endpoint))
	if err != nil {
		return nil, err
	}
	var raw bytes.Buffer
	if err := (&engineNode{api: e.API, name: containerName(*cp)}).CommandContext(ctx, "cat", "/etc/kubernetes/admin.conf").SetStdout(&raw).Run(); err != nil {
		return nil, fmt.Errorf("failed to get cluster internal kubeconfig: %w", err)
	}
	return kindKubeconfig(raw.Bytes(), name, server)
}

// apiServer returns https://host:port of the API server published by node.
func (e EngineNodes) apiServer(ctx context.Context, node string) (string, error) {
	insp, err := e.API.ContainerInspect(ctx, node, client.ContainerInspectOptions{})
	if err != nil {
		return "", fmt.Errorf("failed to get api server port: %w", err)
	}
	c := insp.Container
	if c.Config != nil {
		if v := c.Config.Labels[fmt.Sprintf("desktop.docker.io/ports/%d/tcp", apiServerPort)]; v != "" {
			return "https://" + v, nil
		}
	}
	if c.NetworkSettings != nil {
		for port, bindings := range c.NetworkSettings.Ports {
			if port.Num() == apiServerPort && string(port.Proto()) == "tcp" && len(bindings) > 0 {
				b := bindings[0]
				host := ""
				if b.HostIP.IsValid() {
					host = b.HostIP.String()
				}
				return "https://" + net.JoinHostPort(host, b.HostPort), nil
			}
		}
	}
	return "", fmt.Errorf("failed to get api server port: node %s publishes no port %d/tcp", node, apiServerPort)
}

// kindKubeconfig renames kubeadm's admin.conf as kind does (cluster, user
// and context kind-<name>, current-context too) and points it at server.
func kindKubeconfig(raw []byte, name, server string) ([]byte, error) {
	cfg, err := clientcmd.Load(raw)
	if err != nil {
		return nil, fmt.Errorf("reading the node's admin.conf: %w", err)
	}
	if len(cfg.Clusters) != 1 || len(cfg.AuthInfos) != 1 || len(cfg.Contexts) != 1 {
		return nil, fmt.Errorf("the node's admin.conf has %d clusters, %d users and %d contexts, want one each", len(cfg.Clusters), len(cfg.AuthInfos), len(cfg.Contexts))
	}
	key := ContextName(name)
	out := clientcmdapi.NewConfig()
	for _, c := range cfg.Clusters {
		c := c.DeepCopy()
		c.Server = server
		out.Clusters[key] = c
	}
	for _, u := range cfg.AuthInfos {
		out.AuthInfos[key] = u.DeepCopy()
	}
	for _, c := range cfg.Contexts {
		c := c.DeepCopy()
		c.Cluster, c.AuthInfo = key, key
		out.Contexts[key] = c
	}
	out.CurrentContext = key
	return clientcmd.Write(*out)
}

// engineNode is a kind node container reached through the Engine API; it
// implements kind's nodes.Node.
type engineNode struct {
	api  EngineAPI
	name string
	role string
}

var _ nodes.Node = (*engineNode)(nil)

func (n *engineNode) String() string        { return n.name }
func (n *engineNode) Role() (string, error) { return n.role, nil }

// IP returns the node's addresses on its networks (the first of each kind).
func (n *engineNode) IP() (string, string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), engineTimeout)
	defer cancel()
	insp, err := n.api.ContainerInspect(ctx, n.name, client.ContainerInspectOptions{})
	if err != nil {
		return "", "", fmt.Errorf("failed to get container details: %w", err)
	}
	var v4, v6 string
	if ns := insp.Container.NetworkSettings; ns != nil {
		names := make([]string, 0, len(ns.Networks))
		for k := range ns.Networks {
			names = append(names, k)
		}
		sort.Strings(names)
		for _, k := range names {
			ep := ns.Networks[k]
			if ep == nil {
				continue
			}
			if v4 == "" && ep.IPAddress.IsValid() {
				v4 = ep.IPAddress.String()
			}
			if v6 == "" && ep.GlobalIPv6Address.IsValid() {
				v6 = ep.GlobalIPv6Address.String()
			}
		}
	}
	if v4 == "" && v6 == "" {
		return "", "", fmt.Errorf("node %s has no IP address", n.name)
	}
	return v4, v6, nil
}

// SerialLogs is not needed by devloop (kind uses it to export logs).
func (n *engineNode) SerialLogs(io.Writer) error {
	return errors.New("serial logs of node " + n.name + ": not available through devloop's engine nodes")
}

func (n *engineNode) Command(command string, args ...string) kindexec.Cmd {
	return n.CommandContext(context.Background(), command, args...)
}

func (n *engineNode) CommandContext(ctx context.Context, command string, args ...string) kindexec.Cmd {
	return &engineCmd{node: n, ctx: ctx, argv: append([]string{command}, args...)}
}

// engineCmd is a command run in a node container by an exec of the
// Engine API: what `docker exec [-i]` does, without the docker process.
type engineCmd struct {
	node   *engineNode
	ctx    context.Context
	argv   []string
	env    []string
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
}

func (c *engineCmd) SetEnv(env ...string) kindexec.Cmd  { c.env = env; return c }
func (c *engineCmd) SetStdin(r io.Reader) kindexec.Cmd  { c.stdin = r; return c }
func (c *engineCmd) SetStdout(w io.Writer) kindexec.Cmd { c.stdout = w; return c }
func (c *engineCmd) SetStderr(w io.Writer) kindexec.Cmd { c.stderr = w; return c }

// Run runs the command and waits for it. Its output goes to the writers
// set; a command that exits non-zero, or an exec that fails, is a
// *kindexec.RunError (as from kind's own nodes), whose Output holds the
// command's standard error when no writer took it; a cancelled one wraps
// ctx's error.
//
// The exec is not privileged (kind's `docker exec --privileged`): the node
// container is, and so is everything run in it; a privileged exec is what
// Docker 20.10 fails on hosts that lack a capability.
func (c *engineCmd) Run() error {
	ctx := c.ctx
	if ctx == nil {
		ctx = context.Background()
	}
	fail := func(err error, output []byte) error {
		if ctx.Err() != nil {
			return fmt.Errorf("command %q in node %s: %w", strings.Join(c.argv, " "), c.node.name, ctx.Err())
		}
		return &kindexec.RunError{Command: c.argv, Output: output, Inner: err}
	}
	created, err := c.node.api.ExecCreate(ctx, c.node.name, client.ExecCreateOptions{
		Cmd: c.argv, Env: c.env, AttachStdin: c.stdin != nil, AttachStdout: true, AttachStderr: true,
	})
	if err != nil {
		return fail(err, nil)
	}
	att, err := c.node.api.ExecAttach(ctx, created.ID, client.ExecAttachOptions{})
	if err != nil {
		return fail(err, nil)
	}
	defer att.Close()
	// A cancelled context ends the exec's streams (the process in the node
	// is left to end on its own closed stdin, as with docker exec).
	stop := context.AfterFunc(ctx, func() { att.Close() })
	defer stop()

	// Only a failure to read the input is the command's failure: one to
	// write it means the command ended without reading it all, and its
	// exit status says how that went (as with docker exec -i).
	in := &readErr{r: c.stdin}
	var wg sync.WaitGroup
	if c.stdin != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			io.Copy(att.Conn, in)
			att.CloseWrite()
		}()
	}
	stdout, stderr := c.stdout, c.stderr
	if stdout == nil {
		stdout = io.Discard
	}
	var errTail bytes.Buffer
	if stderr == nil {
		stderr = &limitedBuffer{buf: &errTail, max: 64 << 10}
	}
	_, copyErr := stdcopy.StdCopy(stdout, stderr, att.Reader)
	att.Close() // unblocks a stdin copy the command never read
	wg.Wait()
	if ctx.Err() != nil {
		return fail(ctx.Err(), errTail.Bytes())
	}
	insp, err := c.node.api.ExecInspect(ctx, created.ID, client.ExecInspectOptions{})
	// The engine records the exit before it closes the streams (the
	// docker CLI reads the status once, too); should it not have yet,
	// ask again for a moment.
	for i := 0; err == nil && insp.Running && copyErr == nil && i < 50; i++ {
		time.Sleep(20 * time.Millisecond)
		insp, err = c.node.api.ExecInspect(ctx, created.ID, client.ExecInspectOptions{})
	}
	if err != nil {
		return fail(err, errTail.Bytes())
	}
	if insp.Running && copyErr == nil {
		return fail(errors.New("the command's output ended but the engine says it still runs"), errTail.Bytes())
	}
	// The engine resets the connection when it closes it with input
	// unread (a command that ended without reading it all): once the
	// command has ended, its exit status is what counts.
	if copyErr != nil && (insp.Running || !errors.Is(copyErr, syscall.ECONNRESET)) {
		return fail(fmt.Errorf("reading the output of the exec: %w", copyErr), errTail.Bytes())
	}
	if insp.ExitCode != 0 {
		return fail(fmt.Errorf("exit status %d", insp.ExitCode), errTail.Bytes())
	}
	if in.err != nil {
		return fail(fmt.Errorf("reading the command's input: %w", in.err), errTail.Bytes())
	}
	return nil
}

// readErr is a reader that remembers its first error other than io.EOF.
type readErr struct {
	r   io.Reader
	err error
}

func (r *readErr) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if err != nil && err != io.EOF && r.err == nil {
		r.err = err
	}
	return n, err
}

// limitedBuffer keeps the first max bytes written to it.
type limitedBuffer struct {
	buf *bytes.Buffer
	max int
}

func (l *limitedBuffer) Write(p []byte) (int, error) {
	if room := l.max - l.buf.Len(); room > 0 {
		l.buf.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

// enginePlumbing is Provider, Docker and RegistryDocker with the calls an
// adopted cluster makes on every `up` (listing clusters and nodes, reading
// the kubeconfig, inspecting a node or the registry, reading and writing a
// node's registry hosts.toml) done through the Engine API; creating and
// deleting clusters stay kind's, and so do the rarer Docker calls.
type enginePlumbing struct {
	Provider
	Docker
	RegistryDocker
	open func(context.Context) (EngineAPI, error)
}

// withNodes runs f with the engine's nodes, bounded by engineTimeout (the
// Provider interface, like kind's, takes no context).
func withNodes[T any](e enginePlumbing, f func(context.Context, EngineNodes) (T, error)) (T, error) {
	ctx, cancel := context.WithTimeout(context.Background(), engineTimeout)
	defer cancel()
	api, err := e.open(ctx)
	if err != nil {
		var zero T
		return zero, err
	}
	return f(ctx, EngineNodes{API: api})
}

// List implements Provider.
func (e enginePlumbing) List() ([]string, error) {
	return withNodes(e, func(ctx context.Context, n EngineNodes) ([]string, error) { return n.Clusters(ctx) })
}

// ListNodes implements Provider.
func (e enginePlumbing) ListNodes(name string) ([]string, error) {
	return withNodes(e, func(ctx context.Context, n EngineNodes) ([]string, error) { return n.NodeNames(ctx, name) })
}

// KubeConfig implements Provider.
func (e enginePlumbing) KubeConfig(name string) ([]byte, error) {
	return withNodes(e, func(ctx context.Context, n EngineNodes) ([]byte, error) { return n.KubeConfig(ctx, name) })
}

// node is container as a node reached through the engine.
func (e enginePlumbing) node(ctx context.Context, container string) (*engineNode, error) {
	api, err := e.open(ctx)
	if err != nil {
		return nil, err
	}
	return &engineNode{api: api, name: container}, nil
}

// Container implements Docker.
func (e enginePlumbing) Container(ctx context.Context, name string) (ContainerInfo, error) {
	api, err := e.open(ctx)
	if err != nil {
		return ContainerInfo{}, err
	}
	insp, err := api.ContainerInspect(ctx, name, client.ContainerInspectOptions{})
	if err != nil {
		if cerrdefs.IsNotFound(err) {
			return ContainerInfo{}, nil
		}
		return ContainerInfo{}, err
	}
	c := insp.Container
	ci := ContainerInfo{Exists: true, ID: c.ID}
	if c.State != nil {
		ci.Running, ci.Paused = c.State.Running, c.State.Paused
	}
	if c.Config != nil {
		ci.KindCluster = c.Config.Labels[kindClusterLabel]
	}
	return ci, nil
}

// Registry implements RegistryDocker.
func (e enginePlumbing) Registry(ctx context.Context, name string) (RegistryInfo, error) {
	api, err := e.open(ctx)
	if err != nil {
		return RegistryInfo{}, err
	}
	insp, err := api.ContainerInspect(ctx, name, client.ContainerInspectOptions{})
	if err != nil {
		if cerrdefs.IsNotFound(err) {
			return RegistryInfo{}, nil
		}
		return RegistryInfo{}, err
	}
	c := insp.Container
	ri := RegistryInfo{Exists: true}
	if c.State != nil {
		ri.Running = c.State.Running
	}
	if c.Config != nil {
		ri.Label = c.Config.Labels[RegistryLabel]
	}
	if c.NetworkSettings != nil {
		for n := range c.NetworkSettings.Networks {
			ri.Networks = append(ri.Networks, n)
		}
		sort.Strings(ri.Networks)
	}
	return ri, nil
}

// ReadFile implements RegistryDocker: the file's content, "" when there is none.
func (e enginePlumbing) ReadFile(ctx context.Context, container, path string) (string, error) {
	n, err := e.node(ctx, container)
	if err != nil {
		return "", err
	}
	var out bytes.Buffer
	if err := n.CommandContext(ctx, "sh", "-c", `[ ! -e "$1" ] || cat "$1"`, "sh", path).SetStdout(&out).Run(); err != nil {
		return "", fmt.Errorf("reading %s in %s: %w", path, container, withCommandOutput(err))
	}
	return out.String(), nil
}

// WriteFile implements RegistryDocker.
func (e enginePlumbing) WriteFile(ctx context.Context, container, path, content string) error {
	n, err := e.node(ctx, container)
	if err != nil {
		return err
	}
	if err := n.CommandContext(ctx, "sh", "-c", `mkdir -p "$(dirname "$1")" && cat >"$1"`, "sh", path).SetStdin(strings.NewReader(content)).Run(); err != nil {
		return fmt.Errorf("writing %s in %s: %w", path, container, withCommandOutput(err))
	}
	return nil
}
