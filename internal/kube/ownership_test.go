package kube

import (
	"context"
	"errors"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/fake"
)

// Issue 16 item 3: devloop deletes only what it applied for this project.

var (
	deployGVR = schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "deployments"}
	nsGVR     = schema.GroupVersionResource{Version: "v1", Resource: "namespaces"}
	crGVR     = schema.GroupVersionResource{Group: "rbac.authorization.k8s.io", Version: "v1", Resource: "clusterroles"}
)

func plant(t *testing.T, api *fakeAPI, gvr schema.GroupVersionResource, ns, y string) {
	t.Helper()
	if _, err := api.Apply(context.Background(), gvr, ns, mustObj(t, y)); err != nil {
		t.Fatal(err)
	}
}

func writeInventoryLines(t *testing.T, a *Applier, lines ...string) {
	t.Helper()
	var refs []ObjectRef
	for _, l := range lines {
		r, err := parseInventoryLine(l)
		if err != nil {
			t.Fatal(err)
		}
		refs = append(refs, r)
	}
	if err := a.writeInventory(context.Background(), refs); err != nil {
		t.Fatal(err)
	}
}

func TestDownNeverDeletesWhatDevloopDidNotCreate(t *testing.T) {
	ctx := context.Background()
	api := newFakeAPI()
	core := fake.NewClientset()
	a := newApplier(api, testMapper(), core, "proj", "dev", "/p/devloop.yaml")
	// The cluster's own objects, and an entry planted in devloop's inventory for each.
	plant(t, api, deployGVR, "kube-system", "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: coredns, namespace: kube-system}\n")
	plant(t, api, crGVR, "", "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: {name: cluster-admin}\n")
	plant(t, api, nsGVR, "", "apiVersion: v1\nkind: Namespace\nmetadata: {name: prod}\n")
	writeInventoryLines(t, a, "apps/v1/Deployment/kube-system/coredns", "rbac.authorization.k8s.io/v1/ClusterRole//cluster-admin", "/v1/Namespace//prod")

	removed, err := a.DeleteAll(ctx, true)
	got := removed.Deleted
	if err != nil {
		t.Fatalf("DeleteAll: %v", err)
	}
	if len(api.deletes) != 0 {
		t.Fatalf("deleted %v, none of which devloop created", api.deletes)
	}
	for _, l := range got {
		if !strings.HasSuffix(l, "kept (not devloop's)") {
			t.Errorf("DeleteAll line %q: want every planted object kept and said so", l)
		}
	}

	// An object with devloop's labels but another UID than the one recorded
	// (deleted and re-created by someone else) is not devloop's either.
	plant(t, api, deployGVR, "dev", "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web, namespace: dev, labels: {app.kubernetes.io/managed-by: devloop, devloop.dev/project: proj}}\n")
	writeInventoryLines(t, a, "apps/v1/Deployment/dev/web uid-someone-else")
	if _, err := a.DeleteAll(ctx, true); err != nil {
		t.Fatal(err)
	}
	if len(api.deletes) != 0 {
		t.Fatalf("deleted %v although its UID is not the recorded one", api.deletes)
	}
}

func TestApplyDoesNotAdoptExistingObjects(t *testing.T) {
	ctx := context.Background()
	api := newFakeAPI()
	core := fake.NewClientset()
	a := newApplier(api, testMapper(), core, "proj", "dev", "/p/devloop.yaml")
	plant(t, api, nsGVR, "", "apiVersion: v1\nkind: Namespace\nmetadata: {name: shared}\n")
	before := len(api.objs)

	ns := objWithSource(t, "apiVersion: v1\nkind: Namespace\nmetadata: {name: shared}\n", "k8s/ns.yaml#0")
	cm := objWithSource(t, "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cfg, namespace: dev}\n", "k8s/cm.yaml#0")
	_, err := a.Apply(ctx, []*unstructured.Unstructured{ns, cm})
	var fe *ForeignError
	if !errors.As(err, &fe) || fe.Ref.Name != "shared" {
		t.Fatalf("Apply = %v, want a ForeignError for namespace shared", err)
	}
	for _, want := range []string{"namespace/shared (k8s/ns.yaml#0) already exists and was not created by devloop", "kubectl label namespace shared devloop.dev/project=proj"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	if len(api.objs) != before {
		t.Errorf("something was applied although an object would be taken over: %v", api.keys())
	}

	// Labelled by the user: devloop takes it over, and records it.
	plant(t, api, nsGVR, "", "apiVersion: v1\nkind: Namespace\nmetadata: {name: shared, labels: {app.kubernetes.io/managed-by: devloop, devloop.dev/project: proj}}\n")
	if _, err := a.Apply(ctx, []*unstructured.Unstructured{ns, cm}); err != nil {
		t.Fatalf("Apply after labelling: %v", err)
	}
	inv, _ := core.CoreV1().ConfigMaps("dev").Get(ctx, a.InventoryName(), metav1.GetOptions{})
	if !strings.Contains(inv.Data["objects"], "/v1/Namespace//shared uid-") {
		t.Errorf("inventory %q does not record the adopted namespace with its UID", inv.Data["objects"])
	}
}

func TestTwoProjectsOfOneNameDoNotShareAnInventory(t *testing.T) {
	ctx := context.Background()
	api := newFakeAPI()
	core := fake.NewClientset(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "dev"}})
	first := newApplier(api, testMapper(), core, "proj", "dev", "/home/a/app/devloop.yaml")
	dep := objWithSource(t, "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web, namespace: dev}\n", "a.yaml#0")
	if _, err := first.Apply(ctx, []*unstructured.Unstructured{dep}); err != nil {
		t.Fatal(err)
	}
	second := newApplier(api, testMapper(), core, "proj", "dev", "/home/b/other/devloop.yaml")
	other := objWithSource(t, "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: other, namespace: dev}\n", "b.yaml#0")
	_, err := second.Apply(ctx, []*unstructured.Unstructured{other})
	if err == nil || !strings.Contains(err.Error(), "was deployed by devloop from /home/a/app/devloop.yaml") {
		t.Fatalf("second project's Apply = %v, want the name clash explained", err)
	}
	if _, err := second.DeleteAll(ctx, true); err == nil {
		t.Fatal("the second project's down went ahead on the first one's inventory")
	}
	if _, ok := api.objs["deployments/dev/web"]; !ok || len(api.deletes) != 0 {
		t.Fatalf("the first project's deployment was deleted: %v", api.deletes)
	}
}
