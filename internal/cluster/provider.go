package cluster

import (
	"bytes"
	"context"

	"fmt"
	"os/exec"
	"strings"
	"time"

	"sigs.k8s.io/kind/pkg/apis/config/v1alpha4"
	kindcluster "sigs.k8s.io/kind/pkg/cluster"
	kindlog "sigs.k8s.io/kind/pkg/log"
)

// Provider is the subset of kind's cluster.Provider that Manager uses. It
// exists so tests can fake kind (in particular a Create that blocks until
// Delete is called). None of kind's methods take a context.
type Provider interface {
	// Create creates cluster name from cfg and writes its kubeconfig to
	// kubeconfigPath. It does not wait for the nodes to be Ready: kind's
	// wait cannot be interrupted, so the Manager waits itself.
	Create(name string, cfg *v1alpha4.Cluster, kubeconfigPath string) error
	// Delete deletes the cluster's nodes and removes its entries from the
	// kubeconfig at kubeconfigPath ("" = $KUBECONFIG or ~/.kube/config).
	Delete(name, kubeconfigPath string) error
	// List returns the names of existing clusters.
	List() ([]string, error)
	// KubeConfig returns the cluster's external kubeconfig (context kind-<name>).
	KubeConfig(name string) ([]byte, error)
	// ListNodes returns the names of the cluster's node containers.
	ListNodes(name string) ([]string, error)
}

// KindProvider adapts kind's *cluster.Provider to Provider.
type KindProvider struct {
	// Kind is the wrapped kind provider (docker runtime).
	Kind *kindcluster.Provider
}

// NewKindProvider returns a Provider backed by kind's docker provider,
// logging through logger. kind shells out to `docker` found in PATH.
func NewKindProvider(logger kindlog.Logger) *KindProvider {
	return &KindProvider{Kind: kindcluster.NewProvider(
		kindcluster.ProviderWithLogger(logger),
		kindcluster.ProviderWithDocker(),
	)}
}

// Create implements Provider.
func (p *KindProvider) Create(name string, cfg *v1alpha4.Cluster, kubeconfigPath string) error {
	return p.Kind.Create(name,
		kindcluster.CreateWithV1Alpha4Config(cfg),
		kindcluster.CreateWithWaitForReady(0),
		kindcluster.CreateWithKubeconfigPath(kubeconfigPath),
		kindcluster.CreateWithDisplayUsage(false),
		kindcluster.CreateWithDisplaySalutation(false),
	)
}

// Delete implements Provider.
func (p *KindProvider) Delete(name, kubeconfigPath string) error {
	return p.Kind.Delete(name, kubeconfigPath)
}

// List implements Provider.
func (p *KindProvider) List() ([]string, error) { return p.Kind.List() }

// KubeConfig implements Provider.
func (p *KindProvider) KubeConfig(name string) ([]byte, error) {
	s, err := p.Kind.KubeConfig(name, false)
	if err != nil {
		return nil, err
	}
	return []byte(s), nil
}

// ListNodes implements Provider.
func (p *KindProvider) ListNodes(name string) ([]string, error) {
	ns, err := p.Kind.ListNodes(name)
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(ns))
	for _, n := range ns {
		names = append(names, n.String())
	}
	return names, nil
}

// Docker is the handful of Docker engine queries Manager makes before kind
// runs. The real implementation shells out to the `docker` CLI found in PATH,
// exactly like kind does, so a PATH shim serves both.
type Docker interface {
	// ImagePresent reports whether ref exists in the local engine.
	ImagePresent(ctx context.Context, ref string) (bool, error)
	// PullImage pulls ref.
	PullImage(ctx context.Context, ref string) error
	// ImageHasFile reports whether the image's filesystem contains path.
	ImageHasFile(ctx context.Context, ref, path string) (bool, error)
	// Container inspects a container by name.
	Container(ctx context.Context, name string) (ContainerInfo, error)
	// Unpause unpauses a paused container.
	Unpause(ctx context.Context, name string) error
}

// ContainerInfo is what Manager needs to know about a container.
type ContainerInfo struct {
	// Exists is false when there is no container of that name.
	Exists bool
	// Running is the container's State.Running (a paused container is
	// running, and Paused).
	Running bool
	// Paused is the container's State.Paused.
	Paused bool
	// KindCluster is the value of kind's io.x-k8s.kind.cluster label ("" if absent).
	KindCluster string
	// ID is the container's full ID.
	ID string
}

// kindClusterLabel is the label kind puts on every node container.
const kindClusterLabel = "io.x-k8s.kind.cluster"

// DockerCLI implements Docker with the docker command-line client.
type DockerCLI struct {
	// Binary is the docker executable; default "docker".
	Binary string
}

func (d DockerCLI) run(ctx context.Context, args ...string) (string, error) {
	bin := d.Binary
	if bin == "" {
		bin = "docker"
	}
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return stdout.String(), fmt.Errorf("docker %s: %w", args[0], ctx.Err())
		}
		msg := strings.TrimSpace(stderr.String())
		if msg == "" {
			return stdout.String(), fmt.Errorf("docker %s: %w", args[0], err)
		}
		return stdout.String(), fmt.Errorf("docker %s: %w: %s", args[0], err, msg)
	}
	return stdout.String(), nil
}

// isNoSuch reports whether a docker CLI error means "object not found".
func isNoSuch(err error) bool {
	s := strings.ToLower(err.Error())
	return strings.Contains(s, "no such") || strings.Contains(s, "not found") || strings.Contains(s, "could not find")
}

// ImagePresent implements Docker.
func (d DockerCLI) ImagePresent(ctx context.Context, ref string) (bool, error) {
	_, err := d.run(ctx, "image", "inspect", "--format", "{{.Id}}", ref)
	if err == nil {
		return true, nil
	}
	if ctx.Err() == nil && isNoSuch(err) {
		return false, nil
	}
	return false, err
}

// PullImage implements Docker.
func (d DockerCLI) PullImage(ctx context.Context, ref string) error {
	_, err := d.run(ctx, "pull", ref)
	return err
}

// ImageHasFile implements Docker: it creates (never starts) a container from
// the image, copies path out of it and removes the container.
func (d DockerCLI) ImageHasFile(ctx context.Context, ref, path string) (bool, error) {
	out, err := d.run(ctx, "create", "--label", "devloop.dev/probe=true", ref, "/bin/true")
	if err != nil {
		return false, err
	}
	id := strings.TrimSpace(out)
	defer func() {
		// Remove even when ctx is done: never leave a probe container behind.
		rmCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		_, _ = d.run(rmCtx, "rm", "-f", id)
	}()
	_, err = d.run(ctx, "cp", id+":"+path, "-")
	if err == nil {
		return true, nil
	}
	if ctx.Err() == nil && isNoSuch(err) {
		return false, nil
	}
	return false, err
}

// Container implements Docker.
func (d DockerCLI) Container(ctx context.Context, name string) (ContainerInfo, error) {
	format := fmt.Sprintf(`{{.Id}} {{.State.Running}} {{.State.Paused}} {{index .Config.Labels %q}}`, kindClusterLabel)
	out, err := d.run(ctx, "container", "inspect", "--format", format, name)
	if err != nil {
		if ctx.Err() == nil && isNoSuch(err) {
			return ContainerInfo{}, nil
		}
		return ContainerInfo{}, err
	}
	id, rest, _ := strings.Cut(strings.TrimSpace(out), " ")
	running, rest, _ := strings.Cut(rest, " ")
	paused, label, _ := strings.Cut(rest, " ")
	if label == "<no value>" {
		label = ""
	}
	return ContainerInfo{Exists: true, Running: running == "true", Paused: paused == "true", KindCluster: strings.TrimSpace(label), ID: id}, nil
}

// Unpause implements Docker.
func (d DockerCLI) Unpause(ctx context.Context, name string) error {
	_, err := d.run(ctx, "unpause", name)
	return err
}
