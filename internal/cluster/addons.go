package cluster

import (
	"bufio"
	"bytes"
	"context"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/devloop-dev/devloop/internal/config"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/wait"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/yaml"
)

const (
	// IngressNamespace is where the ingress controller runs.
	IngressNamespace = "devloop-ingress"
	// IngressDeployment is the ingress controller's Deployment name.
	IngressDeployment = "traefik"
	// IngressClassName is the default IngressClass devloop installs.
	IngressClassName = "traefik"
	// FieldManager is the server-side apply field manager of everything devloop applies.
	FieldManager = "devloop"

	traefikContainer    = "traefik"
	imagePlaceholder    = "TRAEFIK_IMAGE"
	defaultClassAnno    = "storageclass.kubernetes.io/is-default-class"
	defaultClassAnnoOld = "storageclass.beta.kubernetes.io/is-default-class"
)

//go:embed manifests/traefik.yaml
var traefikManifest []byte

//go:embed manifests/local-path-storage.yaml
var localPathManifest []byte

// ImageEnsurer makes image ref available on the cluster's nodes (loading it
// from the local Docker engine when a node lacks it).
type ImageEnsurer func(ctx context.Context, ref string) error

// AddonOptions tune InstallAddons; zero values mean the defaults.
type AddonOptions struct {
	// Timeout bounds the wait for the ingress controller to be Available (default 2m).
	Timeout time.Duration
	// PollInterval is how often the Deployment is checked (default 1s).
	PollInterval time.Duration
}

func (o AddonOptions) withDefaults() AddonOptions {
	if o.Timeout <= 0 {
		o.Timeout = 2 * time.Minute
	}
	if o.PollInterval <= 0 {
		o.PollInterval = time.Second
	}
	return o
}

// InstallAddons makes sure the cluster has a default StorageClass, the
// local-registry-hosting ConfigMap when spec.Registry is enabled and, when
// spec.Ingress is enabled, the Traefik ingress controller, Available. It is
// idempotent: everything is server-side applied by field manager "devloop".
// ensure (may be nil) is called with the controller image before applying.
func InstallAddons(ctx context.Context, cs kubernetes.Interface, dyn dynamic.Interface, spec config.Cluster, ensure ImageEnsurer, opts AddonOptions) error {
	if err := EnsureDefaultStorageClass(ctx, cs, dyn); err != nil {
		return err
	}
	if spec.Registry.Enabled {
		if err := ApplyRegistryConfigMap(ctx, cs, spec); err != nil {
			return err
		}
	}
	if !spec.Ingress.IsEnabled() {
		return nil
	}
	return InstallIngress(ctx, cs, dyn, spec.Ingress.Image, ensure, opts)
}

// EnsureDefaultStorageClass applies kind's local-path provisioner and its
// default StorageClass "standard" if no StorageClass is annotated default.
func EnsureDefaultStorageClass(ctx context.Context, cs kubernetes.Interface, dyn dynamic.Interface) error {
	list, err := cs.StorageV1().StorageClasses().List(ctx, metav1.ListOptions{})
	if err != nil {
		return fmt.Errorf("listing StorageClasses: %w", err)
	}
	for _, sc := range list.Items {
		if sc.Annotations[defaultClassAnno] == "true" || sc.Annotations[defaultClassAnnoOld] == "true" {
			return nil
		}
	}
	objs, err := decodeManifest(localPathManifest)
	if err != nil {
		return fmt.Errorf("decoding embedded local-path-storage manifest: %w", err)
	}
	if err := applyAll(ctx, dyn, objs); err != nil {
		return fmt.Errorf("installing the default StorageClass: %w", err)
	}
	return nil
}

// TraefikObjects returns the ingress controller's objects with image set,
// in apply order (the Namespace first).
func TraefikObjects(image string) ([]*unstructured.Unstructured, error) {
	objs, err := decodeManifest(traefikManifest)
	if err != nil {
		return nil, fmt.Errorf("decoding embedded Traefik manifest: %w", err)
	}
	found := false
	for _, o := range objs {
		if o.GetKind() == "Deployment" && o.GetName() == IngressDeployment {
			if err := setContainerImage(o, traefikContainer, image); err != nil {
				return nil, err
			}
			found = true
		}
	}
	if !found {
		return nil, errors.New("embedded Traefik manifest has no Deployment " + IngressDeployment)
	}
	return objs, nil
}

// InstallIngress loads image onto the nodes (through ensure), applies the
// Traefik manifests and waits for the Deployment to be Available.
func InstallIngress(ctx context.Context, cs kubernetes.Interface, dyn dynamic.Interface, image string, ensure ImageEnsurer, opts AddonOptions) error {
	opts = opts.withDefaults()
	if ensure != nil {
		if err := ensure(ctx, image); err != nil {
			return fmt.Errorf("making ingress image %s available on the cluster nodes: %w", image, err)
		}
	}
	objs, err := TraefikObjects(image)
	if err != nil {
		return err
	}
	if err := applyAll(ctx, dyn, objs); err != nil {
		return fmt.Errorf("installing the ingress controller: %w", err)
	}
	return waitDeploymentAvailable(ctx, cs, IngressNamespace, IngressDeployment, image, opts)
}

// resourceFor returns the resource of obj and whether it is namespaced. A
// static table of the kinds in the embedded manifests avoids a discovery
// round trip.
func resourceFor(obj *unstructured.Unstructured) (schema.GroupVersionResource, bool, error) {
	gvk := obj.GroupVersionKind()
	var resource string
	namespaced := true
	switch gvk.GroupKind() {
	case schema.GroupKind{Kind: "Namespace"}:
		resource, namespaced = "namespaces", false
	case schema.GroupKind{Kind: "ServiceAccount"}:
		resource = "serviceaccounts"
	case schema.GroupKind{Kind: "ConfigMap"}:
		resource = "configmaps"
	case schema.GroupKind{Kind: "Service"}:
		resource = "services"
	case schema.GroupKind{Group: "apps", Kind: "Deployment"}:
		resource = "deployments"
	case schema.GroupKind{Group: "rbac.authorization.k8s.io", Kind: "Role"}:
		resource = "roles"
	case schema.GroupKind{Group: "rbac.authorization.k8s.io", Kind: "RoleBinding"}:
		resource = "rolebindings"
	case schema.GroupKind{Group: "rbac.authorization.k8s.io", Kind: "ClusterRole"}:
		resource, namespaced = "clusterroles", false
	case schema.GroupKind{Group: "rbac.authorization.k8s.io", Kind: "ClusterRoleBinding"}:
		resource, namespaced = "clusterrolebindings", false
	case schema.GroupKind{Group: "networking.k8s.io", Kind: "IngressClass"}:
		resource, namespaced = "ingressclasses", false
	case schema.GroupKind{Group: "storage.k8s.io", Kind: "StorageClass"}:
		resource, namespaced = "storageclasses", false
	default:
		return schema.GroupVersionResource{}, false, fmt.Errorf("no resource known for %s", gvk)
	}
	return gvk.GroupVersion().WithResource(resource), namespaced, nil
}

// decodeManifest splits a multi-document YAML manifest into objects.
func decodeManifest(data []byte) ([]*unstructured.Unstructured, error) {
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	var objs []*unstructured.Unstructured
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return objs, nil
		}
		if err != nil {
			return nil, err
		}
		js, err := yaml.YAMLToJSON(doc)
		if err != nil {
			return nil, err
		}
		if s := strings.TrimSpace(string(js)); s == "null" || s == "" || s == "{}" {
			continue
		}
		obj := &unstructured.Unstructured{}
		if err := obj.UnmarshalJSON(js); err != nil {
			return nil, err
		}
		if _, _, err := resourceFor(obj); err != nil {
			return nil, fmt.Errorf("%s %q: %w", obj.GetKind(), obj.GetName(), err)
		}
		objs = append(objs, obj)
	}
}

// applyAll server-side applies objs in order (field manager devloop, forced).
func applyAll(ctx context.Context, dyn dynamic.Interface, objs []*unstructured.Unstructured) error {
	for _, obj := range objs {
		gvr, namespaced, err := resourceFor(obj)
		if err != nil {
			return err
		}
		var ri dynamic.ResourceInterface = dyn.Resource(gvr)
		if namespaced {
			ri = dyn.Resource(gvr).Namespace(obj.GetNamespace())
		}
		if _, err := ri.Apply(ctx, obj.GetName(), obj, metav1.ApplyOptions{FieldManager: FieldManager, Force: true}); err != nil {
			return fmt.Errorf("applying %s %s: %w", obj.GetKind(), qualifiedName(obj), err)
		}
	}
	return nil
}

func qualifiedName(obj *unstructured.Unstructured) string {
	if ns := obj.GetNamespace(); ns != "" {
		return ns + "/" + obj.GetName()
	}
	return obj.GetName()
}

// setContainerImage sets the image of container name in a Deployment.
func setContainerImage(obj *unstructured.Unstructured, name, image string) error {
	containers, found, err := unstructured.NestedSlice(obj.Object, "spec", "template", "spec", "containers")
	if err != nil || !found {
		return fmt.Errorf("deployment %s has no containers (%v)", obj.GetName(), err)
	}
	for i, c := range containers {
		cm, ok := c.(map[string]interface{})
		if ok && cm["name"] == name {
			cm["image"] = image
			containers[i] = cm
			return unstructured.SetNestedSlice(obj.Object, containers, "spec", "template", "spec", "containers")
		}
	}
	return fmt.Errorf("deployment %s has no container %q", obj.GetName(), name)
}

// deploymentAvailable reports whether the Deployment's current generation is
// fully rolled out and Available.
func deploymentAvailable(d *appsv1.Deployment) bool {
	if d.Status.ObservedGeneration < d.Generation {
		return false
	}
	want := int32(1)
	if d.Spec.Replicas != nil {
		want = *d.Spec.Replicas
	}
	if d.Status.UpdatedReplicas < want || d.Status.AvailableReplicas < want {
		return false
	}
	for _, c := range d.Status.Conditions {
		if c.Type == appsv1.DeploymentAvailable {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// waitDeploymentAvailable polls until the Deployment is Available, failing
// after opts.Timeout with what its pods are stuck on.
func waitDeploymentAvailable(ctx context.Context, cs kubernetes.Interface, ns, name, image string, opts AddonOptions) error {
	var lastErr error
	err := wait.PollUntilContextTimeout(ctx, opts.PollInterval, opts.Timeout, true, func(ctx context.Context) (bool, error) {
		d, err := cs.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			lastErr = err
			return false, nil
		}
		return deploymentAvailable(d), nil
	})
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		return fmt.Errorf("waiting for ingress controller %s/%s: %w", ns, name, ctx.Err())
	}
	// Diagnose with a fresh context: ours may be the expired poll's parent.
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	why := podProblems(dctx, cs, ns, "app.kubernetes.io/name="+name)
	if why == "" && lastErr != nil {
		why = lastErr.Error()
	}
	if why == "" {
		why = "no pod reported a problem"
	}
	return fmt.Errorf("ingress controller %s/%s (image %s) did not become available within %s: %s",
		ns, name, image, opts.Timeout, why)
}

// podProblems summarises why the selected pods are not ready: waiting
// reasons (ErrImagePull, CrashLoopBackOff, ...) and unschedulable conditions.
func podProblems(ctx context.Context, cs kubernetes.Interface, ns, selector string) string {
	pods, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: selector})
	if err != nil {
		return "listing its pods: " + err.Error()
	}
	if len(pods.Items) == 0 {
		return "no pod was created"
	}
	var out []string
	for _, p := range pods.Items {
		for _, c := range p.Status.Conditions {
			if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse {
				out = append(out, fmt.Sprintf("pod %s unschedulable: %s", p.Name, c.Message))
			}
		}
		for _, st := range append(append([]corev1.ContainerStatus{}, p.Status.InitContainerStatuses...), p.Status.ContainerStatuses...) {
			if w := st.State.Waiting; w != nil && w.Reason != "" && w.Reason != "ContainerCreating" && w.Reason != "PodInitializing" {
				msg := fmt.Sprintf("pod %s container %s: %s", p.Name, st.Name, w.Reason)
				if w.Message != "" {
					msg += ": " + w.Message
				}
				if strings.Contains(w.Reason, "Image") {
					msg += " (the image must be in the local Docker engine so devloop can load it into the node; no registry is used)"
				}
				out = append(out, msg)
			}
			if t := st.LastTerminationState.Terminated; t != nil && !st.Ready {
				out = append(out, fmt.Sprintf("pod %s container %s last exited %d (%s)", p.Name, st.Name, t.ExitCode, t.Reason))
			}
		}
	}
	sort.Strings(out)
	return strings.Join(out, "; ")
}
