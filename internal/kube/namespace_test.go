package kube

import (
	"context"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/devloop-dev/devloop/internal/config"
)

// The namespace an apply creates is marked as devloop's, for its project;
// only such a namespace is deleted by DeleteCreatedNamespace.
func TestCreatedNamespaceIsMarkedAndOnlyItIsDeleted(t *testing.T) {
	ctx := context.Background()
	core := fake.NewClientset()
	a := newApplier(newFakeAPI(), testMapper(), core, "proj", "proj-ana", "/p/devloop.yaml")
	cm := objWithSource(t, "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cfg}\n", "m.yaml#0")
	if _, err := a.Apply(ctx, []*unstructured.Unstructured{cm}); err != nil {
		t.Fatal(err)
	}
	ns, err := core.CoreV1().Namespaces().Get(ctx, "proj-ana", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if ns.Annotations[NamespaceCreatedAnnotation] != "proj" || ns.Labels[ManagedByLabel] != ManagedByValue {
		t.Errorf("created namespace not marked: %v %v", ns.Labels, ns.Annotations)
	}
	// Another project of the same namespace did not create it.
	other := newApplier(newFakeAPI(), testMapper(), core, "other", "proj-ana", "/q/devloop.yaml")
	if what, err := other.DeleteCreatedNamespace(ctx); err != nil || what != "namespace/proj-ana kept (devloop did not create it)" {
		t.Errorf("other project: %q, %v", what, err)
	}
	what, err := a.DeleteCreatedNamespace(ctx)
	if err != nil || what != "namespace/proj-ana deleted (devloop created it)" {
		t.Errorf("DeleteCreatedNamespace = %q, %v", what, err)
	}
	if _, err := core.CoreV1().Namespaces().Get(ctx, "proj-ana", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("namespace still there: %v", err)
	}

	// A namespace that existed before devloop is never deleted, nor marked.
	core = fake.NewClientset(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "team"}})
	a = newApplier(newFakeAPI(), testMapper(), core, "proj", "team", "/p/devloop.yaml")
	if _, err := a.Apply(ctx, []*unstructured.Unstructured{cm}); err != nil {
		t.Fatal(err)
	}
	if what, err := a.DeleteCreatedNamespace(ctx); err != nil || what != "namespace/team kept (devloop did not create it)" {
		t.Errorf("existing namespace: %q, %v", what, err)
	}
	ns, err = core.CoreV1().Namespaces().Get(ctx, "team", metav1.GetOptions{})
	if err != nil || len(ns.Annotations) != 0 {
		t.Errorf("existing namespace: %v, annotations %v", err, ns.Annotations)
	}
}

// Down's scope: the inventory, then, on an existing cluster only, the
// namespace devloop created, unless a claim was kept in it.
func TestDeleteAllDeletesTheCreatedNamespaceOnlyOnAnExistingCluster(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name       string
		existing   bool
		keptClaim  bool
		wantNSGone bool
	}{
		{"kind", false, false, false},
		{"existing", true, false, true},
		{"existing with a kept claim", true, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := &config.Config{Name: "proj", Namespace: "proj-ana", Path: "/p/devloop.yaml"}
			if tc.existing {
				cfg.Cluster.Context = "team-dev"
			}
			core := fake.NewClientset()
			if tc.keptClaim {
				_ = core.Tracker().Add(&corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Namespace: "proj-ana", Name: "data-db-0",
					Labels: map[string]string{ProjectLabel: "proj", ManagedByLabel: ManagedByValue}}})
			}
			d := &Deployer{cfg: cfg, applier: newApplier(newFakeAPI(), testMapper(), core, cfg.Name, cfg.Namespace, cfg.Path), cs: core}
			cm := objWithSource(t, "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cfg}\n", "m.yaml#0")
			if _, err := d.applier.Apply(ctx, []*unstructured.Unstructured{cm}); err != nil {
				t.Fatal(err)
			}
			removed, err := d.DeleteAll(ctx, false)
			if err != nil {
				t.Fatal(err)
			}
			_, gerr := core.CoreV1().Namespaces().Get(ctx, "proj-ana", metav1.GetOptions{})
			if gone := apierrors.IsNotFound(gerr); gone != tc.wantNSGone {
				t.Errorf("namespace gone %v, want %v; removed %q", gone, tc.wantNSGone, removed.Deleted)
			}
			said := strings.Contains(strings.Join(removed.Deleted, ","), "namespace/proj-ana deleted (devloop created it)")
			if said != tc.wantNSGone || !strings.Contains(strings.Join(removed.Deleted, ","), "configmap/cfg deleted") {
				t.Errorf("removed %q", removed.Deleted)
			}
		})
	}
}
