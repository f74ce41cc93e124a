package cluster

import (
	"testing"

	"github.com/devloop-dev/devloop/internal/config"
	"sigs.k8s.io/kind/pkg/apis/config/defaults"
	"sigs.k8s.io/kind/pkg/apis/config/v1alpha4"
)

func TestNodeImage(t *testing.T) {
	tests := []struct {
		name string
		spec config.Cluster
		want string
	}{
		{"explicit image wins", config.Cluster{NodeImage: "devloop.local/kind-node:v1.37.2", KubernetesVersion: "v1.34.0"}, "devloop.local/kind-node:v1.37.2"},
		{"kubernetes version", config.Cluster{KubernetesVersion: "v1.34.4"}, "kindest/node:v1.34.4"},
		{"kubernetes version without v", config.Cluster{KubernetesVersion: "1.34.4"}, "kindest/node:v1.34.4"},
		{"kind default", config.Cluster{}, defaults.Image},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := NodeImage(tt.spec); got != tt.want {
				t.Errorf("NodeImage() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestKindConfig(t *testing.T) {
	off := false
	tests := []struct {
		name         string
		spec         config.Cluster
		opts         kindConfigOptions
		wantPorts    []v1alpha4.PortMapping
		wantPatches  int
		wantNoCNI    bool
		wantNodeImg  string
		wantClusterN string
	}{
		{
			name: "defaults bind ingress ports to loopback",
			spec: config.Cluster{},
			wantPorts: []v1alpha4.PortMapping{
				{ContainerPort: 80, HostPort: 8080, ListenAddress: "127.0.0.1", Protocol: v1alpha4.PortMappingProtocolTCP},
				{ContainerPort: 443, HostPort: 8443, ListenAddress: "127.0.0.1", Protocol: v1alpha4.PortMappingProtocolTCP},
			},
			wantNodeImg:  defaults.Image,
			wantClusterN: "devloop",
		},
		{
			name: "configured ports, address, image; cgroup v1; no default CNI",
			spec: config.Cluster{Name: "cx-a", NodeImage: "devloop.local/kind-node:v1.37.2",
				Ingress: config.Ingress{HTTPPort: 9080, HTTPSPort: 9443, ListenAddress: "0.0.0.0"}},
			opts: kindConfigOptions{CgroupV1: true, DisableDefaultCNI: true},
			wantPorts: []v1alpha4.PortMapping{
				{ContainerPort: 80, HostPort: 9080, ListenAddress: "0.0.0.0", Protocol: v1alpha4.PortMappingProtocolTCP},
				{ContainerPort: 443, HostPort: 9443, ListenAddress: "0.0.0.0", Protocol: v1alpha4.PortMappingProtocolTCP},
			},
			wantPatches:  1,
			wantNoCNI:    true,
			wantNodeImg:  "devloop.local/kind-node:v1.37.2",
			wantClusterN: "cx-a",
		},
		{
			name:         "ingress disabled maps no ports",
			spec:         config.Cluster{Ingress: config.Ingress{Enabled: &off}},
			wantNodeImg:  defaults.Image,
			wantClusterN: "devloop",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := kindConfig(tt.spec.WithDefaults(), tt.opts)
			if cfg.Name != tt.wantClusterN {
				t.Errorf("Name = %q, want %q", cfg.Name, tt.wantClusterN)
			}
			if cfg.APIVersion != "kind.x-k8s.io/v1alpha4" || cfg.Kind != "Cluster" {
				t.Errorf("TypeMeta = %+v", cfg.TypeMeta)
			}
			if len(cfg.Nodes) != 1 {
				t.Fatalf("got %d nodes, want 1", len(cfg.Nodes))
			}
			n := cfg.Nodes[0]
			if n.Role != v1alpha4.ControlPlaneRole {
				t.Errorf("Role = %q", n.Role)
			}
			if n.Image != tt.wantNodeImg {
				t.Errorf("Image = %q, want %q", n.Image, tt.wantNodeImg)
			}
			if n.Labels["ingress-ready"] != "true" {
				t.Errorf("Labels = %v, want ingress-ready=true", n.Labels)
			}
			if len(n.ExtraPortMappings) != len(tt.wantPorts) {
				t.Fatalf("ExtraPortMappings = %+v, want %+v", n.ExtraPortMappings, tt.wantPorts)
			}
			for i := range tt.wantPorts {
				if n.ExtraPortMappings[i] != tt.wantPorts[i] {
					t.Errorf("port %d = %+v, want %+v", i, n.ExtraPortMappings[i], tt.wantPorts[i])
				}
			}
			if len(cfg.KubeadmConfigPatches) != tt.wantPatches {
				t.Fatalf("KubeadmConfigPatches = %q", cfg.KubeadmConfigPatches)
			}
			if tt.wantPatches == 1 && cfg.KubeadmConfigPatches[0] != "kind: KubeletConfiguration\nfailCgroupV1: false\n" {
				t.Errorf("patch = %q", cfg.KubeadmConfigPatches[0])
			}
			if cfg.Networking.DisableDefaultCNI != tt.wantNoCNI {
				t.Errorf("DisableDefaultCNI = %v, want %v", cfg.Networking.DisableDefaultCNI, tt.wantNoCNI)
			}
		})
	}
}
