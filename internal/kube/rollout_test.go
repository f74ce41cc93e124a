package kube

import (
	"context"
	"errors"
	goruntime "runtime"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes/fake"
	clocktesting "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"
)

func TestDeploymentStatus(t *testing.T) {
	dep := func(gen, observed int64, spec, replicas, updated, available int32, conds ...appsv1.DeploymentCondition) *appsv1.Deployment {
		return &appsv1.Deployment{
			ObjectMeta: metav1.ObjectMeta{Name: "web", Generation: gen},
			Spec:       appsv1.DeploymentSpec{Replicas: ptr.To(spec)},
			Status: appsv1.DeploymentStatus{ObservedGeneration: observed, Replicas: replicas,
				UpdatedReplicas: updated, AvailableReplicas: available, Conditions: conds},
		}
	}
	timedOut := appsv1.DeploymentCondition{Type: appsv1.DeploymentProgressing, Status: corev1.ConditionFalse, Reason: "ProgressDeadlineExceeded", Message: `ReplicaSet "web-1" has timed out progressing.`}
	tests := []struct {
		name    string
		d       *appsv1.Deployment
		done    bool
		failed  bool
		msgPart string
	}{
		{"not observed", dep(2, 1, 1, 1, 1, 1), false, false, "spec update to be observed"},
		{"not all updated", dep(1, 1, 3, 3, 1, 1), false, false, "1 out of 3 new replicas"},
		{"old pending termination", dep(1, 1, 1, 2, 1, 1), false, false, "1 old replicas"},
		{"not available", dep(1, 1, 2, 2, 2, 1), false, false, "1 of 2 updated replicas are available"},
		{"done", dep(3, 3, 2, 2, 2, 2), true, false, "successfully rolled out"},
		{"scaled to zero", dep(1, 1, 0, 0, 0, 0), true, false, "successfully"},
		{"deadline exceeded", dep(1, 1, 1, 1, 1, 0, timedOut), false, true, "exceeded its progress deadline"},
		{"deadline ignored when not observed", dep(2, 1, 1, 1, 1, 0, timedOut), false, false, "observed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			msg, done, err := deploymentStatus(tt.d)
			if done != tt.done || (err != nil) != tt.failed {
				t.Fatalf("done=%v err=%v, want done=%v failed=%v", done, err, tt.done, tt.failed)
			}
			if err != nil {
				msg = err.Error()
			}
			if !strings.Contains(msg, tt.msgPart) {
				t.Errorf("message %q does not contain %q", msg, tt.msgPart)
			}
		})
	}
}

func TestStatefulSetAndDaemonSetStatus(t *testing.T) {
	sts := func(gen, observed int64, replicas, ready int32, cur, upd string) *appsv1.StatefulSet {
		return &appsv1.StatefulSet{
			ObjectMeta: metav1.ObjectMeta{Generation: gen},
			Spec:       appsv1.StatefulSetSpec{Replicas: ptr.To(replicas), UpdateStrategy: appsv1.StatefulSetUpdateStrategy{Type: appsv1.RollingUpdateStatefulSetStrategyType}},
			Status:     appsv1.StatefulSetStatus{ObservedGeneration: observed, ReadyReplicas: ready, CurrentRevision: cur, UpdateRevision: upd},
		}
	}
	for name, tt := range map[string]struct {
		s    *appsv1.StatefulSet
		done bool
	}{
		"never observed":   {sts(1, 0, 1, 1, "a", "a"), false},
		"not ready":        {sts(1, 1, 2, 1, "a", "a"), false},
		"revision pending": {sts(1, 1, 1, 1, "a", "b"), false},
		"done":             {sts(1, 1, 1, 1, "b", "b"), true},
	} {
		if _, done, err := statefulSetStatus(tt.s); err != nil || done != tt.done {
			t.Errorf("statefulset %s: done=%v err=%v, want %v", name, done, err, tt.done)
		}
	}
	ds := func(gen, observed int64, desired, updated, available int32) *appsv1.DaemonSet {
		return &appsv1.DaemonSet{
			ObjectMeta: metav1.ObjectMeta{Generation: gen},
			Spec:       appsv1.DaemonSetSpec{UpdateStrategy: appsv1.DaemonSetUpdateStrategy{Type: appsv1.RollingUpdateDaemonSetStrategyType}},
			Status:     appsv1.DaemonSetStatus{ObservedGeneration: observed, DesiredNumberScheduled: desired, UpdatedNumberScheduled: updated, NumberAvailable: available},
		}
	}
	for name, tt := range map[string]struct {
		d    *appsv1.DaemonSet
		done bool
	}{
		"not observed":  {ds(2, 1, 1, 1, 1), false},
		"not updated":   {ds(1, 1, 2, 1, 2), false},
		"not available": {ds(1, 1, 2, 2, 1), false},
		"done":          {ds(1, 1, 2, 2, 2), true},
	} {
		if _, done, err := daemonSetStatus(tt.d); err != nil || done != tt.done {
			t.Errorf("daemonset %s: done=%v err=%v, want %v", name, done, err, tt.done)
		}
	}
}

var now = time.Date(2026, 8, 1, 12, 0, 0, 0, time.UTC)

// rollingDeployment returns a deployment at revision 2 whose new ReplicaSet
// has pod-template-hash "new", plus that ReplicaSet.
func rollingDeployment(name string, available int32) (*appsv1.Deployment, *appsv1.ReplicaSet) {
	sel := map[string]string{"app": name}
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "dev", UID: "dep-uid", Generation: 2,
			Annotations: map[string]string{"deployment.kubernetes.io/revision": "2"}},
		Spec:   appsv1.DeploymentSpec{Replicas: ptr.To(int32(1)), Selector: &metav1.LabelSelector{MatchLabels: sel}},
		Status: appsv1.DeploymentStatus{ObservedGeneration: 2, Replicas: 1, UpdatedReplicas: 1, AvailableReplicas: available},
	}
	rs := &appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{
		Name: name + "-new", Namespace: "dev",
		Labels:          map[string]string{"app": name, "pod-template-hash": "new"},
		Annotations:     map[string]string{"deployment.kubernetes.io/revision": "2"},
		OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "Deployment", Name: name, UID: "dep-uid", Controller: ptr.To(true)}},
	}}
	return d, rs
}

func pod(name, app, hash string, spec corev1.PodSpec, status corev1.PodStatus) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "dev", UID: types.UID("uid-" + name),
			Labels: map[string]string{"app": app, "pod-template-hash": hash}, CreationTimestamp: metav1.NewTime(now.Add(-time.Hour))},
		Spec: spec, Status: status,
	}
}

func appSpec(image string, probe *corev1.Probe) corev1.PodSpec {
	return corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: image, ReadinessProbe: probe}}}
}

func crashing(exit int32, restarts int32) corev1.PodStatus {
	return corev1.PodStatus{Phase: corev1.PodRunning, ContainerStatuses: []corev1.ContainerStatus{{
		Name: "app", RestartCount: restarts,
		State:                corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff", Message: "back-off 20s restarting failed container"}},
		LastTerminationState: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: exit, Reason: "Error"}},
	}}}
}

func waiting(reason, msg string) corev1.PodStatus {
	return corev1.PodStatus{Phase: corev1.PodPending, ContainerStatuses: []corev1.ContainerStatus{{
		Name: "app", State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: reason, Message: msg}},
	}}}
}

var httpProbe = &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz", Port: intstr.FromInt32(8080)}}}

func TestWaitRolloutFailsEarly(t *testing.T) {
	unschedulable := corev1.PodStatus{Phase: corev1.PodPending, Conditions: []corev1.PodCondition{{
		Type: corev1.PodScheduled, Status: corev1.ConditionFalse, Reason: "Unschedulable",
		Message: "0/1 nodes are available: 1 Insufficient cpu.", LastTransitionTime: metav1.NewTime(now.Add(-time.Minute)),
	}}}
	notReady := corev1.PodStatus{Phase: corev1.PodRunning, ContainerStatuses: []corev1.ContainerStatus{{
		Name: "app", Ready: false,
		State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: metav1.NewTime(now.Add(-2 * time.Minute))}},
	}}}
	probeEvent := &corev1.Event{
		ObjectMeta:     metav1.ObjectMeta{Name: "ev1", Namespace: "dev"},
		InvolvedObject: corev1.ObjectReference{Kind: "Pod", Name: "web-new-1", Namespace: "dev", UID: "uid-web-new-1"},
		Reason:         "Unhealthy", Type: "Warning", LastTimestamp: metav1.NewTime(now.Add(-10 * time.Second)),
		Message: "Readiness probe failed: HTTP probe failed with statuscode: 500",
	}
	tests := []struct {
		name  string
		pods  []runtime.Object
		want  string
		extra []runtime.Object
	}{
		{
			name: "crash loop, ignoring the previous revision's pods",
			pods: []runtime.Object{
				pod("web-new-1", "web", "new", appSpec("hello:devloop-abc", nil), crashing(3, 2)),
				pod("web-a-old", "web", "old", appSpec("hello:devloop-old", nil), waiting("ImagePullBackOff", "")),
			},
			want: "deployment/web is not ready: container \"app\" is in CrashLoopBackOff (exit code 3, restarted 2 times)\n" +
				"  pod: web-new-1\n  last log lines:\n    fake logs",
		},
		{
			name: "image not loaded",
			pods: []runtime.Object{pod("web-new-1", "web", "new", appSpec("hello:devloop-abc", nil),
				waiting("ImagePullBackOff", `Back-off pulling image "hello:devloop-abc"`))},
			want: "deployment/web is not ready: container \"app\" cannot start: image \"hello:devloop-abc\" was not loaded into the node (ImagePullBackOff)\n" +
				"  pod: web-new-1\n" +
				"  devloop loads the images it builds into the kind nodes and no registry is used, so an image that was not loaded cannot be pulled.\n" +
				"  Check that a service in devloop.yaml builds this image (services[].image), or load it yourself with `kind load docker-image`.\n" +
				"  kubelet: Back-off pulling image \"hello:devloop-abc\"",
		},
		{
			name: "unschedulable",
			pods: []runtime.Object{pod("web-new-1", "web", "new", appSpec("x", nil), unschedulable)},
			want: "deployment/web is not ready: cannot be scheduled: 0/1 nodes are available: 1 Insufficient cpu.\n  pod: web-new-1",
		},
		{
			name: "config error",
			pods: []runtime.Object{pod("web-new-1", "web", "new", appSpec("x", nil), waiting("CreateContainerConfigError", `secret "db" not found`))},
			want: "deployment/web is not ready: container \"app\" cannot be created (CreateContainerConfigError): secret \"db\" not found\n  pod: web-new-1",
		},
		{
			name:  "readiness probe failing",
			pods:  []runtime.Object{pod("web-new-1", "web", "new", appSpec("x", httpProbe), notReady)},
			extra: []runtime.Object{probeEvent},
			want: "deployment/web is not ready: container \"app\" is running but not ready: readiness probe (HTTP GET :8080/healthz) keeps failing\n" +
				"  pod: web-new-1\n  last event: Readiness probe failed: HTTP probe failed with statuscode: 500",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, rs := rollingDeployment("web", 0)
			objs := append([]runtime.Object{d, rs}, tt.pods...)
			cs := fake.NewClientset(append(objs, tt.extra...)...)
			rw := rolloutWaiter{cs: cs, clock: clocktesting.NewFakeClock(now), poll: time.Second}
			err := rw.wait(context.Background(), Workload{Kind: "Deployment", Namespace: "dev", Name: "web"}, time.Minute)
			var re *RolloutError
			if !errors.As(err, &re) {
				t.Fatalf("err = %v (%T), want *RolloutError", err, err)
			}
			if got := err.Error(); got != tt.want {
				t.Errorf("error:\n%s\nwant:\n%s", got, tt.want)
			}
		})
	}
}

func TestWaitRolloutDone(t *testing.T) {
	d, rs := rollingDeployment("web", 1)
	cs := fake.NewClientset(d, rs, pod("web-old-1", "web", "old", appSpec("x", nil), crashing(1, 5)))
	rw := rolloutWaiter{cs: cs, clock: clocktesting.NewFakeClock(now), poll: time.Second}
	if err := rw.wait(context.Background(), Workload{Kind: "Deployment", Namespace: "dev", Name: "web"}, time.Minute); err != nil {
		t.Fatalf("wait: %v", err)
	}
}

// A container without a readiness probe is Ready for an instant before it
// crashes; the Deployment's counts may say "available" then. The rollout is
// not done while a current pod is not ready, and the crash is explained.
func TestWaitRolloutAvailableButCrashing(t *testing.T) {
	d, rs := rollingDeployment("web", 1)
	cs := fake.NewClientset(d, rs, pod("web-new-1", "web", "new", appSpec("x", nil), crashing(3, 2)))
	rw := rolloutWaiter{cs: cs, clock: clocktesting.NewFakeClock(now), poll: time.Second}
	err := rw.wait(context.Background(), Workload{Kind: "Deployment", Namespace: "dev", Name: "web"}, time.Minute)
	if err == nil || !strings.Contains(err.Error(), "CrashLoopBackOff") {
		t.Fatalf("wait = %v, want the crash loop explained", err)
	}
}

// waitPastTimeout waits for deployment dev/web with a 30 s timeout and
// moves fc past it once the wait sleeps, returning the wait's error.
func waitPastTimeout(rw rolloutWaiter, fc *clocktesting.FakeClock) error {
	done := make(chan error, 1)
	go func() {
		done <- rw.wait(context.Background(), Workload{Kind: "Deployment", Namespace: "dev", Name: "web"}, 30*time.Second)
	}()
	for !fc.HasWaiters() {
		goruntime.Gosched()
	}
	fc.Step(31 * time.Second)
	return <-done
}

func TestWaitRolloutTimeout(t *testing.T) {
	d, rs := rollingDeployment("web", 0)
	// Running, not ready, probe failing but no event yet: not fatal, shown on timeout.
	notReady := corev1.PodStatus{Phase: corev1.PodRunning, ContainerStatuses: []corev1.ContainerStatus{{
		Name: "app", State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: metav1.NewTime(now.Add(-time.Hour))}},
	}}}
	cs := fake.NewClientset(d, rs, pod("web-new-1", "web", "new", appSpec("x", httpProbe), notReady))
	fc := clocktesting.NewFakeClock(now)
	var reported []string
	rw := rolloutWaiter{cs: cs, clock: fc, poll: time.Second, report: func(l string) { reported = append(reported, l) }}
	err := waitPastTimeout(rw, fc)
	want := "deployment/web is not ready: timed out after 30s: 0 of 1 updated replicas are available\n" +
		"  pod web-new-1: container \"app\" is running but not ready: readiness probe (HTTP GET :8080/healthz) keeps failing"
	if err == nil || err.Error() != want {
		t.Errorf("error:\n%v\nwant:\n%s", err, want)
	}
	// What it waited for was reported once (the same state is not repeated).
	wantReport := "0 of 1 updated replicas are available; pod web-new-1: container \"app\" is running but not ready: readiness probe (HTTP GET :8080/healthz) keeps failing"
	if len(reported) != 1 || reported[0] != wantReport {
		t.Errorf("reported %q, want [%q]", reported, wantReport)
	}
}

func TestWaitRolloutJobFailedAndPodReady(t *testing.T) {
	ctx := context.Background()
	readyPod := pod("p", "p", "", appSpec("x", nil), corev1.PodStatus{Phase: corev1.PodRunning,
		Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}})
	cs := fake.NewClientset(readyPod)
	rw := rolloutWaiter{cs: cs, clock: clocktesting.NewFakeClock(now), poll: time.Second}
	if err := rw.wait(ctx, Workload{Kind: "Pod", Namespace: "dev", Name: "p"}, time.Minute); err != nil {
		t.Errorf("ready pod: %v", err)
	}
	if err := rw.wait(ctx, Workload{Kind: "CronJob", Namespace: "dev", Name: "c"}, time.Minute); err != nil {
		t.Errorf("cronjob: %v", err)
	}
}

func TestDiagnose(t *testing.T) {
	cs := fake.NewClientset(
		pod("a", "web", "h", appSpec("x", nil), crashing(137, 4)),
		pod("b", "other", "h", appSpec("x", nil), crashing(1, 1)),
	)
	got := Diagnose(context.Background(), cs, "dev", labels.SelectorFromSet(labels.Set{"app": "web"}))
	want := "pod a: container \"app\" is in CrashLoopBackOff (exit code 137, restarted 4 times)\n  last log lines:\n    fake logs"
	if len(got) != 1 || got[0] != want {
		t.Errorf("Diagnose = %q\nwant [%q]", got, want)
	}
}

func TestDiagnoseAClosedUpToDateGate(t *testing.T) {
	spec := appSpec("x", nil)
	spec.ReadinessGates = []corev1.PodReadinessGate{{ConditionType: UpToDateCondition}}
	ready := corev1.PodStatus{Phase: corev1.PodRunning, ContainerStatuses: []corev1.ContainerStatus{{Name: "app", Ready: true}}}
	opened := ready
	opened.Conditions = []corev1.PodCondition{{Type: UpToDateCondition, Status: corev1.ConditionTrue}}
	fresh := pod("c", "web", "h", spec, ready)
	fresh.CreationTimestamp = metav1.NewTime(time.Now())
	cs := fake.NewClientset(pod("a", "web", "h", spec, ready), pod("b", "web", "h", spec, opened), fresh)
	got := Diagnose(context.Background(), cs, "dev", labels.SelectorFromSet(labels.Set{"app": "web"}))
	if len(got) != 1 || !strings.HasPrefix(got[0], "pod a: kept out of service until devloop brings its code up") {
		t.Errorf("Diagnose = %q; want only the pod whose gate stayed closed", got)
	}
}

func TestUnreadyPodsCountsContainersThatJustStarted(t *testing.T) {
	running := func(ago time.Duration) corev1.PodStatus {
		return corev1.PodStatus{Phase: corev1.PodRunning, ContainerStatuses: []corev1.ContainerStatus{{
			Name: "app", Ready: true,
			State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: metav1.NewTime(now.Add(-ago))}},
		}}}
	}
	tests := []struct {
		name string
		pod  *corev1.Pod
		want int
	}{
		{"just started, no probe", pod("a", "web", "new", appSpec("x", nil), running(100*time.Millisecond)), 1},
		{"running a while, no probe", pod("a", "web", "new", appSpec("x", nil), running(time.Minute)), 0},
		{"just started, probe says ready", pod("a", "web", "new", appSpec("x", httpProbe), running(100*time.Millisecond)), 0},
		{"crash looping", pod("a", "web", "new", appSpec("x", nil), crashing(3, 2)), 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rw := rolloutWaiter{cs: fake.NewClientset(tt.pod), clock: clocktesting.NewFakeClock(now)}
			sel := labels.SelectorFromSet(labels.Set{"app": "web"})
			if got := rw.unreadyPods(context.Background(), "dev", sel, nil); got != tt.want {
				t.Fatalf("unreadyPods = %d, want %d", got, tt.want)
			}
		})
	}
}

// While a surge pod is not ready yet, kubectl's "old replicas are pending
// termination" is misleading: the new pod is what the rollout waits for.
func TestRolloutWaitsForTheNewPodNotTheOld(t *testing.T) {
	d, rs := rollingDeployment("web", 1)
	d.Status.Replicas = 2 // the old pod and the surge pod
	starting := corev1.PodStatus{Phase: corev1.PodRunning, ContainerStatuses: []corev1.ContainerStatus{{
		Name: "app", State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: metav1.NewTime(now.Add(-3 * time.Second))}},
	}}}
	ready := corev1.PodStatus{Phase: corev1.PodRunning, ContainerStatuses: []corev1.ContainerStatus{{
		Name: "app", Ready: true, State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: metav1.NewTime(now.Add(-time.Hour))}},
	}}}
	cs := fake.NewClientset(d, rs,
		pod("web-new-1", "web", "new", appSpec("x", httpProbe), starting),
		pod("web-old-1", "web", "old", appSpec("x", httpProbe), ready))
	rw := rolloutWaiter{cs: cs, clock: clocktesting.NewFakeClock(now), poll: time.Second}
	st, err := rw.check(context.Background(), Workload{Kind: "Deployment", Namespace: "dev", Name: "web"})
	if err != nil || st.done || st.failure != nil {
		t.Fatalf("check = %+v, %v", st, err)
	}
	if want := "1 new pod(s) not ready yet (the old ones keep serving until they are)"; st.msg != want {
		t.Errorf("msg %q, want %q", st.msg, want)
	}
}

// A container that runs again after its node restarted (the Docker engine
// behind the kind node restarted twice) is not "crashing": the kubelet
// recorded its end as reason Unknown, exit code 255. A real crash still is.
func TestNodeRestartIsNotACrash(t *testing.T) {
	status := func(reason string, exit int32) corev1.ContainerStatus {
		return corev1.ContainerStatus{
			Name: "app", Ready: true, RestartCount: 2,
			State:                corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: metav1.NewTime(now.Add(-time.Minute))}},
			LastTerminationState: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: exit, Reason: reason}},
		}
	}
	p := pod("web-1", "web", "h", appSpec("x", nil), corev1.PodStatus{Phase: corev1.PodRunning})
	d := diagnoser{cs: fake.NewClientset(p), now: func() time.Time { return now }}
	spec := p.Spec.Containers[0]
	if got, bad := d.container(context.Background(), p, spec, status("Unknown", 255), now); bad {
		t.Errorf("a node restart diagnosed as %q", got.reason)
	}
	if got, bad := d.container(context.Background(), p, spec, status("Error", 255), now); !bad || !strings.Contains(got.reason, "keeps crashing") {
		t.Errorf("a crash with exit 255: %q, %v", got.reason, bad)
	}
}

// A Secret the kubelet's cache had not synced in time (kubernetes#117972,
// common on a busy node right after a down) is retried by the kubelet: not
// a failure while the pod is young, one once it has lasted retryGrace.
// "secret not found" stays a failure at once (the config error case above).
func TestWaitRolloutWaitsOutAKubeletRetry(t *testing.T) {
	const msg = "failed to sync secret cache: timed out waiting for the condition"
	young := pod("web-new-1", "web", "new", appSpec("x", nil), waiting("CreateContainerConfigError", msg))
	young.CreationTimestamp = metav1.NewTime(now.Add(-5 * time.Second))
	d, rs := rollingDeployment("web", 0)
	fc := clocktesting.NewFakeClock(now)
	rw := rolloutWaiter{cs: fake.NewClientset(d, rs, young), clock: fc, poll: time.Second}
	err := waitPastTimeout(rw, fc)
	want := "deployment/web is not ready: timed out after 30s: 0 of 1 updated replicas are available\n" +
		"  pod web-new-1: container \"app\" cannot be created (CreateContainerConfigError): " + msg + " (the kubelet tries again)"
	if err == nil || err.Error() != want {
		t.Errorf("young pod: error:\n%v\nwant:\n%s", err, want)
	}

	d, rs = rollingDeployment("web", 0)
	old := pod("web-new-1", "web", "new", appSpec("x", nil), waiting("CreateContainerConfigError", msg)) // an hour old
	rw = rolloutWaiter{cs: fake.NewClientset(d, rs, old), clock: clocktesting.NewFakeClock(now), poll: time.Second}
	err = rw.wait(context.Background(), Workload{Kind: "Deployment", Namespace: "dev", Name: "web"}, time.Minute)
	want = "deployment/web is not ready: container \"app\" cannot be created (CreateContainerConfigError): " + msg + "\n  pod: web-new-1"
	if err == nil || err.Error() != want {
		t.Errorf("old pod: error:\n%v\nwant:\n%s", err, want)
	}
}

func TestRetriedByKubelet(t *testing.T) {
	tests := []struct {
		reason, msg string
		want        bool
	}{
		{"CreateContainerConfigError", "failed to sync secret cache: timed out waiting for the condition", true},
		{"CreateContainerConfigError", "failed to sync configmap cache: timed out waiting for the condition", true},
		{"CreateContainerConfigError", `secret "db" not found`, false},
		{"CreateContainerConfigError", `couldn't find key password in Secret dev/db`, false},
		{"CreateContainerError", "context deadline exceeded", true},
		{"CreateContainerError", `failed to reserve container name "app_web": name is reserved`, true},
		{"CreateContainerError", "failed to create containerd container: mount source path does not exist", false},
		{"PostStartHookError", "context deadline exceeded", false}, // the app's hook hangs
		{"RunContainerError", "context deadline exceeded", false},
	}
	for _, tt := range tests {
		if got := retriedByKubelet(tt.reason, tt.msg); got != tt.want {
			t.Errorf("retriedByKubelet(%s, %q) = %v, want %v", tt.reason, tt.msg, got, tt.want)
		}
	}
	// The grace counts from when the containers could be created: after the
	// init containers of an hour-old pod that waited for its database.
	p := pod("web-new-1", "web", "new", appSpec("x", nil), waiting("CreateContainerConfigError", "failed to sync secret cache: timed out"))
	p.Status.Conditions = []corev1.PodCondition{
		{Type: corev1.PodReadyToStartContainers, Status: corev1.ConditionTrue, LastTransitionTime: metav1.NewTime(now.Add(-50 * time.Minute))},
		{Type: corev1.PodInitialized, Status: corev1.ConditionTrue, LastTransitionTime: metav1.NewTime(now.Add(-5 * time.Second))},
	}
	if got := containersSince(p); !got.Equal(now.Add(-5 * time.Second)) {
		t.Errorf("containersSince = %s, want the Initialized condition's %s", got, now.Add(-5*time.Second))
	}
	d := diagnoser{cs: fake.NewClientset(), now: func() time.Time { return now }}
	if probs := d.pod(context.Background(), p); len(probs) != 1 || probs[0].fatal {
		t.Errorf("problems = %+v, want one that is not fatal yet", probs)
	}
}
