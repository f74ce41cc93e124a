// Package status reports what a project's services are doing in the
// cluster, without running the dev loop: readiness, restarts, the running
// image, the URLs to open and what is wrong.
package status

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/devloop-dev/devloop/internal/cluster"
	"github.com/devloop-dev/devloop/internal/config"
	"github.com/devloop-dev/devloop/internal/kube"
)

// Report is the state of one project in its cluster.
type Report struct {
	Project string `json:"project"`
	Cluster string `json:"cluster"`
	// Context is the kubeconfig context of the cluster ("kind-<cluster>").
	Context        string    `json:"context"`
	ClusterRunning bool      `json:"clusterRunning"`
	Services       []Service `json:"services"`
	// Ingress lists the URLs the ingress serves, one per Ingress rule host.
	Ingress []string `json:"ingress"`
	// Forwards are the port-forwards devloop up keeps while it runs.
	Forwards []Forward `json:"forwards"`
}

// Service is the state of one devloop service: the workloads running its image.
type Service struct {
	Name string `json:"name"`
	// Image is the image ref the cluster runs ("" when nothing is deployed).
	Image    string `json:"image"`
	Ready    int    `json:"ready"`
	Desired  int    `json:"desired"`
	Restarts int    `json:"restarts"`
	// LiveUpdated counts the pods whose process devloop restarted with code
	// newer than their image (sync rules with restart: true): the image lags.
	LiveUpdated int `json:"liveUpdated"`
	// Workloads are kubectl-style names ("deployment/hello") of the
	// manifests' workloads whose pod templates use the service's image.
	Workloads []string `json:"workloads"`
	// Problems explain what keeps pods from running (see kube.Diagnose);
	// entries may span several lines.
	Problems []string `json:"problems"`
}

// Forward is one port-forward of a service.
type Forward struct {
	// Name is the devloop service the forward belongs to.
	Name string `json:"name"`
	// URL is where to open it, e.g. "http://127.0.0.1:18080/".
	URL string `json:"url"`
	// Target is what it reaches, e.g. "service/hello:80".
	Target string `json:"target"`
}

// NotDeployed is the problem reported for a workload missing from the cluster.
const NotDeployed = "not deployed (run devloop up)"

// Collect builds the Report of cfg's services from their manifests m
// (kube.Prepare: which workloads run which service) and the cluster behind
// cs. cs is nil when the cluster is not running: the report then says so
// and is built from cfg and m alone. On error (the cluster could not be
// read) the returned Report still holds everything known from cfg and m.
func Collect(ctx context.Context, cs kubernetes.Interface, cfg *config.Config, m *kube.Manifests) (Report, error) {
	r := Report{
		Project:        cfg.Name,
		Cluster:        cfg.Cluster.Name,
		Context:        cluster.ContextName(cfg.Cluster.Name),
		ClusterRunning: cs != nil,
		Services:       []Service{},
		Ingress:        m.IngressURLs,
		Forwards:       forwards(cfg),
	}
	for _, svc := range cfg.Services {
		s := Service{Name: svc.Name, Workloads: []string{}, Problems: []string{}}
		var mine []kube.Workload
		for _, w := range m.Services[svc.Name] {
			switch w.Kind {
			case "Deployment", "StatefulSet", "DaemonSet":
				mine = append(mine, w)
				s.Workloads = append(s.Workloads, w.String())
			}
		}
		if len(mine) == 0 {
			s.Problems = append(s.Problems, fmt.Sprintf("no Deployment, StatefulSet or DaemonSet in the manifests uses image %q", svc.Image))
		}
		for _, w := range mine {
			if cs == nil {
				s.Desired += m.Replicas(w)
				continue
			}
			if err := collectWorkload(ctx, cs, &s, m, w, svc.Image, len(mine) > 1); err != nil {
				r.Services = append(r.Services, s)
				return r, err
			}
		}
		r.Services = append(r.Services, s)
	}
	return r, nil
}

// imageIn returns the first image of spec's containers (then init
// containers) in repository repo, or "".
func imageIn(spec corev1.PodSpec, repo string) string {
	for _, list := range [][]corev1.Container{spec.Containers, spec.InitContainers} {
		for _, c := range list {
			if c.Image != "" && kube.SameRepo(c.Image, repo) {
				return c.Image
			}
		}
	}
	return ""
}

func replicas(r *int32) int {
	if r == nil {
		return 1
	}
	return int(*r)
}

// live is what Collect needs from a workload in the cluster.
type live struct {
	desired, ready int
	spec           corev1.PodSpec
	selector       *metav1.LabelSelector
}

func getLive(ctx context.Context, cs kubernetes.Interface, w kube.Workload) (live, error) {
	apps := cs.AppsV1()
	switch w.Kind {
	case "Deployment":
		d, err := apps.Deployments(w.Namespace).Get(ctx, w.Name, metav1.GetOptions{})
		if err != nil {
			return live{}, err
		}
		return live{replicas(d.Spec.Replicas), int(d.Status.ReadyReplicas), d.Spec.Template.Spec, d.Spec.Selector}, nil
	case "StatefulSet":
		s, err := apps.StatefulSets(w.Namespace).Get(ctx, w.Name, metav1.GetOptions{})
		if err != nil {
			return live{}, err
		}
		return live{replicas(s.Spec.Replicas), int(s.Status.ReadyReplicas), s.Spec.Template.Spec, s.Spec.Selector}, nil
	case "DaemonSet":
		d, err := apps.DaemonSets(w.Namespace).Get(ctx, w.Name, metav1.GetOptions{})
		if err != nil {
			return live{}, err
		}
		return live{int(d.Status.DesiredNumberScheduled), int(d.Status.NumberReady), d.Spec.Template.Spec, d.Spec.Selector}, nil
	}
	return live{}, fmt.Errorf("unsupported workload kind %s", w.Kind)
}

// collectWorkload adds workload t's live state to s. prefix names the
// workload in problems when a service has several.
func collectWorkload(ctx context.Context, cs kubernetes.Interface, s *Service, m *kube.Manifests, w kube.Workload, repo string, prefix bool) error {
	name := func(msg string) string {
		if prefix {
			return w.String() + ": " + msg
		}
		return msg
	}
	l, err := getLive(ctx, cs, w)
	if apierrors.IsNotFound(err) {
		s.Desired += m.Replicas(w)
		s.Problems = append(s.Problems, name(NotDeployed))
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading %s in namespace %s: %w", w, w.Namespace, err)
	}
	s.Desired += l.desired
	s.Ready += l.ready
	if s.Image == "" {
		s.Image = imageIn(l.spec, repo)
	}
	sel, err := metav1.LabelSelectorAsSelector(l.selector)
	if err != nil {
		return fmt.Errorf("reading the selector of %s: %w", w, err)
	}
	if sel.Empty() {
		return nil // matches every pod in the namespace: nothing sensible to count
	}
	pods, err := cs.CoreV1().Pods(w.Namespace).List(ctx, metav1.ListOptions{LabelSelector: sel.String()})
	if err != nil {
		return fmt.Errorf("listing the pods of %s: %w", w, err)
	}
	s.Restarts += restarts(pods.Items)
	for _, p := range pods.Items {
		if p.DeletionTimestamp == nil && p.Annotations[kube.LiveUpdatesAnnotation] != "" {
			s.LiveUpdated++
		}
	}
	for _, p := range kube.Diagnose(ctx, cs, w.Namespace, sel) {
		s.Problems = append(s.Problems, name(p))
	}
	return nil
}

func restarts(pods []corev1.Pod) int {
	n := 0
	for _, p := range pods {
		for _, list := range [][]corev1.ContainerStatus{p.Status.InitContainerStatuses, p.Status.ContainerStatuses} {
			for _, st := range list {
				n += int(st.RestartCount)
			}
		}
	}
	return n
}

// forwards lists cfg's port-forwards; a forward bound to every address is
// shown on 127.0.0.1.
func forwards(cfg *config.Config) []Forward {
	out := []Forward{}
	for _, s := range cfg.Services {
		for _, pf := range s.PortForwards {
			addr := pf.Address
			if addr == "0.0.0.0" || addr == "::" {
				addr = config.DefaultListenAddress
			}
			out = append(out, Forward{Name: s.Name, URL: kube.HTTPURL(addr, pf.Local), Target: fmt.Sprintf("%s:%d", pf.Resource, pf.Port)})
		}
	}
	return out
}
