package kube

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/wait"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"github.com/devloop-dev/devloop/internal/config"
)

// FieldManager is the server-side apply field manager devloop uses.
const FieldManager = "devloop"

// inventoryKey is the ConfigMap data key holding the inventory lines.
const inventoryKey = "objects"

// ResourceAPI is the part of the dynamic client the Applier needs. It is a
// seam so apply/prune logic can be tested without a server-side apply
// implementation; DynamicAPI adapts a dynamic.Interface.
type ResourceAPI interface {
	Get(ctx context.Context, gvr schema.GroupVersionResource, namespace, name string) (*unstructured.Unstructured, error)
	// Apply server-side applies obj with FieldManager, forcing conflicts.
	Apply(ctx context.Context, gvr schema.GroupVersionResource, namespace string, obj *unstructured.Unstructured) (*unstructured.Unstructured, error)
	// Delete deletes with background propagation.
	Delete(ctx context.Context, gvr schema.GroupVersionResource, namespace, name string) error
}

// DynamicAPI implements ResourceAPI with a dynamic client.
type DynamicAPI struct{ Client dynamic.Interface }

func (d DynamicAPI) res(gvr schema.GroupVersionResource, ns string) dynamic.ResourceInterface {
	if ns == "" {
		return d.Client.Resource(gvr)
	}
	return d.Client.Resource(gvr).Namespace(ns)
}

// Get implements ResourceAPI.
func (d DynamicAPI) Get(ctx context.Context, gvr schema.GroupVersionResource, ns, name string) (*unstructured.Unstructured, error) {
	return d.res(gvr, ns).Get(ctx, name, metav1.GetOptions{})
}

// Apply implements ResourceAPI.
func (d DynamicAPI) Apply(ctx context.Context, gvr schema.GroupVersionResource, ns string, obj *unstructured.Unstructured) (*unstructured.Unstructured, error) {
	return d.res(gvr, ns).Apply(ctx, obj.GetName(), obj, metav1.ApplyOptions{FieldManager: FieldManager, Force: true})
}

// Delete implements ResourceAPI.
func (d DynamicAPI) Delete(ctx context.Context, gvr schema.GroupVersionResource, ns, name string) error {
	bg := metav1.DeletePropagationBackground
	return d.res(gvr, ns).Delete(ctx, name, metav1.DeleteOptions{PropagationPolicy: &bg})
}

// ObjectRef identifies an applied object. UID is the object's UID when
// devloop applied it (empty in inventories written before devloop recorded
// UIDs); it is what makes the object devloop's to delete.
type ObjectRef struct {
	Group, Version, Kind, Namespace, Name string
	UID                                   string
}

func refOf(o *unstructured.Unstructured) ObjectRef {
	gvk := o.GroupVersionKind()
	return ObjectRef{Group: gvk.Group, Version: gvk.Version, Kind: gvk.Kind, Namespace: o.GetNamespace(), Name: o.GetName()}
}

// GVK returns the ref's group/version/kind.
func (r ObjectRef) GVK() schema.GroupVersionKind {
	return schema.GroupVersionKind{Group: r.Group, Version: r.Version, Kind: r.Kind}
}

// String is kubectl-style: "deployment/web", or "widget.example.com/foo"
// for kinds outside the built-in groups.
func (r ObjectRef) String() string {
	k := strings.ToLower(r.Kind)
	if strings.Contains(r.Group, ".") && !strings.HasSuffix(r.Group, ".k8s.io") {
		k += "." + r.Group
	}
	return k + "/" + r.Name
}

// id identifies the object independently of its API version.
func (r ObjectRef) id() string { return r.Group + "/" + r.Kind + "/" + r.Namespace + "/" + r.Name }

// line is the inventory form: group/version/kind/namespace/name[ uid].
func (r ObjectRef) line() string {
	l := r.Group + "/" + r.Version + "/" + r.Kind + "/" + r.Namespace + "/" + r.Name
	if r.UID != "" {
		l += " " + r.UID
	}
	return l
}

func parseInventoryLine(l string) (ObjectRef, error) {
	path, uid, _ := strings.Cut(l, " ")
	p := strings.Split(path, "/")
	if len(p) != 5 || p[1] == "" || p[2] == "" || p[4] == "" || strings.Contains(uid, " ") {
		return ObjectRef{}, fmt.Errorf("invalid inventory entry %q", l)
	}
	return ObjectRef{Group: p[0], Version: p[1], Kind: p[2], Namespace: p[3], Name: p[4], UID: uid}, nil
}

// Operation is what applying or pruning did to one object.
type Operation string

// Operations reported in an ApplyResult.
const (
	Created    Operation = "created"
	Configured Operation = "configured"
	Unchanged  Operation = "unchanged"
	Deleted    Operation = "deleted"
	// Kept: in the inventory, but the object in the cluster is not the one
	// devloop applied (another UID, or without devloop's labels): not deleted.
	Kept Operation = "kept (not devloop's)"
)

// ObjectResult is the outcome for one object. It never contains object data.
type ObjectResult struct {
	Ref    ObjectRef
	Op     Operation
	Source string // file#doc the object was rendered from; "" for pruned objects
}

// String is "kind/name op", e.g. "secret/db configured".
func (r ObjectResult) String() string { return r.Ref.String() + " " + string(r.Op) }

// ApplyResult lists what Apply did, in order.
type ApplyResult struct {
	Applied []ObjectResult
	Pruned  []ObjectResult
}

// Lines renders the result one object per line.
func (r ApplyResult) Lines() []string {
	var out []string
	for _, o := range r.Applied {
		out = append(out, o.String())
	}
	for _, o := range r.Pruned {
		out = append(out, o.String())
	}
	return out
}

// ChangedLines renders, one object per line, what the apply changed (every
// line but the "unchanged" ones).
func (r ApplyResult) ChangedLines() []string {
	var out []string
	for _, l := range r.Lines() {
		if !strings.HasSuffix(l, " "+string(Unchanged)) {
			out = append(out, l)
		}
	}
	return out
}

// Changed returns the objects that were created or configured.
func (r ApplyResult) Changed() []ObjectRef {
	var out []ObjectRef
	for _, o := range r.Applied {
		if o.Op == Created || o.Op == Configured {
			out = append(out, o.Ref)
		}
	}
	return out
}

// ApplyError is the API server's rejection of one object, naming the object
// and the file it came from. It never includes the object's content.
type ApplyError struct {
	Ref    ObjectRef
	Source string
	Err    error
}

func (e *ApplyError) Error() string {
	src := ""
	if e.Source != "" {
		src = " (from " + e.Source + ")"
	}
	return fmt.Sprintf("applying %s%s: %v", e.Ref, src, e.Err)
}

func (e *ApplyError) Unwrap() error { return e.Err }

// Applier server-side applies a project's objects and prunes what it applied
// before and no longer renders, tracking them in an inventory ConfigMap.
type Applier struct {
	api        ResourceAPI
	mapper     meta.RESTMapper
	core       kubernetes.Interface
	project    string
	namespace  string
	configPath string // the devloop.yaml whose project this is (one inventory per project and config)
	crdPoll    time.Duration
	crdTimeout time.Duration
}

// NewApplier returns an Applier for project, as configured by the
// devloop.yaml at configPath, whose inventory lives in namespace.
func NewApplier(c *Clients, project, namespace, configPath string) *Applier {
	return newApplier(DynamicAPI{Client: c.Dynamic}, c.Mapper, c.Core, project, namespace, configPath)
}

func newApplier(api ResourceAPI, mapper meta.RESTMapper, core kubernetes.Interface, project, namespace, configPath string) *Applier {
	return &Applier{api: api, mapper: mapper, core: core, project: project, namespace: namespace, configPath: configPath,
		crdPoll: 250 * time.Millisecond, crdTimeout: 60 * time.Second}
}

// ConfigAnnotation on the inventory names the devloop.yaml it belongs to.
const ConfigAnnotation = "devloop.dev/config"

// ForeignError is an object the manifests name that exists in the cluster
// without devloop's labels for this project: devloop did not create it, and
// applying would adopt it (and a later down would delete it).
type ForeignError struct {
	Ref     ObjectRef
	Source  string
	Project string
}

func (e *ForeignError) Error() string {
	kind := strings.ToLower(e.Ref.Kind)
	ns := ""
	if e.Ref.Namespace != "" {
		ns = " -n " + e.Ref.Namespace
	}
	return fmt.Sprintf("%s (%s) already exists and was not created by devloop for project %q: devloop does not take it over. "+
		"To let devloop manage it (and delete it on down), label it: kubectl label %s %s%s %s=%s %s=%s",
		e.Ref, e.Source, e.Project, kind, e.Ref.Name, ns, ProjectLabel, e.Project, ManagedByLabel, ManagedByValue)
}

// owns reports whether live is devloop's for this project: it carries the
// project's labels and, when the inventory recorded a UID, is that object.
func (a *Applier) owns(live *unstructured.Unstructured, uid string) bool {
	l := live.GetLabels()
	if l[ProjectLabel] != a.project || l[ManagedByLabel] != ManagedByValue {
		return false
	}
	return uid == "" || string(live.GetUID()) == uid
}

// InventoryName is the name of the project's inventory ConfigMap.
func (a *Applier) InventoryName() string { return "devloop-inventory-" + a.project }

var crdGK = schema.GroupKind{Group: "apiextensions.k8s.io", Kind: "CustomResourceDefinition"}

func isNamespace(gvk schema.GroupVersionKind) bool { return gvk.Group == "" && gvk.Kind == "Namespace" }
func isCRD(gvk schema.GroupVersionKind) bool       { return gvk.GroupKind() == crdGK }

// prepared is an object ready to send, with its mapping.
type prepared struct {
	obj    *unstructured.Unstructured
	source string
	gvr    schema.GroupVersionResource
}

// prepare copies obj, strips devloop's source annotation and fixes its
// namespace according to the resource's scope.
func (a *Applier) prepare(obj *unstructured.Unstructured) (prepared, error) {
	o := obj.DeepCopy()
	src := Source(o)
	if ann := o.GetAnnotations(); ann != nil {
		delete(ann, SourceAnnotation)
		if len(ann) == 0 {
			unstructured.RemoveNestedField(o.Object, "metadata", "annotations")
		} else {
			o.SetAnnotations(ann)
		}
	}
	m, err := restMapping(a.mapper, o.GroupVersionKind())
	if err != nil {
		return prepared{}, &ApplyError{Ref: refOf(o), Source: src, Err: err}
	}
	if m.Scope.Name() == meta.RESTScopeNameRoot {
		o.SetNamespace("")
	} else if o.GetNamespace() == "" {
		o.SetNamespace(a.namespace)
	}
	return prepared{obj: o, source: src, gvr: m.Resource}, nil
}

// Apply server-side applies objs: Namespaces and CRDs first (waiting for the
// CRDs to be established), then the rest. If everything applied, objects in
// the previous inventory that objs no longer contain are deleted. The
// returned error joins one *ApplyError per rejected object.
func (a *Applier) Apply(ctx context.Context, objs []*unstructured.Unstructured) (ApplyResult, error) {
	return a.ApplyHolding(ctx, objs, nil)
}

// ApplyHolding is Apply with some rendered objects held back: they are
// neither applied nor pruned (whatever of them runs keeps running, and stays
// in the inventory). devloop holds back the workloads of a service that
// waits for its dependencies, that was not selected, or whose first build
// failed.
func (a *Applier) ApplyHolding(ctx context.Context, objs, held []*unstructured.Unstructured) (ApplyResult, error) {
	var res ApplyResult
	heldIDs := map[string]bool{}
	for _, o := range held {
		if p, err := a.prepare(o); err == nil {
			heldIDs[refOf(p.obj).id()] = true
		}
	}
	var first, rest []*unstructured.Unstructured
	for _, o := range objs {
		if gvk := o.GroupVersionKind(); isNamespace(gvk) || isCRD(gvk) {
			first = append(first, o)
		} else {
			rest = append(rest, o)
		}
	}
	sort.SliceStable(first, func(i, j int) bool { // namespaces before CRDs
		return isNamespace(first[i].GroupVersionKind()) && !isNamespace(first[j].GroupVersionKind())
	})
	sort.SliceStable(rest, func(i, j int) bool { return kindRank(rest[i].GetKind()) < kindRank(rest[j].GetKind()) })

	prev, err := a.readInventory(ctx)
	if err != nil {
		return res, err
	}
	// Nothing is applied when any object would be taken over.
	if err := a.foreign(ctx, objs, prev); err != nil {
		return res, err
	}
	// Write ahead: the inventory lists every object about to be applied
	// before the first one is, so a devloop killed in the middle of this
	// apply (SIGKILL, a crash, a lost laptop battery) leaves nothing
	// untracked: the next apply prunes what no longer renders, and down
	// deletes it. Entries not applied yet carry no UID; like every entry they
	// are deleted only while the object carries devloop's labels for this
	// project.
	if err := a.ensureNamespace(ctx); err != nil {
		return res, err
	}
	intent := append([]ObjectRef(nil), prev...)
	known := map[string]bool{}
	for _, r := range prev {
		known[r.id()] = true
	}
	for _, o := range objs {
		if p, err := a.prepare(o); err == nil && !known[refOf(p.obj).id()] {
			known[refOf(p.obj).id()] = true
			intent = append(intent, refOf(p.obj))
		}
	}
	if len(intent) > len(prev) {
		if err := a.writeInventory(ctx, intent); err != nil {
			return res, err
		}
	}
	var errs []error
	applied := map[string]ObjectRef{}
	var order []string
	record := func(r ObjectResult) {
		res.Applied = append(res.Applied, r)
		if _, ok := applied[r.Ref.id()]; !ok {
			order = append(order, r.Ref.id())
		}
		applied[r.Ref.id()] = r.Ref
	}

	// applyEach applies objs in order, collecting errors; it returns what was applied.
	applyEach := func(objs []*unstructured.Unstructured) []prepared {
		var done []prepared
		for _, o := range objs {
			p, err := a.prepare(o)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			r, err := a.applyOne(ctx, p)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			record(r)
			done = append(done, p)
		}
		return done
	}

	var crds []prepared
	for _, p := range applyEach(first) {
		if isCRD(p.obj.GroupVersionKind()) {
			crds = append(crds, p)
		}
	}
	for _, p := range crds {
		if err := a.waitEstablished(ctx, p); err != nil {
			errs = append(errs, err)
		}
	}
	if len(crds) > 0 {
		if r, ok := a.mapper.(meta.ResettableRESTMapper); ok {
			r.Reset()
		}
	}
	applyEach(rest)

	if len(errs) > 0 {
		// Keep tracking everything, old and new, so nothing leaks; prune next time.
		keep := prev
		for _, id := range order {
			keep = appendRef(keep, applied[id])
		}
		if err := a.writeInventory(ctx, keep); err != nil {
			errs = append(errs, err)
		}
		return res, errors.Join(errs...)
	}

	var stale []ObjectRef
	var keep []ObjectRef
	for _, r := range prev {
		if _, ok := applied[r.id()]; !ok {
			if heldIDs[r.id()] {
				keep = append(keep, r)
				continue
			}
			stale = append(stale, r)
		}
	}
	pruned, failed, err := a.deleteRefs(ctx, stale, false)
	res.Pruned = pruned
	keep = append(keep, failed...)
	for _, id := range order {
		keep = appendRef(keep, applied[id])
	}
	if werr := a.writeInventory(ctx, keep); werr != nil {
		err = errors.Join(err, werr)
	}
	return res, err
}

func appendRef(refs []ObjectRef, r ObjectRef) []ObjectRef {
	for i, x := range refs {
		if x.id() == r.id() {
			refs[i] = r
			return refs
		}
	}
	return append(refs, r)
}

// kindRank orders objects so dependencies usually exist before dependents.
func kindRank(kind string) int {
	switch kind {
	case "ResourceQuota", "LimitRange", "PriorityClass", "StorageClass":
		return 0
	case "ServiceAccount", "Secret", "ConfigMap", "PersistentVolume", "PersistentVolumeClaim":
		return 1
	case "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding":
		return 2
	case "Service":
		return 3
	case "Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob", "Pod":
		return 5
	case "Ingress", "IngressClass", "HorizontalPodAutoscaler", "PodDisruptionBudget":
		return 6
	}
	return 4
}

// current reads the object p would apply; nil when it does not exist.
func (a *Applier) current(ctx context.Context, p prepared) (*unstructured.Unstructured, error) {
	old, err := a.api.Get(ctx, p.gvr, p.obj.GetNamespace(), p.obj.GetName())
	switch {
	case err == nil:
		return old, nil
	case apierrors.IsNotFound(err):
		return nil, nil
	}
	return nil, &ApplyError{Ref: refOf(p.obj), Source: p.source, Err: fmt.Errorf("reading current state: %w", err)}
}

// foreign checks, before anything is applied, that no object of objs
// exists without being devloop's (for objects not in the inventory prev).
// Objects of kinds the cluster does not know yet (a CRD applied with them)
// cannot exist, and are skipped.
func (a *Applier) foreign(ctx context.Context, objs []*unstructured.Unstructured, prev []ObjectRef) error {
	inInventory := map[string]string{}
	for _, r := range prev {
		inInventory[r.id()] = r.UID
	}
	var errs []error
	for _, o := range objs {
		p, err := a.prepare(o)
		if err != nil {
			continue
		}
		live, err := a.current(ctx, p)
		if err != nil {
			return err
		}
		if live == nil {
			continue
		}
		ref := refOf(p.obj)
		// An entry without a UID (written ahead of an apply that may never
		// have run) vouches for nothing: the object must carry the labels.
		if uid := inInventory[ref.id()]; uid != "" && uid == string(live.GetUID()) {
			continue
		}
		if !a.owns(live, "") {
			errs = append(errs, &ForeignError{Ref: ref, Source: p.source, Project: a.project})
		}
	}
	return errors.Join(errs...)
}

func (a *Applier) applyOne(ctx context.Context, p prepared) (ObjectResult, error) {
	ref := refOf(p.obj)
	ns := p.obj.GetNamespace()
	oldRV := ""
	old, err := a.current(ctx, p)
	if err != nil {
		return ObjectResult{}, err
	}
	if old != nil {
		oldRV = old.GetResourceVersion()
		if p.obj.GetKind() == "StatefulSet" {
			keepClaimTemplateLabels(p.obj, old)
		}
	}
	got, err := a.api.Apply(ctx, p.gvr, ns, p.obj)
	if err != nil {
		return ObjectResult{}, &ApplyError{Ref: ref, Source: p.source, Err: err}
	}
	if got != nil {
		ref.UID = string(got.GetUID())
	}
	op := Configured
	switch {
	case oldRV == "":
		op = Created
	case got != nil && got.GetResourceVersion() == oldRV:
		op = Unchanged
	}
	return ObjectResult{Ref: ref, Op: op, Source: p.source}, nil
}

// keepClaimTemplateLabels drops devloop's labels from obj's
// volumeClaimTemplates where the live StatefulSet's template of that name
// lacks them (applied before devloop labelled claims): the templates are
// immutable, and the apply would be refused. Those claims then are not
// named by down, nor deleted by down --volumes.
func keepClaimTemplateLabels(obj, live *unstructured.Unstructured) {
	liveVCTs, _, _ := unstructured.NestedSlice(live.Object, "spec", "volumeClaimTemplates")
	labelled := map[string]bool{}
	for _, v := range liveVCTs {
		vm, _ := v.(map[string]any)
		name, _, _ := unstructured.NestedString(vm, "metadata", "name")
		l, _, _ := unstructured.NestedStringMap(vm, "metadata", "labels")
		labelled[name] = l[ProjectLabel] != ""
	}
	vcts, _, _ := unstructured.NestedSlice(obj.Object, "spec", "volumeClaimTemplates")
	changed := false
	for _, v := range vcts {
		vm, _ := v.(map[string]any)
		name, _, _ := unstructured.NestedString(vm, "metadata", "name")
		if ok, known := labelled[name]; !known || ok {
			continue
		}
		if l, found, _ := unstructured.NestedMap(vm, "metadata", "labels"); found {
			delete(l, ProjectLabel)
			delete(l, ManagedByLabel)
			if len(l) == 0 {
				unstructured.RemoveNestedField(vm, "metadata", "labels")
			} else {
				_ = unstructured.SetNestedMap(vm, l, "metadata", "labels")
			}
			changed = true
		}
	}
	if changed {
		_ = unstructured.SetNestedSlice(obj.Object, vcts, "spec", "volumeClaimTemplates")
	}
}

func (a *Applier) waitEstablished(ctx context.Context, p prepared) error {
	name := p.obj.GetName()
	var last error
	err := wait.PollUntilContextTimeout(ctx, a.crdPoll, a.crdTimeout, true, func(ctx context.Context) (bool, error) {
		crd, err := a.api.Get(ctx, p.gvr, "", name)
		if err != nil {
			last = err
			return false, nil
		}
		conds, _, _ := unstructured.NestedSlice(crd.Object, "status", "conditions")
		for _, c := range conds {
			cm, _ := c.(map[string]any)
			if cm["type"] == "Established" && cm["status"] == "True" {
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		if last != nil {
			err = fmt.Errorf("%w (last error: %v)", err, last)
		}
		return fmt.Errorf("waiting for CustomResourceDefinition %s to be established: %w", name, err)
	}
	return nil
}

// NamespaceCreatedAnnotation marks a namespace devloop created, with the
// project it created it for: on an existing cluster, `down` deletes the
// namespace only when it carries this mark for its project.
const NamespaceCreatedAnnotation = "devloop.dev/created-for"

// DeleteCreatedNamespace deletes the project namespace when devloop created
// it for this project (NamespaceCreatedAnnotation), and says what it did:
// "namespace/<ns> deleted (devloop created it)", or why it was kept.
func (a *Applier) DeleteCreatedNamespace(ctx context.Context) (string, error) {
	ns, err := a.core.CoreV1().Namespaces().Get(ctx, a.namespace, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		return "", nil
	case apierrors.IsForbidden(err):
		return "namespace/" + a.namespace + " kept (you may not read it)", nil
	case err != nil:
		return "", fmt.Errorf("reading namespace %s: %w", a.namespace, err)
	case ns.Annotations[NamespaceCreatedAnnotation] != a.project || ns.Labels[ManagedByLabel] != ManagedByValue:
		return "namespace/" + a.namespace + " kept (devloop did not create it)", nil
	}
	uid := ns.UID
	err = a.core.CoreV1().Namespaces().Delete(ctx, a.namespace, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &uid}})
	switch {
	case apierrors.IsNotFound(err):
		return "", nil
	case err != nil:
		return "", fmt.Errorf("deleting namespace %s (devloop created it): %w", a.namespace, err)
	}
	return "namespace/" + a.namespace + " deleted (devloop created it)", nil
}

// ensureNamespace creates the project namespace if it does not exist yet,
// marked as devloop's (NamespaceCreatedAnnotation).
func (a *Applier) ensureNamespace(ctx context.Context) error {
	_, err := a.core.CoreV1().Namespaces().Get(ctx, a.namespace, metav1.GetOptions{})
	if err == nil || apierrors.IsForbidden(err) {
		// Forbidden: a developer of a shared cluster may not read
		// namespaces, only write in theirs; the apply says if it is missing.
		return nil
	}
	if !apierrors.IsNotFound(err) {
		return fmt.Errorf("reading namespace %s: %w", a.namespace, err)
	}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: a.namespace, Labels: map[string]string{ManagedByLabel: ManagedByValue},
		Annotations: map[string]string{NamespaceCreatedAnnotation: a.project}}}
	if _, err := a.core.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{FieldManager: FieldManager}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating namespace %s: %w", a.namespace, err)
	}
	return nil
}

func (a *Applier) readInventory(ctx context.Context) ([]ObjectRef, error) {
	cm, err := a.core.CoreV1().ConfigMaps(a.namespace).Get(ctx, a.InventoryName(), metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading inventory %s/%s: %w", a.namespace, a.InventoryName(), err)
	}
	if from := cm.Annotations[ConfigAnnotation]; from != "" && a.configPath != "" && from != a.configPath {
		return nil, fmt.Errorf("project %q in namespace %s was deployed by devloop from %s, not from %s: "+
			"two projects cannot share a name in one namespace (rename one in its devloop.yaml, or run devloop down from %s first)",
			a.project, a.namespace, from, a.configPath, from)
	}
	var refs []ObjectRef
	for _, l := range strings.Split(cm.Data[inventoryKey], "\n") {
		if l = strings.TrimSpace(l); l == "" {
			continue
		}
		r, err := parseInventoryLine(l)
		if err != nil {
			return nil, fmt.Errorf("reading inventory %s/%s: %w", a.namespace, a.InventoryName(), err)
		}
		refs = append(refs, r)
	}
	return refs, nil
}

func (a *Applier) writeInventory(ctx context.Context, refs []ObjectRef) error {
	lines := make([]string, 0, len(refs))
	for _, r := range refs {
		lines = append(lines, r.line())
	}
	data := strings.Join(lines, "\n")
	if data != "" {
		data += "\n"
	}
	cm := corev1ac.ConfigMap(a.InventoryName(), a.namespace).
		WithLabels(map[string]string{ManagedByLabel: ManagedByValue, ProjectLabel: a.project}).
		WithData(map[string]string{inventoryKey: data})
	if a.configPath != "" {
		cm.WithAnnotations(map[string]string{ConfigAnnotation: a.configPath})
	}
	if _, err := a.core.CoreV1().ConfigMaps(a.namespace).Apply(ctx, cm, metav1.ApplyOptions{FieldManager: FieldManager, Force: true}); err != nil {
		return fmt.Errorf("writing inventory %s/%s: %w", a.namespace, a.InventoryName(), err)
	}
	return nil
}

// deleteRefs deletes refs: ordinary objects first, then CRDs, then
// namespaces. Unless all is set, the project namespace itself (which holds
// the inventory) is never deleted. It returns what was deleted and the refs
// that could not be deleted.
func (a *Applier) deleteRefs(ctx context.Context, refs []ObjectRef, all bool) (deleted []ObjectResult, failed []ObjectRef, err error) {
	ordered := append([]ObjectRef(nil), refs...)
	rank := func(r ObjectRef) int {
		switch {
		case isNamespace(r.GVK()):
			return 2
		case isCRD(r.GVK()):
			return 1
		}
		return 0
	}
	sort.SliceStable(ordered, func(i, j int) bool { return rank(ordered[i]) < rank(ordered[j]) })
	var errs []error
	for _, r := range ordered {
		if isNamespace(r.GVK()) && r.Name == a.namespace && !all {
			continue
		}
		gvr, ns, live, gerr := a.live(ctx, r)
		if gerr != nil {
			errs = append(errs, fmt.Errorf("reading %s before deleting it: %w", r, gerr))
			failed = append(failed, r)
			continue
		}
		if live == nil {
			continue
		}
		if !a.owns(live, r.UID) {
			// Not the object devloop applied: someone else's, never deleted.
			deleted = append(deleted, ObjectResult{Ref: r, Op: Kept})
			continue
		}
		if derr := a.api.Delete(ctx, gvr, ns, r.Name); derr != nil {
			if apierrors.IsNotFound(derr) {
				continue
			}
			errs = append(errs, fmt.Errorf("deleting %s: %w", r, derr))
			failed = append(failed, r)
			continue
		}
		deleted = append(deleted, ObjectResult{Ref: r, Op: Deleted})
	}
	return deleted, failed, errors.Join(errs...)
}

// live reads r's object, with the resource and namespace the API has it
// under; a nil object when it is gone, or its kind is (its CRD deleted).
func (a *Applier) live(ctx context.Context, r ObjectRef) (schema.GroupVersionResource, string, *unstructured.Unstructured, error) {
	m, err := restMapping(a.mapper, r.GVK())
	if err != nil {
		return schema.GroupVersionResource{}, "", nil, nil
	}
	ns := r.Namespace
	if m.Scope.Name() == meta.RESTScopeNameRoot {
		ns = ""
	}
	obj, err := a.api.Get(ctx, m.Resource, ns, r.Name)
	if apierrors.IsNotFound(err) {
		return m.Resource, ns, nil, nil
	}
	return m.Resource, ns, obj, err
}

// DeleteHooks deletes what the hooks of an uninstalled release made and
// Helm leaves behind: helm uninstall removes the release's objects but not
// its hooks' (a pre-install Job with the default before-hook-creation policy
// stays, Completed, until the hook runs again). hooks are the release's hook
// manifests; only objects carrying the project's labels (devloop's
// post-renderer puts them on hooks too) are deleted, others are kept and
// said so. Some stay whatever their labels: CustomResourceDefinitions (Helm
// never deletes a hook CRD either), Namespaces (they take what others put
// in them), objects annotated helm.sh/resource-policy: keep, and, unless
// volumes is set, PersistentVolumeClaims (a chart makes a claim a hook so
// that an uninstall keeps its data): those of the project are returned as
// kept. It returns one line per object deleted or kept.
func (a *Applier) DeleteHooks(ctx context.Context, release, namespace string, hooks []string, volumes bool) (lines, keptVolumes []string, err error) {
	if len(hooks) == 0 {
		return nil, nil, nil
	}
	objs, err := releaseObjects(strings.Join(hooks, "\n---\n"), config.Chart{Chart: "of release " + release, Release: release, Namespace: namespace})
	if err != nil {
		return nil, nil, err
	}
	var refs []ObjectRef
	for _, o := range objs {
		r := refOf(o)
		switch {
		case isCRD(r.GVK()), isNamespace(r.GVK()), o.GetAnnotations()["helm.sh/resource-policy"] == "keep":
		case isPVC(r) && !volumes:
			if _, _, live, gerr := a.live(ctx, r); gerr == nil && live != nil && a.owns(live, "") {
				keptVolumes = append(keptVolumes, r.String())
			}
		default:
			refs = append(refs, r)
		}
	}
	done, _, err := a.deleteRefs(ctx, refs, false)
	for _, d := range done {
		lines = append(lines, d.String()+" (hook of release "+release+")")
	}
	return lines, keptVolumes, err
}

// isPVC reports whether r is a PersistentVolumeClaim: its data outlives a
// down unless the user asks for the volumes too.
func isPVC(r ObjectRef) bool { return r.Group == "" && r.Kind == "PersistentVolumeClaim" }

// Removed is what DeleteAll did.
type Removed struct {
	// Deleted has one "kind/name deleted" or "kind/name kept (not devloop's)"
	// line per object of the inventory (and, with volumes, per claim).
	Deleted []string
	// KeptVolumes names the project's PersistentVolumeClaims left in place
	// (those of the manifests and those a StatefulSet made from its
	// volumeClaimTemplates, which carry the project's labels).
	KeptVolumes []string
}

// DeleteAll deletes everything in the project's inventory that is still
// devloop's (its labels, its recorded UID; anything else is kept and said
// so), then the inventory itself. PersistentVolumeClaims, the manifests'
// and those StatefulSets made, are kept unless volumes is set. It does not
// wait for the objects to disappear. On error the inventory keeps what
// could not be deleted.
func (a *Applier) DeleteAll(ctx context.Context, volumes bool) (Removed, error) {
	var out Removed
	refs, err := a.readInventory(ctx)
	if err != nil {
		return out, err
	}
	var nsRefs, pvcs, others []ObjectRef
	for _, r := range refs {
		switch {
		case isNamespace(r.GVK()) && r.Name == a.namespace:
			nsRefs = append(nsRefs, r)
		case isPVC(r):
			pvcs = append(pvcs, r)
		default:
			others = append(others, r)
		}
	}
	if volumes {
		others = append(pvcs, others...)
	}
	done, failed, derr := a.deleteRefs(ctx, others, true)
	for _, d := range done {
		out.Deleted = append(out.Deleted, d.String())
	}
	if derr != nil {
		if werr := a.writeInventory(ctx, append(failed, nsRefs...)); werr != nil {
			derr = errors.Join(derr, werr)
		}
		return out, derr
	}
	// The project's claims are looked for where its objects were: the same
	// project name in another namespace is another project.
	namespaces := []string{a.namespace}
	for _, r := range refs {
		if r.Namespace != "" && !slices.Contains(namespaces, r.Namespace) {
			namespaces = append(namespaces, r.Namespace)
		}
	}
	var claims []corev1.PersistentVolumeClaim
	for _, ns := range namespaces {
		list, err := a.core.CoreV1().PersistentVolumeClaims(ns).List(ctx, metav1.ListOptions{
			LabelSelector: ProjectLabel + "=" + a.project + "," + ManagedByLabel + "=" + ManagedByValue})
		if err != nil {
			return out, fmt.Errorf("listing the project's PersistentVolumeClaims in %s: %w", ns, err)
		}
		claims = append(claims, list.Items...)
	}
	handled := map[string]bool{}
	for _, d := range done {
		handled[d.Ref.Namespace+"/"+d.Ref.Name] = isPVC(d.Ref)
	}
	var errs []error
	for _, c := range claims {
		if handled[c.Namespace+"/"+c.Name] {
			continue
		}
		ref := ObjectRef{Version: "v1", Kind: "PersistentVolumeClaim", Namespace: c.Namespace, Name: c.Name}
		if !volumes {
			out.KeptVolumes = append(out.KeptVolumes, ref.String())
			continue
		}
		err := a.core.CoreV1().PersistentVolumeClaims(c.Namespace).Delete(ctx, c.Name, metav1.DeleteOptions{})
		switch {
		case apierrors.IsNotFound(err):
		case err != nil:
			errs = append(errs, fmt.Errorf("deleting %s: %w", ref, err))
		default:
			out.Deleted = append(out.Deleted, ObjectResult{Ref: ref, Op: Deleted}.String())
		}
	}
	if len(errs) > 0 {
		return out, errors.Join(errs...)
	}
	err = a.core.CoreV1().ConfigMaps(a.namespace).Delete(ctx, a.InventoryName(), metav1.DeleteOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		return out, fmt.Errorf("deleting inventory %s/%s: %w", a.namespace, a.InventoryName(), err)
	}
	// The project namespace goes last: it holds the inventory (and a
	// namespace's deletion takes its claims with it, so it stays while
	// claims are kept).
	if len(out.KeptVolumes) > 0 {
		return out, nil
	}
	done, _, derr = a.deleteRefs(ctx, nsRefs, true)
	for _, d := range done {
		out.Deleted = append(out.Deleted, d.String())
	}
	return out, derr
}
