package project

import (
	"strings"
	"sync/atomic"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/devloop-dev/devloop/internal/kube"
	"github.com/devloop-dev/devloop/internal/ui"
)

func crashingSidecar(restarts int32, reason string) *corev1.Pod {
	p := projPod("web-1", "hello:devloop-1")
	p.UID = types.UID("uid-web-1")
	p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: "sidecar", Image: "busybox"})
	p.Status.Phase = corev1.PodRunning
	p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionFalse}}
	p.Status.ContainerStatuses = []corev1.ContainerStatus{
		{Name: "app", Ready: true, State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}},
		{Name: "sidecar", RestartCount: restarts,
			State:                corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff"}},
			LastTerminationState: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 1, Reason: reason}}},
	}
	return p
}

func TestPodMonitorExplainsOnceAndAgainOnChange(t *testing.T) {
	_, m := twoServices(t)
	out := newOutput()
	view := newFakeView()
	live := newLiveFeed(view, "proj", "devloop")
	var deploying atomic.Int32
	mon := newPodMonitor(ui.NewPrinter(out, false, false), fake.NewClientset(), func() *kube.Manifests { return m }, &deploying, live)

	mon.check(t.Context(), []*corev1.Pod{crashingSidecar(2, "Error")})
	if n := strings.Count(out.String(), `after its rollout, pod web-1: container "sidecar" is in CrashLoopBackOff`); n != 1 {
		t.Fatalf("crash loop explained %d times, want once:\n%s", n, out)
	}
	// More restarts of the same crash loop: nothing new to say.
	mon.check(t.Context(), []*corev1.Pod{crashingSidecar(3, "Error")})
	// Between back-offs the container runs again ("keeps crashing"): the
	// same crash loop, not a new problem.
	running := crashingSidecar(4, "Error")
	running.Status.ContainerStatuses[1].State = corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}
	mon.check(t.Context(), []*corev1.Pod{running})
	mon.check(t.Context(), []*corev1.Pod{crashingSidecar(7, "Error")})
	if n := strings.Count(out.String(), "after its rollout"); n != 1 {
		t.Fatalf("a crash loop's restarts were explained again (%d lines):\n%s", n, out)
	}
	live.mu.Lock()
	trouble := live.trouble["web"]
	live.mu.Unlock()
	if !strings.Contains(trouble, "sidecar") {
		t.Errorf("live view trouble for web = %q, want the sidecar's crash loop", trouble)
	}
	// The pod recovers, then crashes again: said again.
	ok := crashingSidecar(7, "Error")
	ok.Status.Conditions[0].Status = corev1.ConditionTrue
	ok.Status.ContainerStatuses[1] = corev1.ContainerStatus{Name: "sidecar", Ready: true, State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}}
	mon.check(t.Context(), []*corev1.Pod{ok})
	mon.check(t.Context(), []*corev1.Pod{crashingSidecar(9, "OOMKilled")})
	if n := strings.Count(out.String(), "after its rollout"); n != 2 {
		t.Fatalf("a new crash after recovery: %d lines, want 2:\n%s", n, out)
	}
	// Pods of no service are none of its business.
	other := crashingSidecar(2, "Error")
	other.Name, other.UID = "db-0", "uid-db"
	other.Spec.Containers = []corev1.Container{{Name: "db", Image: "postgres:17"}, {Name: "sidecar", Image: "busybox"}}
	mon.check(t.Context(), []*corev1.Pod{other})
	if strings.Contains(out.String(), "db-0") {
		t.Errorf("a pod of no service was explained:\n%s", out)
	}
}
