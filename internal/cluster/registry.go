package cluster

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/devloop-dev/devloop/internal/config"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/yaml"
)

// The local registry (cluster.registry, KEP-1755), as kind documents it
// (kind.sigs.k8s.io/docs/user/local-registry): a registry container on the
// kind network, published on 127.0.0.1:<port>; the nodes' containerd reads
// /etc/containerd/certs.d (containerdConfigPatches) where a hosts.toml per
// node sends localhost:<port> to the container; and the
// local-registry-hosting ConfigMap in kube-public tells other tools (Tilt,
// Skaffold, ctlptl) where it is.
const (
	// RegistryLabel marks the registry container and its volume as made by
	// devloop for a cluster (value: the cluster name); only those are removed.
	RegistryLabel = "devloop.dev/registry-for"
	// kindNetwork is the Docker network kind puts its nodes on.
	kindNetwork = "kind"
	// registryContainerPort is where the registry listens in its container.
	registryContainerPort = 5000
	// registryDataDir is the registry's filesystem storage in its container.
	registryDataDir = "/var/lib/registry"
	// certsDir is containerd's registry host configuration directory.
	certsDir = "/etc/containerd/certs.d"
	// RegistryConfigMap is KEP-1755's ConfigMap, in RegistryConfigMapNamespace.
	RegistryConfigMap          = "local-registry-hosting"
	RegistryConfigMapNamespace = "kube-public"
)

// registryConfigPatch makes containerd read certsDir (kind's recipe).
var registryConfigPatch = "[plugins.\"io.containerd.grpc.v1.cri\".registry]\n  config_path = \"" + certsDir + "\"\n"

// RegistryContainer is the name of cluster's registry container.
func RegistryContainer(cluster string) string { return cluster + "-registry" }

// RegistryVolume is the name of the volume holding cluster's registry data.
func RegistryVolume(cluster string) string { return cluster + "-registry-data" }

// RegistryEndpoint is where the nodes reach the registry: the container's
// name on the kind network.
func RegistryEndpoint(cluster string) string {
	return RegistryContainer(cluster) + ":" + strconv.Itoa(registryContainerPort)
}

// hostsTOML is the containerd host configuration of every node: pulls of
// localhost:<port>/... go to the registry container over plain HTTP.
func hostsTOML(cluster string) string {
	ep := "http://" + RegistryEndpoint(cluster)
	return fmt.Sprintf("server = %q\n\n[host.%q]\n  capabilities = [\"pull\", \"resolve\"]\n", ep, ep)
}

// localRegistryHosting is KEP-1755's localRegistryHosting.v1.
type localRegistryHosting struct {
	Host                     string `json:"host"`
	HostFromContainerRuntime string `json:"hostFromContainerRuntime,omitempty"`
	HostFromClusterNetwork   string `json:"hostFromClusterNetwork,omitempty"`
	Help                     string `json:"help,omitempty"`
}

// registryConfigMap is the local-registry-hosting ConfigMap for spec.
func registryConfigMap(spec config.Cluster) (*corev1.ConfigMap, error) {
	b, err := yaml.Marshal(localRegistryHosting{
		Host:                     spec.Registry.Host(),
		HostFromContainerRuntime: spec.Registry.Host(),
		HostFromClusterNetwork:   RegistryEndpoint(spec.Name),
		Help:                     "https://kind.sigs.k8s.io/docs/user/local-registry/",
	})
	if err != nil {
		return nil, err
	}
	return &corev1.ConfigMap{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
		ObjectMeta: metav1.ObjectMeta{Name: RegistryConfigMap, Namespace: RegistryConfigMapNamespace,
			Labels: map[string]string{"app.kubernetes.io/managed-by": "devloop"}},
		Data: map[string]string{"localRegistryHosting.v1": string(b)},
	}, nil
}

// ApplyRegistryConfigMap publishes where the registry is (KEP-1755), by
// server-side apply.
func ApplyRegistryConfigMap(ctx context.Context, cs kubernetes.Interface, spec config.Cluster) error {
	cm, err := registryConfigMap(spec)
	if err != nil {
		return err
	}
	data, err := yaml.Marshal(cm)
	if err != nil {
		return err
	}
	force := true
	_, err = cs.CoreV1().ConfigMaps(RegistryConfigMapNamespace).Patch(ctx, RegistryConfigMap, "application/apply-patch+yaml", data,
		metav1.PatchOptions{FieldManager: FieldManager, Force: &force})
	if err != nil {
		return fmt.Errorf("publishing the registry in %s/%s: %w", RegistryConfigMapNamespace, RegistryConfigMap, err)
	}
	return nil
}

// RegistryDocker is what the Manager asks of the Docker engine for the
// registry container and the nodes' containerd configuration.
type RegistryDocker interface {
	// Registry inspects container name.
	Registry(ctx context.Context, name string) (RegistryInfo, error)
	// RunRegistry creates and starts the registry container.
	RunRegistry(ctx context.Context, r RegistryRun) error
	// Start starts a stopped container.
	Start(ctx context.Context, name string) error
	// Connect attaches a container to a network.
	Connect(ctx context.Context, network, name string) error
	// Remove force-removes a container.
	Remove(ctx context.Context, name string) error
	// VolumeLabel returns a volume's label value; ok is false when there is no such volume.
	VolumeLabel(ctx context.Context, volume, label string) (value string, ok bool, err error)
	// RemoveVolume removes a volume.
	RemoveVolume(ctx context.Context, volume string) error
	// ReadFile returns a file in a running container ("" and no error when it is missing).
	ReadFile(ctx context.Context, container, path string) (string, error)
	// WriteFile writes a file (and its directory) in a running container.
	WriteFile(ctx context.Context, container, path, content string) error
}

// RegistryInfo is what the Manager needs to know about a registry container.
type RegistryInfo struct {
	Exists, Running bool
	// Label is the value of RegistryLabel ("" when absent: not devloop's).
	Label string
	// Networks are the networks it is attached to.
	Networks []string
}

// RegistryRun is the registry container devloop makes.
type RegistryRun struct {
	Name, Image, Volume, Network string
	// HostPort is published on 127.0.0.1.
	HostPort int
	// Labels go on the container (the volume gets them too).
	Labels map[string]string
}

// ensureRegistry makes (or adopts, or starts) the registry container of
// spec's cluster, on the kind network, and waits until it answers.
func (m *Manager) ensureRegistry(ctx context.Context, spec config.Cluster) error {
	name := RegistryContainer(spec.Name)
	ri, err := m.registry.Registry(ctx, name)
	if err != nil {
		return fmt.Errorf("inspecting the registry container %s: %w", name, err)
	}
	switch {
	case !ri.Exists:
		if err := checkPortsFree("127.0.0.1", []hostPort{{Port: spec.Registry.Port, Purpose: "registry", Setting: "cluster.registry.port"}}); err != nil {
			return err
		}
		if err := m.ensureImage(ctx, spec.Registry.Image, "registry image", "cluster.registry.image or DEVLOOP_REGISTRY_IMAGE"); err != nil {
			return err
		}
		m.logger.V(0).Infof(" • Starting the registry %s on 127.0.0.1:%d 📦", name, spec.Registry.Port)
		if err := m.registry.RunRegistry(ctx, RegistryRun{Name: name, Image: spec.Registry.Image, Volume: RegistryVolume(spec.Name),
			Network: kindNetwork, HostPort: spec.Registry.Port, Labels: map[string]string{RegistryLabel: spec.Name}}); err != nil {
			return fmt.Errorf("starting the registry container %s: %w", name, err)
		}
	default:
		if !ri.Running {
			if err := m.registry.Start(ctx, name); err != nil {
				return fmt.Errorf("starting the registry container %s: %w", name, err)
			}
		}
		if !containsString(ri.Networks, kindNetwork) {
			if err := m.registry.Connect(ctx, kindNetwork, name); err != nil {
				return fmt.Errorf("connecting the registry container %s to the %s network: %w", name, kindNetwork, err)
			}
		}
	}
	return m.waitRegistry(ctx, spec.Registry.Port)
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// ensureImage makes sure image is in the local engine, trying one pull.
func (m *Manager) ensureImage(ctx context.Context, image, what, setting string) error {
	ok, err := m.docker.ImagePresent(ctx, image)
	if err != nil {
		return fmt.Errorf("checking for %s %s: %w", what, image, err)
	}
	if ok {
		return nil
	}
	pctx, cancel := context.WithTimeout(ctx, m.pullTimeout)
	defer cancel()
	if err := m.docker.PullImage(pctx, image); err != nil {
		return fmt.Errorf("%s %s is not in the local Docker engine and could not be pulled (%v): set %s to an image you have", what, image, err, setting)
	}
	return nil
}

// waitRegistry waits up to 30 s for the registry's /v2/ to answer on the host.
func (m *Manager) waitRegistry(ctx context.Context, port int) error {
	probe := m.registryProbe
	if probe == nil {
		probe = probeRegistry
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for {
		err := probe(ctx, "http://127.0.0.1:"+strconv.Itoa(port)+"/v2/")
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the registry on 127.0.0.1:%d does not answer: %w", port, err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func probeRegistry(ctx context.Context, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return nil
}

// NoRegistryPatchError says an adopted cluster's nodes were made without
// the containerd patch: they cannot pull from the registry.
type NoRegistryPatchError struct {
	Cluster, Node, Host string
}

// Error implements error.
func (e *NoRegistryPatchError) Error() string {
	return fmt.Sprintf("kind cluster %q was created without the registry's containerd configuration (node %s does not read %s), so its nodes cannot pull from %s: "+
		"recreate it with `devloop down --cluster` then `devloop up`, or set cluster.delivery: stream", e.Cluster, e.Node, certsDir, e.Host)
}

// configureNodes writes the registry's hosts.toml into every node of
// spec's cluster, after checking each node's containerd reads it.
func (m *Manager) configureNodes(ctx context.Context, spec config.Cluster, nodes []string) error {
	dir := certsDir + "/" + spec.Registry.Host()
	for _, n := range nodes {
		conf, err := m.registry.ReadFile(ctx, n, "/etc/containerd/config.toml")
		if err != nil {
			return fmt.Errorf("reading node %s's containerd configuration: %w", n, err)
		}
		if !readsCertsDir(conf) {
			return &NoRegistryPatchError{Cluster: spec.Name, Node: n, Host: spec.Registry.Host()}
		}
		if err := m.registry.WriteFile(ctx, n, dir+"/hosts.toml", hostsTOML(spec.Name)); err != nil {
			return fmt.Errorf("configuring node %s to pull from the registry: %w", n, err)
		}
	}
	return nil
}

// readsCertsDir reports whether a containerd config.toml sets config_path
// to certsDir (kind merges containerdConfigPatches into that file).
func readsCertsDir(conf string) bool {
	for _, line := range strings.Split(conf, "\n") {
		k, v, ok := strings.Cut(line, "=")
		if ok && strings.TrimSpace(k) == "config_path" && strings.Trim(strings.TrimSpace(v), `"'`) == certsDir {
			return true
		}
	}
	return false
}

// RemoveRegistry removes cluster's registry container and its volume, each
// only when devloop made it for that cluster (RegistryLabel), and returns
// what it removed. Down does it after deleting the cluster; this is for a
// registry whose cluster is already gone.
func (m *Manager) RemoveRegistry(ctx context.Context, cluster string) ([]string, error) {
	return m.removeRegistry(ctx, cluster)
}

func (m *Manager) removeRegistry(ctx context.Context, cluster string) ([]string, error) {
	var removed []string
	var errs []error
	name := RegistryContainer(cluster)
	ri, err := m.registry.Registry(ctx, name)
	switch {
	case err != nil:
		errs = append(errs, fmt.Errorf("inspecting the registry container %s: %w", name, err))
	case ri.Exists && ri.Label == cluster:
		if err := m.registry.Remove(ctx, name); err != nil {
			errs = append(errs, fmt.Errorf("removing the registry container %s: %w", name, err))
		} else {
			removed = append(removed, "container "+name)
		}
	case ri.Exists:
		m.logger.V(0).Infof("Left the container %s alone: devloop did not create it", name)
	}
	vol := RegistryVolume(cluster)
	label, ok, err := m.registry.VolumeLabel(ctx, vol, RegistryLabel)
	switch {
	case err != nil:
		errs = append(errs, fmt.Errorf("inspecting the registry volume %s: %w", vol, err))
	case ok && label == cluster && len(errs) == 0:
		if err := m.registry.RemoveVolume(ctx, vol); err != nil {
			errs = append(errs, fmt.Errorf("removing the registry volume %s: %w", vol, err))
		} else {
			removed = append(removed, "volume "+vol)
		}
	case ok && label != cluster:
		m.logger.V(0).Infof("Left the volume %s alone: devloop did not create it", vol)
	}
	return removed, errors.Join(errs...)
}
