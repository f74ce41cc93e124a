package kube

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/fake"
)

func TestDeployHoldsOnlyWorkloadsThatRunNothingButHeldServices(t *testing.T) {
	api := newFakeAPI()
	d := testDeployer(t, api)
	var log waitLog
	// api's deployment also runs hello (web's image) as an init container:
	// holding api alone does not hold it.
	res, err := d.Deploy(context.Background(), nil, DeployOptions{All: true, Hold: []string{"api"}, Timeout: 10 * time.Second, Waiting: log.waiting})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := api.objs["deployments/dev/api"]; !ok {
		t.Errorf("deployment/api held although it runs web's image too; applied %v", res.Applied.Lines())
	}
	// Holding both holds every workload that runs hello or api, and waits for the others only.
	api = newFakeAPI()
	d = testDeployer(t, api)
	log = waitLog{}
	res, err = d.Deploy(context.Background(), nil, DeployOptions{All: true, Services: []string{"web"}, Hold: []string{"api", "web"}, Timeout: 10 * time.Second, Waiting: log.waiting})
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"deployments/dev/api", "deployments/dev/web", "jobs/dev/seed", "cronjobs/dev/nightly"} {
		if _, ok := api.objs[k]; ok {
			t.Errorf("%s applied although held", k)
		}
	}
	for _, k := range []string{"deployments/dev/db", "daemonsets/dev/agent", "ingresses/dev/web"} {
		if _, ok := api.objs[k]; !ok {
			t.Errorf("%s not applied; have %v", k, api.keys())
		}
	}
	if got, want := log.sorted(), []string{"DaemonSet/dev/agent", "Deployment/dev/db"}; !reflect.DeepEqual(got, want) {
		t.Errorf("waited for %v, want %v", got, want)
	}
	if len(res.Failed) != 0 {
		t.Errorf("Failed = %v: a held service has no rollout to fail", res.Failed)
	}
}

func TestApplyHoldingNeitherAppliesNorPrunesHeldObjects(t *testing.T) {
	ctx := context.Background()
	api := newFakeAPI()
	a := newApplier(api, testMapper(), fake.NewClientset(), "proj", "dev", "/p/devloop.yaml")
	cm := objWithSource(t, "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cfg, namespace: dev}\n", "m.yaml#0")
	dep := objWithSource(t, "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web, namespace: dev}\nspec: {replicas: 1}\n", "m.yaml#1")
	dep2 := objWithSource(t, "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web, namespace: dev}\nspec: {replicas: 2}\n", "m.yaml#1")
	if _, err := a.Apply(ctx, []*unstructured.Unstructured{cm, dep}); err != nil {
		t.Fatal(err)
	}
	res, err := a.ApplyHolding(ctx, []*unstructured.Unstructured{cm}, []*unstructured.Unstructured{dep2})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := res.Lines(), []string{"configmap/cfg unchanged"}; !reflect.DeepEqual(got, want) {
		t.Errorf("held apply = %q, want %q (the deployment neither applied nor pruned)", got, want)
	}
	if n, _, _ := unstructured.NestedFieldNoCopy(api.objs["deployments/dev/web"].Object, "spec", "replicas"); fmt.Sprint(n) != "1" {
		t.Errorf("held deployment changed: replicas %v", n)
	}
	// Still in the inventory: the next apply without it prunes it.
	res, err = a.Apply(ctx, []*unstructured.Unstructured{cm})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(res.Lines(), "deployment/web deleted") {
		t.Errorf("apply after the hold = %q, want the deployment pruned", res.Lines())
	}
}

func TestLabelMarksVolumeClaimTemplates(t *testing.T) {
	o := mustObj(t, "apiVersion: apps/v1\nkind: StatefulSet\nmetadata: {name: db}\nspec:\n  volumeClaimTemplates:\n  - metadata: {name: data}\n  - metadata: {name: logs, labels: {tier: x}}\n")
	Label([]*unstructured.Unstructured{o}, "shop")
	vcts, _, _ := unstructured.NestedSlice(o.Object, "spec", "volumeClaimTemplates")
	for i, v := range vcts {
		l, _, _ := unstructured.NestedStringMap(v.(map[string]any), "metadata", "labels")
		if l[ProjectLabel] != "shop" || l[ManagedByLabel] != ManagedByValue {
			t.Errorf("volumeClaimTemplates[%d] labels = %v", i, l)
		}
	}
	if l, _, _ := unstructured.NestedStringMap(vcts[1].(map[string]any), "metadata", "labels"); l["tier"] != "x" {
		t.Errorf("the template's own label was lost: %v", l)
	}
}

func TestDeleteAllKeepsVolumesUnlessAsked(t *testing.T) {
	ctx := context.Background()
	projectLabels := map[string]string{ProjectLabel: "proj", ManagedByLabel: ManagedByValue}
	claim := func(ns, name string, labels map[string]string) *corev1.PersistentVolumeClaim {
		return &corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: labels}}
	}
	for _, volumes := range []bool{false, true} {
		api := newFakeAPI()
		mapper := testMapper()
		mapper.Add(schema.GroupVersionKind{Version: "v1", Kind: "PersistentVolumeClaim"}, meta.RESTScopeNamespace)
		// A claim a StatefulSet made (labelled from its templates), one of the
		// same project name in a namespace it has nothing in (another
		// project), another project's, an unlabelled one.
		core := fake.NewClientset(claim("dev", "data-db-0", projectLabels), claim("other", "data-db-1", projectLabels),
			claim("dev", "theirs", map[string]string{ProjectLabel: "someone", ManagedByLabel: ManagedByValue}), claim("dev", "plain", nil))
		a := newApplier(api, mapper, core, "proj", "dev", "/p/devloop.yaml")
		cm := objWithSource(t, "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cfg, namespace: dev}\n", "m.yaml#0")
		pvc := objWithSource(t, "apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {name: uploads, namespace: dev}\n", "m.yaml#1")
		if _, err := a.Apply(ctx, []*unstructured.Unstructured{cm, pvc}); err != nil {
			t.Fatal(err)
		}
		removed, err := a.DeleteAll(ctx, volumes)
		if err != nil {
			t.Fatal(err)
		}
		left, _ := core.CoreV1().PersistentVolumeClaims("").List(ctx, metav1.ListOptions{})
		var names []string
		for _, c := range left.Items {
			names = append(names, c.Namespace+"/"+c.Name)
		}
		slices.Sort(names)
		_, uploads := api.objs["persistentvolumeclaims/dev/uploads"]
		if !volumes {
			if want := []string{"configmap/cfg deleted"}; !reflect.DeepEqual(removed.Deleted, want) {
				t.Errorf("down: deleted %q, want %q", removed.Deleted, want)
			}
			if want := []string{"persistentvolumeclaim/data-db-0"}; !reflect.DeepEqual(removed.KeptVolumes, want) {
				t.Errorf("down: kept %q, want %q", removed.KeptVolumes, want)
			}
			if want := []string{"dev/data-db-0", "dev/plain", "dev/theirs", "other/data-db-1"}; !reflect.DeepEqual(names, want) || !uploads {
				t.Errorf("down: claims left %q (uploads %v), want every one", names, uploads)
			}
			continue
		}
		if want := []string{"persistentvolumeclaim/uploads deleted", "configmap/cfg deleted", "persistentvolumeclaim/data-db-0 deleted"}; !reflect.DeepEqual(removed.Deleted, want) {
			t.Errorf("down --volumes: deleted %q, want %q", removed.Deleted, want)
		}
		if want := []string{"dev/plain", "dev/theirs", "other/data-db-1"}; !reflect.DeepEqual(names, want) || uploads || len(removed.KeptVolumes) != 0 {
			t.Errorf("down --volumes: claims left %q (uploads %v, kept %q), want only the others'", names, uploads, removed.KeptVolumes)
		}
	}
}

// A StatefulSet applied before devloop labelled claim templates keeps its
// (immutable) templates as they are.
func TestApplyKeepsUnlabelledClaimTemplatesOfALiveStatefulSet(t *testing.T) {
	live := mustObj(t, "apiVersion: apps/v1\nkind: StatefulSet\nmetadata: {name: db}\nspec:\n  volumeClaimTemplates:\n  - metadata: {name: data}\n  - metadata: {name: logs, labels: {devloop.dev/project: shop, app.kubernetes.io/managed-by: devloop}}\n")
	obj := mustObj(t, "apiVersion: apps/v1\nkind: StatefulSet\nmetadata: {name: db}\nspec:\n  volumeClaimTemplates:\n  - metadata: {name: data}\n  - metadata: {name: logs}\n  - metadata: {name: new}\n")
	Label([]*unstructured.Unstructured{obj}, "shop")
	keepClaimTemplateLabels(obj, live)
	vcts, _, _ := unstructured.NestedSlice(obj.Object, "spec", "volumeClaimTemplates")
	for i, want := range []bool{false, true, true} {
		l, _, _ := unstructured.NestedStringMap(vcts[i].(map[string]any), "metadata", "labels")
		if got := l[ProjectLabel] == "shop"; got != want {
			t.Errorf("template %d labelled %v, want %v (%v)", i, got, want, l)
		}
	}
}
