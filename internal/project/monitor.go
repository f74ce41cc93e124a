package project

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync/atomic"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"

	"github.com/devloop-dev/devloop/internal/kube"
	"github.com/devloop-dev/devloop/internal/ui"
)

// podMonitor explains pods that go wrong after their rollout (a container
// that starts crash-looping, a pod that goes NotReady, is evicted or
// OOM-killed) once, like a rollout failure, and again only when what is
// wrong changes. While a deploy runs, the rollout wait explains instead.
type podMonitor struct {
	out       *ui.Printer
	cs        kubernetes.Interface
	manifests func() *kube.Manifests
	deploying *atomic.Int32
	live      *liveFeed

	sigs  map[string]string   // pod UID → status signature last explained
	said  map[string][]string // pod UID → problem keys said
	texts map[string][]string // pod UID → its problems' texts (for the live view)
}

func newPodMonitor(out *ui.Printer, cs kubernetes.Interface, manifests func() *kube.Manifests, deploying *atomic.Int32, live *liveFeed) *podMonitor {
	return &podMonitor{out: out, cs: cs, manifests: manifests, deploying: deploying, live: live,
		sigs: map[string]string{}, said: map[string][]string{}, texts: map[string][]string{}}
}

// run looks at the project's pods on every change the shared informers see.
func (m *podMonitor) run(ctx context.Context, inf *kube.Informers, namespace string) {
	wake, cancel := inf.Subscribe()
	defer cancel()
	lister := inf.Factory().Core().V1().Pods().Lister().Pods(namespace)
	for {
		select {
		case <-ctx.Done():
			return
		case <-wake:
		}
		if m.deploying.Load() > 0 {
			continue
		}
		pods, _ := lister.List(labels.Everything())
		m.check(ctx, pods)
	}
}

// check explains what is newly wrong with pods.
func (m *podMonitor) check(ctx context.Context, pods []*corev1.Pod) {
	mf := m.manifests()
	live := map[string]bool{}
	problems := map[string][]string{} // service → problem texts, for the live view
	sort.Slice(pods, func(i, j int) bool { return pods[i].Name < pods[j].Name })
	for _, p := range pods {
		svc := mf.ServiceOf(p)
		if svc == "" || p.DeletionTimestamp != nil {
			continue
		}
		uid := string(p.UID)
		live[uid] = true
		if sig := statusSignature(p); sig != m.sigs[uid] {
			m.sigs[uid] = sig
			var keys, texts []string
			for _, pr := range kube.ExplainPod(ctx, m.cs, p) {
				key := pr.Container + "/" + pr.Kind
				keys, texts = append(keys, key), append(texts, pr.Text)
				if !slices.Contains(m.said[uid], key) {
					m.out.Error(svc, "after its rollout, %s", pr.Text)
				}
			}
			m.said[uid], m.texts[uid] = keys, texts
		}
		problems[svc] = append(problems[svc], m.texts[uid]...)
	}
	for uid := range m.sigs {
		if !live[uid] {
			delete(m.sigs, uid)
			delete(m.said, uid)
			delete(m.texts, uid)
		}
	}
	m.live.problems(problems)
}

// statusSignature is what must change for a pod's problems to be looked at
// again: its phase and reason, and each container's readiness and state
// reasons (not restart counts: a crash loop is one problem).
func statusSignature(p *corev1.Pod) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s/%s", p.Status.Phase, p.Status.Reason)
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady || c.Type == corev1.PodScheduled {
			fmt.Fprintf(&b, "|%s=%s", c.Type, c.Status)
		}
	}
	for _, cs := range append(append([]corev1.ContainerStatus(nil), p.Status.InitContainerStatuses...), p.Status.ContainerStatuses...) {
		fmt.Fprintf(&b, "|%s:%v", cs.Name, cs.Ready)
		if w := cs.State.Waiting; w != nil {
			b.WriteString(":w=" + w.Reason)
		}
		if t := cs.LastTerminationState.Terminated; t != nil {
			b.WriteString(":t=" + t.Reason)
		}
		if cs.RestartCount >= 2 {
			b.WriteString(":restarting")
		}
	}
	return b.String()
}
