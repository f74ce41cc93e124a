package kube

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/clock"
)

// RolloutError explains why a workload did not become ready.
type RolloutError struct {
	Workload Workload
	Reason   string // one line, e.g. `container "app" is in CrashLoopBackOff (exit code 3, restarted 2 times)`
	Detail   string // further lines (log tail, messages); may be empty
}

// Error renders "<kind>/<name> is not ready: <Reason>" followed by Detail,
// indented by two spaces.
func (e *RolloutError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s is not ready: %s", e.Workload, e.Reason)
	if d := strings.TrimRight(e.Detail, "\n"); d != "" {
		for _, l := range strings.Split(d, "\n") {
			b.WriteString("\n  " + l)
		}
	}
	return b.String()
}

// WaitRollout waits until w has rolled out, with the same conditions as
// `kubectl rollout status` (Deployment, StatefulSet, DaemonSet), a Job
// completing, or a Pod becoming ready; a CronJob is done at once. It fails
// early, with a *RolloutError, when the workload's current pods are in a
// state that will not fix itself, and with a *RolloutError naming what is
// still pending when timeout passes.
//
// report, if not nil, is called with a one-line account of what the rollout
// is waiting for each time that changes ("0 of 1 updated replicas are
// available; pod web-1: container "app" is running but not ready: ...").
//
// Deployer.WaitRollout is the same, woken by the session's shared informers
// instead of polling alone.
func WaitRollout(ctx context.Context, cs kubernetes.Interface, w Workload, timeout time.Duration, report func(string)) error {
	return waitRollout(ctx, cs, nil, w, timeout, report)
}

func waitRollout(ctx context.Context, cs kubernetes.Interface, wake Waker, w Workload, timeout time.Duration, report func(string)) error {
	rw := rolloutWaiter{cs: cs, clock: clock.RealClock{}, poll: 2 * time.Second, report: report, wake: wake}
	return rw.wait(ctx, w, timeout)
}

type rolloutWaiter struct {
	cs     kubernetes.Interface
	clock  clock.WithTicker
	poll   time.Duration
	report func(string) // may be nil
	wake   Waker        // may be nil: poll only
}

// state is the result of one look at a workload.
type state struct {
	msg      string        // what we are waiting for
	done     bool          // rolled out
	failure  *RolloutError // failed for good
	problems []problem     // non-fatal problems, shown on timeout
}

func (rw rolloutWaiter) wait(ctx context.Context, w Workload, timeout time.Duration) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	start := rw.clock.Now()
	ticker := rw.clock.NewTicker(rw.poll)
	defer ticker.Stop()
	var wake <-chan struct{}
	if rw.wake != nil {
		// Informer events only wake us early; the ticker guarantees progress.
		ch, unsubscribe := rw.wake.Subscribe()
		defer unsubscribe()
		wake = ch
	}
	reported := ""
	for {
		st, err := rw.check(ctx, w)
		if err != nil {
			return err
		}
		if st.done {
			return nil
		}
		if st.failure != nil {
			return st.failure
		}
		if rw.report != nil {
			if line := st.line(); line != reported {
				reported = line
				rw.report(line)
			}
		}
		if rw.clock.Since(start) >= timeout {
			return timeoutError(w, timeout, st)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: %w", w, ctx.Err())
		case <-ticker.C():
		case <-wake:
		}
	}
}

// line is what the rollout waits for, in one line: the controller's status
// and the first pod problem, if any.
func (st state) line() string {
	l := strings.TrimSpace(st.msg)
	if len(st.problems) > 0 {
		p := st.problems[0]
		l += "; pod " + p.pod + ": " + p.reason
	}
	return l
}

func timeoutError(w Workload, timeout time.Duration, st state) *RolloutError {
	var detail []string
	for _, p := range st.problems {
		detail = append(detail, p.lines()...)
	}
	return &RolloutError{Workload: w,
		Reason: fmt.Sprintf("timed out after %s: %s", timeout, strings.TrimSpace(st.msg)),
		Detail: strings.Join(detail, "\n")}
}

// check looks at the workload once.
func (rw rolloutWaiter) check(ctx context.Context, w Workload) (state, error) {
	d := diagnoser{cs: rw.cs, now: rw.clock.Now}
	var (
		st       state
		err      error
		observed bool // the controller has seen the current spec
		podSel   labels.Selector
		keep     func(*corev1.Pod) bool
	)
	switch w.Kind {
	case "Deployment":
		var dep *appsv1.Deployment
		dep, err = rw.cs.AppsV1().Deployments(w.Namespace).Get(ctx, w.Name, metav1.GetOptions{})
		if err == nil {
			st.msg, st.done, err = deploymentStatus(dep)
			observed = dep.Generation <= dep.Status.ObservedGeneration
			podSel, _ = metav1.LabelSelectorAsSelector(dep.Spec.Selector)
			if observed && podSel != nil {
				keep = rw.currentDeploymentPods(ctx, dep, podSel)
			}
		}
	case "StatefulSet":
		var sts *appsv1.StatefulSet
		sts, err = rw.cs.AppsV1().StatefulSets(w.Namespace).Get(ctx, w.Name, metav1.GetOptions{})
		if err == nil {
			st.msg, st.done, err = statefulSetStatus(sts)
			observed = sts.Status.ObservedGeneration != 0 && sts.Generation <= sts.Status.ObservedGeneration
			podSel, _ = metav1.LabelSelectorAsSelector(sts.Spec.Selector)
			if rev := sts.Status.UpdateRevision; rev != "" {
				keep = func(p *corev1.Pod) bool { return p.Labels[appsv1.ControllerRevisionHashLabelKey] == rev }
			}
		}
	case "DaemonSet":
		var ds *appsv1.DaemonSet
		ds, err = rw.cs.AppsV1().DaemonSets(w.Namespace).Get(ctx, w.Name, metav1.GetOptions{})
		if err == nil {
			st.msg, st.done, err = daemonSetStatus(ds)
			observed = ds.Generation <= ds.Status.ObservedGeneration
			podSel, _ = metav1.LabelSelectorAsSelector(ds.Spec.Selector)
			keep = ownedBy(ds.UID)
		}
	case "Job":
		var job *batchv1.Job
		job, err = rw.cs.BatchV1().Jobs(w.Namespace).Get(ctx, w.Name, metav1.GetOptions{})
		if err == nil {
			st.msg, st.done, err = jobStatus(job)
			observed = true
			podSel, _ = metav1.LabelSelectorAsSelector(job.Spec.Selector)
			keep = ownedBy(job.UID)
		}
	case "Pod":
		var pod *corev1.Pod
		pod, err = rw.cs.CoreV1().Pods(w.Namespace).Get(ctx, w.Name, metav1.GetOptions{})
		if err == nil {
			st.msg, st.done, err = podStatus(pod)
			observed = true
			podSel = labels.SelectorFromSet(pod.Labels)
			keep = func(p *corev1.Pod) bool { return p.Name == pod.Name }
		}
	default:
		// CronJobs, ReplicaSets and others have no rollout to wait for.
		return state{done: true}, nil
	}
	if apierrors.IsNotFound(err) {
		return state{msg: fmt.Sprintf("waiting for %s to be created", w)}, nil
	}
	var failed *rolloutFailed
	if errors.As(err, &failed) {
		st.failure = &RolloutError{Workload: w, Reason: failed.reason}
		// Explain with the pods, if they say more.
		if podSel != nil {
			if probs := rw.podProblems(ctx, d, w.Namespace, podSel, keep); len(probs) > 0 {
				var detail []string
				for _, p := range probs {
					detail = append(detail, p.lines()...)
				}
				st.failure.Detail = strings.Join(detail, "\n")
			}
		}
		return st, nil
	}
	if err != nil {
		return st, fmt.Errorf("checking rollout of %s: %w", w, err)
	}
	if st.done && observed && podSel != nil && !podSel.Empty() && w.Kind != "Job" && w.Kind != "Pod" {
		// The controller's counts can be met by a container that was Ready
		// for an instant before it crashed (no readiness probe): a rollout is
		// done only when the current revision's pods are ready right now.
		if n := rw.unreadyPods(ctx, w.Namespace, podSel, keep); n > 0 {
			st.done = false
			st.msg = fmt.Sprintf("%d pod(s) of the new revision not ready", n)
		}
	}
	if st.done || podSel == nil || podSel.Empty() {
		return st, nil
	}
	if !observed {
		// Pods may still be the previous revision's; don't blame them.
		return st, nil
	}
	pods := rw.currentPods(ctx, w.Namespace, podSel, keep)
	if w.Kind == "Deployment" && keep != nil && strings.HasSuffix(st.msg, oldPendingTermination) {
		// kubectl's wording; but while a surge pod is not ready the old
		// pod is not terminating at all: the new one is what is awaited.
		if n := rw.countUnready(pods); n > 0 {
			st.msg = fmt.Sprintf("%d new pod(s) not ready yet (the old ones keep serving until they are)", n)
		}
	}
	for _, p := range d.pods(ctx, pods) {
		if p.fatal && st.failure == nil {
			st.failure = &RolloutError{Workload: w, Reason: p.reason,
				Detail: strings.Join(append([]string{"pod: " + p.pod}, p.detail...), "\n")}
			continue
		}
		st.problems = append(st.problems, p)
	}
	return st, nil
}

// unreadyPods counts the current, non-terminating pods with a container
// that is not ready.
func (rw rolloutWaiter) unreadyPods(ctx context.Context, ns string, sel labels.Selector, keep func(*corev1.Pod) bool) int {
	return rw.countUnready(rw.currentPods(ctx, ns, sel, keep))
}

// countUnready counts the non-terminating pods with a container that is not
// ready (see unreadyPods).
func (rw rolloutWaiter) countUnready(pods []corev1.Pod) int {
	n := 0
	for i := range pods {
		p := &pods[i]
		if p.DeletionTimestamp != nil {
			continue
		}
		probed := map[string]bool{}
		for _, c := range p.Spec.Containers {
			probed[c.Name] = c.ReadinessProbe != nil
		}
		for _, c := range p.Status.ContainerStatuses {
			// Without a readiness probe a container is "ready" the moment it
			// starts, even one that exits a millisecond later: it must have
			// kept running a little while to count.
			young := c.State.Running != nil && !probed[c.Name] &&
				rw.clock.Since(c.State.Running.StartedAt.Time) < minRunWithoutProbe
			if !c.Ready || young {
				n++
				break
			}
		}
	}
	return n
}

// minRunWithoutProbe is how long a container without a readiness probe must
// have been running for a rollout to count it.
const minRunWithoutProbe = 2 * time.Second

func ownedBy(uid types.UID) func(*corev1.Pod) bool {
	return func(p *corev1.Pod) bool {
		for _, o := range p.OwnerReferences {
			if o.UID == uid && o.Controller != nil && *o.Controller {
				return true
			}
		}
		return false
	}
}

func (rw rolloutWaiter) podProblems(ctx context.Context, d diagnoser, ns string, sel labels.Selector, keep func(*corev1.Pod) bool) []problem {
	return d.pods(ctx, rw.currentPods(ctx, ns, sel, keep))
}

// currentPods lists the pods sel matches that keep keeps (all when keep is
// nil); none when the list fails.
func (rw rolloutWaiter) currentPods(ctx context.Context, ns string, sel labels.Selector, keep func(*corev1.Pod) bool) []corev1.Pod {
	list, err := rw.cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: sel.String()})
	if err != nil {
		return nil
	}
	var pods []corev1.Pod
	for i := range list.Items {
		if keep == nil || keep(&list.Items[i]) {
			pods = append(pods, list.Items[i])
		}
	}
	return pods
}

// currentDeploymentPods returns a filter for the pods of the deployment's
// newest ReplicaSet (so the previous revision's crashing pods are not
// blamed for the new one), or nil when that ReplicaSet is not found.
func (rw rolloutWaiter) currentDeploymentPods(ctx context.Context, dep *appsv1.Deployment, sel labels.Selector) func(*corev1.Pod) bool {
	const revAnn = "deployment.kubernetes.io/revision"
	rev := dep.Annotations[revAnn]
	if rev == "" {
		return nil
	}
	rss, err := rw.cs.AppsV1().ReplicaSets(dep.Namespace).List(ctx, metav1.ListOptions{LabelSelector: sel.String()})
	if err != nil {
		return nil
	}
	for _, rs := range rss.Items {
		if rs.Annotations[revAnn] != rev || !metav1.IsControlledBy(&rs, dep) {
			continue
		}
		hash := rs.Labels[appsv1.DefaultDeploymentUniqueLabelKey]
		if hash == "" {
			return nil
		}
		return func(p *corev1.Pod) bool { return p.Labels[appsv1.DefaultDeploymentUniqueLabelKey] == hash }
	}
	return nil
}

// rolloutFailed is returned by the status functions when the rollout has
// failed for good.
type rolloutFailed struct{ reason string }

func (e *rolloutFailed) Error() string { return e.reason }

// deploymentStatus mirrors kubectl's DeploymentStatusViewer.
// oldPendingTermination ends deploymentStatus's message (kubectl's wording)
// while old pods remain; check rewords it when a new pod is what is awaited.
const oldPendingTermination = "old replicas are pending termination"

func deploymentStatus(d *appsv1.Deployment) (string, bool, error) {
	if d.Generation > d.Status.ObservedGeneration {
		return "waiting for the deployment spec update to be observed", false, nil
	}
	for _, c := range d.Status.Conditions {
		if c.Type == appsv1.DeploymentProgressing && c.Reason == "ProgressDeadlineExceeded" {
			return "", false, &rolloutFailed{reason: "exceeded its progress deadline: " + c.Message}
		}
	}
	if d.Spec.Replicas != nil && d.Status.UpdatedReplicas < *d.Spec.Replicas {
		return fmt.Sprintf("%d out of %d new replicas have been updated", d.Status.UpdatedReplicas, *d.Spec.Replicas), false, nil
	}
	if d.Status.Replicas > d.Status.UpdatedReplicas {
		return fmt.Sprintf("%d %s", d.Status.Replicas-d.Status.UpdatedReplicas, oldPendingTermination), false, nil
	}
	if d.Status.AvailableReplicas < d.Status.UpdatedReplicas {
		return fmt.Sprintf("%d of %d updated replicas are available", d.Status.AvailableReplicas, d.Status.UpdatedReplicas), false, nil
	}
	return "successfully rolled out", true, nil
}

// statefulSetStatus mirrors kubectl's StatefulSetStatusViewer; OnDelete
// statefulsets count as rolled out once their replicas are ready.
func statefulSetStatus(s *appsv1.StatefulSet) (string, bool, error) {
	if s.Status.ObservedGeneration == 0 || s.Generation > s.Status.ObservedGeneration {
		return "waiting for the statefulset spec update to be observed", false, nil
	}
	if s.Spec.Replicas != nil && s.Status.ReadyReplicas < *s.Spec.Replicas {
		return fmt.Sprintf("waiting for %d pods to be ready", *s.Spec.Replicas-s.Status.ReadyReplicas), false, nil
	}
	if s.Spec.UpdateStrategy.Type == appsv1.OnDeleteStatefulSetStrategyType {
		return "ready (OnDelete update strategy)", true, nil
	}
	if ru := s.Spec.UpdateStrategy.RollingUpdate; ru != nil && s.Spec.Replicas != nil && ru.Partition != nil {
		if s.Status.UpdatedReplicas < *s.Spec.Replicas-*ru.Partition {
			return fmt.Sprintf("partitioned roll out: %d out of %d new pods have been updated", s.Status.UpdatedReplicas, *s.Spec.Replicas-*ru.Partition), false, nil
		}
		return "partitioned roll out complete", true, nil
	}
	if s.Status.UpdateRevision != s.Status.CurrentRevision {
		return fmt.Sprintf("rolling update: %d pods at revision %s", s.Status.UpdatedReplicas, s.Status.UpdateRevision), false, nil
	}
	return "rolling update complete", true, nil
}

// daemonSetStatus mirrors kubectl's DaemonSetStatusViewer; OnDelete
// daemonsets count as rolled out.
func daemonSetStatus(d *appsv1.DaemonSet) (string, bool, error) {
	if d.Spec.UpdateStrategy.Type == appsv1.OnDeleteDaemonSetStrategyType {
		return "OnDelete update strategy", true, nil
	}
	if d.Generation > d.Status.ObservedGeneration {
		return "waiting for the daemon set spec update to be observed", false, nil
	}
	if d.Status.UpdatedNumberScheduled < d.Status.DesiredNumberScheduled {
		return fmt.Sprintf("%d out of %d new pods have been updated", d.Status.UpdatedNumberScheduled, d.Status.DesiredNumberScheduled), false, nil
	}
	if d.Status.NumberAvailable < d.Status.DesiredNumberScheduled {
		return fmt.Sprintf("%d of %d updated pods are available", d.Status.NumberAvailable, d.Status.DesiredNumberScheduled), false, nil
	}
	return "successfully rolled out", true, nil
}

func jobStatus(j *batchv1.Job) (string, bool, error) {
	for _, c := range j.Status.Conditions {
		if c.Status != corev1.ConditionTrue {
			continue
		}
		switch c.Type {
		case batchv1.JobComplete:
			return "completed", true, nil
		case batchv1.JobFailed:
			return "", false, &rolloutFailed{reason: "job failed: " + firstNonEmpty(c.Message, c.Reason)}
		}
	}
	return fmt.Sprintf("waiting for the job to complete (%d active, %d succeeded, %d failed)", j.Status.Active, j.Status.Succeeded, j.Status.Failed), false, nil
}

func podStatus(p *corev1.Pod) (string, bool, error) {
	switch p.Status.Phase {
	case corev1.PodSucceeded:
		return "completed", true, nil
	case corev1.PodFailed:
		return "", false, &rolloutFailed{reason: "pod failed: " + firstNonEmpty(p.Status.Message, p.Status.Reason, "phase Failed")}
	}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
			return "ready", true, nil
		}
	}
	return "waiting for the pod to be ready", false, nil
}
