package kube

import (
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/devloop-dev/devloop/internal/supervisor"
)

// Labels devloop puts on everything it applies.
const (
	ManagedByLabel = "app.kubernetes.io/managed-by"
	ManagedByValue = "devloop"
	ProjectLabel   = "devloop.dev/project"
	// LiveUpdatesAnnotation is set on a pod once devloop restarted its
	// process with code newer than its image (a sync rule with restart:
	// true): the number of live updates on top of the image.
	LiveUpdatesAnnotation = "devloop.dev/live-updates"
	// UpToDateCondition is the readiness gate of a pod that runs a
	// supervised image (a service with restart rules): devloop sets it True
	// once the pod's containers run the workspace's code, so a pod that
	// starts from an image older than the last live update never counts as
	// serving (Services, the ingress, devloop's forwards) before devloop has
	// brought it up to date.
	UpToDateCondition = "devloop.dev/up-to-date"
)

// Workload names an object whose pods devloop waits for.
type Workload struct {
	Kind      string // "Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob" or "Pod"
	Namespace string
	Name      string
}

// String is the kubectl-style "deployment/name".
func (w Workload) String() string { return strings.ToLower(w.Kind) + "/" + w.Name }

// Key is "Kind/namespace/name", unique within a cluster.
func (w Workload) Key() string { return w.Kind + "/" + w.Namespace + "/" + w.Name }

// podTemplatePath returns the field path of the pod template (metadata+spec)
// of a workload kind; nil means the object itself is the pod; ok is false for
// kinds without pods.
func podTemplatePath(kind string) (path []string, ok bool) {
	switch kind {
	case "Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "ReplicationController", "Job":
		return []string{"spec", "template"}, true
	case "CronJob":
		return []string{"spec", "jobTemplate", "spec", "template"}, true
	case "Pod":
		return nil, true
	}
	return nil, false
}

// podTemplate returns the pod template map of obj (the object itself for a Pod).
func podTemplate(obj *unstructured.Unstructured) (map[string]any, bool) {
	path, ok := podTemplatePath(obj.GetKind())
	if !ok {
		return nil, false
	}
	if path == nil {
		return obj.Object, true
	}
	cur := obj.Object
	for _, p := range path {
		next, ok := cur[p].(map[string]any)
		if !ok {
			return nil, false
		}
		cur = next
	}
	return cur, true
}

// WorkloadsOf returns the objects that run pods, in order.
func WorkloadsOf(objs []*unstructured.Unstructured) []Workload {
	var out []Workload
	for _, o := range objs {
		if _, ok := podTemplatePath(o.GetKind()); ok && isBuiltinWorkloadGroup(o) {
			out = append(out, workloadOf(o))
		}
	}
	return out
}

func isBuiltinWorkloadGroup(o *unstructured.Unstructured) bool {
	switch o.GroupVersionKind().Group {
	case "", "apps", "batch", "extensions":
		return true
	}
	return false
}

// normalizeRepo turns an image reference into its fully-qualified repository
// without tag or digest: "hello:1" → "docker.io/library/hello".
func normalizeRepo(image string) string {
	repo := image
	if i := strings.Index(repo, "@"); i >= 0 {
		repo = repo[:i]
	}
	if i := strings.LastIndex(repo, ":"); i >= 0 && !strings.Contains(repo[i:], "/") {
		repo = repo[:i]
	}
	domain, rest := "", repo
	if i := strings.Index(repo, "/"); i >= 0 {
		first := repo[:i]
		if strings.ContainsAny(first, ".:") || first == "localhost" || strings.ToLower(first) != first {
			domain, rest = first, repo[i+1:]
		}
	}
	if domain == "" || domain == "index.docker.io" {
		domain = "docker.io"
	}
	if domain == "docker.io" && !strings.Contains(rest, "/") {
		rest = "library/" + rest
	}
	return domain + "/" + rest
}

// Substitute replaces, in every pod template of objs, each container image
// whose repository (tag and digest ignored, Docker Hub names normalised) is a
// key of images with that key's built ref, and sets imagePullPolicy
// IfNotPresent on it. For an image key in supervised (its image carries
// devloop's supervisor as its entrypoint), a container's own `command:`,
// which would bypass the image's entrypoint, is put behind the supervisor.
func Substitute(objs []*unstructured.Unstructured, images map[string]string, supervised map[string]bool) error {
	byRepo := make(map[string]string, len(images))
	for k := range images {
		n := normalizeRepo(k)
		if prev, dup := byRepo[n]; dup {
			return fmt.Errorf("images %q and %q name the same repository %s", prev, k, n)
		}
		byRepo[n] = k
	}
	for _, o := range objs {
		tmpl, ok := podTemplate(o)
		if !ok {
			continue
		}
		spec, ok := tmpl["spec"].(map[string]any)
		if !ok {
			continue
		}
		w := workloadOf(o)
		for _, field := range []string{"initContainers", "containers"} {
			list, ok := spec[field].([]any)
			if !ok && spec[field] != nil {
				return fmt.Errorf("%s (%s): spec.%s is not a list", w, Source(o), field)
			}
			for i, c := range list {
				cm, ok := c.(map[string]any)
				if !ok {
					return fmt.Errorf("%s (%s): %s[%d] is not an object", w, Source(o), field, i)
				}
				img, _ := cm["image"].(string)
				if img == "" {
					continue
				}
				key, ok := byRepo[normalizeRepo(img)]
				if !ok {
					continue
				}
				cm["image"] = images[key]
				cm["imagePullPolicy"] = "IfNotPresent"
				if supervised[key] {
					if err := superviseCommand(cm); err != nil {
						return fmt.Errorf("%s (%s): %s[%d]: %w", w, Source(o), field, i, err)
					}
					addReadinessGate(spec)
				}
			}
		}
	}
	return nil
}

// Label adds the managed-by and project labels to every object and to every
// pod template (never to selectors).
func Label(objs []*unstructured.Unstructured, project string) {
	add := func(meta map[string]any) {
		labels, _ := meta["labels"].(map[string]any)
		if labels == nil {
			labels = map[string]any{}
		}
		labels[ManagedByLabel] = ManagedByValue
		labels[ProjectLabel] = project
		meta["labels"] = labels
	}
	for _, o := range objs {
		meta, _ := o.Object["metadata"].(map[string]any)
		if meta == nil {
			meta = map[string]any{}
			o.Object["metadata"] = meta
		}
		add(meta)
		if path, ok := podTemplatePath(o.GetKind()); ok && path != nil {
			if tmpl, ok := podTemplate(o); ok {
				tm, _ := tmpl["metadata"].(map[string]any)
				if tm == nil {
					tm = map[string]any{}
					tmpl["metadata"] = tm
				}
				add(tm)
			}
		}
		if o.GetKind() == "StatefulSet" {
			// The claims a StatefulSet makes carry its templates' labels:
			// labelled, they are the project's (down keeps them, or deletes
			// them with --volumes).
			vcts, _, _ := unstructured.NestedSlice(o.Object, "spec", "volumeClaimTemplates")
			for i, v := range vcts {
				vm, ok := v.(map[string]any)
				if !ok {
					continue
				}
				tm, _ := vm["metadata"].(map[string]any)
				if tm == nil {
					tm = map[string]any{}
					vm["metadata"] = tm
				}
				add(tm)
				vcts[i] = vm
			}
			if len(vcts) > 0 {
				_ = unstructured.SetNestedSlice(o.Object, vcts, "spec", "volumeClaimTemplates")
			}
		}
	}
}

// superviseCommand puts a container's command behind devloop's supervisor:
// ["/app", "-v"] becomes [supervisor.Path, "/app", "-v"]. A container
// without a command runs the image's entrypoint, which already is the
// supervisor; args are left alone either way.
func superviseCommand(c map[string]any) error {
	raw, ok := c["command"]
	if !ok || raw == nil {
		return nil
	}
	list, ok := raw.([]any)
	if !ok {
		return fmt.Errorf("command is not a list")
	}
	if len(list) == 0 {
		return nil
	}
	if first, _ := list[0].(string); first == supervisor.Path {
		return nil
	}
	c["command"] = append([]any{supervisor.Path}, list...)
	return nil
}

// addReadinessGate adds the UpToDateCondition readiness gate to a pod spec.
func addReadinessGate(spec map[string]any) {
	gates, _ := spec["readinessGates"].([]any)
	for _, g := range gates {
		if gm, ok := g.(map[string]any); ok && gm["conditionType"] == UpToDateCondition {
			return
		}
	}
	spec["readinessGates"] = append(gates, map[string]any{"conditionType": UpToDateCondition})
}

// UpToDateGate reports whether pod has devloop's UpToDateCondition
// readiness gate, and whether that condition is True.
func UpToDateGate(pod *corev1.Pod) (gated, open bool) {
	for _, g := range pod.Spec.ReadinessGates {
		if g.ConditionType == UpToDateCondition {
			gated = true
		}
	}
	for _, c := range pod.Status.Conditions {
		if c.Type == UpToDateCondition {
			open = c.Status == corev1.ConditionTrue
		}
	}
	return gated, open
}
