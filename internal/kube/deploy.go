package kube

import (
	"context"
	"errors"
	"fmt"
	"net"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/kubernetes"

	"github.com/devloop-dev/devloop/internal/config"
	"github.com/devloop-dev/devloop/internal/helm"
	"github.com/devloop-dev/devloop/internal/supervisor/embedded"
)

// Manifests are a project's rendered manifests with the built images
// substituted and devloop's labels on every object: what an apply sends,
// and which workloads run which service. Everything that asks "which pods
// are this service's" (rollouts, status, logs, live sync, the live view)
// asks it here.
type Manifests struct {
	Objects []*unstructured.Unstructured
	// Services maps each service of the config to the workloads whose pod
	// templates run its image (sorted by Key). Every service has an entry.
	Services map[string][]Workload
	// Workloads are every workload of the manifests, in manifest order.
	Workloads []Workload
	// IngressURLs has one URL per distinct Ingress rule host, in manifest
	// order (none when the ingress controller is disabled).
	IngressURLs []string
	// Releases are the config's Helm charts, rendered; their objects are
	// in Objects after the plain manifests' (Plain).
	Releases []Release

	repos    map[string]string // service → normalised image repository
	order    []string          // services in config order
	replicas map[string]int    // Workload.Key → desired pods
	plain    int               // Objects[:plain] are the plain manifests'
}

// Plain are the objects of the plain manifests (what the Applier applies;
// the charts' objects go through their Helm releases).
func (m *Manifests) Plain() []*unstructured.Unstructured { return m.Objects[:m.plain] }

// Prepare renders cfg's manifests, substitutes images (image repository →
// built ref; services without a built image keep what the manifests say)
// and labels everything for cfg's project; it renders cfg's charts the same
// way (their post-renderer substitutes and labels). It reads files only: a
// manifest that does not parse or a chart that does not render fails here,
// before anything is sent to a cluster.
func Prepare(cfg *config.Config, images map[string]string) (*Manifests, error) {
	objs, err := Render(cfg)
	if err != nil {
		return nil, err
	}
	if err := Substitute(objs, images, supervisedImages(cfg, images)); err != nil {
		return nil, err
	}
	Label(objs, cfg.Name)
	plain := len(objs)
	rels, err := renderCharts(cfg, images)
	if err != nil {
		return nil, err
	}
	seen := map[string]string{}
	for _, o := range objs {
		seen[objectKey(o)] = Source(o)
	}
	for _, r := range rels {
		for _, o := range r.Objects {
			if prev, ok := seen[objectKey(o)]; ok {
				return nil, fmt.Errorf("%s %s is defined twice: in %s and in %s", strings.ToLower(o.GetKind()), o.GetName(), prev, Source(o))
			}
			seen[objectKey(o)] = Source(o)
			objs = append(objs, o)
		}
	}
	m := &Manifests{Objects: objs, Releases: rels, plain: plain, Services: map[string][]Workload{}, Workloads: WorkloadsOf(objs),
		IngressURLs: ingressURLs(objs, cfg.Cluster.Ingress), repos: map[string]string{}, replicas: map[string]int{}}
	for _, o := range objs {
		m.replicas[workloadOf(o).Key()] = desiredPods(o)
	}
	for _, svc := range cfg.Services {
		m.order = append(m.order, svc.Name)
		m.repos[svc.Name] = normalizeRepo(svc.Image)
		ws := workloadsRunning(objs, svc.Image)
		m.Services[svc.Name] = ws
	}
	return m, nil
}

func objectKey(o *unstructured.Unstructured) string {
	return o.GroupVersionKind().GroupKind().String() + "/" + o.GetNamespace() + "/" + o.GetName()
}

// holding splits the objects into those to apply and those held back: the
// workloads that run only images of the services in hold. heldKeys are the
// held workloads' keys.
func (m *Manifests) holding(objs []*unstructured.Unstructured, hold []string) (apply, held []*unstructured.Unstructured, heldKeys map[string]bool) {
	heldKeys = map[string]bool{}
	if len(hold) == 0 {
		return objs, nil, heldKeys
	}
	isHeld := map[string]bool{}
	for _, s := range hold {
		isHeld[s] = true
	}
	runs := map[string][]string{} // workload key → services it runs
	for _, name := range m.order {
		for _, w := range m.Services[name] {
			runs[w.Key()] = append(runs[w.Key()], name)
		}
	}
	for k, svcs := range runs {
		all := true
		for _, s := range svcs {
			all = all && isHeld[s]
		}
		if all {
			heldKeys[k] = true
		}
	}
	for _, o := range objs {
		if _, ok := podTemplatePath(o.GetKind()); ok && heldKeys[workloadOf(o).Key()] {
			held = append(held, o)
		} else {
			apply = append(apply, o)
		}
	}
	return apply, held, heldKeys
}

// releaseHeld says whether a chart's release is held as a whole: it has
// workloads that run services' images, and every one of them is held
// (heldKeys). A release is installed or upgraded whole, so one that also
// runs a service not held is deployed, its held services' workloads too.
// A held release is neither installed nor upgraded: what runs of it keeps
// running, its hooks do not run.
func (m *Manifests) releaseHeld(r Release, heldKeys map[string]bool) bool {
	runs := map[string]bool{}
	for _, name := range m.order {
		for _, w := range m.Services[name] {
			runs[w.Key()] = true
		}
	}
	runsOne := false
	for _, o := range r.Objects {
		if _, ok := podTemplatePath(o.GetKind()); !ok {
			continue
		}
		k := workloadOf(o).Key()
		if !runs[k] {
			continue
		}
		if !heldKeys[k] {
			return false
		}
		runsOne = true
	}
	return runsOne
}

// Replicas is how many pods the manifests ask w to run (1 when unset, 1 for
// a DaemonSet: a kind cluster has few nodes).
func (m *Manifests) Replicas(w Workload) int { return m.replicas[w.Key()] }

// ServiceOf names the service whose image one of pod's containers runs, or
// "" when none does.
func (m *Manifests) ServiceOf(pod *corev1.Pod) string {
	for _, name := range m.order {
		if len(m.ContainersOf(name, pod)) > 0 {
			return name
		}
	}
	return ""
}

// ContainersOf returns the containers (init containers first) of pod that
// run service svc's image.
func (m *Manifests) ContainersOf(svc string, pod *corev1.Pod) []string {
	repo, ok := m.repos[svc]
	if !ok {
		return nil
	}
	var out []string
	for _, list := range [][]corev1.Container{pod.Spec.InitContainers, pod.Spec.Containers} {
		for _, c := range list {
			if normalizeRepo(c.Image) == repo {
				out = append(out, c.Name)
			}
		}
	}
	return out
}

func workloadOf(o *unstructured.Unstructured) Workload {
	return Workload{Kind: o.GetKind(), Namespace: o.GetNamespace(), Name: o.GetName()}
}

// desiredPods reads spec.replicas of a workload object (default 1).
func desiredPods(o *unstructured.Unstructured) int {
	if n, found, err := unstructured.NestedInt64(o.Object, "spec", "replicas"); found && err == nil {
		return int(n)
	}
	return 1
}

// workloadsRunning returns the workloads whose pod templates use image
// repository repo, sorted by Key.
func workloadsRunning(objs []*unstructured.Unstructured, repo string) []Workload {
	want := normalizeRepo(repo)
	out := []Workload{}
	seen := map[string]bool{}
	for _, o := range objs {
		tmpl, ok := podTemplate(o)
		if !ok {
			continue
		}
		for _, field := range []string{"initContainers", "containers"} {
			list, _, _ := unstructured.NestedSlice(tmpl, "spec", field)
			for _, c := range list {
				cm, _ := c.(map[string]any)
				w := workloadOf(o)
				if img, _ := cm["image"].(string); img != "" && normalizeRepo(img) == want && !seen[w.Key()] {
					seen[w.Key()] = true
					out = append(out, w)
				}
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key() < out[j].Key() })
	return out
}

// ingressURLs returns one URL per distinct Ingress rule host, in manifest
// order; a rule without a host answers on "localhost".
func ingressURLs(objs []*unstructured.Unstructured, in config.Ingress) []string {
	out := []string{}
	if !in.IsEnabled() {
		return out
	}
	seen := map[string]bool{}
	for _, o := range objs {
		if o.GetKind() != "Ingress" || o.GroupVersionKind().Group != "networking.k8s.io" {
			continue
		}
		rules, _, _ := unstructured.NestedSlice(o.Object, "spec", "rules")
		for _, r := range rules {
			rm, _ := r.(map[string]any)
			host, _ := rm["host"].(string)
			if host == "" {
				host = "localhost"
			}
			u := HTTPURL(host, in.HTTPPort)
			if !seen[u] {
				seen[u] = true
				out = append(out, u)
			}
		}
	}
	return out
}

// HTTPURL is http://host:port/ (no port for 80), with IPv6 hosts bracketed.
func HTTPURL(host string, port int) string {
	if port == 80 || port == 0 {
		if strings.Contains(host, ":") {
			host = "[" + host + "]"
		}
		return "http://" + host + "/"
	}
	return "http://" + net.JoinHostPort(host, strconv.Itoa(port)) + "/"
}

// Deployer runs the deploy pipeline of one project against one cluster:
// Prepare → Apply (server-side, with prune) → wait for the rollouts.
type Deployer struct {
	cfg     *config.Config
	applier *Applier
	cs      kubernetes.Interface
	wake    Waker
	// releases installs and upgrades the charts' releases.
	releases Releaser
}

// Waker lets rollout waits sleep until something changes in the cluster
// instead of polling: Subscribe returns a channel that receives (without
// blocking the sender) whenever a watched pod or workload changes.
type Waker interface {
	Subscribe() (ch <-chan struct{}, cancel func())
}

// NewDeployer returns the deployer for cfg's project on the cluster behind
// c. wake (the session's shared informers) wakes rollout waits early; nil
// means they poll.
func NewDeployer(cfg *config.Config, c *Clients, wake Waker) *Deployer {
	return &Deployer{cfg: cfg, applier: NewApplier(c, cfg.Name, cfg.Namespace, cfg.Path), cs: c.Core, wake: wake,
		releases: helm.NewClient(c.Config, ReleaseLabels(cfg.Name))}
}

// DeployOptions say which rollouts a deploy waits for.
type DeployOptions struct {
	// Services whose workloads to wait for; All waits for every workload
	// that is not held.
	Services []string
	All      bool
	// Hold names services whose workloads are neither applied nor pruned
	// (what runs of them keeps running): services waiting for their
	// dependencies, not selected, or without a first image. A workload that
	// also runs a service not held is applied. A chart's release whose
	// service workloads are all held is neither installed nor upgraded
	// (releaseHeld); one that runs a service not held is deployed whole.
	Hold []string
	// Secrets, if set, is given the values of the rendered Secrets before
	// anything is sent (so no error about them can show them).
	Secrets func(values []string)
	// Timeout bounds each rollout.
	Timeout time.Duration
	// Waiting is called as the wait for w starts; the returned report is
	// given each new one-line account of what the wait is waiting for, and
	// done is called when it ends. Either may be nil.
	Waiting func(w Workload) (report func(string), done func())
}

// Deployed is the result of one deploy.
type Deployed struct {
	Manifests *Manifests
	Applied   ApplyResult
	// Failed maps a service to why the rollout of one of its workloads failed.
	Failed map[string]error
	// OthersFailed are rollout failures of workloads that run no service's
	// image (a database, say).
	OthersFailed []error
	// Releases are what the install or upgrade of each chart's release did.
	Releases []helm.Result
}

// Deploy prepares cfg's manifests with images, applies them and waits for
// the rollouts opts asks for. An error is a failure before or during the
// apply (nothing was rolled); rollout failures are in the result.
func (d *Deployer) Deploy(ctx context.Context, images map[string]string, opts DeployOptions) (*Deployed, error) {
	m, err := Prepare(d.cfg, images)
	if err != nil {
		return nil, err
	}
	if opts.Secrets != nil {
		opts.Secrets(SecretValues(m.Objects))
	}
	objs, held, heldKeys := m.holding(m.Plain(), opts.Hold)
	res, err := d.applier.ApplyHolding(ctx, objs, held)
	if err != nil {
		return nil, err
	}
	out := &Deployed{Manifests: m, Applied: res, Failed: map[string]error{}}
	for _, r := range m.Releases {
		if m.releaseHeld(r, heldKeys) {
			continue // installed or upgraded by the deploy that releases its services
		}
		hooks := opts.Timeout
		if hooks <= 0 {
			hooks = defaultHookTimeout
		}
		hr, err := d.releases.Deploy(ctx, r.Chart, r.Post, hooks)
		if err != nil {
			return nil, err
		}
		out.Releases = append(out.Releases, hr)
	}
	owners := map[string][]string{} // workload key → services that run it
	var wait []Workload
	add := func(w Workload, svc string) {
		k := w.Key()
		if heldKeys[k] {
			return
		}
		if _, ok := owners[k]; !ok {
			wait = append(wait, w)
			owners[k] = nil
		}
		if svc != "" {
			owners[k] = append(owners[k], svc)
		}
	}
	for _, svc := range opts.Services {
		for _, w := range m.Services[svc] {
			add(w, svc)
		}
	}
	if opts.All {
		for _, w := range m.Workloads {
			add(w, "")
		}
	}
	var (
		mu sync.Mutex
		wg sync.WaitGroup
	)
	for _, w := range wait {
		if w.Kind == "Job" || w.Kind == "CronJob" || w.Kind == "ReplicaSet" {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			var report func(string)
			if opts.Waiting != nil {
				r, done := opts.Waiting(w)
				report = r
				if done != nil {
					defer done()
				}
			}
			err := d.WaitRollout(ctx, w, opts.Timeout, report)
			if err == nil {
				return
			}
			mu.Lock()
			defer mu.Unlock()
			if len(owners[w.Key()]) == 0 {
				out.OthersFailed = append(out.OthersFailed, err)
			}
			for _, svc := range owners[w.Key()] {
				out.Failed[svc] = errors.Join(out.Failed[svc], err)
			}
		}()
	}
	wg.Wait()
	return out, nil
}

// WaitRollout waits for w as the package-level WaitRollout does, woken by
// the deployer's shared informers.
func (d *Deployer) WaitRollout(ctx context.Context, w Workload, timeout time.Duration, report func(string)) error {
	return waitRollout(ctx, d.cs, d.wake, w, timeout, report)
}

// defaultHookTimeout bounds a chart's hooks when the deploy sets no timeout.
const defaultHookTimeout = 5 * time.Minute

// DeleteAll deletes everything devloop applied for the project (its
// inventory; the project's PersistentVolumeClaims only with volumes) and
// uninstalls the project's Helm releases (those carrying its
// release labels, whether or not devloop.yaml still names their chart),
// with what their hooks left (see Applier.DeleteHooks).
func (d *Deployer) DeleteAll(ctx context.Context, volumes bool) (Removed, error) {
	removed, err := d.applier.DeleteAll(ctx, volumes)
	if err != nil {
		return removed, fmt.Errorf("removing what devloop deployed for %s: %w", d.cfg.Name, err)
	}
	if d.releases != nil {
		rels, err := d.releases.Releases()
		if err != nil {
			return removed, fmt.Errorf("removing what devloop deployed for %s: %w", d.cfg.Name, err)
		}
		for _, r := range rels {
			// An uninstall that failed part way may have removed the release
			// already: what its hooks left goes all the same.
			hooks, uerr := d.releases.Uninstall(r.Namespace, r.Name, defaultHookTimeout)
			if uerr == nil {
				removed.Deleted = append(removed.Deleted, "release "+r.Name+" (helm uninstall)")
			}
			lines, kept, herr := d.applier.DeleteHooks(ctx, r.Name, r.Namespace, hooks, volumes)
			removed.Deleted = append(removed.Deleted, lines...)
			for _, k := range kept {
				if !slices.Contains(removed.KeptVolumes, k) {
					removed.KeptVolumes = append(removed.KeptVolumes, k)
				}
			}
			if err := errors.Join(uerr, herr); err != nil {
				return removed, fmt.Errorf("removing what devloop deployed for %s: %w", d.cfg.Name, err)
			}
		}
	}
	// On an existing cluster the developer's namespace goes too, when devloop
	// created it and no claim was kept in it (a namespace takes its claims
	// with it).
	if d.cfg.Cluster.Existing() && len(removed.KeptVolumes) == 0 {
		what, err := d.applier.DeleteCreatedNamespace(ctx)
		if err != nil {
			return removed, fmt.Errorf("removing what devloop deployed for %s: %w", d.cfg.Name, err)
		}
		if what != "" {
			removed.Deleted = append(removed.Deleted, what)
		}
	}
	return removed, nil
}

// supervisedImages are the image keys of images whose builds carry
// devloop's supervisor: the services with restart rules, when this devloop
// has a supervisor to add (see build.Builder).
func supervisedImages(cfg *config.Config, images map[string]string) map[string]bool {
	out := map[string]bool{}
	if !embedded.Has(runtime.GOARCH) {
		return out
	}
	for _, svc := range cfg.Services {
		if svc.Restarts() && images[svc.Image] != "" {
			out[svc.Image] = true
		}
	}
	return out
}
