// Package status reports what a project's services are doing in the
// cluster, without running the dev loop: readiness, restarts, the running
// image, the URLs to open and what is wrong.
package status

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"

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

// Collect builds the Report of cfg's services from the rendered manifests
// objs and the cluster behind cs. cs is nil when the cluster is not running:
// the report then says so and is built from cfg and objs alone. Objects
// without a namespace are taken to be in cfg.Namespace. On error (the
// cluster could not be read) the returned Report still holds everything
// known from cfg and objs.
func Collect(ctx context.Context, cs kubernetes.Interface, cfg *config.Config, objs []*unstructured.Unstructured) (Report, error) {
	r := Report{
		Project:        cfg.Name,
		Cluster:        cfg.Cluster.Name,
		Context:        "kind-" + cfg.Cluster.Name, // kind's context naming, as cluster.ContextName
		ClusterRunning: cs != nil,
		Services:       []Service{},
		Ingress:        IngressURLs(objs, cfg),
		Forwards:       forwards(cfg),
	}
	templates, err := workloadTemplates(objs, cfg)
	if err != nil {
		return r, err
	}
	for _, svc := range cfg.Services {
		r.Services = append(r.Services, Service{Name: svc.Name, Workloads: []string{}, Problems: []string{}})
	}
	for i, svc := range cfg.Services {
		s := &r.Services[i]
		repo := imageOf(svc)
		var mine []workloadTemplate
		for _, t := range templates {
			if t.usesRepo(repo) {
				mine = append(mine, t)
				s.Workloads = append(s.Workloads, t.w.String())
			}
		}
		if len(mine) == 0 {
			s.Problems = append(s.Problems, fmt.Sprintf("no Deployment, StatefulSet or DaemonSet in the manifests uses image %q", repo))
			continue
		}
		for _, t := range mine {
			if cs == nil {
				s.Desired += t.desired
				continue
			}
			if err := collectWorkload(ctx, cs, s, t, repo, len(mine) > 1); err != nil {
				return r, err
			}
		}
	}
	return r, nil
}

func imageOf(s config.Service) string {
	if s.Image != "" {
		return s.Image
	}
	return s.Name
}

// workloadTemplate is a Deployment, StatefulSet or DaemonSet of the manifests.
type workloadTemplate struct {
	w       kube.Workload
	spec    corev1.PodSpec
	desired int
}

func (t workloadTemplate) usesRepo(repo string) bool {
	return imageIn(t.spec, repo) != ""
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

// workloadTemplates returns the manifests' Deployments, StatefulSets and
// DaemonSets, with their pod specs and desired replicas (1 for a DaemonSet:
// a kind cluster usually has one node).
func workloadTemplates(objs []*unstructured.Unstructured, cfg *config.Config) ([]workloadTemplate, error) {
	var out []workloadTemplate
	for _, o := range objs {
		ws := kube.WorkloadsOf([]*unstructured.Unstructured{o})
		if len(ws) == 0 || o.GroupVersionKind().Group != "apps" {
			continue
		}
		w := ws[0]
		if w.Namespace == "" {
			w.Namespace = namespace(cfg)
		}
		t := workloadTemplate{w: w, desired: 1}
		var err error
		switch w.Kind {
		case "Deployment":
			var d appsv1.Deployment
			err = runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, &d)
			t.spec, t.desired = d.Spec.Template.Spec, replicas(d.Spec.Replicas)
		case "StatefulSet":
			var s appsv1.StatefulSet
			err = runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, &s)
			t.spec, t.desired = s.Spec.Template.Spec, replicas(s.Spec.Replicas)
		case "DaemonSet":
			var d appsv1.DaemonSet
			err = runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, &d)
			t.spec = d.Spec.Template.Spec
		default:
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("reading %s from the manifests (%s): %w", w, kube.Source(o), err)
		}
		out = append(out, t)
	}
	return out, nil
}

func namespace(cfg *config.Config) string {
	if cfg.Namespace != "" {
		return cfg.Namespace
	}
	return "default"
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
func collectWorkload(ctx context.Context, cs kubernetes.Interface, s *Service, t workloadTemplate, repo string, prefix bool) error {
	name := func(msg string) string {
		if prefix {
			return t.w.String() + ": " + msg
		}
		return msg
	}
	l, err := getLive(ctx, cs, t.w)
	if apierrors.IsNotFound(err) {
		s.Desired += t.desired
		s.Problems = append(s.Problems, name(NotDeployed))
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading %s in namespace %s: %w", t.w, t.w.Namespace, err)
	}
	s.Desired += l.desired
	s.Ready += l.ready
	if s.Image == "" {
		s.Image = imageIn(l.spec, repo)
	}
	sel, err := metav1.LabelSelectorAsSelector(l.selector)
	if err != nil {
		return fmt.Errorf("reading the selector of %s: %w", t.w, err)
	}
	if sel.Empty() {
		return nil // matches every pod in the namespace: nothing sensible to count
	}
	pods, err := cs.CoreV1().Pods(t.w.Namespace).List(ctx, metav1.ListOptions{LabelSelector: sel.String()})
	if err != nil {
		return fmt.Errorf("listing the pods of %s: %w", t.w, err)
	}
	s.Restarts += restarts(pods.Items)
	for _, p := range kube.Diagnose(ctx, cs, t.w.Namespace, sel) {
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

// IngressURLs returns one URL per distinct Ingress rule host, in manifest
// order; a rule without a host answers on "localhost". None when the
// ingress controller is disabled.
func IngressURLs(objs []*unstructured.Unstructured, cfg *config.Config) []string {
	out := []string{}
	if !cfg.Cluster.Ingress.IsEnabled() {
		return out
	}
	seen := map[string]bool{}
	for _, o := range objs {
		if o.GetKind() != "Ingress" || o.GroupVersionKind().Group != "networking.k8s.io" {
			continue
		}
		rules, _, _ := unstructured.NestedSlice(o.Object, "spec", "rules")
		for _, r := range rules {
			rm, _ := r.(map[string]any)
			host, _ := rm["host"].(string)
			if host == "" {
				host = "localhost"
			}
			u := httpURL(host, cfg.Cluster.Ingress.HTTPPort)
			if !seen[u] {
				seen[u] = true
				out = append(out, u)
			}
		}
	}
	return out
}

func httpURL(host string, port int) string {
	if port == 80 || port == 0 {
		if strings.Contains(host, ":") {
			host = "[" + host + "]"
		}
		return "http://" + host + "/"
	}
	return "http://" + net.JoinHostPort(host, strconv.Itoa(port)) + "/"
}

// forwards lists cfg's port-forwards; a forward bound to every address is
// shown on 127.0.0.1.
func forwards(cfg *config.Config) []Forward {
	out := []Forward{}
	for _, s := range cfg.Services {
		for _, pf := range s.PortForwards {
			addr := pf.Address
			if addr == "" || addr == "0.0.0.0" || addr == "::" {
				addr = config.DefaultListenAddress
			}
			resource := pf.Resource
			if resource == "" {
				resource = "service/" + s.Name
			}
			out = append(out, Forward{Name: s.Name, URL: httpURL(addr, pf.Local), Target: fmt.Sprintf("%s:%d", resource, pf.Port)})
		}
	}
	return out
}
