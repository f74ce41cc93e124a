// Package cluster creates, adopts and deletes devloop's local kind cluster
// (on the kind Go library, docker provider) and installs its addons: the
// Traefik v3 ingress controller and, if missing, a default StorageClass.
//
// devloop never uses the user's current kubeconfig context: it builds its
// client config from kind's own kubeconfig for context kind-<name>.
package cluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/devloop-dev/devloop/internal/config"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/kind/pkg/apis/config/v1alpha4"
	kindexec "sigs.k8s.io/kind/pkg/exec"
	kindlog "sigs.k8s.io/kind/pkg/log"
)

// Info describes a ready cluster devloop created or adopted.
type Info struct {
	// Name is the kind cluster name.
	Name string
	// Context is the kubeconfig context, "kind-<name>".
	Context string
	// Kubeconfig is kind's external kubeconfig for the cluster.
	Kubeconfig []byte
	// RESTConfig talks to the cluster through context kind-<name>.
	RESTConfig *rest.Config
	// Nodes are the node container names.
	Nodes []string
	// Created is true when this call created the cluster, false when it adopted one.
	Created bool
}

// Manager creates, adopts and deletes kind clusters. It is safe for
// concurrent use as long as calls do not target the same cluster.
type Manager struct {
	logger         kindlog.Logger
	provider       Provider
	docker         Docker
	registry       RegistryDocker
	registryProbe  func(ctx context.Context, url string) error // nil: probeRegistry
	kubeconfigPath string
	cgroupV1       func() (bool, error)
	readyTimeout   time.Duration
	deleteRetry    time.Duration // the first wait before a failed delete is tried again
	cgroupRoot     string        // where the host's cgroups are mounted (thawNodes)
	pullTimeout    time.Duration
	marks          Marks
	apiProbe       func(ctx context.Context, rc *rest.Config) error // nil: probeAPI
	// nodesReady reports whether a new cluster's control plane is Ready
	// (nil: controlPlaneReady).
	nodesReady func(ctx context.Context, name, kubeconfigPath string) (bool, error)
	// engine, when set, opens the Docker Engine API client that lists
	// and inspects node containers (WithEngine).
	engine func(context.Context) (EngineAPI, error)
}

// Option configures a Manager.
type Option func(*Manager)

// WithVerbosity raises kind's log verbosity (0 = user-facing messages only).
func WithVerbosity(v int) Option {
	return func(m *Manager) {
		if wl, ok := m.logger.(writerLogger); ok {
			wl.verbosity = kindlog.Level(v)
			m.logger = wl
		}
	}
}

// WithEngine makes the Manager list clusters and nodes, read kubeconfigs
// and inspect nodes through the Docker Engine API (open returns the client,
// opened on first use), rather than through kind's docker CLI processes:
// see EngineNodes.
func WithEngine(open func(context.Context) (EngineAPI, error)) Option {
	return func(m *Manager) { m.engine = open }
}

// NewManager returns a Manager logging kind's progress to out (nil discards it).
func NewManager(out io.Writer, opts ...Option) *Manager {
	m := &Manager{
		logger:       newWriterLogger(out, 0),
		docker:       DockerCLI{},
		registry:     DockerCLI{},
		cgroupV1:     HostCgroupV1,
		readyTimeout: 3 * time.Minute,
		deleteRetry:  time.Second,
		cgroupRoot:   "/sys/fs/cgroup",
		pullTimeout:  2 * time.Minute,
		marks:        DefaultMarks(),
	}
	for _, o := range opts {
		o(m)
	}
	if m.provider == nil {
		m.provider = NewKindProvider(m.logger)
	}
	if m.engine != nil {
		p := enginePlumbing{Provider: m.provider, Docker: m.docker, open: m.engine}
		m.provider, m.docker = p, p
	}
	return m
}

// Provider returns the kind provider seam (the image loader may need the
// real *KindProvider to reach node containers).
func (m *Manager) Provider() Provider { return m.provider }

// Exists reports whether kind cluster name exists (running or not).
func (m *Manager) Exists(name string) (bool, error) {
	clusters, err := m.provider.List()
	if err != nil {
		return false, fmt.Errorf("listing kind clusters: %w", err)
	}
	return slices.Contains(clusters, name), nil
}

// NodeNames returns the node container names of cluster name.
func (m *Manager) NodeNames(name string) ([]string, error) {
	nodes, err := m.provider.ListNodes(name)
	if err != nil {
		return nil, fmt.Errorf("listing nodes of kind cluster %q: %w", name, err)
	}
	return nodes, nil
}

// RESTConfig returns a client config for existing cluster name, built from
// kind's kubeconfig for context kind-<name> (never the current context),
// after checking that the cluster can be talked to (Usable): a broken one is
// a *BrokenError that says what to do.
func (m *Manager) RESTConfig(name string) (*rest.Config, error) {
	return m.Usable(context.Background(), name)
}

// Ensure adopts kind cluster spec.Name if it exists, or creates it, and
// returns how to reach it. Either way the user's kubeconfig gets context
// kind-<name> (current-context is left alone). If ctx is cancelled while
// creating, the half-made cluster is deleted and ctx's error returned.
func (m *Manager) Ensure(ctx context.Context, spec config.Cluster) (*Info, error) {
	name := spec.Name
	exists, err := m.Exists(name)
	if err != nil {
		return nil, err
	}
	if exists {
		if err := m.checkNodesRunning(ctx, name); err != nil {
			return nil, err
		}
	} else {
		if err := m.create(ctx, spec); err != nil {
			return nil, err
		}
		if err := m.marks.Created(name); err != nil {
			return nil, err
		}
	}
	info, err := m.info(name, !exists)
	if err != nil {
		return nil, err
	}
	if workers := countWorkers(spec.Name, info.Nodes); exists && workers != spec.Workers {
		m.logger.Warn(fmt.Sprintf("kind cluster %q has %d worker node(s) but cluster.workers is %d: the nodes are made with the cluster (devloop down --cluster, then up, makes it anew)", spec.Name, workers, spec.Workers))
	}
	if spec.Registry.Enabled {
		if err := m.ensureRegistry(ctx, spec); err != nil {
			return nil, err
		}
		if err := m.configureNodes(ctx, spec, info.Nodes); err != nil {
			var np *NoRegistryPatchError
			if !errors.As(err, &np) || spec.Push() {
				return nil, err
			}
			m.logger.Warn(err.Error())
		}
	}
	return info, nil
}

func (m *Manager) info(name string, created bool) (*Info, error) {
	kc, err := m.provider.KubeConfig(name)
	if err != nil {
		return nil, fmt.Errorf("getting kubeconfig of kind cluster %q: %w", name, err)
	}
	if _, err := exportContext(m.kubeconfigPath, kc, name); err != nil {
		return nil, fmt.Errorf("exporting context %s: %w", ContextName(name), err)
	}
	rc, err := restConfigFor(kc, name)
	if err != nil {
		return nil, err
	}
	nodes, err := m.NodeNames(name)
	if err != nil {
		return nil, err
	}
	return &Info{Name: name, Context: ContextName(name), Kubeconfig: kc, RESTConfig: rc, Nodes: nodes, Created: created}, nil
}

// countWorkers counts the worker nodes among cluster's node containers
// (kind names them <cluster>-worker, <cluster>-worker2, ...).
func countWorkers(cluster string, nodes []string) int {
	n := 0
	for _, name := range nodes {
		if strings.HasPrefix(name, cluster+"-worker") {
			n++
		}
	}
	return n
}

// checkNodesRunning fails readably when an adopted cluster's nodes are stopped.
func (m *Manager) checkNodesRunning(ctx context.Context, name string) error {
	nodes, err := m.NodeNames(name)
	if err != nil {
		return err
	}
	for _, n := range nodes {
		ci, err := m.docker.Container(ctx, n)
		if err != nil {
			return fmt.Errorf("inspecting node %s of kind cluster %q: %w", n, name, err)
		}
		if ci.Exists && ci.Paused {
			return fmt.Errorf("kind cluster %q exists but its node container %s is paused: unpause it with `docker unpause %s`, or delete the cluster with `devloop down --cluster`", name, n, n)
		}
		if ci.Exists && !ci.Running {
			return fmt.Errorf("kind cluster %q exists but its node container %s is not running: start it with `docker start %s`, or delete the cluster with `devloop down --cluster`", name, n, n)
		}
	}
	return nil
}

// create checks the host, builds the kind config and creates the cluster.
func (m *Manager) create(ctx context.Context, spec config.Cluster) error {
	name := spec.Name
	nodeContainer := name + "-control-plane"
	ci, err := m.docker.Container(ctx, nodeContainer)
	if err != nil {
		return fmt.Errorf("checking for a container named %s: %w", nodeContainer, err)
	}
	if ci.Exists {
		// List() said there is no cluster name, so this container is not
		// one of its nodes (no label, or another cluster's label).
		return fmt.Errorf("cannot create kind cluster %q: a Docker container named %s already exists and is not a node of that cluster (%s); remove it (`docker rm -f %s`) or set cluster.name in devloop.yaml",
			name, nodeContainer, describeOwner(ci), nodeContainer)
	}
	if spec.Ingress.IsEnabled() {
		if err := checkPortsFree(spec.Ingress.ListenAddress, []hostPort{
			{Port: spec.Ingress.HTTPPort, Purpose: "ingress http", Setting: "cluster.ingress.httpPort"},
			{Port: spec.Ingress.HTTPSPort, Purpose: "ingress https", Setting: "cluster.ingress.httpsPort"},
		}); err != nil {
			return err
		}
	}
	image := NodeImage(spec)
	if err := m.ensureNodeImage(ctx, image); err != nil {
		return err
	}
	hasCNI, err := m.docker.ImageHasFile(ctx, image, defaultCNIManifest)
	if err != nil {
		return fmt.Errorf("checking node image %s for %s: %w", image, defaultCNIManifest, err)
	}
	cgroupV1, err := m.cgroupV1()
	if err != nil {
		return err
	}
	cfg := kindConfig(spec, kindConfigOptions{CgroupV1: cgroupV1, DisableDefaultCNI: !hasCNI})

	// kind writes (and on failure cleans) this private kubeconfig; Ensure
	// then exports the context itself, keeping the user's current-context.
	dir, err := os.MkdirTemp("", "devloop-kind-")
	if err != nil {
		return fmt.Errorf("creating temporary kubeconfig directory: %w", err)
	}
	defer os.RemoveAll(dir)
	return m.runCreate(ctx, name, image, cfg, filepath.Join(dir, "kubeconfig"))
}

func describeOwner(ci ContainerInfo) string {
	if ci.KindCluster != "" {
		return fmt.Sprintf("it belongs to kind cluster %q", ci.KindCluster)
	}
	return "it has no kind cluster label"
}

// ensureNodeImage makes sure the node image is in the local engine, trying
// one pull; kind itself would retry pulls for ~10 s with a vaguer error.
func (m *Manager) ensureNodeImage(ctx context.Context, image string) error {
	ok, err := m.docker.ImagePresent(ctx, image)
	if err != nil {
		return fmt.Errorf("checking for node image %s: %w", image, err)
	}
	if ok {
		return nil
	}
	m.logger.V(0).Infof("Node image %s is not present locally; pulling it ...", image)
	pctx, cancel := context.WithTimeout(ctx, m.pullTimeout)
	defer cancel()
	if err := m.docker.PullImage(pctx, image); err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("pulling node image %s: %w", image, ctx.Err())
		}
		return &NodeImageError{Image: image, Err: err}
	}
	return nil
}

// NodeImageError says the node image is neither local nor pullable.
type NodeImageError struct {
	Image string
	Err   error
}

// Error implements error.
func (e *NodeImageError) Error() string {
	return fmt.Sprintf("node image %s is not in the local Docker engine and could not be pulled (%v); "+
		"set DEVLOOP_NODE_IMAGE or cluster.nodeImage in devloop.yaml to a kind node image you have "+
		"(offline: e2e/setup.sh builds one)", e.Image, e.Err)
}

// Unwrap returns the pull error.
func (e *NodeImageError) Unwrap() error { return e.Err }

// runCreate runs kind's Create, which takes no context, in a goroutine. If
// ctx is cancelled first it deletes the cluster concurrently, and again each
// second (kind's next docker exec then fails and Create returns quickly),
// waits for Create to return, and deletes once more so no half-made cluster
// is left behind. kind is
// not asked to wait for the nodes to be Ready (its wait polls for minutes
// after the nodes are gone and cannot be interrupted): waitReady does,
// cancellably, and a cancel during it deletes the cluster too.
func (m *Manager) runCreate(ctx context.Context, name, image string, cfg *v1alpha4.Cluster, kubeconfigPath string) error {
	done := make(chan error, 1)
	go func() { done <- m.provider.Create(name, cfg, kubeconfigPath) }()
	select {
	case err := <-done:
		if err != nil {
			// kind deletes the nodes itself on failure (we never set Retain).
			return fmt.Errorf("creating kind cluster %q with node image %s: %w", name, image, withCommandOutput(err))
		}
	case <-ctx.Done():
		m.logger.V(0).Infof("Cancelled: deleting the half-created kind cluster %q ...", name)
		err1 := m.provider.Delete(name, kubeconfigPath)
		// A delete that ran before kind's `docker run` made the node leaves
		// kind going for the rest of its steps: delete again each second
		// until Create fails on the missing node and returns.
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for waiting := true; waiting; {
			select {
			case <-done:
				waiting = false
			case <-tick.C:
				err1 = m.provider.Delete(name, kubeconfigPath)
			}
		}
		return m.deleteHalfMade(ctx, name, kubeconfigPath, err1)
	}
	if err := m.waitReady(ctx, name, kubeconfigPath); err != nil {
		if ctx.Err() == nil {
			return err
		}
		m.logger.V(0).Infof("Cancelled: deleting the half-created kind cluster %q ...", name)
		return m.deleteHalfMade(ctx, name, kubeconfigPath, nil)
	}
	return nil
}

// deleteHalfMade deletes cluster name after ctx was cancelled while it was
// being made, and returns ctx's error (with any deletion failure).
// It removes the nodes as Delete does (unpausing, thawing and trying again),
// on a context of its own: ctx is already done, and leaving a node behind
// because the user pressed Ctrl-C is what this is for.
func (m *Manager) deleteHalfMade(ctx context.Context, name, kubeconfigPath string, first error) error {
	if err := m.remove(context.WithoutCancel(ctx), name, kubeconfigPath); err != nil {
		return fmt.Errorf("creating kind cluster %q: %w (and %v; first attempt: %v)", name, ctx.Err(), err, first)
	}
	return fmt.Errorf("creating kind cluster %q: %w", name, ctx.Err())
}

// waitReady waits up to readyTimeout for the new cluster's control-plane
// nodes to be Ready, as kind's own wait does (and like it, only warns when
// they are not: the cluster is made, and rollouts explain what is wrong).
// It returns early with ctx's error when ctx is cancelled.
func (m *Manager) waitReady(ctx context.Context, name, kubeconfigPath string) error {
	if m.readyTimeout <= 0 {
		return nil
	}
	begin := time.Now()
	m.logger.V(0).Infof(" • Waiting ≤ %s for control-plane = Ready ⏳  ...", m.readyTimeout)
	ready := m.nodesReady
	if ready == nil {
		ready = controlPlaneReady
	}
	tick := time.NewTicker(readyPoll)
	defer tick.Stop()
	var last error
	for {
		ok, err := ready(ctx, name, kubeconfigPath)
		if ok {
			m.logger.V(0).Infof(" ✓ Ready after %s 💚", time.Since(begin).Round(time.Second))
			return nil
		}
		last = err
		if time.Since(begin) >= m.readyTimeout {
			why := ""
			if last != nil {
				why = ": " + last.Error()
			}
			m.logger.V(0).Infof(" • WARNING: the control plane of %q was not Ready after %s%s ⚠️", name, m.readyTimeout, why)
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// readyPoll is how often waitReady asks.
const readyPoll = 250 * time.Millisecond

// controlPlaneReady reports whether every control-plane node of cluster
// name has condition Ready, asked through the kubeconfig kind wrote.
func controlPlaneReady(ctx context.Context, name, kubeconfigPath string) (bool, error) {
	kc, err := os.ReadFile(kubeconfigPath)
	if err != nil {
		return false, err
	}
	rc, err := restConfigFor(kc, name)
	if err != nil {
		return false, err
	}
	rc.Timeout = apiProbeTimeout
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return false, err
	}
	nodes, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{LabelSelector: "node-role.kubernetes.io/control-plane"})
	if err != nil {
		return false, err
	}
	if len(nodes.Items) == 0 {
		return false, fmt.Errorf("no control-plane node registered yet")
	}
	for _, n := range nodes.Items {
		if !nodeReady(n.Status.Conditions) {
			return false, fmt.Errorf("node %s is not Ready yet", n.Name)
		}
	}
	return true, nil
}

func nodeReady(conds []corev1.NodeCondition) bool {
	for _, c := range conds {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// withCommandOutput appends the tail of a failed command's output, which
// kind keeps out of the error string, so the user sees why docker failed.
func withCommandOutput(err error) error {
	re := kindexec.RunErrorForError(err)
	if re == nil || len(re.Output) == 0 {
		return err
	}
	lines := strings.Split(strings.TrimSpace(string(re.Output)), "\n")
	if len(lines) > 15 {
		lines = lines[len(lines)-15:]
	}
	return fmt.Errorf("%w\ncommand output:\n  %s", err, strings.Join(lines, "\n  "))
}

// Delete deletes kind cluster name and removes its context from the user's
// kubeconfig, as kind does. kind cannot be interrupted, so once started the
// deletion is waited for even if ctx is cancelled.
func (m *Manager) Delete(ctx context.Context, name string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("deleting kind cluster %q: %w", name, err)
	}
	if err := m.remove(ctx, name, m.kubeconfigPath); err != nil {
		return err
	}
	return m.marks.Forget(name)
}

// remove deletes cluster name's nodes with kind and its entries from the
// kubeconfig at kubeconfigPath: the one routine behind Delete and the
// cleanup of a cancelled create, so both survive what the engine does to a
// node it is still stopping.
func (m *Manager) remove(ctx context.Context, name, kubeconfigPath string) error {
	err := m.provider.Delete(name, kubeconfigPath)
	if err != nil {
		// kind removes the nodes with `docker rm -f`, which some engines
		// refuse for a paused container: unpause them and try once more.
		if unpaused := m.unpauseNodes(ctx, name); len(unpaused) > 0 {
			m.logger.V(0).Infof("Unpaused node container(s) %s to delete them", strings.Join(unpaused, ", "))
			err = m.provider.Delete(name, kubeconfigPath)
		}
	}
	// The engine sometimes fails a `docker rm -f` of a node it is still
	// stopping ("could not kill container: tried to kill container, but did
	// not receive an exit event", seen on Docker 28 right after a cold
	// start, under load): kind's delete is idempotent, so try again, four
	// times over about 15 s.
	for i, wait := 0, m.deleteRetry; err != nil && i < 4; i, wait = i+1, 2*wait {
		m.logger.V(0).Infof("Deleting kind cluster %q failed (%v); trying again in %s", name, withCommandOutput(err), wait)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("deleting kind cluster %q: %w", name, withCommandOutput(err))
		case <-t.C:
		}
		if thawed := m.thawNodes(ctx, name); len(thawed) > 0 {
			m.logger.V(0).Infof("Thawed %d frozen cgroup(s) in the node containers (a container creation inside the node was cut off mid-way)", len(thawed))
		}
		err = m.provider.Delete(name, kubeconfigPath)
	}
	if err != nil {
		return fmt.Errorf("deleting kind cluster %q: %w", name, withCommandOutput(err))
	}
	return nil
}

// Owned reports whether devloop created cluster name on this machine
// (rather than adopting one made with kind or another tool).
func (m *Manager) Owned(name string) (bool, error) { return m.marks.Owned(name) }

// Marks is where the Manager records the clusters it created.
func (m *Manager) Marks() Marks { return m.marks }

// thawNodes thaws the frozen cgroups below cluster name's node containers
// and returns them. runc freezes a container's cgroup while it sets it up
// (cgroup v1); a node killed in the middle leaves it FROZEN, its task can
// never exit, and the engine's kill of the node then never sees an exit
// ("did not receive an exit event"): seen here after a Ctrl-C right after a
// cold start. Only where the engine's cgroups are on this host (a local
// Linux engine run as root); elsewhere there is nothing to find.
func (m *Manager) thawNodes(ctx context.Context, name string) []string {
	var thawed []string
	m.eachNode(ctx, name, func(_ string, ci ContainerInfo) {
		if ci.ID != "" {
			thawed = append(thawed, thawBelow(m.cgroupRoot, ci.ID)...)
		}
	})
	return thawed
}

// thawBelow thaws every frozen cgroup (v1 freezer.state FROZEN or
// FREEZING, v2 cgroup.freeze 1) in a directory of root whose path names
// the container id, and below it.
func thawBelow(root, id string) []string {
	var out []string
	for _, base := range []string{filepath.Join(root, "freezer"), root} {
		_ = filepath.WalkDir(base, func(p string, d fs.DirEntry, err error) error {
			if err != nil || !d.IsDir() {
				return nil
			}
			if !strings.Contains(p, id) {
				if strings.Count(strings.TrimPrefix(p, base), "/") >= 3 {
					return filepath.SkipDir // the node's cgroup is near the top
				}
				return nil
			}
			if b, err := os.ReadFile(filepath.Join(p, "freezer.state")); err == nil && strings.TrimSpace(string(b)) != "THAWED" {
				if os.WriteFile(filepath.Join(p, "freezer.state"), []byte("THAWED"), 0o644) == nil {
					out = append(out, p)
				}
			}
			if b, err := os.ReadFile(filepath.Join(p, "cgroup.freeze")); err == nil && strings.TrimSpace(string(b)) == "1" {
				if os.WriteFile(filepath.Join(p, "cgroup.freeze"), []byte("0"), 0o644) == nil {
					out = append(out, p)
				}
			}
			return nil
		})
	}
	return out
}
