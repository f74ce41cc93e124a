package doctor

import (
	"fmt"
	"sort"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/devloop-dev/devloop/internal/config"
	"github.com/devloop-dev/devloop/internal/kube"
)

// Check names used by Manifests.
const (
	checkManifests = "manifests"
	checkReadiness = "readiness"
	checkLiveness  = "liveness"
	checkResources = "resources"
	checkRoot      = "root user"
	checkImageTag  = "image tag"
	checkImages    = "images"
	checkSelector  = "service"
	checkIngress   = "ingress"
)

// podOwner is a workload of the manifests with its pod template.
type podOwner struct {
	w    kube.Workload
	tmpl corev1.PodTemplateSpec
	// longRunning is false for Jobs, CronJobs and bare pods that are
	// expected to finish, where probes make no sense.
	longRunning bool
}

// Manifests lints the rendered manifests for practices that make local
// development (and production) smoother: probes, resources, non-root users,
// pinned image tags, Services whose selectors match a pod template, and
// Ingresses that point at existing Service ports. Objects without a
// namespace are taken to be in cfg.Namespace.
func Manifests(objs []*unstructured.Unstructured, cfg *config.Config) []Result {
	var out []Result
	var owners []podOwner
	for _, o := range objs {
		ws := kube.WorkloadsOf([]*unstructured.Unstructured{o})
		if len(ws) == 0 {
			continue
		}
		w := ws[0]
		w.Namespace = nsOr(w.Namespace, cfg)
		tmpl, longRunning, err := podTemplateOf(o)
		if err != nil {
			out = append(out, Result{Level: Fail, Check: checkManifests, Message: fmt.Sprintf("%s (%s): %v", w, kube.Source(o), err),
				Fix: "fix the object so kubectl apply --dry-run=client accepts it"})
			continue
		}
		if tmpl == nil {
			continue
		}
		owners = append(owners, podOwner{w: w, tmpl: *tmpl, longRunning: longRunning})
	}

	for _, p := range owners {
		out = append(out, lintPodTemplate(p, cfg)...)
	}
	out = append(out, lintUnusedServices(owners, cfg)...)

	services := map[string]*corev1.Service{} // namespace/name
	for _, o := range objs {
		if o.GetKind() != "Service" || o.GroupVersionKind().Group != "" {
			continue
		}
		var svc corev1.Service
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, &svc); err != nil {
			out = append(out, Result{Level: Fail, Check: checkSelector, Message: fmt.Sprintf("service/%s (%s): %v", o.GetName(), kube.Source(o), err),
				Fix: "fix the object so kubectl apply --dry-run=client accepts it"})
			continue
		}
		svc.Namespace = nsOr(svc.Namespace, cfg)
		services[svc.Namespace+"/"+svc.Name] = &svc
		if r, ok := lintSelector(&svc, owners); ok {
			out = append(out, r)
		}
	}
	for _, o := range objs {
		if o.GetKind() == "Ingress" && o.GroupVersionKind().Group == "networking.k8s.io" {
			out = append(out, lintIngress(o, services, cfg)...)
		}
	}

	if len(out) == 0 {
		out = append(out, Result{Level: OK, Check: checkManifests,
			Message: fmt.Sprintf("%s and %s checked; nothing to improve", plural(len(objs), "object"), plural(len(owners), "workload"))})
	}
	return out
}

func nsOr(ns string, cfg *config.Config) string {
	if ns != "" {
		return ns
	}
	return cfg.Namespace
}

// podTemplateOf returns the pod template of a built-in workload; nil for
// kinds it does not know.
func podTemplateOf(o *unstructured.Unstructured) (tmpl *corev1.PodTemplateSpec, longRunning bool, err error) {
	from := func(into any) error { return runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, into) }
	switch o.GetKind() {
	case "Deployment":
		var d appsv1.Deployment
		err = from(&d)
		return &d.Spec.Template, true, err
	case "StatefulSet":
		var s appsv1.StatefulSet
		err = from(&s)
		return &s.Spec.Template, true, err
	case "DaemonSet":
		var d appsv1.DaemonSet
		err = from(&d)
		return &d.Spec.Template, true, err
	case "ReplicaSet":
		var r appsv1.ReplicaSet
		err = from(&r)
		return &r.Spec.Template, true, err
	case "ReplicationController":
		var r corev1.ReplicationController
		err = from(&r)
		if r.Spec.Template == nil {
			return nil, true, err
		}
		return r.Spec.Template, true, err
	case "Job":
		var j batchv1.Job
		err = from(&j)
		return &j.Spec.Template, false, err
	case "CronJob":
		var c batchv1.CronJob
		err = from(&c)
		return &c.Spec.JobTemplate.Spec.Template, false, err
	case "Pod":
		var p corev1.Pod
		err = from(&p)
		return &corev1.PodTemplateSpec{ObjectMeta: p.ObjectMeta, Spec: p.Spec}, p.Spec.RestartPolicy != corev1.RestartPolicyNever && p.Spec.RestartPolicy != corev1.RestartPolicyOnFailure, err
	}
	return nil, false, nil
}

// serviceImage returns the name of the devloop service that builds image, or "".
func serviceImage(cfg *config.Config, image string) string {
	for _, s := range cfg.Services {
		if kube.SameRepo(s.Image, image) {
			return s.Name
		}
	}
	return ""
}

func lintPodTemplate(p podOwner, cfg *config.Config) []Result {
	var out []Result
	spec := p.tmpl.Spec
	type ctr struct {
		c    corev1.Container
		init bool
	}
	var ctrs []ctr
	for _, c := range spec.InitContainers {
		ctrs = append(ctrs, ctr{c, true})
	}
	for _, c := range spec.Containers {
		ctrs = append(ctrs, ctr{c, false})
	}
	for _, x := range ctrs {
		c := x.c
		kind := "container"
		if x.init {
			kind = "init container"
		}
		subject := fmt.Sprintf("%s %s %q", p.w, kind, c.Name)
		if p.longRunning && !x.init {
			if c.ReadinessProbe == nil {
				out = append(out, Result{Level: Warn, Check: checkReadiness, Message: subject + ": no readiness probe",
					Fix: "add readinessProbe (e.g. httpGet /healthz) so devloop and Services know when it is ready"})
			}
			if c.LivenessProbe == nil {
				out = append(out, Result{Level: Warn, Check: checkLiveness, Message: subject + ": no liveness probe",
					Fix: "add livenessProbe (e.g. httpGet /healthz) so Kubernetes restarts it when it hangs"})
			}
		}
		if r, ok := lintResources(subject, c); ok {
			out = append(out, r)
		}
		if runsAsRoot(spec.SecurityContext, c.SecurityContext) {
			out = append(out, Result{Level: Warn, Check: checkRoot, Message: subject + ": may run as root",
				Fix: "set securityContext.runAsNonRoot: true and a runAsUser (e.g. 65532) on the pod or the container"})
		}
		if c.Image != "" && serviceImage(cfg, c.Image) == "" {
			if tag, pinned := imageTag(c.Image); !pinned {
				what := fmt.Sprintf("image %q has no tag", c.Image)
				if tag == "latest" {
					what = fmt.Sprintf("image %q uses :latest", c.Image)
				}
				out = append(out, Result{Level: Warn, Check: checkImageTag, Message: subject + ": " + what + ", so what runs can change under you",
					Fix: "pin a tag; devloop tags the images it builds itself"})
			}
		}
	}
	return out
}

func lintResources(subject string, c corev1.Container) (Result, bool) {
	var missing []string
	if len(c.Resources.Requests) == 0 {
		missing = append(missing, "requests")
	}
	if len(c.Resources.Limits) == 0 {
		missing = append(missing, "limits")
	}
	if len(missing) == 0 {
		return Result{}, false
	}
	return Result{Level: Warn, Check: checkResources, Message: subject + ": no resource " + strings.Join(missing, " or "),
		Fix: "set resources.requests (what it needs, e.g. cpu: 50m, memory: 64Mi) and resources.limits (the most it may use, e.g. memory: 256Mi)"}, true
}

// runsAsRoot reports whether neither the container nor the pod security
// context rules out uid 0; the container's settings override the pod's.
func runsAsRoot(pod *corev1.PodSecurityContext, c *corev1.SecurityContext) bool {
	var nonRoot *bool
	var user *int64
	if pod != nil {
		nonRoot, user = pod.RunAsNonRoot, pod.RunAsUser
	}
	if c != nil {
		if c.RunAsNonRoot != nil {
			nonRoot = c.RunAsNonRoot
		}
		if c.RunAsUser != nil {
			user = c.RunAsUser
		}
	}
	if user != nil {
		return *user == 0
	}
	return nonRoot == nil || !*nonRoot
}

// imageTag returns the tag of an image reference and whether the reference
// is pinned: by a digest, or by a tag other than "latest".
func imageTag(image string) (tag string, pinned bool) {
	if strings.Contains(image, "@") {
		return "", true
	}
	i := strings.LastIndex(image, ":")
	if i < 0 || strings.Contains(image[i:], "/") {
		return "", false
	}
	tag = image[i+1:]
	return tag, tag != "latest"
}

// lintUnusedServices warns about devloop services whose image no pod
// template uses: devloop would build them for nothing.
func lintUnusedServices(owners []podOwner, cfg *config.Config) []Result {
	var out []Result
	for _, s := range cfg.Services {
		used := false
		for _, p := range owners {
			for _, c := range append(append([]corev1.Container(nil), p.tmpl.Spec.InitContainers...), p.tmpl.Spec.Containers...) {
				if kube.SameRepo(c.Image, s.Image) {
					used = true
				}
			}
		}
		if !used {
			out = append(out, Result{Level: Warn, Check: checkImages,
				Message: fmt.Sprintf("service %s: no workload in the manifests uses image %q, so nothing runs what devloop builds", s.Name, s.Image),
				Fix:     fmt.Sprintf("set a container's image to %q in the manifests, or set services[].image to the repository they use", s.Image)})
		}
	}
	return out
}

// lintSelector fails a Service whose selector matches no pod template in
// its namespace. Services without a selector (external endpoints) pass.
func lintSelector(svc *corev1.Service, owners []podOwner) (Result, bool) {
	if len(svc.Spec.Selector) == 0 || svc.Spec.Type == corev1.ServiceTypeExternalName {
		return Result{}, false
	}
	sel := labels.SelectorFromSet(svc.Spec.Selector)
	for _, p := range owners {
		if p.w.Namespace == svc.Namespace && sel.Matches(labels.Set(p.tmpl.Labels)) {
			return Result{}, false
		}
	}
	return Result{Level: Fail, Check: checkSelector,
		Message: fmt.Sprintf("service/%s: selector %s matches no pod template in the manifests, so it has no endpoints", svc.Name, sel),
		Fix:     "make spec.selector match the pod template labels (spec.template.metadata.labels) of the workload it should reach"}, true
}

// lintIngress fails Ingress backends that name a Service missing from the
// manifests, or a port that Service does not have.
func lintIngress(o *unstructured.Unstructured, services map[string]*corev1.Service, cfg *config.Config) []Result {
	name := "ingress/" + o.GetName()
	var ing networkingv1.Ingress
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, &ing); err != nil {
		return []Result{{Level: Fail, Check: checkIngress, Message: fmt.Sprintf("%s (%s): %v", name, kube.Source(o), err),
			Fix: "fix the object so kubectl apply --dry-run=client accepts it"}}
	}
	var backends []networkingv1.IngressBackend
	if ing.Spec.DefaultBackend != nil {
		backends = append(backends, *ing.Spec.DefaultBackend)
	}
	for _, r := range ing.Spec.Rules {
		if r.HTTP == nil {
			continue
		}
		for _, p := range r.HTTP.Paths {
			backends = append(backends, p.Backend)
		}
	}
	ns := nsOr(o.GetNamespace(), cfg)
	var out []Result
	seen := map[string]bool{}
	for _, b := range backends {
		if b.Service == nil {
			continue // a resource backend: not ours to check
		}
		port := portString(b.Service.Port)
		if seen[b.Service.Name+":"+port] {
			continue
		}
		seen[b.Service.Name+":"+port] = true
		svc := services[ns+"/"+b.Service.Name]
		if svc == nil {
			out = append(out, Result{Level: Fail, Check: checkIngress,
				Message: fmt.Sprintf("%s: backend service %q is not in the manifests", name, b.Service.Name),
				Fix:     "point the backend at a Service of the manifests (" + serviceNames(services, ns) + ") or add the Service"})
			continue
		}
		if !hasPort(svc, b.Service.Port) {
			out = append(out, Result{Level: Fail, Check: checkIngress,
				Message: fmt.Sprintf("%s: service %q has no port %s (it has %s)", name, svc.Name, port, servicePorts(svc)),
				Fix:     "use one of the Service's ports (spec.ports[].port or its name) in the Ingress backend"})
		}
	}
	return out
}

func portString(p networkingv1.ServiceBackendPort) string {
	if p.Name != "" {
		return fmt.Sprintf("%q", p.Name)
	}
	return fmt.Sprint(p.Number)
}

func hasPort(svc *corev1.Service, p networkingv1.ServiceBackendPort) bool {
	for _, sp := range svc.Spec.Ports {
		if (p.Name != "" && sp.Name == p.Name) || (p.Name == "" && sp.Port == p.Number) {
			return true
		}
	}
	return false
}

func servicePorts(svc *corev1.Service) string {
	if len(svc.Spec.Ports) == 0 {
		return "no ports"
	}
	var ps []string
	for _, sp := range svc.Spec.Ports {
		if sp.Name != "" {
			ps = append(ps, fmt.Sprintf("%d (%s)", sp.Port, sp.Name))
		} else {
			ps = append(ps, fmt.Sprint(sp.Port))
		}
	}
	return strings.Join(ps, ", ")
}

func serviceNames(services map[string]*corev1.Service, ns string) string {
	var names []string
	for _, s := range services {
		if s.Namespace == ns {
			names = append(names, s.Name)
		}
	}
	if len(names) == 0 {
		return "there are none"
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}
