// Package config loads, defaults and validates devloop.yaml.
//
// Every path in a loaded Config is absolute (resolved against the directory
// of the config file), so no other package needs to know where the file was.
package config

import "fmt"

// Config is a loaded, defaulted and validated devloop.yaml.
type Config struct {
	// Path is the absolute path of the file this was loaded from
	// ("<embedded>/..." for the bundled example).
	Path string `json:"-"`
	// Dir is the absolute directory every relative path was resolved against.
	Dir string `json:"-"`

	// Name is the project name. It labels everything devloop applies
	// (app.kubernetes.io/managed-by=devloop, devloop.dev/project=<name>).
	Name string `json:"name"`
	// Namespace is where manifests without a namespace go. Default "default".
	Namespace string    `json:"namespace,omitempty"`
	Cluster   Cluster   `json:"cluster,omitempty"`
	Services  []Service `json:"services,omitempty"`
	// Manifests are files, globs or kustomize directories, absolute after load.
	Manifests []string `json:"manifests,omitempty"`
	// Charts are Helm charts, each installed (then upgraded) as one release
	// through the Helm SDK, after the plain manifests are applied.
	Charts []Chart `json:"charts,omitempty"`

	// keys are the key paths the file sets (defaults that an existing
	// cluster changes apply only to what the file leaves out).
	keys map[string]bool
}

// Chart is one Helm chart of the repository and the release devloop makes of it.
type Chart struct {
	// Chart is a chart directory or a packaged chart (.tgz), absolute after load.
	Chart string `json:"chart"`
	// Release is the release name. Default: the chart directory's name (a
	// packaged chart's file name without .tgz).
	Release string `json:"release,omitempty"`
	// Namespace of the release. Default: the project's namespace.
	Namespace string `json:"namespace,omitempty"`
	// Values are values files (YAML), merged in order over the chart's
	// values.yaml; absolute after load.
	Values []string `json:"values,omitempty"`
	// Set are values given as Helm's --set does ("image.tag: v2",
	// "replicas: 2"), applied after the values files.
	Set map[string]string `json:"set,omitempty"`
}

// Cluster describes the local kind cluster devloop creates or adopts, or
// the existing cluster it is pointed at (Context).
type Cluster struct {
	// Context names an existing cluster by its context in the user's
	// kubeconfig (never the current-context implicitly). devloop then never
	// creates, deletes or loads images into a cluster: it pushes to
	// Registry.Address, applies into the developer's namespace and installs
	// no addons. Empty: devloop's own kind cluster (Name).
	Context string `json:"context,omitempty"`
	// Name of the kind cluster; its kubeconfig context is "kind-<Name>". Default "devloop".
	Name string `json:"name,omitempty"`
	// NodeImage is the kind node image. The environment variable
	// DEVLOOP_NODE_IMAGE overrides it. Default: kind's default image, or
	// kindest/node:<KubernetesVersion> when that is set.
	NodeImage string `json:"nodeImage,omitempty"`
	// KubernetesVersion, e.g. "v1.37.2"; used only when NodeImage is empty.
	KubernetesVersion string  `json:"kubernetesVersion,omitempty"`
	Ingress           Ingress `json:"ingress,omitempty"`
	// Workers is the number of kind worker nodes beside the control plane
	// (0-9). Default 0: one node running everything. With workers the
	// control plane runs only the system pods and the ingress controller.
	Workers int `json:"workers,omitempty"`
	// Registry is the local image registry next to the cluster (KEP-1755).
	Registry Registry `json:"registry,omitempty"`
	// Delivery is how built images reach the nodes: DeliveryPush (to the
	// registry; the nodes pull) or DeliveryStream (streamed into each
	// node). Default: push when the registry is enabled, else stream.
	Delivery string `json:"delivery,omitempty"`
}

// Delivery modes (Cluster.Delivery).
const (
	// DeliveryStream streams each image into every node (imageload.Loader).
	DeliveryStream = "stream"
	// DeliveryPush pushes each image to the registry, which the nodes pull from.
	DeliveryPush = "push"
)

// Registry is the local registry devloop runs beside its kind cluster: a
// distribution/distribution container on the kind network, bound to
// 127.0.0.1:<Port> on the host, which the nodes reach as localhost:<Port>.
type Registry struct {
	// Enabled turns the registry on. Default false.
	Enabled bool `json:"enabled,omitempty"`
	// Port is the host port, bound to 127.0.0.1. Default DefaultRegistryPort.
	Port int `json:"port,omitempty"`
	// Image is the registry image. Default DefaultRegistryImage; the
	// environment variable DEVLOOP_REGISTRY_IMAGE overrides it.
	Image string `json:"image,omitempty"`
	// Address is the registry an existing cluster (Cluster.Context) pulls
	// from, host[:port][/path-prefix] ("registry.dev.example.com/team",
	// "localhost:5001"): images are pushed to <Address>/<repo>:<tag> and the
	// manifests name that. Required with Context; Enabled, Port and Image
	// (the local registry container) are refused with it.
	Address string `json:"address,omitempty"`
}

// Host returns the prefix of every pushed reference: Address when set,
// else the local registry as the host and the nodes see it,
// "localhost:<port>".
func (r Registry) Host() string {
	if r.Address != "" {
		return r.Address
	}
	return fmt.Sprintf("localhost:%d", r.Port)
}

// Push reports whether images are delivered by push to the registry
// (always on an existing cluster).
func (c Cluster) Push() bool {
	return c.Context != "" || (c.Registry.Enabled && c.Delivery == DeliveryPush)
}

// Existing reports whether the cluster is an existing one (Context), not
// devloop's kind cluster.
func (c Cluster) Existing() bool { return c.Context != "" }

// Target names the cluster for the user: the kubeconfig context of an
// existing cluster, else the kind cluster's name.
func (c Cluster) Target() string {
	if c.Context != "" {
		return c.Context
	}
	return c.Name
}

// Ingress configures the ingress controller devloop installs (Traefik v3).
type Ingress struct {
	// Enabled defaults to true.
	Enabled *bool `json:"enabled,omitempty"`
	// Image is the controller image. Default DefaultIngressImage (pinned Traefik v3).
	Image string `json:"image,omitempty"`
	// HTTPPort is the host port mapped to the node's port 80. Default 8080.
	HTTPPort int `json:"httpPort,omitempty"`
	// HTTPSPort is the host port mapped to the node's port 443. Default 8443.
	HTTPSPort int `json:"httpsPort,omitempty"`
	// ListenAddress is the host address the ports bind to. Default 127.0.0.1.
	ListenAddress string `json:"listenAddress,omitempty"`
}

// Service returns the service named name.
func (c *Config) Service(name string) (Service, bool) {
	for _, s := range c.Services {
		if s.Name == name {
			return s, true
		}
	}
	return Service{}, false
}

// IsEnabled reports whether the ingress controller is wanted.
func (i Ingress) IsEnabled() bool { return i.Enabled == nil || *i.Enabled }

// Service is one buildable image and the workloads that run it.
type Service struct {
	// Name is a DNS-1123 label, unique in the file.
	Name string `json:"name"`
	// Image is the image repository the manifests refer to (e.g. "hello" or
	// "example.com/team/hello"); devloop replaces it with the built, content-tagged ref.
	// Default: Name.
	Image string `json:"image,omitempty"`
	Build Build  `json:"build,omitempty"`
	// Watch lists files/directories whose changes rebuild this service.
	// Default: the build context. Absolute after load.
	Watch []string `json:"watch,omitempty"`
	// Ignore lists patterns (.dockerignore syntax, relative to the build
	// context) whose changes never trigger anything, on top of .dockerignore.
	Ignore []string `json:"ignore,omitempty"`
	// Sync rules copy matching changed files into running containers instead of rebuilding.
	Sync []SyncRule `json:"sync,omitempty"`
	// PortForwards keep 127.0.0.1:<local> forwarded to the service's pods.
	PortForwards []PortForward `json:"portForwards,omitempty"`
	// DependsOn names services whose workloads must be ready before this
	// one's are first applied in a session (later rebuilds do not wait).
	// Unknown names and cycles are errors.
	DependsOn []string `json:"dependsOn,omitempty"`
}

// Build describes how to build a service's image with the Docker Engine API.
type Build struct {
	// Context directory, absolute after load. Default: the config file's directory.
	Context string `json:"context,omitempty"`
	// Dockerfile path, absolute after load. Default: <Context>/Dockerfile.
	Dockerfile string            `json:"dockerfile,omitempty"`
	Target     string            `json:"target,omitempty"`
	Args       map[string]string `json:"args,omitempty"`
	// PreBuild is a host command run before the image build (e.g. `go build`);
	// its failure is reported like a build failure.
	PreBuild *Command `json:"preBuild,omitempty"`
	// Secrets are offered to `RUN --mount=type=secret,id=<ID>` (BuildKit only).
	// Their values never reach devloop's output, an image layer or the history.
	Secrets []Secret `json:"secrets,omitempty"`
}

// Secret is one build secret: the contents of a host file (Src) or the value
// of an environment variable of devloop's own environment (Env), exactly one.
type Secret struct {
	// ID is the id the Dockerfile names (--mount=type=secret,id=<ID>).
	ID string `json:"id"`
	// Src is a host file, absolute after load ("~/" is the home directory).
	Src string `json:"src,omitempty"`
	// Env names an environment variable; it must be set when a build runs.
	Env string `json:"env,omitempty"`
}

// Command is a host command run with `sh -c`.
type Command struct {
	Run string `json:"run"`
	// Dir is the working directory, absolute after load. Default: the build context.
	Dir string            `json:"dir,omitempty"`
	Env map[string]string `json:"env,omitempty"`
}

// SyncRule copies files under Src (a local directory or file, absolute after
// load) to Dest (an absolute container path), then runs Run in the container
// (`sh -c`), if set, then restarts the container's main process if Restart.
type SyncRule struct {
	Src  string `json:"src"`
	Dest string `json:"dest"`
	Run  string `json:"run,omitempty"`
	// Restart restarts the container's main process after the copy, through
	// the small supervisor devloop adds to the dev images it builds. With a
	// preBuild, a change that would otherwise rebuild the image (a source the
	// preBuild compiles, not a file the Dockerfile copies) runs the preBuild
	// and copies Src in instead: Src is then what the preBuild writes (a
	// binary), and need not exist before the first build.
	Restart bool `json:"restart,omitempty"`
}

// RestartRules returns the service's sync rules with Restart set.
func (s Service) RestartRules() []SyncRule {
	var out []SyncRule
	for _, r := range s.Sync {
		if r.Restart {
			out = append(out, r)
		}
	}
	return out
}

// Restarts reports whether any of the service's sync rules restarts its process.
func (s Service) Restarts() bool { return len(s.RestartRules()) > 0 }

// PortForward keeps Address:Local forwarded to Port on a ready pod behind Resource.
type PortForward struct {
	// Local is the local port (1-65535), unique across the file.
	Local int `json:"local"`
	// Port is the remote port: a Service port when Resource is a service,
	// otherwise a container port.
	Port int `json:"port"`
	// Resource is "service/<name>", "deployment/<name>", "statefulset/<name>"
	// or "pod/<name>". Default: "service/<service name>".
	Resource string `json:"resource,omitempty"`
	// Address is the local bind address. Default 127.0.0.1.
	Address string `json:"address,omitempty"`
}
