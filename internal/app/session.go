package app

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/moby/moby/client"
	kindcluster "sigs.k8s.io/kind/pkg/cluster"

	"github.com/devloop-dev/devloop/internal/build"
	"github.com/devloop-dev/devloop/internal/cluster"
	"github.com/devloop-dev/devloop/internal/config"
	"github.com/devloop-dev/devloop/internal/imageload"
	"github.com/devloop-dev/devloop/internal/kube"
	"github.com/devloop-dev/devloop/internal/ui"
)

// session holds the clients one command uses. Fields are filled as the
// command needs them, in the order of the open* methods.
type session struct {
	g   *globals
	cfg *config.Config
	p   *ui.Printer

	docker   *client.Client
	clusters *cluster.Manager
	kind     *kindcluster.Provider
	loader   *imageload.Loader
	builder  *build.Builder
	info     *cluster.Info
	kc       *kube.Clients
	applier  *kube.Applier
}

func newSession(g *globals) (*session, error) {
	p := g.printer()
	cfg, err := g.loadConfig(p)
	if err != nil {
		return nil, err
	}
	width := len("devloop")
	for _, s := range cfg.Services {
		if len(s.Name) > width {
			width = len(s.Name)
		}
	}
	p.SetPrefixWidth(width)
	return &session{g: g, cfg: cfg, p: p}, nil
}

// openDocker connects to the Docker engine.
func (s *session) openDocker(ctx context.Context) error {
	if s.docker != nil {
		return nil
	}
	cli, ep, err := build.NewDockerClientEndpoint(ctx, os.Getenv)
	if err != nil {
		return err
	}
	// kind's provider shells out to `docker`: point it at the same engine.
	for _, kv := range ep.Env() {
		k, v, _ := strings.Cut(kv, "=")
		os.Setenv(k, v)
	}
	s.docker = cli
	s.builder = build.NewBuilder(cli, build.WithVerbose(s.g.verbosity > 0))
	s.kind = kindcluster.NewProvider(kindcluster.ProviderWithDocker())
	s.loader = imageload.NewLoader(cli, s.kind, imageload.WithLayerCacheFile(cachePath("layers.json")))
	return nil
}

func (s *session) clusterManager() *cluster.Manager {
	if s.clusters == nil {
		s.clusters = cluster.NewManager(s.p.Writer("cluster"), cluster.WithVerbosity(s.g.verbosity))
	}
	return s.clusters
}

// ensureCluster creates or adopts the cluster and installs the addons.
func (s *session) ensureCluster(ctx context.Context) error {
	begin := time.Now()
	name := s.cfg.Cluster.Name
	s.p.Line("cluster", "ensuring kind cluster %q (context %s)...", name, cluster.ContextName(name))
	stop := s.p.Progress("cluster", fmt.Sprintf("ensuring cluster %q", name))
	info, err := s.clusterManager().Ensure(ctx, s.cfg.Cluster)
	stop()
	if err != nil {
		return err
	}
	s.info = info
	verb := "adopted"
	if info.Created {
		verb = "created"
	}
	s.p.Line("cluster", "%s cluster %q in %s (nodes: %s)", verb, name, since(begin), strings.Join(info.Nodes, ", "))
	kc, err := kube.NewClients(info.RESTConfig)
	if err != nil {
		return err
	}
	s.kc = kc
	s.applier = kube.NewApplier(kc, s.cfg.Name, s.cfg.Namespace)

	begin = time.Now()
	if s.cfg.Cluster.Ingress.IsEnabled() {
		s.p.Line("cluster", "ensuring ingress controller %s and a default StorageClass...", cluster.IngressImage(s.cfg.Cluster))
	}
	what := "checking the default StorageClass"
	if s.cfg.Cluster.Ingress.IsEnabled() {
		what = "installing the ingress controller and waiting for it"
	}
	stop = s.p.Progress("cluster", what)
	err = cluster.InstallAddons(ctx, kc.Core, kc.Dynamic, s.cfg.Cluster, s.ensureImage, cluster.AddonOptions{})
	stop()
	if err != nil {
		return err
	}
	if s.cfg.Cluster.Ingress.IsEnabled() {
		s.p.Line("cluster", "ingress ready in %s: http://*.localhost:%d/ (bound to %s)", since(begin),
			s.cfg.Cluster.Ingress.HTTPPort, s.cfg.Cluster.Ingress.ListenAddress)
	}
	return nil
}

// ensureImage makes an addon image available in the nodes: when the local
// Docker engine has it, it is loaded (nodes that have it are skipped);
// otherwise the node pulls it as usual.
func (s *session) ensureImage(ctx context.Context, ref string) error {
	if _, err := s.docker.ImageInspect(ctx, ref); err != nil {
		return nil //nolint:nilerr // not local: let the node pull it
	}
	_, err := s.loader.Load(ctx, s.cfg.Cluster.Name, ref, s.p.Writer("cluster"))
	return err
}

// openExistingCluster connects to the cluster without creating it.
func (s *session) openExistingCluster() (bool, error) {
	name := s.cfg.Cluster.Name
	ok, err := s.clusterManager().Exists(name)
	if err != nil || !ok {
		return false, err
	}
	rc, err := s.clusterManager().RESTConfig(name)
	if err != nil {
		return false, err
	}
	kc, err := kube.NewClients(rc)
	if err != nil {
		return false, err
	}
	s.kc = kc
	s.applier = kube.NewApplier(kc, s.cfg.Name, s.cfg.Namespace)
	return true, nil
}

// service returns the config of a named service.
func (s *session) service(name string) (config.Service, bool) {
	for _, svc := range s.cfg.Services {
		if svc.Name == name {
			return svc, true
		}
	}
	return config.Service{}, false
}

func cachePath(name string) string {
	base, err := os.UserCacheDir()
	if err != nil {
		base = os.TempDir()
	}
	return filepath.Join(base, "devloop", name)
}

func since(t time.Time) string {
	d := time.Since(t)
	if d < 10*time.Second {
		return d.Round(10 * time.Millisecond).String()
	}
	return d.Round(100 * time.Millisecond).String()
}

// isCanceled reports whether err is only the user stopping devloop.
func isCanceled(ctx context.Context, err error) bool {
	return ctx.Err() != nil && (errors.Is(err, context.Canceled) || errors.Is(err, ctx.Err()))
}
