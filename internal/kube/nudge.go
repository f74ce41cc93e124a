package kube

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/clock"
)

// NudgeAnnotation is the pod annotation the readiness nudge writes.
const NudgeAnnotation = "devloop.dev/readiness-nudge"

// nudgeBackoff spaces the nudges of one pod: 250 ms, 500 ms, 1 s, 2 s, 4 s.
// Five nudges cover the first ~8 s after a container starts, most of the
// default readiness period (10 s); after that the kubelet's own probe timer
// has fired at least once.
const (
	nudgeFirst = 250 * time.Millisecond
	nudgeMax   = 5
)

// readinessNudger shortens the wait between "container started" and "pod
// Ready" during a rollout devloop is tracking.
//
// Why: the kubelet probes readiness as soon as a container starts, which is
// usually a few milliseconds before the app listens, so that probe fails and
// the next one comes a whole periodSeconds later (10 s by default; at least
// 1 s). Measured on the example: container started, probe failed 7 ms
// later, app listening ~40 ms later, Ready 0.95 s later. But the kubelet also
// runs a pending readiness probe at once whenever it syncs the pod, and any
// change to the pod's metadata makes it sync. So while a current-revision
// pod has a started container that is running but not ready, devloop
// annotates the pod (backing off, at most nudgeMax times, never before the
// probe's initialDelaySeconds and never after its first periodSeconds): the
// probe is re-run at once, and a pod that is ready is seen as Ready in tens
// of milliseconds instead of a period later. A probe that keeps failing is
// unaffected (the kubelet's schedule and failureThreshold still apply), and
// if a kubelet ever stops re-probing on sync, the nudge only costs a few
// metadata patches.
type readinessNudger struct {
	cs    kubernetes.Interface
	clock clock.Clock
	pods  map[types.UID]*nudged
}

type nudged struct {
	count int
	next  time.Time
}

func newReadinessNudger(cs kubernetes.Interface, c clock.Clock) *readinessNudger {
	return &readinessNudger{cs: cs, clock: c, pods: map[types.UID]*nudged{}}
}

// nudge annotates the pods that are waiting for a readiness probe, and
// returns how soon it wants to look again (0: no pod is waiting).
func (n *readinessNudger) nudge(ctx context.Context, pods []corev1.Pod) time.Duration {
	if n == nil {
		return 0
	}
	now := n.clock.Now()
	var again time.Duration
	for i := range pods {
		p := &pods[i]
		if !n.waitingForProbe(p, now) {
			continue
		}
		st := n.pods[p.UID]
		if st == nil {
			st = &nudged{}
			n.pods[p.UID] = st
		}
		if st.count >= nudgeMax {
			continue
		}
		if wait := st.next.Sub(now); wait > 0 {
			again = minPositive(again, wait)
			continue
		}
		st.count++
		st.next = now.Add(nudgeFirst << (st.count - 1))
		patch := fmt.Sprintf(`{"metadata":{"annotations":{%q:%q}}}`, NudgeAnnotation, fmt.Sprint(st.count))
		// Best effort: a pod gone or a patch refused just means no nudge.
		_, _ = n.cs.CoreV1().Pods(p.Namespace).Patch(ctx, p.Name, types.MergePatchType, []byte(patch),
			metav1.PatchOptions{FieldManager: FieldManager + "-readiness-nudge"})
		if st.count < nudgeMax {
			again = minPositive(again, st.next.Sub(now))
		}
	}
	return again
}

// waitingForProbe reports whether p has a started, running container that
// is not ready, whose readiness probe may run now (past initialDelaySeconds)
// and is still within its first period.
func (n *readinessNudger) waitingForProbe(p *corev1.Pod, now time.Time) bool {
	if p.DeletionTimestamp != nil || p.Status.Phase != corev1.PodRunning {
		return false
	}
	probes := map[string]*corev1.Probe{}
	for i := range p.Spec.Containers {
		if c := &p.Spec.Containers[i]; c.ReadinessProbe != nil {
			probes[c.Name] = c.ReadinessProbe
		}
	}
	for _, c := range p.Status.ContainerStatuses {
		pr := probes[c.Name]
		if pr == nil || c.Ready || c.State.Running == nil || (c.Started != nil && !*c.Started) {
			continue
		}
		period := time.Duration(pr.PeriodSeconds) * time.Second
		if period <= 0 {
			period = 10 * time.Second
		}
		up := now.Sub(c.State.Running.StartedAt.Time)
		if up >= time.Duration(pr.InitialDelaySeconds)*time.Second && up < time.Duration(pr.InitialDelaySeconds)*time.Second+period {
			return true
		}
	}
	return false
}

func minPositive(a, b time.Duration) time.Duration {
	if a <= 0 || (b > 0 && b < a) {
		return b
	}
	return a
}
