// Package project is devloop's library entry: what the commands do, for one
// loaded devloop.yaml. Up runs the inner loop (cluster, ingress, builds,
// deploys, forwards, logs, watching); Build, Down, Status and Logs are the
// one-shot commands. Each takes the config, its options (the output printer
// among them) and Deps, the external systems behind small interfaces, so a
// whole cycle runs in tests against fakes.
//
// internal/app only parses flags, loads the config and prints results; the
// orchestration lives here, and the work in the packages with one job each
// (cluster, build, imageload, kube, watch, livesync, portfwd, logs).
package project

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/moby/moby/client"
	"k8s.io/client-go/rest"

	"github.com/devloop-dev/devloop/internal/build"
	"github.com/devloop-dev/devloop/internal/cluster"
	"github.com/devloop-dev/devloop/internal/config"
	"github.com/devloop-dev/devloop/internal/dockerhost"
	"github.com/devloop-dev/devloop/internal/imageload"
	"github.com/devloop-dev/devloop/internal/initcfg"
	"github.com/devloop-dev/devloop/internal/kube"
	"github.com/devloop-dev/devloop/internal/livesync"
	"github.com/devloop-dev/devloop/internal/redact"
)

// Builder builds a service's image (build.Builder).
type Builder interface {
	Build(ctx context.Context, svc config.Service, out io.Writer) (build.Image, error)
	// PreBuild runs the service's pre-build alone (a live update).
	PreBuild(ctx context.Context, svc config.Service, out io.Writer) error
}

// Loader delivers images to a cluster: streamed into a kind cluster's nodes
// (imageload.Loader), or pushed to the registry they pull from
// (imageload.Pusher, whose Result names the pushed reference).
type Loader interface {
	ProbeNodes(ctx context.Context, clusterName string) *imageload.NodeProbe
	LoadProbed(ctx context.Context, p *imageload.NodeProbe, ref string, out io.Writer) (imageload.Result, error)
	Load(ctx context.Context, clusterName, ref string, out io.Writer) (imageload.Result, error)
}

// Clusters creates, adopts, opens and deletes kind clusters, and installs
// devloop's addons (ingress controller, default StorageClass) in them.
type Clusters interface {
	Ensure(ctx context.Context, spec config.Cluster) (*cluster.Info, error)
	Exists(name string) (bool, error)
	RESTConfig(name string) (*rest.Config, error)
	Delete(ctx context.Context, name string) error
	// Down deletes the cluster, first running cleanup when the cluster can be
	// talked to; a broken cluster is deleted all the same, and what could
	// not be cleaned inside it is returned (and said) as notCleaned.
	Down(ctx context.Context, name string, cleanup func(context.Context, *rest.Config) error) (notCleaned, err error)
	// RemoveRegistry removes the cluster's registry container and volume
	// when devloop made them (after the cluster itself is gone).
	RemoveRegistry(ctx context.Context, name string) (removed []string, err error)
	// Owned reports whether devloop created the cluster (rather than adopting it).
	Owned(name string) (bool, error)
	// Usable checks that the cluster can be talked to (its nodes run, its API
	// server answers); when not, the error (a *cluster.BrokenError) says why.
	Usable(ctx context.Context, name string) (*rest.Config, error)
	InstallAddons(ctx context.Context, c *Conn, spec config.Cluster, ensureImage func(context.Context, string) error) error
}

// Engine is the Docker engine: the builder and the loader that use it.
type Engine struct {
	Builder Builder
	// Loader streams images into the nodes: the services' images with
	// delivery stream, and always the addons' (their manifests name the
	// image as it is).
	Loader Loader
	// Push returns the delivery that pushes to the registry at host (delivery
	// push). Nil: the services' images are streamed too.
	Push func(host string) Loader
	// Images tells which images the engine has (addon images are loaded
	// from it when it does, otherwise the node pulls them; init and doctor
	// name the base images a build needs).
	Images initcfg.ImageChecker
	// Version is the engine's version and API version.
	Version func(ctx context.Context) (string, string, error)
	// RelayReachable is nil when the engine reaches the loader's image relay
	// on this machine's 127.0.0.1 (doctor asks; nil func: not asked).
	RelayReachable func(ctx context.Context) error
}

// Deployer applies the project's manifests and waits for rollouts
// (kube.Deployer).
type Deployer interface {
	Deploy(ctx context.Context, images map[string]string, opts kube.DeployOptions) (*kube.Deployed, error)
	// DeleteAll removes the project's inventory; its PersistentVolumeClaims only with volumes.
	DeleteAll(ctx context.Context, volumes bool) (kube.Removed, error)
}

// Conn is an open cluster: its clients, the session's one shared informer
// factory, the deployer and the exec used by live sync.
type Conn struct {
	Clients   *kube.Clients
	Informers *kube.Informers
	Deployer  Deployer
	Execer    livesync.Execer
}

// Deps are the external systems. NewDeps makes the real ones; tests
// replace any of them.
type Deps struct {
	// Clusters are devloop's kind clusters; Existing the clusters it did not
	// create, reached through a kubeconfig context (cluster.context). Which
	// one a command uses is chosen once, by clusters(cfg).
	Clusters Clusters
	Existing Clusters
	// Engine opens the Docker engine on first use (down and status never need it).
	Engine func(ctx context.Context) (*Engine, error)
	// Connect opens the cluster behind rc for cfg's project.
	Connect func(cfg *config.Config, rc *rest.Config) (*Conn, error)
	// Secrets are the values kept out of the output (the writers the
	// printers write to mask them): each command adds the values of the
	// Secrets its manifests render, every deploy those it applies. Nil: none.
	Secrets *redact.Set
}

// redactManifests adds the values of the Secrets cfg's manifests define to
// deps.Secrets, before anything could print them. Manifests that do not
// render add nothing (the command reports that error itself).
func (d *Deps) redactManifests(cfg *config.Config) {
	if d.Secrets == nil {
		return
	}
	if objs, err := kube.Render(cfg); err == nil {
		d.Secrets.Add(kube.SecretValues(objs)...)
	}
}

// NewDeps returns the real external systems; kind's own progress lines go
// to clusterOut, and so, with -v, does what client-go logs by itself (its
// retried watches while the API server restarts); without -v that is dropped.
func NewDeps(clusterOut io.Writer, verbosity int) *Deps {
	var eng *Engine
	docker := openDocker()
	if verbosity > 0 {
		kube.RouteClientGoLogs(clusterOut)
	} else {
		kube.RouteClientGoLogs(nil)
	}
	return &Deps{
		Clusters: kindClusters{cluster.NewManager(clusterOut, cluster.WithVerbosity(verbosity),
			cluster.WithEngine(func(ctx context.Context) (cluster.EngineAPI, error) { return docker(ctx) }))},
		Engine: func(ctx context.Context) (*Engine, error) {
			if eng != nil {
				return eng, nil
			}
			cli, err := docker(ctx)
			if err != nil {
				return nil, err
			}
			eng = &Engine{
				Builder: build.NewBuilder(cli, build.WithVerbose(verbosity > 0)),
				Loader: imageload.NewLoader(cli, cluster.EngineNodes{API: cli}, imageload.WithRelay(cli, cachePath("relay")),
					imageload.WithLayerCacheFile(cachePath("layers.json")), imageload.WithVerbose(verbosity > 0)),
				Push: func(host string) Loader {
					return imageload.NewPusher(cli, host, verbosity > 0).WithAuth(func() (string, error) {
						return dockerhost.AuthHeader(os.Getenv, dockerhost.RegistryHost(host))
					})
				},
				Images: initcfg.EngineImages{Client: cli},
				Version: func(ctx context.Context) (string, string, error) {
					v, err := cli.ServerVersion(ctx, client.ServerVersionOptions{})
					if err != nil {
						return "", "", err
					}
					return v.Version, v.APIVersion, nil
				},
				RelayReachable: func(ctx context.Context) error { return imageload.ProbeRelay(ctx, cli) },
			}
			return eng, nil
		},
		Existing: existingClusters{cluster.NewExisting()},
		Connect:  connect,
	}
}

// clusters returns the Clusters of cfg's cluster and the name to give its
// methods: an existing cluster's kubeconfig context, or the kind cluster's
// name. An existing cluster is never handed to the kind implementation.
func (d *Deps) clusters(cfg *config.Config) (Clusters, string) {
	if cfg.Cluster.Existing() {
		if d.Existing == nil {
			return refusingClusters{}, cfg.Cluster.Context
		}
		return d.Existing, cfg.Cluster.Context
	}
	return d.Clusters, cfg.Cluster.Name
}

// existingClusters is Clusters on an existing cluster (cluster.Existing):
// devloop installs no addons in it.
type existingClusters struct{ *cluster.Existing }

func (existingClusters) InstallAddons(context.Context, *Conn, config.Cluster, func(context.Context, string) error) error {
	return nil
}

// refusingClusters stands in when Deps has no Existing: every call fails.
type refusingClusters struct{}

var errNoExisting = fmt.Errorf("devloop was built without support for existing clusters")

func (refusingClusters) Ensure(context.Context, config.Cluster) (*cluster.Info, error) {
	return nil, errNoExisting
}
func (refusingClusters) Exists(string) (bool, error)             { return false, errNoExisting }
func (refusingClusters) RESTConfig(string) (*rest.Config, error) { return nil, errNoExisting }
func (refusingClusters) Delete(context.Context, string) error    { return errNoExisting }
func (refusingClusters) Down(context.Context, string, func(context.Context, *rest.Config) error) (error, error) {
	return nil, errNoExisting
}
func (refusingClusters) RemoveRegistry(context.Context, string) ([]string, error) {
	return nil, errNoExisting
}
func (refusingClusters) Owned(string) (bool, error) { return false, errNoExisting }
func (refusingClusters) Usable(context.Context, string) (*rest.Config, error) {
	return nil, errNoExisting
}
func (refusingClusters) InstallAddons(context.Context, *Conn, config.Cluster, func(context.Context, string) error) error {
	return errNoExisting
}

// Delivery is how cfg's service images reach the cluster: pushed to its
// registry (cluster.delivery push), else streamed into its nodes.
func (e *Engine) Delivery(cfg *config.Config) Loader {
	if cfg.Cluster.Push() && e.Push != nil {
		return e.Push(cfg.Cluster.Registry.Host())
	}
	return e.Loader
}

// openDocker returns the opener of the one Docker Engine API client of a
// command: the engine the docker CLI would use, opened on first use (down
// and status may never need it) and again after a failure.
func openDocker() func(context.Context) (*client.Client, error) {
	var (
		mu  sync.Mutex
		cli *client.Client
	)
	return func(ctx context.Context) (*client.Client, error) {
		mu.Lock()
		defer mu.Unlock()
		if cli != nil {
			return cli, nil
		}
		c, ep, err := build.NewDockerClientEndpoint(ctx, os.Getenv)
		if err != nil {
			return nil, err
		}
		// kind shells out to `docker` to create and delete clusters:
		// point it at the same engine (DOCKER_HOST or DOCKER_CONTEXT, as
		// the docker CLI found it).
		for _, kv := range ep.Env() {
			k, v, _ := strings.Cut(kv, "=")
			if err := os.Setenv(k, v); err != nil {
				c.Close()
				return nil, err
			}
		}
		cli = c
		return cli, nil
	}
}

// connect opens the real clients of the cluster behind rc.
func connect(cfg *config.Config, rc *rest.Config) (*Conn, error) {
	kc, err := kube.NewClients(rc)
	if err != nil {
		return nil, err
	}
	inf := kube.NewInformers(kc.Core, cfg.Namespace, cfg.Name)
	return &Conn{Clients: kc, Informers: inf, Deployer: kube.NewDeployer(cfg, kc, inf),
		Execer: livesync.NewKubeExecer(rc, kc.Core)}, nil
}

// kindClusters is Clusters on kind (cluster.Manager) and cluster.InstallAddons.
type kindClusters struct{ *cluster.Manager }

func (k kindClusters) InstallAddons(ctx context.Context, c *Conn, spec config.Cluster, ensureImage func(context.Context, string) error) error {
	return cluster.InstallAddons(ctx, c.Clients.Core, c.Clients.Dynamic, spec, ensureImage, cluster.AddonOptions{})
}

// open connects to cfg's cluster if it exists.
func open(cfg *config.Config, deps *Deps) (*Conn, bool, error) {
	clusters, name := deps.clusters(cfg)
	ok, err := clusters.Exists(name)
	if err != nil || !ok {
		return nil, false, err
	}
	rc, err := clusters.RESTConfig(name)
	if err != nil {
		return nil, false, err
	}
	c, err := deps.Connect(cfg, rc)
	if err != nil {
		return nil, false, err
	}
	return c, true, nil
}

func cachePath(name string) string {
	base, err := os.UserCacheDir()
	if err != nil {
		base = os.TempDir()
	}
	return filepath.Join(base, "devloop", name)
}

// ErrNoCluster is returned by commands that need the cluster when it does not exist.
type ErrNoCluster struct{ Name string }

func (e *ErrNoCluster) Error() string { return fmt.Sprintf("cluster %q does not exist", e.Name) }
