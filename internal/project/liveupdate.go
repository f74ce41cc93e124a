package project

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"

	"github.com/devloop-dev/devloop/internal/config"
	"github.com/devloop-dev/devloop/internal/engine"
	"github.com/devloop-dev/devloop/internal/kube"
	"github.com/devloop-dev/devloop/internal/livesync"
)

// serviceLive is what the runner knows of one service's live updates since
// the image its pods run. Containers that started from that image (a new
// pod, a restarted container) run older code than the live state: they
// are brought up to date before anything else happens to the service.
type serviceLive struct {
	gen int // live updates since the image (0: the image holds the workspace)
	// image is the image ref the live updates went on top of: a container
	// of another image (the next rollout's, built from the workspace) is
	// not behind them.
	image   string
	applied map[string]int // container ID → the gen it runs
	synced  bool           // plain sync rules copied files since the image
	// syncedInto: for a service with plain sync rules only, the containers
	// (by ID) that got the synced files; syncImage is the image they went
	// on top of. A new container of that image gets them replayed.
	syncedInto map[string]bool
	syncImage  string
	posted     map[string]int // container ID → the gen a marker was posted for
	busy       bool           // a live update runs: it will see every container
}

// liveUpdates is the runner's record of every service's live state.
type liveUpdates struct {
	mu       sync.Mutex
	services map[string]*serviceLive
	post     func(engine.Changed) // to the loop; nil until it runs
	kick     chan struct{}        // wakes the watcher (after a deploy)
}

func newLiveUpdates() *liveUpdates {
	return &liveUpdates{services: map[string]*serviceLive{}, kick: make(chan struct{}, 1)}
}

func (l *liveUpdates) state(svc string) *serviceLive {
	st := l.services[svc]
	if st == nil {
		st = &serviceLive{applied: map[string]int{}, posted: map[string]int{}}
		l.services[svc] = st
	}
	return st
}

// setPost gives the watcher the loop to post to.
func (l *liveUpdates) setPost(post func(engine.Changed)) {
	l.mu.Lock()
	l.post = post
	l.mu.Unlock()
}

// imageRolled forgets the live state of svc: its pods now run an image
// built from the workspace.
func (l *liveUpdates) imageRolled(svc string) {
	l.mu.Lock()
	delete(l.services, svc)
	l.mu.Unlock()
}

// restarted records a live update done by a sync of a restart rule's own
// files (a service without preBuild): targets run it, new containers of
// image need it.
func (l *liveUpdates) restarted(svc, image string, targets []livesync.Target) {
	l.mu.Lock()
	defer l.mu.Unlock()
	st := l.state(svc)
	if st.gen == 0 {
		st.image = image
	}
	st.gen++
	for _, t := range targets {
		st.applied[t.ContainerID] = st.gen
	}
}

// synced records a plain sync into targets, on top of image: new
// containers need it replayed too.
func (l *liveUpdates) synced(svc, image string, targets []livesync.Target) {
	l.mu.Lock()
	defer l.mu.Unlock()
	st := l.state(svc)
	st.synced = true
	if st.syncedInto == nil || st.syncImage != image {
		st.syncedInto, st.syncImage = map[string]bool{}, image
	}
	for _, t := range targets {
		st.syncedInto[t.ContainerID] = true
	}
}

// replaySyncs posts, for a service with plain sync rules only, a sync of
// every file its rules cover when a running container of the image the
// syncs went on top of has not got them (a pod deleted or rescheduled, a
// container the kubelet restarted): its files would otherwise be the
// image's, older than the workspace, until the next rebuild. Unlike restart
// rules there is no readiness gate: the pod may serve the image's files
// for the moment the copy takes.
func (l *liveUpdates) replaySyncs(svc config.Service, m *kube.Manifests, pods []*corev1.Pod) {
	var stale []string
	l.mu.Lock()
	st, post := l.services[svc.Name], l.post
	if st != nil && st.synced && post != nil {
		for _, p := range pods {
			if p.DeletionTimestamp != nil {
				continue
			}
			containers := m.ContainersOf(svc.Name, p)
			for _, cs := range p.Status.ContainerStatuses {
				id := cs.ContainerID
				if cs.State.Running == nil || !slices.Contains(containers, cs.Name) || st.syncedInto[id] ||
					containerImage(p, cs.Name) != st.syncImage || st.posted[id] != 0 {
					continue
				}
				st.posted[id] = 1
				stale = append(stale, p.Name+"/"+cs.Name)
			}
		}
	}
	l.mu.Unlock()
	if len(stale) == 0 {
		return
	}
	markers := make([]string, len(stale))
	for i, c := range stale {
		markers[i] = newContainerMarker + c + ")"
	}
	post(engine.Changed{Sync: map[string][]string{svc.Name: markers}})
}

// plainSyncFiles is every file the service's plain (not restart) sync
// rules cover, as the workspace has them: what a container that started
// from the image lacks once they synced. A source that is gone has nothing
// to replay.
func plainSyncFiles(svc config.Service) []livesync.FileCopy {
	var out []livesync.FileCopy
	for _, rule := range svc.Sync {
		if !rule.Restart {
			if fs, err := livesync.RuleFiles(rule); err == nil {
				out = append(out, fs...)
			}
		}
	}
	return out
}

// newContainerMarker starts the change that stands for a new container
// that needs the live state ("(new container <pod>/<container>)"): not a
// path, so never mistaken for one.
const newContainerMarker = "(new container "

// wake has the watcher look again (a deploy ended: markers dropped while it
// ran must be posted again).
func (l *liveUpdates) wake() {
	l.mu.Lock()
	for _, st := range l.services {
		st.posted = map[string]int{}
	}
	l.mu.Unlock()
	select {
	case l.kick <- struct{}{}:
	default:
	}
}

// watch keeps every pod of a service with restart rules honest, on every
// change the shared pod informer sees, until ctx ends: a running container
// whose code is older than the service's live state (a pod that started
// after a live update, a container the kubelet restarted) gets a live
// update posted, and the pod's readiness gate (kube.UpToDateCondition) is
// True exactly when all its containers of the service run the workspace's
// code, so such a pod never serves before it is brought up to date.
func (l *liveUpdates) watch(ctx context.Context, r *runner, conn *Conn) {
	wake, cancel := conn.Informers.Subscribe()
	defer cancel()
	for {
		l.check(ctx, r, conn)
		select {
		case <-ctx.Done():
			return
		case <-wake:
		case <-l.kick:
		}
	}
}

func (l *liveUpdates) check(ctx context.Context, r *runner, conn *Conn) {
	m := r.lastManifests()
	if m == nil {
		return
	}
	pods, _ := conn.Informers.Factory().Core().V1().Pods().Lister().Pods(r.cfg.Namespace).List(labels.Everything())
	for _, svc := range r.cfg.Services {
		if !svc.Restarts() {
			if len(svc.Sync) > 0 {
				l.replaySyncs(svc, m, pods)
			}
			continue
		}
		var markers []string
		for _, p := range pods {
			if p.DeletionTimestamp != nil {
				continue
			}
			containers := m.ContainersOf(svc.Name, p)
			if len(containers) == 0 {
				continue
			}
			ids := map[string]string{}
			for _, cs := range p.Status.ContainerStatuses {
				if cs.State.Running != nil {
					ids[cs.Name] = cs.ContainerID
				}
			}
			stale, allRunning := false, true
			l.mu.Lock()
			st, post := l.services[svc.Name], l.post
			for _, c := range containers {
				id, ok := ids[c]
				if !ok {
					allRunning = false
					continue
				}
				if st == nil || st.gen == 0 || st.applied[id] == st.gen || (st.image != "" && containerImage(p, c) != st.image) {
					continue
				}
				stale = true
				if post != nil && st.posted[id] != st.gen && !st.busy {
					st.posted[id] = st.gen
					markers = append(markers, newContainerMarker+p.Name+"/"+c+")")
				}
			}
			behind := st != nil && st.gen > 0 && (st.image == "" || podRuns(p, containers, st.image))
			l.mu.Unlock()
			gated, open := kube.UpToDateGate(p)
			if want := !stale && (allRunning || !behind); gated && want != open {
				setUpToDate(ctx, conn, p, want)
			}
		}
		l.mu.Lock()
		post := l.post
		l.mu.Unlock()
		if len(markers) > 0 && post != nil {
			post(engine.Changed{Live: map[string][]string{svc.Name: markers}})
		}
	}
}

// setUpToDate sets pod's kube.UpToDateCondition; a failure is retried on
// the next change the informer sees.
func setUpToDate(ctx context.Context, conn *Conn, p *corev1.Pod, up bool) {
	if conn.Clients == nil || conn.Clients.Core == nil {
		return
	}
	status, reason := corev1.ConditionFalse, "OlderThanWorkspace"
	if up {
		status, reason = corev1.ConditionTrue, "UpToDate"
	}
	patch := fmt.Sprintf(`{"status":{"conditions":[{"type":%q,"status":%q,"reason":%q,"lastTransitionTime":%q}]}}`,
		kube.UpToDateCondition, status, reason, time.Now().UTC().Format(time.RFC3339))
	_, _ = conn.Clients.Core.CoreV1().Pods(p.Namespace).Patch(ctx, p.Name, types.StrategicMergePatchType, []byte(patch), metav1.PatchOptions{}, "status")
}

// Live brings the service's running containers to the workspace: the
// pre-build (for an edit; not for a new container alone), then, into every
// running container whose code is older than the live state, the restart
// rules' files through its supervisor, which restarts the process.
func (r *runner) Live(ctx context.Context, svc config.Service, paths []string) (int, bool, error) {
	out := r.out.Writer(svc.Name)
	defer out.Close()
	begin := time.Now()
	edit := false
	for _, p := range paths {
		edit = edit || filepath.IsAbs(p)
	}
	var compiled time.Duration
	if edit {
		if err := r.eng.Builder.PreBuild(ctx, svc, out); err != nil {
			return 0, false, err
		}
		compiled = time.Since(begin)
	}
	conn, err := r.cluster.wait(ctx)
	if err != nil {
		return 0, true, err
	}
	var files []livesync.FileCopy
	for _, rule := range svc.RestartRules() {
		fs, err := livesync.RuleFiles(rule)
		if err != nil {
			return 0, true, fmt.Errorf("reading what the restart rule copies: %w", err)
		}
		files = append(files, fs...)
	}
	targets := r.containersOf(conn, svc)
	l := r.liveUpdates
	l.mu.Lock()
	st := l.state(svc.Name)
	if edit {
		if st.gen == 0 {
			svcImage := svc.Image
			r.mu.Lock()
			st.image = r.deployedImages[svcImage]
			r.mu.Unlock()
		}
		st.gen++
	}
	st.busy = true
	defer func() { l.mu.Lock(); st.busy = false; l.mu.Unlock() }()
	gen, synced := st.gen, st.synced
	var pick []livesync.Target
	fresh := map[string]bool{}
	for _, t := range targets {
		if st.applied[t.ContainerID] != gen && (st.image == "" || t.Image == st.image) {
			pick = append(pick, t)
			fresh[t.ContainerID] = st.applied[t.ContainerID] == 0
		}
	}
	l.mu.Unlock()
	if gen == 0 || (len(pick) == 0 && !edit) {
		return 0, false, nil // every running container is up to date
	}
	if len(pick) == 0 {
		return 0, true, errors.New("no running container to restart")
	}
	// Plain sync rules' files, for a container that started from the image.
	var replay []livesync.FileCopy
	if synced {
		replay = plainSyncFiles(svc)
	}
	var copyTook, restartTook time.Duration // the slowest container's
	g, gctx := errgroup.WithContext(ctx)
	for _, t := range pick {
		g.Go(func() error {
			if fresh[t.ContainerID] && len(replay) > 0 {
				if err := livesync.Copy(gctx, conn.Execer, t, replay, ""); err != nil {
					return err
				}
			}
			t0 := time.Now()
			res, err := livesync.Restart(gctx, conn.Execer, t, files)
			if err != nil {
				return err
			}
			total := time.Since(t0)
			l.mu.Lock()
			st.applied[t.ContainerID] = gen
			restartTook = max(restartTook, res.Stop+res.Start)
			copyTook = max(copyTook, total-res.Stop-res.Start)
			l.mu.Unlock()
			r.annotateLive(gctx, conn, t, gen)
			return nil
		})
	}
	err = g.Wait()
	l.wake() // open the readiness gates of the pods brought up to date
	if err != nil {
		if ctx.Err() != nil {
			return 0, false, err
		}
		return 0, true, err
	}
	what := "the new build"
	if !edit {
		what = fmt.Sprintf("the live-updated code (%d update(s) newer than the image)", gen)
	}
	var names []string
	for _, t := range pick {
		names = append(names, t.Pod)
	}
	sort.Strings(names)
	took := time.Since(begin)
	if edit {
		r.out.Line(svc.Name, "restarted %d container(s) with %s in %s: pre-build %s, copy %s, restart %s (%s)", len(pick), what,
			took.Round(time.Millisecond), compiled.Round(time.Millisecond), copyTook.Round(time.Millisecond), restartTook.Round(time.Millisecond),
			strings.Join(names, ", "))
	} else {
		r.out.Line(svc.Name, "brought %s up to date: restarted with %s in %s", strings.Join(names, ", "), what, took.Round(time.Millisecond))
	}
	if !edit {
		return 0, false, nil
	}
	return len(pick), false, nil
}

// annotateLive records on the pod that it runs live-updated code (for
// `devloop status`); a failure only loses that note.
func (r *runner) annotateLive(ctx context.Context, conn *Conn, t livesync.Target, gen int) {
	if conn.Clients == nil || conn.Clients.Core == nil {
		return
	}
	patch := fmt.Sprintf(`{"metadata":{"annotations":{%q:"%d"}}}`, kube.LiveUpdatesAnnotation, gen)
	_, _ = conn.Clients.Core.CoreV1().Pods(t.Namespace).Patch(ctx, t.Pod, types.MergePatchType, []byte(patch), metav1.PatchOptions{})
}

// podRuns reports whether one of containers of p runs image.
func podRuns(p *corev1.Pod, containers []string, image string) bool {
	for _, c := range containers {
		if containerImage(p, c) == image {
			return true
		}
	}
	return false
}
