package portfwd

import (
	"fmt"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/informers"

	"github.com/devloop-dev/devloop/internal/kube"
)

// target is the result of resolving a Spec against the informer caches.
type target struct {
	pod  *corev1.Pod // nil when no pod is ready
	port int         // container port on pod
	// note says why pod is used although it is not Ready as a whole: the
	// container serving port is ready, another one of the pod is not.
	note string
}

// splitResource parses "kind/name" (kind may be abbreviated: svc, deploy, sts, po).
func splitResource(res string) (kind, name string, err error) {
	k, n, ok := strings.Cut(res, "/")
	if !ok || n == "" {
		return "", "", fmt.Errorf("resource %q: want kind/name, e.g. service/web", res)
	}
	switch strings.ToLower(k) {
	case "service", "services", "svc":
		return "service", n, nil
	case "deployment", "deployments", "deploy":
		return "deployment", n, nil
	case "statefulset", "statefulsets", "sts":
		return "statefulset", n, nil
	case "pod", "pods", "po":
		return "pod", n, nil
	}
	return "", "", fmt.Errorf("resource %q: kind %q is not one of service, deployment, statefulset, pod", res, k)
}

// resolve finds the pod a new connection for spec should go to, and the
// container port on it. A nil pod with a nil error means "not yet".
func resolve(f informers.SharedInformerFactory, spec Spec) (target, error) {
	kind, name, err := splitResource(spec.Resource)
	if err != nil {
		return target{}, err
	}
	pods := f.Core().V1().Pods().Lister().Pods(spec.Namespace)
	var sel labels.Selector
	var svc *corev1.Service
	switch kind {
	case "pod":
		p, err := pods.Get(name)
		if apierrors.IsNotFound(err) {
			return target{}, nil
		}
		if err != nil {
			return target{}, fmt.Errorf("looking up pod %s/%s: %w", spec.Namespace, name, err)
		}
		if usable(p) {
			return target{pod: p, port: spec.Port}, nil
		}
		if note, ok := servingContainerReady(p, spec.Port); ok {
			return target{pod: p, port: spec.Port, note: note}, nil
		}
		return target{}, nil
	case "service":
		s, err := f.Core().V1().Services().Lister().Services(spec.Namespace).Get(name)
		if apierrors.IsNotFound(err) {
			return target{}, nil
		}
		if err != nil {
			return target{}, fmt.Errorf("looking up service %s/%s: %w", spec.Namespace, name, err)
		}
		if len(s.Spec.Selector) == 0 {
			return target{}, fmt.Errorf("service %s/%s has no selector, so it has no pods to forward to", spec.Namespace, name)
		}
		svc = s
		sel = labels.SelectorFromSet(s.Spec.Selector)
	case "deployment":
		d, err := f.Apps().V1().Deployments().Lister().Deployments(spec.Namespace).Get(name)
		if apierrors.IsNotFound(err) {
			return target{}, nil
		}
		if err != nil {
			return target{}, fmt.Errorf("looking up deployment %s/%s: %w", spec.Namespace, name, err)
		}
		if sel, err = selectorOf(d.Spec.Selector); err != nil {
			return target{}, fmt.Errorf("deployment %s/%s: %w", spec.Namespace, name, err)
		}
	case "statefulset":
		s, err := f.Apps().V1().StatefulSets().Lister().StatefulSets(spec.Namespace).Get(name)
		if apierrors.IsNotFound(err) {
			return target{}, nil
		}
		if err != nil {
			return target{}, fmt.Errorf("looking up statefulset %s/%s: %w", spec.Namespace, name, err)
		}
		if sel, err = selectorOf(s.Spec.Selector); err != nil {
			return target{}, fmt.Errorf("statefulset %s/%s: %w", spec.Namespace, name, err)
		}
	}
	list, err := pods.List(sel)
	if err != nil {
		return target{}, fmt.Errorf("listing pods for %s: %w", spec.Resource, err)
	}
	portOn := func(p *corev1.Pod) (int, error) {
		if svc == nil {
			return spec.Port, nil
		}
		return targetPort(svc, p, spec.Port)
	}
	if p := bestPod(list); p != nil {
		port, err := portOn(p)
		if err != nil {
			return target{}, err
		}
		return target{pod: p, port: port}, nil
	}
	// No pod is Ready as a whole: a pod whose container behind the port is
	// ready still serves (a crash-looping sidecar must not cut the user off
	// from the container they work on).
	for _, p := range newestFirst(list) {
		if p.DeletionTimestamp != nil || p.Status.Phase != corev1.PodRunning {
			continue
		}
		port, err := portOn(p)
		if err != nil {
			continue
		}
		if note, ok := servingContainerReady(p, port); ok {
			return target{pod: p, port: port, note: note}, nil
		}
	}
	return target{}, nil
}

// servingContainerReady reports whether the container of p that declares
// container port port is ready although p is not, with a note saying so.
func servingContainerReady(p *corev1.Pod, port int) (string, bool) {
	if p.DeletionTimestamp != nil || p.Status.Phase != corev1.PodRunning {
		return "", false
	}
	if gated, open := kube.UpToDateGate(p); gated && !open {
		return "", false // its code is older than the workspace's: devloop is updating it
	}
	ready := map[string]bool{}
	for _, cs := range p.Status.ContainerStatuses {
		ready[cs.Name] = cs.Ready
	}
	for _, c := range p.Spec.Containers {
		for _, cp := range c.Ports {
			if int(cp.ContainerPort) != port || (cp.Protocol != "" && cp.Protocol != corev1.ProtocolTCP) || !ready[c.Name] {
				continue
			}
			var notReady []string
			for _, o := range p.Spec.Containers {
				if !ready[o.Name] {
					notReady = append(notReady, o.Name)
				}
			}
			if len(notReady) == 0 {
				return fmt.Sprintf("pod not ready yet, though its containers are; container %s serves port %d", c.Name, port), true
			}
			return fmt.Sprintf("pod not ready (container %s is not); container %s, which serves port %d, is",
				strings.Join(notReady, ", "), c.Name, port), true
		}
	}
	return "", false
}

// newestFirst sorts pods newest first (ties broken by name for stability).
func newestFirst(pods []*corev1.Pod) []*corev1.Pod {
	out := append([]*corev1.Pod(nil), pods...)
	sort.Slice(out, func(i, j int) bool {
		ti, tj := out[i].CreationTimestamp, out[j].CreationTimestamp
		if !ti.Equal(&tj) {
			return tj.Before(&ti)
		}
		return out[i].Name < out[j].Name
	})
	return out
}

func selectorOf(ls *metav1.LabelSelector) (labels.Selector, error) {
	if ls == nil {
		return nil, fmt.Errorf("no spec.selector")
	}
	sel, err := metav1.LabelSelectorAsSelector(ls)
	if err != nil {
		return nil, fmt.Errorf("parsing spec.selector: %w", err)
	}
	if sel.Empty() {
		return nil, fmt.Errorf("empty spec.selector")
	}
	return sel, nil
}

// usable reports whether new connections may go to p: running, Ready and
// not terminating.
func usable(p *corev1.Pod) bool {
	if p.DeletionTimestamp != nil || p.Status.Phase != corev1.PodRunning {
		return false
	}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// bestPod picks the newest usable pod (ties broken by name for stability).
func bestPod(pods []*corev1.Pod) *corev1.Pod {
	for _, p := range newestFirst(pods) {
		if usable(p) {
			return p
		}
	}
	return nil
}

// targetPort maps a Service port to the container port on pod, following
// the Service's targetPort (numeric, named, or defaulted to the port).
func targetPort(svc *corev1.Service, pod *corev1.Pod, port int) (int, error) {
	for _, sp := range svc.Spec.Ports {
		if int(sp.Port) != port {
			continue
		}
		tp := sp.TargetPort
		switch {
		case tp.Type == intstr.String && tp.StrVal != "":
			for _, c := range pod.Spec.Containers {
				for _, cp := range c.Ports {
					if cp.Name == tp.StrVal && (cp.Protocol == "" || cp.Protocol == corev1.ProtocolTCP) {
						return int(cp.ContainerPort), nil
					}
				}
			}
			return 0, fmt.Errorf("service %s/%s port %d: targetPort %q is not a named port of pod %s", svc.Namespace, svc.Name, port, tp.StrVal, pod.Name)
		case tp.Type == intstr.Int && tp.IntVal != 0:
			return int(tp.IntVal), nil
		default:
			return port, nil
		}
	}
	var have []string
	for _, sp := range svc.Spec.Ports {
		have = append(have, fmt.Sprint(sp.Port))
	}
	return 0, fmt.Errorf("service %s/%s has no port %d (ports: %s)", svc.Namespace, svc.Name, port, strings.Join(have, ", "))
}
