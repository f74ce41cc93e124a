package cluster

import (
	"strings"

	"github.com/devloop-dev/devloop/internal/config"
	"sigs.k8s.io/kind/pkg/apis/config/defaults"
	"sigs.k8s.io/kind/pkg/apis/config/v1alpha4"
)

const (
	// IngressReadyLabel is the node label the ingress controller is pinned to.
	IngressReadyLabel = "ingress-ready"

	// defaultCNIManifest is where kind node images ship kindnetd's manifest.
	// Images without it (like the offline e2e node image, which ships a
	// static bridge CNI conflist) need disableDefaultCNI, or kind's
	// "Installing CNI" step fails reading it.
	defaultCNIManifest = "/kind/manifests/default-cni.yaml"

	// cgroupV1Patch lets kubelet start on a cgroup v1 host. Since Kubernetes
	// 1.35 kubelet refuses to run on cgroup v1 unless failCgroupV1 is false
	// ("kubelet is configured to not run on a host using cgroup v1").
	// Older kubelets (>= 1.31) accept the field and default to the same.
	cgroupV1Patch = "kind: KubeletConfiguration\nfailCgroupV1: false\n"
)

// NodeImage returns the node image a new cluster would use: spec.NodeImage,
// else kindest/node:<KubernetesVersion>, else kind's default image.
// (DEVLOOP_NODE_IMAGE is applied to spec.NodeImage by the config loader.)
func NodeImage(spec config.Cluster) string {
	switch {
	case spec.NodeImage != "":
		return spec.NodeImage
	case spec.KubernetesVersion != "":
		v := spec.KubernetesVersion
		if !strings.HasPrefix(v, "v") {
			v = "v" + v
		}
		return "kindest/node:" + v
	default:
		return defaults.Image
	}
}

// kindConfigOptions are the host facts that shape the kind config.
type kindConfigOptions struct {
	// CgroupV1 adds the kubelet failCgroupV1=false patch.
	CgroupV1 bool
	// DisableDefaultCNI is set when the node image has no kindnetd manifest.
	DisableDefaultCNI bool
}

// kindConfig builds the v1alpha4 cluster config for spec (already defaulted):
// one control-plane node labelled ingress-ready=true, with the ingress ports
// mapped to spec.Ingress.ListenAddress when the ingress is enabled;
// spec.Workers worker nodes; and, with the registry, containerd reading
// the per-registry host configuration the Manager writes into each node.
func kindConfig(spec config.Cluster, opts kindConfigOptions) *v1alpha4.Cluster {
	node := v1alpha4.Node{
		Role:   v1alpha4.ControlPlaneRole,
		Image:  NodeImage(spec),
		Labels: map[string]string{IngressReadyLabel: "true"},
	}
	if spec.Ingress.IsEnabled() {
		node.ExtraPortMappings = []v1alpha4.PortMapping{
			{ContainerPort: 80, HostPort: int32(spec.Ingress.HTTPPort), ListenAddress: spec.Ingress.ListenAddress, Protocol: v1alpha4.PortMappingProtocolTCP},
			{ContainerPort: 443, HostPort: int32(spec.Ingress.HTTPSPort), ListenAddress: spec.Ingress.ListenAddress, Protocol: v1alpha4.PortMappingProtocolTCP},
		}
	}
	cfg := &v1alpha4.Cluster{
		TypeMeta: v1alpha4.TypeMeta{Kind: "Cluster", APIVersion: "kind.x-k8s.io/v1alpha4"},
		Name:     spec.Name,
		Nodes:    []v1alpha4.Node{node},
	}
	// Workers carry no host ports: the ingress (its port mappings, and
	// Traefik's nodeSelector ingress-ready) stays on the control plane.
	for range spec.Workers {
		cfg.Nodes = append(cfg.Nodes, v1alpha4.Node{Role: v1alpha4.WorkerRole, Image: NodeImage(spec)})
	}
	if spec.Registry.Enabled {
		cfg.ContainerdConfigPatches = append(cfg.ContainerdConfigPatches, registryConfigPatch)
	}
	cfg.Networking.DisableDefaultCNI = opts.DisableDefaultCNI
	if opts.CgroupV1 {
		cfg.KubeadmConfigPatches = append(cfg.KubeadmConfigPatches, cgroupV1Patch)
	}
	return cfg
}
