package helm

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"helm.sh/helm/v4/pkg/action"
	"helm.sh/helm/v4/pkg/kube"
	rcommon "helm.sh/helm/v4/pkg/release/common"
	release "helm.sh/helm/v4/pkg/release/v1"
	"helm.sh/helm/v4/pkg/storage/driver"
)

func init() {
	// Helm names its server-side-apply field manager after the program
	// (os.Args[0]) unless told: "devloop" here, "helm" for the helm CLI.
	// Then a `helm rollback` or `helm upgrade` of a release devloop made
	// conflicts on every field devloop set. The releases' fields are
	// Helm's, whoever drives Helm: manage them as "helm".
	kube.ManagedFieldsManager = "helm"
}

// Client installs, upgrades, lists and uninstalls the releases of one
// devloop project on one cluster. Releases are stored as Helm stores them
// (Secrets in the release's namespace), so the helm CLI sees them: helm
// list, history and rollback work on what devloop deployed.
type Client struct {
	// config is Helm's action configuration for a namespace ("" for all).
	config func(namespace string) (*action.Configuration, error)
	// labels mark a release as the project's (on its storage Secrets), so
	// down finds the project's releases even when devloop.yaml no longer
	// names them.
	labels map[string]string
}

// NewClient returns the client for the cluster behind rc; labels go on
// every release it makes (Helm's release labels, not the objects').
func NewClient(rc *rest.Config, labels map[string]string) *Client {
	return &Client{labels: labels, config: func(namespace string) (*action.Configuration, error) {
		cfg := newConfiguration()
		if err := cfg.Init(&restGetter{rc: rc, namespace: namespace}, namespace, "secret"); err != nil {
			return nil, fmt.Errorf("helm: %w", err)
		}
		return cfg, nil
	}}
}

func (c *Client) configuration(namespace string) (*action.Configuration, error) {
	return c.config(namespace)
}

// Result is what one Deploy did.
type Result struct {
	Release   string
	Namespace string
	Revision  int
	// Unchanged: the deployed revision already has this manifest and these
	// values; nothing was sent.
	Unchanged bool
	// Installed: this was the release's first revision.
	Installed bool
}

// Deploy installs ch as its release, or upgrades the release, with post as
// the post-renderer. Hooks run (and are waited for, up to timeout); the
// release's workloads are not waited for here (devloop's rollout tracking
// does that). When the last deployed revision has the same manifest, hooks
// and values, nothing is sent.
func (c *Client) Deploy(ctx context.Context, ch *Chart, post PostRenderer, timeout time.Duration) (Result, error) {
	spec := ch.Spec
	res := Result{Release: spec.Release, Namespace: spec.Namespace}
	cfg, err := c.configuration(spec.Namespace)
	if err != nil {
		return res, err
	}
	last, err := cfg.Releases.Last(spec.Release)
	if err != nil && !errors.Is(err, driver.ErrReleaseNotFound) {
		return res, fmt.Errorf("release %s: reading its history: %w", spec.Release, err)
	}
	var lastRel *release.Release
	if last != nil {
		if lastRel, err = v1(last); err != nil {
			return res, err
		}
	}
	if lastRel == nil || lastRel.Info == nil || lastRel.Info.Status == rcommon.StatusUninstalled {
		in := action.NewInstall(cfg)
		in.ReleaseName = spec.Release
		in.Namespace = spec.Namespace
		in.CreateNamespace = true
		in.Replace = lastRel != nil // an uninstalled release whose history was kept
		in.WaitStrategy = kube.HookOnlyStrategy
		in.Timeout = timeout
		if post != nil {
			in.PostRenderer = post
		}
		in.Labels = c.labels
		in.Description = "installed by devloop"
		r, err := in.RunWithContext(ctx, ch.Chart, ch.Values)
		if err != nil {
			return res, fmt.Errorf("release %s: install: %w", spec.Release, err)
		}
		rel, err := v1(r)
		if err != nil {
			return res, err
		}
		res.Revision, res.Installed = rel.Version, true
		return res, nil
	}
	if lastRel.Info.Status == rcommon.StatusDeployed {
		if r, err := Render(ctx, ch, post); err == nil && sameRelease(lastRel, r, ch.Values) {
			res.Revision, res.Unchanged = lastRel.Version, true
			return res, nil
		}
	}
	if lastRel.Info.Status.IsPending() {
		// An earlier devloop (or helm) was stopped mid-operation: Helm
		// refuses any upgrade until that revision is settled.
		lastRel.SetStatus(rcommon.StatusFailed, "interrupted (marked failed by devloop so the release can be upgraded)")
		if err := cfg.Releases.Update(lastRel); err != nil {
			return res, fmt.Errorf("release %s: settling interrupted revision %d: %w", spec.Release, lastRel.Version, err)
		}
	}
	up := action.NewUpgrade(cfg)
	up.Namespace = spec.Namespace
	up.WaitStrategy = kube.HookOnlyStrategy
	up.Timeout = timeout
	if post != nil {
		up.PostRenderer = post
	}
	up.Labels = c.labels
	up.ServerSideApply = "auto"
	up.MaxHistory = 20
	up.Description = "upgraded by devloop"
	r, err := up.RunWithContext(ctx, spec.Release, ch.Chart, ch.Values)
	if err != nil {
		return res, fmt.Errorf("release %s: upgrade: %w", spec.Release, err)
	}
	rel, err := v1(r)
	if err != nil {
		return res, err
	}
	res.Revision = rel.Version
	return res, nil
}

func sameRelease(last *release.Release, r *Rendered, vals map[string]any) bool {
	if last.Manifest != r.Manifest || len(last.Hooks) != len(r.Hooks) {
		return false
	}
	hooks := make([]string, 0, len(last.Hooks))
	for _, h := range last.Hooks {
		hooks = append(hooks, h.Manifest)
	}
	want := append([]string(nil), r.Hooks...)
	sort.Strings(hooks)
	sort.Strings(want)
	for i := range hooks {
		if hooks[i] != want[i] {
			return false
		}
	}
	// Stored values went through JSON (numbers are float64 there, and no
	// values at all come back as nil): compare them as JSON. Maps marshal
	// with sorted keys.
	if len(last.Config) == 0 && len(vals) == 0 {
		return true
	}
	a, errA := json.Marshal(last.Config)
	b, errB := json.Marshal(vals)
	return errA == nil && errB == nil && bytes.Equal(a, b)
}

// Revision is one entry of a release's history.
type Revision struct {
	Revision    int
	Status      string
	Description string
	Manifest    string
}

// History is the release's revisions, oldest first (helm history).
func (c *Client) History(namespace, name string) ([]Revision, error) {
	cfg, err := c.configuration(namespace)
	if err != nil {
		return nil, err
	}
	rs, err := action.NewHistory(cfg).Run(name)
	if err != nil {
		return nil, fmt.Errorf("release %s: history: %w", name, err)
	}
	var out []Revision
	for _, r := range rs {
		rel, err := v1(r)
		if err != nil {
			return nil, err
		}
		rv := Revision{Revision: rel.Version, Manifest: rel.Manifest}
		if rel.Info != nil {
			rv.Status, rv.Description = rel.Info.Status.String(), rel.Info.Description
		}
		out = append(out, rv)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Revision < out[j].Revision })
	return out, nil
}

// Deployed names one release.
type Deployed struct{ Name, Namespace string }

// Releases lists the releases (any state) that carry the client's labels,
// in every namespace.
func (c *Client) Releases() ([]Deployed, error) {
	cfg, err := c.configuration("")
	if err != nil {
		return nil, err
	}
	l := action.NewList(cfg)
	l.AllNamespaces = true
	l.All = true
	l.SetStateMask()
	var sel []string
	for k, v := range c.labels {
		sel = append(sel, k+"="+v)
	}
	sort.Strings(sel)
	for i, s := range sel {
		if i > 0 {
			l.Selector += ","
		}
		l.Selector += s
	}
	rs, err := l.Run()
	if err != nil {
		return nil, fmt.Errorf("helm: listing releases: %w", err)
	}
	var out []Deployed
	for _, r := range rs {
		rel, err := v1(r)
		if err != nil {
			return nil, err
		}
		out = append(out, Deployed{Name: rel.Name, Namespace: rel.Namespace})
	}
	sort.Slice(out, func(i, j int) bool {
		return out[i].Namespace+"/"+out[i].Name < out[j].Namespace+"/"+out[j].Name
	})
	return out, nil
}

// Uninstall uninstalls a release (its hooks run), waiting up to timeout
// for its objects to be gone. A release that does not exist is no error.
// It returns the manifests of the release's hooks: helm uninstall deletes
// the release's objects, not what its hooks made (a hook Job with the
// default before-hook-creation policy stays until that hook runs again), so
// the caller removes those itself.
func (c *Client) Uninstall(namespace, name string, timeout time.Duration) (hooks []string, err error) {
	cfg, err := c.configuration(namespace)
	if err != nil {
		return nil, err
	}
	u := action.NewUninstall(cfg)
	u.IgnoreNotFound = true
	u.WaitStrategy = kube.HookOnlyStrategy
	u.Timeout = timeout
	res, err := u.Run(name)
	if err != nil {
		err = fmt.Errorf("release %s: uninstall: %w", name, err)
	}
	// Helm returns the release with some errors too ("uninstallation
	// completed with 1 error(s)": a wait, a post-delete hook): its history
	// is purged by then, so its hooks are returned with the error.
	if res != nil && res.Release != nil {
		if rel, verr := v1(res.Release); verr == nil {
			for _, h := range rel.Hooks {
				hooks = append(hooks, h.Manifest)
			}
		}
	}
	return hooks, err
}

// restGetter is Helm's RESTClientGetter over devloop's rest.Config (the
// kind cluster's own context; devloop never reads the user's kubeconfig).
type restGetter struct {
	rc        *rest.Config
	namespace string
}

var _ genericclioptions.RESTClientGetter = (*restGetter)(nil)

func (g *restGetter) ToRESTConfig() (*rest.Config, error) { return rest.CopyConfig(g.rc), nil }

func (g *restGetter) ToDiscoveryClient() (discovery.CachedDiscoveryInterface, error) {
	dc, err := discovery.NewDiscoveryClientForConfig(rest.CopyConfig(g.rc))
	if err != nil {
		return nil, err
	}
	return memory.NewMemCacheClient(dc), nil
}

func (g *restGetter) ToRESTMapper() (meta.RESTMapper, error) {
	dc, err := g.ToDiscoveryClient()
	if err != nil {
		return nil, err
	}
	m := restmapper.NewDeferredDiscoveryRESTMapper(dc)
	return restmapper.NewShortcutExpander(m, dc, nil), nil
}

func (g *restGetter) ToRawKubeConfigLoader() clientcmd.ClientConfig {
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["devloop"] = &clientcmdapi.Cluster{Server: g.rc.Host}
	cfg.AuthInfos["devloop"] = &clientcmdapi.AuthInfo{}
	cfg.Contexts["devloop"] = &clientcmdapi.Context{Cluster: "devloop", AuthInfo: "devloop", Namespace: g.namespace}
	cfg.CurrentContext = "devloop"
	return &restClientConfig{base: clientcmd.NewDefaultClientConfig(*cfg, nil), rc: g.rc, namespace: g.namespace}
}

// restClientConfig answers with the rest.Config itself (its TLS and
// credentials) and the release's namespace.
type restClientConfig struct {
	base      clientcmd.ClientConfig
	rc        *rest.Config
	namespace string
}

func (r *restClientConfig) RawConfig() (clientcmdapi.Config, error) { return r.base.RawConfig() }
func (r *restClientConfig) ConfigAccess() clientcmd.ConfigAccess    { return r.base.ConfigAccess() }
func (r *restClientConfig) ClientConfig() (*rest.Config, error)     { return rest.CopyConfig(r.rc), nil }
func (r *restClientConfig) Namespace() (string, bool, error) {
	if r.namespace == "" {
		return "default", false, nil
	}
	return r.namespace, true, nil
}

// Rollback rolls the release back to revision (helm rollback), its hooks
// run; it records a new revision, as helm does.
func (c *Client) Rollback(namespace, name string, revision int, timeout time.Duration) error {
	cfg, err := c.configuration(namespace)
	if err != nil {
		return err
	}
	r := action.NewRollback(cfg)
	r.Version = revision
	r.WaitStrategy = kube.HookOnlyStrategy
	r.Timeout = timeout
	r.ServerSideApply = "auto"
	if err := r.Run(name); err != nil {
		return fmt.Errorf("release %s: rollback to revision %d: %w", name, revision, err)
	}
	return nil
}
