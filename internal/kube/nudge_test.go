package kube

import (
	"context"
	goruntime "runtime"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	clocktesting "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"
)

var appsv1Deployments = appsv1.SchemeGroupVersion.WithResource("deployments")

// startedPod is a pod whose one container started `up` before now, running
// and not ready, with a readiness probe of the given period and delay.
func startedPod(name string, up time.Duration, period, delay int32) *corev1.Pod {
	probe := *httpProbe
	probe.PeriodSeconds, probe.InitialDelaySeconds = period, delay
	return pod(name, "web", "new", appSpec("x", &probe), corev1.PodStatus{Phase: corev1.PodRunning,
		ContainerStatuses: []corev1.ContainerStatus{{Name: "app", Started: ptr.To(true),
			State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: metav1.NewTime(now.Add(-up))}}}}})
}

// patches counts the nudge patches per pod.
func patches(cs *fake.Clientset) map[string]int {
	n := map[string]int{}
	for _, a := range cs.Actions() {
		if p, ok := a.(k8stesting.PatchAction); ok && a.GetResource().Resource == "pods" {
			n[p.GetName()]++
		}
	}
	return n
}

func TestNudgeWhichPods(t *testing.T) {
	deleting := startedPod("deleting", 10*time.Millisecond, 1, 0)
	deleting.DeletionTimestamp = ptr.To(metav1.NewTime(now))
	ready := startedPod("ready", 10*time.Millisecond, 1, 0)
	ready.Status.ContainerStatuses[0].Ready = true
	noProbe := startedPod("no-probe", 10*time.Millisecond, 1, 0)
	noProbe.Spec.Containers[0].ReadinessProbe = nil
	notStarted := startedPod("not-started", 10*time.Millisecond, 1, 0)
	notStarted.Status.ContainerStatuses[0].Started = ptr.To(false)
	pending := startedPod("pending", 10*time.Millisecond, 1, 0)
	pending.Status.Phase = corev1.PodPending

	tests := []struct {
		pod  *corev1.Pod
		want bool
	}{
		{startedPod("just-started", 10*time.Millisecond, 1, 0), true},
		{startedPod("default-period", 9*time.Second, 0, 0), true},             // periodSeconds unset: 10 s
		{startedPod("past-first-period", 1500*time.Millisecond, 1, 0), false}, // the kubelet's timer has fired
		{startedPod("in-initial-delay", 2*time.Second, 1, 5), false},          // the probe may not run yet
		{startedPod("after-initial-delay", 5200*time.Millisecond, 1, 5), true},
		{deleting, false}, {ready, false}, {noProbe, false}, {notStarted, false}, {pending, false},
	}
	for _, tt := range tests {
		t.Run(tt.pod.Name, func(t *testing.T) {
			cs := fake.NewClientset(tt.pod)
			n := newReadinessNudger(cs, clocktesting.NewFakeClock(now))
			again := n.nudge(context.Background(), []corev1.Pod{*tt.pod})
			got := patches(cs)[tt.pod.Name] == 1
			if got != tt.want {
				t.Fatalf("nudged=%v, want %v", got, tt.want)
			}
			if tt.want != (again > 0) {
				t.Errorf("look again in %s, want a wake-up only after a nudge", again)
			}
			if !tt.want {
				return
			}
			p, err := cs.CoreV1().Pods("dev").Get(context.Background(), tt.pod.Name, metav1.GetOptions{})
			if err != nil || p.Annotations[NudgeAnnotation] != "1" {
				t.Errorf("annotation after one nudge: %v (err %v)", p.Annotations, err)
			}
		})
	}
}

func TestNudgeBacksOffAndStops(t *testing.T) {
	p := startedPod("web-1", 0, 10, 0)
	cs := fake.NewClientset(p)
	fc := clocktesting.NewFakeClock(now)
	n := newReadinessNudger(cs, fc)
	ctx := context.Background()

	var waits []time.Duration
	for i := 0; i < 20; i++ {
		again := n.nudge(ctx, []corev1.Pod{*p})
		if i == 0 || again != waits[len(waits)-1] {
			waits = append(waits, again)
		}
		if again == 0 {
			break
		}
		// Events in between do not add nudges before the backoff allows.
		if n.nudge(ctx, []corev1.Pod{*p}); patches(cs)["web-1"] != len(waits) && again != 0 {
			t.Fatalf("nudged again before the backoff: %d patches after %d rounds", patches(cs)["web-1"], len(waits))
		}
		fc.Step(again)
	}
	want := []time.Duration{250 * time.Millisecond, 500 * time.Millisecond, time.Second, 2 * time.Second, 0}
	if len(waits) != len(want) {
		t.Fatalf("waits %v, want %v", waits, want)
	}
	for i := range want {
		if waits[i] != want[i] {
			t.Fatalf("waits %v, want %v", waits, want)
		}
	}
	if got := patches(cs)["web-1"]; got != nudgeMax {
		t.Errorf("%d nudges, want %d", got, nudgeMax)
	}
}

// TestWaitRolloutNudgeMakesReady plays the kubelet: a pod whose probe failed
// at start becomes ready when it is re-probed, which a metadata change to
// the pod triggers. The rollout is seen done without waiting for the poll.
func TestWaitRolloutNudgeMakesReady(t *testing.T) {
	d, rs := rollingDeployment("web", 0)
	p := startedPod("web-new-1", 10*time.Millisecond, 1, 0)
	p.Namespace = "dev"
	cs := fake.NewClientset(d, rs, p)
	cs.PrependReactor("patch", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
		// The re-probe succeeds: the pod and the deployment become ready.
		pod, _ := cs.Tracker().Get(corev1.SchemeGroupVersion.WithResource("pods"), "dev", "web-new-1")
		ready := pod.(*corev1.Pod).DeepCopy()
		ready.Status.ContainerStatuses[0].Ready = true
		ready.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}
		if err := cs.Tracker().Update(corev1.SchemeGroupVersion.WithResource("pods"), ready, "dev"); err != nil {
			return true, nil, err
		}
		dep := d.DeepCopy()
		dep.Status.AvailableReplicas = 1
		return true, ready, cs.Tracker().Update(appsv1Deployments, dep, "dev")
	})
	// A poll far longer than the test: the nudge's own wake-up (250 ms)
	// is what looks again.
	fc := clocktesting.NewFakeClock(now)
	rw := rolloutWaiter{cs: cs, clock: fc, poll: time.Hour}
	rw.nudger = newReadinessNudger(cs, fc)
	done := make(chan error, 1)
	go func() {
		done <- rw.wait(context.Background(), Workload{Kind: "Deployment", Namespace: "dev", Name: "web"}, time.Minute)
	}()
	for !fc.HasWaiters() {
		goruntime.Gosched()
	}
	fc.Step(nudgeFirst)
	if err := <-done; err != nil {
		t.Fatalf("wait: %v", err)
	}
	if got := patches(cs)["web-new-1"]; got != 1 {
		t.Errorf("%d nudges, want 1", got)
	}
}
