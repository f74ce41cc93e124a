package kube

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"
)

// fakeAPI is an in-memory ResourceAPI with resourceVersions that change
// only when content changes (like server-side apply).
type fakeAPI struct {
	objs    map[string]*unstructured.Unstructured
	rv      int
	reject  map[string]error // by object name
	deletes []string
	// die, when set, is called before applying the object of that name
	// (a test panics there: devloop killed in the middle of an apply).
	die map[string]func()
}

func newFakeAPI() *fakeAPI {
	return &fakeAPI{objs: map[string]*unstructured.Unstructured{}, reject: map[string]error{}}
}

func key(gvr schema.GroupVersionResource, ns, name string) string {
	return gvr.Resource + "/" + ns + "/" + name
}

func (f *fakeAPI) Get(_ context.Context, gvr schema.GroupVersionResource, ns, name string) (*unstructured.Unstructured, error) {
	if o, ok := f.objs[key(gvr, ns, name)]; ok {
		return o.DeepCopy(), nil
	}
	return nil, apierrors.NewNotFound(gvr.GroupResource(), name)
}

func (f *fakeAPI) Apply(_ context.Context, gvr schema.GroupVersionResource, ns string, obj *unstructured.Unstructured) (*unstructured.Unstructured, error) {
	if die := f.die[obj.GetName()]; die != nil {
		die()
	}
	if err := f.reject[obj.GetName()]; err != nil {
		return nil, err
	}
	if obj.GetNamespace() != ns {
		return nil, fmt.Errorf("namespace mismatch: object %q, request %q", obj.GetNamespace(), ns)
	}
	k := key(gvr, ns, obj.GetName())
	n := obj.DeepCopy()
	old, existed := f.objs[k]
	if existed {
		cmp := old.DeepCopy()
		unstructured.RemoveNestedField(cmp.Object, "metadata", "resourceVersion")
		unstructured.RemoveNestedField(cmp.Object, "metadata", "uid")
		unstructured.RemoveNestedField(cmp.Object, "status")
		if equality.Semantic.DeepEqual(cmp.Object, n.Object) {
			return old.DeepCopy(), nil
		}
	}
	if gvr.Resource == "customresourcedefinitions" {
		_ = unstructured.SetNestedSlice(n.Object, []any{map[string]any{"type": "Established", "status": "True"}}, "status", "conditions")
	}
	f.rv++
	n.SetResourceVersion(fmt.Sprint(f.rv))
	if existed {
		n.SetUID(old.GetUID())
	} else {
		n.SetUID(types.UID(fmt.Sprint("uid-", f.rv)))
	}
	f.objs[k] = n
	return n.DeepCopy(), nil
}

func (f *fakeAPI) Delete(_ context.Context, gvr schema.GroupVersionResource, ns, name string) error {
	k := key(gvr, ns, name)
	if _, ok := f.objs[k]; !ok {
		return apierrors.NewNotFound(gvr.GroupResource(), name)
	}
	delete(f.objs, k)
	f.deletes = append(f.deletes, k)
	return nil
}

func (f *fakeAPI) keys() []string {
	var out []string
	for k := range f.objs {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// resettableMapper lets a test add kinds on Reset, like discovery after a CRD appears.
type resettableMapper struct {
	*meta.DefaultRESTMapper
	resets  int
	onReset func(*meta.DefaultRESTMapper)
}

func (m *resettableMapper) Reset() {
	m.resets++
	if m.onReset != nil {
		m.onReset(m.DefaultRESTMapper)
	}
}

func testMapper() *resettableMapper {
	m := meta.NewDefaultRESTMapper(nil)
	for _, k := range []struct {
		gvk  schema.GroupVersionKind
		root bool
	}{
		{schema.GroupVersionKind{Version: "v1", Kind: "Namespace"}, true},
		{schema.GroupVersionKind{Version: "v1", Kind: "ConfigMap"}, false},
		{schema.GroupVersionKind{Version: "v1", Kind: "Secret"}, false},
		{schema.GroupVersionKind{Version: "v1", Kind: "Service"}, false},
		{schema.GroupVersionKind{Group: "apps", Version: "v1", Kind: "Deployment"}, false},
		{schema.GroupVersionKind{Group: "rbac.authorization.k8s.io", Version: "v1", Kind: "ClusterRole"}, true},
		{schema.GroupVersionKind{Group: "apiextensions.k8s.io", Version: "v1", Kind: "CustomResourceDefinition"}, true},
	} {
		scope := meta.RESTScopeNamespace
		if k.root {
			scope = meta.RESTScopeRoot
		}
		m.Add(k.gvk, scope)
	}
	return &resettableMapper{DefaultRESTMapper: m}
}

// objWithSource is a rendered object of project "proj": its source
// annotation and devloop's labels, as Prepare makes them.
func objWithSource(t *testing.T, y, src string) *unstructured.Unstructured {
	o := mustObj(t, y)
	o.SetAnnotations(map[string]string{SourceAnnotation: src})
	Label([]*unstructured.Unstructured{o}, "proj")
	return o
}

func TestApplyPrune(t *testing.T) {
	ctx := context.Background()
	api := newFakeAPI()
	core := fake.NewClientset()
	a := newApplier(api, testMapper(), core, "proj", "dev", "/p/devloop.yaml")

	cm := objWithSource(t, "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cfg}\ndata: {a: '1'}\n", "m.yaml#0")
	secret := objWithSource(t, "apiVersion: v1\nkind: Secret\nmetadata: {name: db, namespace: dev}\nstringData: {password: hunter2}\n", "m.yaml#1")
	dep := objWithSource(t, "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web, namespace: dev}\nspec: {replicas: 1}\n", "m.yaml#2")
	// Render put a namespace on a kind it did not know was cluster-scoped.
	cr := objWithSource(t, "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: {name: reader, namespace: dev}\n", "m.yaml#3")
	ns := objWithSource(t, "apiVersion: v1\nkind: Namespace\nmetadata: {name: extra}\n", "m.yaml#4")

	res, err := a.Apply(ctx, []*unstructured.Unstructured{cm, secret, dep, cr, ns})
	if err != nil {
		t.Fatalf("Apply: %v", err)
	}
	want := []string{"namespace/extra created", "configmap/cfg created", "secret/db created", "clusterrole/reader created", "deployment/web created"}
	if got := res.Lines(); !reflect.DeepEqual(got, want) {
		t.Errorf("first apply:\n got %q\nwant %q", got, want)
	}
	for _, line := range res.Lines() {
		if strings.Contains(line, "hunter2") {
			t.Errorf("result leaks secret data: %q", line)
		}
	}
	stored := api.objs["configmaps/dev/cfg"]
	if stored == nil {
		t.Fatalf("configmap not stored with the default namespace; have %v", api.keys())
	}
	if _, ok := stored.GetAnnotations()[SourceAnnotation]; ok {
		t.Error("source annotation was sent to the server")
	}
	if _, ok := api.objs["clusterroles//reader"]; !ok {
		t.Errorf("cluster-scoped object not applied without namespace; have %v", api.keys())
	}
	if Source(cm) != "m.yaml#0" {
		t.Error("Apply modified the caller's object")
	}
	if _, err := core.CoreV1().Namespaces().Get(ctx, "dev", metav1.GetOptions{}); err != nil {
		t.Errorf("project namespace not created: %v", err)
	}
	inv, err := core.CoreV1().ConfigMaps("dev").Get(ctx, "devloop-inventory-proj", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("inventory: %v", err)
	}
	wantInv := "/v1/Namespace//extra uid-1\n/v1/ConfigMap/dev/cfg uid-2\n/v1/Secret/dev/db uid-3\nrbac.authorization.k8s.io/v1/ClusterRole//reader uid-4\napps/v1/Deployment/dev/web uid-5\n"
	if got := inv.Data["objects"]; got != wantInv {
		t.Errorf("inventory:\n%s\nwant\n%s", got, wantInv)
	}

	// Same objects again: unchanged. A changed one: configured.
	dep2 := objWithSource(t, "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web, namespace: dev}\nspec: {replicas: 2}\n", "m.yaml#2")
	res, err = a.Apply(ctx, []*unstructured.Unstructured{cm, secret, dep2, cr, ns})
	if err != nil {
		t.Fatalf("second Apply: %v", err)
	}
	want = []string{"namespace/extra unchanged", "configmap/cfg unchanged", "secret/db unchanged", "clusterrole/reader unchanged", "deployment/web configured"}
	if got := res.Lines(); !reflect.DeepEqual(got, want) {
		t.Errorf("second apply:\n got %q\nwant %q", got, want)
	}
	if got := res.Changed(); len(got) != 1 || got[0].Kind != "Deployment" {
		t.Errorf("Changed = %v", got)
	}

	// Drop the secret, the cluster role and the namespace: they are pruned.
	res, err = a.Apply(ctx, []*unstructured.Unstructured{cm, dep2})
	if err != nil {
		t.Fatalf("third Apply: %v", err)
	}
	want = []string{"configmap/cfg unchanged", "deployment/web unchanged", "secret/db deleted", "clusterrole/reader deleted", "namespace/extra deleted"}
	if got := res.Lines(); !reflect.DeepEqual(got, want) {
		t.Errorf("prune apply:\n got %q\nwant %q", got, want)
	}
	if got, want := api.keys(), []string{"configmaps/dev/cfg", "deployments/dev/web"}; !reflect.DeepEqual(got, want) {
		t.Errorf("left in cluster %v, want %v", got, want)
	}

	// DeleteAll removes the rest and the inventory.
	removed, err := a.DeleteAll(ctx, false)
	if err != nil {
		t.Fatalf("DeleteAll: %v", err)
	}
	if want := []string{"configmap/cfg deleted", "deployment/web deleted"}; !reflect.DeepEqual(removed.Deleted, want) {
		t.Errorf("DeleteAll = %v, want %v", removed.Deleted, want)
	}
	if len(api.objs) != 0 {
		t.Errorf("left after DeleteAll: %v", api.keys())
	}
	if _, err := core.CoreV1().ConfigMaps("dev").Get(ctx, "devloop-inventory-proj", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("inventory still there: %v", err)
	}
}

func TestApplyRejectionNamesObjectAndFileAndSkipsPrune(t *testing.T) {
	ctx := context.Background()
	api := newFakeAPI()
	core := fake.NewClientset()
	a := newApplier(api, testMapper(), core, "proj", "dev", "/p/devloop.yaml")
	old := objWithSource(t, "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: old}\n", "a.yaml#0")
	if _, err := a.Apply(ctx, []*unstructured.Unstructured{old}); err != nil {
		t.Fatal(err)
	}
	api.reject["web"] = apierrors.NewBadRequest(`Deployment.apps "web" is invalid: spec.replicas: Invalid value: -1: must be greater than or equal to 0`)
	bad := objWithSource(t, "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec: {replicas: -1}\n", "/p/deploy.yaml#2")
	good := objWithSource(t, "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: new}\n", "a.yaml#1")
	unknown := objWithSource(t, "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w}\n", "/p/w.yaml#0")
	res, err := a.Apply(ctx, []*unstructured.Unstructured{bad, good, unknown})
	if err == nil {
		t.Fatal("Apply succeeded, want error")
	}
	for _, w := range []string{
		`applying deployment/web (from /p/deploy.yaml#2): Deployment.apps "web" is invalid: spec.replicas`,
		`applying widget.example.com/w (from /p/w.yaml#0): the cluster does not know kind Widget in example.com/v1`,
	} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q\ndoes not contain %q", err, w)
		}
	}
	var ae *ApplyError
	if !errors.As(err, &ae) {
		t.Errorf("error is not an *ApplyError: %T", err)
	}
	if got := res.Lines(); !reflect.DeepEqual(got, []string{"configmap/new created"}) {
		t.Errorf("result = %q", got)
	}
	if _, ok := api.objs["configmaps/dev/old"]; !ok {
		t.Error("pruned after a failed apply")
	}
	inv, _ := core.CoreV1().ConfigMaps("dev").Get(ctx, "devloop-inventory-proj", metav1.GetOptions{})
	if got := inv.Data["objects"]; got != "/v1/ConfigMap/dev/old uid-1\n/v1/ConfigMap/dev/new uid-2\n" {
		t.Errorf("inventory after failure = %q, want old and new", got)
	}
}

func TestApplyCRDThenCustomResource(t *testing.T) {
	ctx := context.Background()
	api := newFakeAPI()
	mapper := testMapper()
	widget := schema.GroupVersionKind{Group: "example.com", Version: "v1", Kind: "Widget"}
	mapper.onReset = func(m *meta.DefaultRESTMapper) { m.Add(widget, meta.RESTScopeNamespace) }
	a := newApplier(api, mapper, fake.NewClientset(), "proj", "dev", "/p/devloop.yaml")
	crd := objWithSource(t, "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata: {name: widgets.example.com}\n", "crd.yaml#0")
	w := objWithSource(t, "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w1}\n", "w.yaml#0")
	res, err := a.Apply(ctx, []*unstructured.Unstructured{w, crd})
	if err != nil {
		t.Fatalf("Apply: %v", err)
	}
	want := []string{"customresourcedefinition/widgets.example.com created", "widget.example.com/w1 created"}
	if got := res.Lines(); !reflect.DeepEqual(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
	if mapper.resets == 0 {
		t.Error("mapper was not reset after applying CRDs")
	}
}

type killed struct{}

// applyKilled runs a.Apply and reports whether it was killed (the fake API
// panicked with killed{}): nothing of Apply after that point ran.
func applyKilled(ctx context.Context, a *Applier, objs []*unstructured.Unstructured) (died bool) {
	defer func() {
		if r := recover(); r != nil {
			if _, ok := r.(killed); !ok {
				panic(r)
			}
			died = true
		}
	}()
	_, _ = a.Apply(ctx, objs)
	return false
}

// devloop killed in the middle of an apply (issue 16, fault 4): what it had
// created is in the inventory already, so the next apply prunes it when it
// no longer renders, and down deletes the rest. Before the inventory was
// written ahead, the object created before the kill was tracked by nothing:
// neither pruned nor deleted, ever.
func TestApplyKilledMidwayLeavesNothingUntracked(t *testing.T) {
	ctx := context.Background()
	api := newFakeAPI()
	core := fake.NewClientset()
	a := newApplier(api, testMapper(), core, "proj", "dev", "/p/devloop.yaml")
	cfg := objWithSource(t, "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cfg}\ndata: {a: '1'}\n", "m.yaml#0")
	dep := objWithSource(t, "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec: {replicas: 1}\n", "m.yaml#1")
	if _, err := a.Apply(ctx, []*unstructured.Unstructured{cfg, dep}); err != nil {
		t.Fatal(err)
	}

	// A new ConfigMap is created, then devloop dies before the Deployment.
	extra := objWithSource(t, "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: extra}\ndata: {b: '2'}\n", "m.yaml#2")
	dep2 := objWithSource(t, "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec: {replicas: 2}\n", "m.yaml#1")
	api.die = map[string]func(){"web": func() { panic(killed{}) }}
	if !applyKilled(ctx, a, []*unstructured.Unstructured{cfg, extra, dep2}) {
		t.Fatal("the apply was not killed")
	}
	api.die = nil
	if _, ok := api.objs["configmaps/dev/extra"]; !ok {
		t.Fatalf("the object applied before the kill is not there: %v", api.keys())
	}
	inv, err := core.CoreV1().ConfigMaps("dev").Get(ctx, "devloop-inventory-proj", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(inv.Data["objects"], "/v1/ConfigMap/dev/extra") {
		t.Fatalf("configmap/extra, created before the kill, is not in the inventory:\n%s", inv.Data["objects"])
	}

	// The next up no longer renders it: it is pruned, the rest converges.
	b := newApplier(api, testMapper(), core, "proj", "dev", "/p/devloop.yaml")
	res, err := b.Apply(ctx, []*unstructured.Unstructured{cfg, dep2})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"configmap/cfg unchanged", "deployment/web configured", "configmap/extra deleted"}; !reflect.DeepEqual(res.Lines(), want) {
		t.Errorf("apply after the kill = %q, want %q", res.Lines(), want)
	}
	if got, want := api.keys(), []string{"configmaps/dev/cfg", "deployments/dev/web"}; !reflect.DeepEqual(got, want) {
		t.Errorf("left in cluster %v, want %v", got, want)
	}
	inv, _ = core.CoreV1().ConfigMaps("dev").Get(ctx, "devloop-inventory-proj", metav1.GetOptions{})
	if got, want := inv.Data["objects"], "/v1/ConfigMap/dev/cfg uid-1\napps/v1/Deployment/dev/web uid-2\n"; got != want {
		t.Errorf("inventory after convergence:\n%s\nwant\n%s", got, want)
	}
}

// An entry written ahead of an apply that never ran carries no UID; it
// must not let devloop take over an object someone else created since.
func TestWrittenAheadEntryDoesNotAdopt(t *testing.T) {
	ctx := context.Background()
	api := newFakeAPI()
	core := fake.NewClientset()
	a := newApplier(api, testMapper(), core, "proj", "dev", "/p/devloop.yaml")
	cfg := objWithSource(t, "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cfg}\ndata: {a: '1'}\n", "m.yaml#0")
	api.die = map[string]func(){"cfg": func() { panic(killed{}) }}
	if !applyKilled(ctx, a, []*unstructured.Unstructured{cfg}) {
		t.Fatal("the apply was not killed")
	}
	api.die = nil
	plant(t, api, schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}, "dev", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cfg, namespace: dev}\ndata: {theirs: 'x'}\n")
	var fe *ForeignError
	if _, err := a.Apply(ctx, []*unstructured.Unstructured{cfg}); !errors.As(err, &fe) {
		t.Fatalf("apply over someone else's configmap/cfg: %v, want a ForeignError", err)
	}
	if _, err := a.DeleteAll(ctx, false); err != nil {
		t.Fatal(err)
	}
	if _, ok := api.objs["configmaps/dev/cfg"]; !ok {
		t.Fatal("down deleted someone else's configmap/cfg")
	}
}
