package kube

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"

	"github.com/devloop-dev/devloop/internal/termsafe"
)

const (
	// logTailLines is how many log lines a crash diagnosis shows.
	logTailLines = 10
	// logTailBytes bounds what a diagnosis reads of a log (an app may log
	// megabytes without a newline).
	logTailBytes = 16 << 10
	// unschedulableGrace is how long a pod may be unschedulable before that
	// counts as a failure (the scheduler retries, e.g. while a node starts).
	unschedulableGrace = 10 * time.Second
	// gateGrace is how long a running pod may wait for devloop to open its
	// UpToDateCondition readiness gate before that is a problem (devloop
	// brings a new container up to date in well under a second).
	gateGrace = 10 * time.Second
	// retryGrace is how long a container may wait on an error the kubelet
	// retries by itself before that is a failure: its cache of a Secret or
	// ConfigMap not synced in time (kubernetes#117972: common on a busy
	// node, and right after the pods that used the object were deleted, as
	// after a down), or the runtime slow to create the container. The
	// kubelet tries again within about 15 s. Shopify's krane does not fail
	// fast on these either.
	retryGrace = time.Minute
)

// retriedByKubelet reports whether a container waiting with reason and msg
// waits on an error the kubelet retries and that passes by itself (see
// retryGrace): its cache of a Secret or ConfigMap not synced in time, or the
// runtime too slow to create the container. "secret \"db\" not found" is
// not one (that Secret is missing), nor is a hook's timeout (a hook that
// hangs is the app's).
func retriedByKubelet(reason, msg string) bool {
	var retried []string
	switch reason {
	case "CreateContainerConfigError":
		retried = []string{"failed to sync secret cache", "failed to sync configmap cache"}
	case "CreateContainerError":
		retried = []string{"context deadline exceeded", "failed to reserve container name"}
	}
	for _, s := range retried {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}

// containersSince is when the kubelet could first create pod's containers:
// the pod's creation, or later, when its init containers were done and its
// sandbox ready (a pod that waited for its database in an init container
// gets the whole retryGrace once its app container's turn comes).
func containersSince(pod *corev1.Pod) time.Time {
	since := pod.CreationTimestamp.Time
	for _, c := range pod.Status.Conditions {
		if (c.Type == corev1.PodInitialized || c.Type == corev1.PodReadyToStartContainers) &&
			c.Status == corev1.ConditionTrue && c.LastTransitionTime.Time.After(since) {
			since = c.LastTransitionTime.Time
		}
	}
	return since
}

// problem is one thing wrong with a pod.
type problem struct {
	pod       string
	container string
	reason    string   // one line: what is wrong
	detail    []string // extra lines: kubelet/scheduler messages, log lines
	fatal     bool     // will not fix itself: fail the rollout now
	// kind classifies the problem, stable while it lasts: "crash" (a crash
	// loop, whether the container waits in back-off or runs again),
	// "image", "config", "probe", "unschedulable", "failed".
	kind string
}

func (p problem) lines() []string {
	out := []string{"pod " + p.pod + ": " + p.reason}
	for _, d := range p.detail {
		out = append(out, "  "+d)
	}
	return out
}

// diagnoser inspects pods for problems. now is injected for tests.
type diagnoser struct {
	cs  kubernetes.Interface
	now func() time.Time
}

// PodProblem is one thing wrong with a pod, explained as a rollout failure
// would be: Text is "pod <name>: <reason>" and any detail lines (the last
// log lines of a crash). Kind ("crash", "image", "config", "probe",
// "unschedulable", "failed") is stable while the problem lasts: a crash
// loop is one problem whether the container waits in back-off or runs again.
type PodProblem struct {
	Pod, Container, Kind, Text string
}

// ExplainPod explains what is wrong with pod now (nothing when it is fine).
func ExplainPod(ctx context.Context, cs kubernetes.Interface, pod *corev1.Pod) []PodProblem {
	d := diagnoser{cs: cs, now: time.Now}
	var out []PodProblem
	for _, p := range d.pod(ctx, pod) {
		out = append(out, PodProblem{Pod: p.pod, Container: p.container, Kind: p.kind, Text: strings.Join(p.lines(), "\n")})
	}
	return out
}

// Diagnose lists the pods in namespace matching selector and explains, one
// entry per problem, what keeps them from running: crash loops (with the
// last log lines), missing images, scheduling failures, configuration errors
// and failing readiness probes. Entries may span several lines. A nil
// result means nothing looks wrong (or the pods could not be listed).
func Diagnose(ctx context.Context, cs kubernetes.Interface, namespace string, selector labels.Selector) []string {
	d := diagnoser{cs: cs, now: time.Now}
	pods, err := cs.CoreV1().Pods(namespace).List(ctx, metav1.ListOptions{LabelSelector: selector.String()})
	if err != nil {
		return []string{fmt.Sprintf("listing pods: %v", err)}
	}
	var out []string
	for _, p := range d.pods(ctx, pods.Items) {
		out = append(out, strings.Join(p.lines(), "\n"))
	}
	return out
}

// pods diagnoses each pod, newest first, skipping pods being deleted.
func (d diagnoser) pods(ctx context.Context, pods []corev1.Pod) []problem {
	sorted := append([]corev1.Pod(nil), pods...)
	sort.SliceStable(sorted, func(i, j int) bool {
		return sorted[j].CreationTimestamp.Before(&sorted[i].CreationTimestamp)
	})
	var out []problem
	for i := range sorted {
		if sorted[i].DeletionTimestamp != nil {
			continue
		}
		out = append(out, d.pod(ctx, &sorted[i])...)
	}
	return out
}

func (d diagnoser) pod(ctx context.Context, pod *corev1.Pod) []problem {
	now := d.now()
	var out []problem
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse && c.Reason == corev1.PodReasonUnschedulable {
			fatal := c.LastTransitionTime.IsZero() || now.Sub(c.LastTransitionTime.Time) >= unschedulableGrace
			out = append(out, problem{pod: pod.Name, reason: "cannot be scheduled: " + strings.TrimSpace(c.Message), fatal: fatal, kind: "unschedulable"})
			return out
		}
	}
	specs := map[string]corev1.Container{}
	for _, c := range pod.Spec.InitContainers {
		specs[c.Name] = c
	}
	for _, c := range pod.Spec.Containers {
		specs[c.Name] = c
	}
	statuses := append(append([]corev1.ContainerStatus(nil), pod.Status.InitContainerStatuses...), pod.Status.ContainerStatuses...)
	for _, cs := range statuses {
		if p, ok := d.container(ctx, pod, specs[cs.Name], cs, now); ok {
			out = append(out, p)
		}
	}
	if len(out) == 0 {
		if p, ok := gateProblem(pod, now); ok {
			out = append(out, p)
		}
	}
	if len(out) == 0 && pod.Status.Phase == corev1.PodFailed {
		out = append(out, problem{pod: pod.Name, reason: "failed: " + firstNonEmpty(pod.Status.Message, pod.Status.Reason, "pod phase is Failed"), fatal: true, kind: "failed"})
	}
	return out
}

func firstNonEmpty(s ...string) string {
	for _, x := range s {
		if strings.TrimSpace(x) != "" {
			return strings.TrimSpace(x)
		}
	}
	return ""
}

func (d diagnoser) container(ctx context.Context, pod *corev1.Pod, spec corev1.Container, st corev1.ContainerStatus, now time.Time) (problem, bool) {
	p := problem{pod: pod.Name, container: st.Name}
	name := fmt.Sprintf("container %q", st.Name)
	if w := st.State.Waiting; w != nil {
		switch w.Reason {
		case "CrashLoopBackOff":
			p.reason, p.kind = fmt.Sprintf("%s is in CrashLoopBackOff (%s)", name, crashSummary(st)), "crash"
			p.detail = d.logLines(ctx, pod, st.Name)
			p.fatal = true
			return p, true
		case "ImagePullBackOff", "ErrImagePull", "ErrImageNeverPull", "InvalidImageName":
			image := spec.Image
			if image == "" {
				image = st.Image
			}
			p.reason, p.kind = fmt.Sprintf("%s cannot start: image %q was not loaded into the node (%s)", name, image, w.Reason), "image"
			p.detail = []string{
				"devloop loads the images it builds into the kind nodes and no registry is used, so an image that was not loaded cannot be pulled.",
				"Check that a service in devloop.yaml builds this image (services[].image), or load it yourself with `kind load docker-image`.",
			}
			if m := strings.TrimSpace(w.Message); m != "" {
				p.detail = append(p.detail, "kubelet: "+m)
			}
			p.fatal = true
			return p, true
		case "CreateContainerConfigError", "CreateContainerError", "RunContainerError", "PreCreateHookError", "PostStartHookError":
			p.reason, p.kind = fmt.Sprintf("%s cannot be created (%s): %s", name, w.Reason, firstNonEmpty(w.Message, "no message")), "config"
			p.fatal = true
			if retriedByKubelet(w.Reason, w.Message) && now.Sub(containersSince(pod)) < retryGrace {
				p.reason += " (the kubelet tries again)"
				p.fatal = false
			}
			return p, true
		}
	}
	if t := lastTermination(st); t != nil && t.ExitCode != 0 && st.RestartCount >= 2 && !killedWithItsNode(st, t) {
		p.reason, p.kind = fmt.Sprintf("%s keeps crashing (%s)", name, crashSummary(st)), "crash"
		p.detail = d.logLines(ctx, pod, st.Name)
		p.fatal = true
		return p, true
	}
	if t := st.State.Terminated; t != nil && t.ExitCode != 0 && pod.Spec.RestartPolicy == corev1.RestartPolicyNever {
		p.reason, p.kind = fmt.Sprintf("%s exited with code %d%s", name, t.ExitCode, reasonSuffix(t.Reason)), "crash"
		p.detail = d.logLines(ctx, pod, st.Name)
		p.fatal = true
		return p, true
	}
	if r := st.State.Running; r != nil && !st.Ready && spec.ReadinessProbe != nil {
		probe := spec.ReadinessProbe
		failAfter := time.Duration(probe.InitialDelaySeconds+orDefault(probe.PeriodSeconds, 10)*orDefault(probe.FailureThreshold, 3)) * time.Second
		if now.Sub(r.StartedAt.Time) < failAfter {
			return p, false
		}
		msg := d.lastProbeEvent(ctx, pod)
		p.reason, p.kind = fmt.Sprintf("%s is running but not ready: readiness probe (%s) keeps failing", name, describeProbe(probe)), "probe"
		if msg != "" {
			p.detail = []string{"last event: " + msg}
			p.fatal = true
		}
		return p, true
	}
	return p, false
}

func orDefault(v, def int32) int32 {
	if v == 0 {
		return def
	}
	return v
}

func reasonSuffix(reason string) string {
	if reason == "" || reason == "Error" || reason == "Completed" {
		return ""
	}
	return " (" + reason + ")"
}

// killedWithItsNode reports whether a running container's last end was
// its node's restart, not a crash: the runtime could not tell how it ended
// (reason "Unknown", exit code 255: what containerd's CRI records, when it
// starts again, for a container that was running and whose task is gone:
// its node went down, e.g. the Docker engine behind a kind node restarted).
func killedWithItsNode(st corev1.ContainerStatus, t *corev1.ContainerStateTerminated) bool {
	return st.State.Running != nil && t == st.LastTerminationState.Terminated && t.Reason == "Unknown" && t.ExitCode == 255
}

func lastTermination(st corev1.ContainerStatus) *corev1.ContainerStateTerminated {
	if st.State.Terminated != nil {
		return st.State.Terminated
	}
	return st.LastTerminationState.Terminated
}

func crashSummary(st corev1.ContainerStatus) string {
	times := "times"
	if st.RestartCount == 1 {
		times = "time"
	}
	if t := lastTermination(st); t != nil {
		return fmt.Sprintf("exit code %d%s, restarted %d %s", t.ExitCode, reasonSuffix(t.Reason), st.RestartCount, times)
	}
	return fmt.Sprintf("restarted %d %s", st.RestartCount, times)
}

func describeProbe(p *corev1.Probe) string {
	switch {
	case p.HTTPGet != nil:
		path := p.HTTPGet.Path
		if path == "" {
			path = "/"
		}
		return fmt.Sprintf("HTTP GET :%s%s", p.HTTPGet.Port.String(), path)
	case p.TCPSocket != nil:
		return "TCP :" + p.TCPSocket.Port.String()
	case p.GRPC != nil:
		return fmt.Sprintf("gRPC :%d", p.GRPC.Port)
	case p.Exec != nil:
		return "exec " + strings.Join(p.Exec.Command, " ")
	}
	return "probe"
}

// lastProbeEvent returns the message of the newest readiness-probe failure
// event for pod, or "".
func (d diagnoser) lastProbeEvent(ctx context.Context, pod *corev1.Pod) string {
	evs, err := d.cs.CoreV1().Events(pod.Namespace).List(ctx, metav1.ListOptions{
		FieldSelector: "involvedObject.kind=Pod,involvedObject.name=" + pod.Name,
	})
	if err != nil {
		return ""
	}
	var best *corev1.Event
	var bestT time.Time
	for i := range evs.Items {
		e := &evs.Items[i]
		if e.InvolvedObject.Name != pod.Name || (e.InvolvedObject.UID != "" && pod.UID != "" && e.InvolvedObject.UID != pod.UID) {
			continue
		}
		if !strings.HasPrefix(e.Message, "Readiness probe failed") {
			continue
		}
		t := e.LastTimestamp.Time
		if t.IsZero() {
			t = e.EventTime.Time
		}
		if best == nil || t.After(bestT) {
			best, bestT = e, t
		}
	}
	if best == nil {
		return ""
	}
	return strings.TrimSpace(best.Message)
}

// logLines returns "last log lines:" followed by the tail of the previous
// container's log (or the current one's), indented.
func (d diagnoser) logLines(ctx context.Context, pod *corev1.Pod, container string) []string {
	tail := int64(logTailLines)
	limit := int64(logTailBytes)
	var text string
	for _, previous := range []bool{true, false} {
		raw, err := d.cs.CoreV1().Pods(pod.Namespace).GetLogs(pod.Name, &corev1.PodLogOptions{
			Container: container, Previous: previous, TailLines: &tail, LimitBytes: &limit,
		}).DoRaw(ctx)
		if err == nil && strings.TrimSpace(string(raw)) != "" {
			text = string(raw)
			break
		}
	}
	if text == "" {
		return nil
	}
	lines := strings.Split(strings.TrimRight(text, "\n"), "\n")
	if len(lines) > logTailLines {
		lines = lines[len(lines)-logTailLines:]
	}
	out := []string{"last log lines:"}
	for _, l := range lines {
		// An app's escape sequences must not reach the user's terminal.
		out = append(out, "  "+string(termsafe.Sanitize([]byte(strings.TrimRight(l, "\r")))))
	}
	return out
}

// gateProblem explains a pod whose containers are all ready but whose
// UpToDateCondition gate devloop has not opened for gateGrace: it was
// started while devloop was not running (or could not update it), so it
// is kept out of service rather than serve code older than the workspace.
func gateProblem(pod *corev1.Pod, now time.Time) (problem, bool) {
	gated, open := UpToDateGate(pod)
	if !gated || open || pod.Status.Phase != corev1.PodRunning || len(pod.Status.ContainerStatuses) == 0 {
		return problem{}, false
	}
	for _, st := range pod.Status.ContainerStatuses {
		if !st.Ready {
			return problem{}, false
		}
	}
	since := pod.CreationTimestamp.Time
	for _, c := range pod.Status.Conditions {
		if c.Type == UpToDateCondition && !c.LastTransitionTime.IsZero() {
			since = c.LastTransitionTime.Time
		}
	}
	if now.Sub(since) < gateGrace {
		return problem{}, false
	}
	return problem{pod: pod.Name, kind: "gate",
		reason: "kept out of service until devloop brings its code up to the workspace's (readiness gate " + UpToDateCondition +
			"; a live update since its image): devloop up does it"}, true
}
