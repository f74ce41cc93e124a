package app

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	gosync "sync"
	"time"

	"golang.org/x/sync/errgroup"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/devloop-dev/devloop/internal/config"
	"github.com/devloop-dev/devloop/internal/engine"
	"github.com/devloop-dev/devloop/internal/kube"
	"github.com/devloop-dev/devloop/internal/status"
	"github.com/devloop-dev/devloop/internal/sync"
)

// runner does the I/O the engine asks for, with the session's clients.
type runner struct {
	s              *session
	rolloutTimeout time.Duration
	execer         sync.Execer
	live           bool // the live status view is on

	mu      gosync.Mutex
	ingress []string // ingress URLs of the last apply
}

var _ engine.Runner = (*runner)(nil)

// progress prints "still ..." lines during a long step, unless the live
// status view is on (its table already shows each service's step and for
// how long).
func (r *runner) progress(prefix, what string) (stop func()) {
	return r.progressFunc(prefix, func() string { return what })
}

func (r *runner) progressFunc(prefix string, what func() string) (stop func()) {
	if r.live {
		return func() {}
	}
	return r.s.p.ProgressFunc(prefix, what)
}

// Image runs the pre-build and the build, then loads the image into the nodes.
func (r *runner) Image(ctx context.Context, svc config.Service, _ []string, progress func(engine.Phase)) (*engine.Artifact, error) {
	out := r.s.p.Writer(svc.Name)
	defer out.Close()
	begin := time.Now()
	// Probe the nodes while the image builds: the load then starts sending at once.
	probe := r.s.loader.ProbeNodes(ctx, r.s.cfg.Cluster.Name)
	stop := r.progress(svc.Name, "building")
	img, err := r.s.builder.Build(ctx, svc, out)
	stop()
	if err != nil {
		return nil, err
	}
	built := time.Since(begin)
	progress(engine.PhaseLoading)
	begin = time.Now()
	stop = r.progress(svc.Name, "loading "+img.Ref()+" into the cluster")
	res, err := r.s.loader.LoadProbed(ctx, probe, img.Ref(), out)
	stop()
	if err != nil {
		return nil, fmt.Errorf("loading %s into the cluster: %w", img.Ref(), err)
	}
	var sent int64
	loaded := 0
	for _, n := range res.Nodes {
		if !n.Skipped {
			loaded++
			sent += n.Bytes
		}
	}
	if loaded > 0 {
		r.s.p.Line(svc.Name, "image %s: build %s, load into %d node(s) %s (%s sent)", img.Ref(),
			built.Round(time.Millisecond), loaded, time.Since(begin).Round(time.Millisecond), humanBytes(sent))
	} else {
		r.s.p.Line(svc.Name, "image %s: build %s, already in the node(s)", img.Ref(), built.Round(time.Millisecond))
	}
	return &engine.Artifact{Repo: img.Repo, Ref: img.Ref(), ID: img.ID}, nil
}

// Sync copies changed files into every running container of the service.
func (r *runner) Sync(ctx context.Context, svc config.Service, paths []string) (bool, error) {
	begin := time.Now()
	files, rest := sync.PlanSync(svc.Sync, paths)
	if len(rest) > 0 {
		return true, fmt.Errorf("%d changed files are not covered by sync rules", len(rest))
	}
	targets, err := r.containersOf(ctx, svc)
	if err != nil {
		return true, err
	}
	if len(targets) == 0 {
		return true, errors.New("no running container to sync into")
	}
	run := strings.Join(sync.Runs(files), " && ")
	g, gctx := errgroup.WithContext(ctx)
	for _, t := range targets {
		g.Go(func() error { return sync.Copy(gctx, r.execer, t, files, run) })
	}
	if err := g.Wait(); err != nil {
		return errors.Is(err, sync.ErrNoTar), err
	}
	r.s.p.Line(svc.Name, "synced %d file(s) into %d container(s) in %s", len(files), len(targets), time.Since(begin).Round(time.Millisecond))
	return false, nil
}

// containersOf finds the running containers that run the service's image.
func (r *runner) containersOf(ctx context.Context, svc config.Service) ([]sync.Target, error) {
	sel := "devloop.dev/project=" + r.s.cfg.Name
	pods, err := r.s.kc.Core.CoreV1().Pods(r.s.cfg.Namespace).List(ctx, metav1.ListOptions{LabelSelector: sel})
	if err != nil {
		return nil, fmt.Errorf("listing pods of %s: %w", svc.Name, err)
	}
	var out []sync.Target
	for _, p := range pods.Items {
		if p.DeletionTimestamp != nil || p.Status.Phase != corev1.PodRunning {
			continue
		}
		running := map[string]bool{}
		for _, cs := range p.Status.ContainerStatuses {
			running[cs.Name] = cs.State.Running != nil
		}
		for _, c := range p.Spec.Containers {
			if running[c.Name] && kube.SameRepo(c.Image, svc.Image) {
				out = append(out, sync.Target{Namespace: p.Namespace, Pod: p.Name, Container: c.Name})
			}
		}
	}
	return out, nil
}

// Deploy renders, substitutes, labels and applies the manifests, then waits
// for the rollouts the action asks for.
func (r *runner) Deploy(ctx context.Context, a engine.Action) (map[string]error, error) {
	cfg := r.s.cfg
	objs, err := kube.Render(cfg)
	if err != nil {
		return nil, err
	}
	used, err := kube.Substitute(objs, a.Images)
	if err != nil {
		return nil, err
	}
	kube.Label(objs, cfg.Name)
	if err := r.ensureNamespace(ctx); err != nil {
		return nil, err
	}
	res, err := r.s.applier.Apply(ctx, objs)
	if err != nil {
		return nil, err
	}
	if lines := changedLines(res); len(lines) > 0 {
		r.s.p.Line("devloop", "applied: %s", strings.Join(lines, ", "))
	}
	r.mu.Lock()
	r.ingress = status.IngressURLs(objs, cfg)
	r.mu.Unlock()

	// Which workloads to wait for, and which services each one runs.
	byWorkload := map[string][]string{}
	for _, name := range a.Services {
		svc, _ := r.s.service(name)
		for repo, keys := range used {
			if kube.SameRepo(repo, svc.Image) {
				for _, k := range keys {
					byWorkload[k] = append(byWorkload[k], name)
				}
			}
		}
	}
	if a.All {
		for _, w := range kube.WorkloadsOf(objs) {
			if _, ok := byWorkload[w.Key()]; !ok {
				byWorkload[w.Key()] = nil
			}
		}
	}
	keys := make([]string, 0, len(byWorkload))
	for k := range byWorkload {
		keys = append(keys, k)
	}
	sort.Strings(keys)

	var mu gosync.Mutex
	failed := map[string]error{}
	var g errgroup.Group
	for _, k := range keys {
		w, err := kube.ParseWorkloadKey(k)
		if err != nil {
			return nil, err
		}
		if w.Kind == "Job" || w.Kind == "CronJob" || w.Kind == "ReplicaSet" {
			continue
		}
		g.Go(func() error {
			var wmu gosync.Mutex
			waiting := "waiting for " + w.String() + " to roll out"
			stop := r.progressFunc("devloop", func() string { wmu.Lock(); defer wmu.Unlock(); return waiting })
			err := kube.WaitRollout(ctx, r.s.kc.Core, w, r.rolloutTimeout, func(line string) {
				wmu.Lock()
				waiting = "waiting for " + w.String() + ": " + line
				wmu.Unlock()
			})
			stop()
			if err == nil {
				return nil
			}
			mu.Lock()
			defer mu.Unlock()
			if len(byWorkload[k]) == 0 {
				// A workload that runs no built image (a database, say):
				// nobody else will say it, so say it here.
				r.s.p.Error("devloop", "%v", err)
			}
			for _, svc := range byWorkload[k] {
				failed[svc] = errors.Join(failed[svc], err)
			}
			return nil
		})
	}
	_ = g.Wait()
	return failed, nil
}

func (r *runner) ensureNamespace(ctx context.Context) error {
	ns := r.s.cfg.Namespace
	nsAPI := r.s.kc.Core.CoreV1().Namespaces()
	if _, err := nsAPI.Get(ctx, ns, metav1.GetOptions{}); err == nil {
		return nil
	}
	_, err := nsAPI.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns,
		Labels: map[string]string{"app.kubernetes.io/managed-by": "devloop"}}}, metav1.CreateOptions{})
	if err != nil && !strings.Contains(err.Error(), "already exists") {
		return fmt.Errorf("creating namespace %s: %w", ns, err)
	}
	return nil
}

func (r *runner) ingressURLs() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.ingress...)
}

func changedLines(res kube.ApplyResult) []string {
	var out []string
	for _, l := range res.Lines() {
		if !strings.HasSuffix(l, " unchanged") {
			out = append(out, l)
		}
	}
	return out
}

func humanBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
