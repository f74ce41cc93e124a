package portfwd

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
)

// A sidecar that crash-loops makes the pod NotReady; the container behind
// the forwarded port still serves, so the forward must keep using the pod
// (issue 16 item 10) and say why.
func sidecarPod(appReady bool) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "web-1", Namespace: ns, Labels: map[string]string{"app": "web"}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{
			{Name: "app", Ports: []corev1.ContainerPort{{ContainerPort: 8080}}},
			{Name: "sidecar"},
		}},
		Status: corev1.PodStatus{
			Phase:      corev1.PodRunning,
			Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionFalse}},
			ContainerStatuses: []corev1.ContainerStatus{
				{Name: "app", Ready: appReady},
				{Name: "sidecar", Ready: false, RestartCount: 4},
			},
		},
	}
}

func factoryWith(t *testing.T, objs ...any) informers.SharedInformerFactory {
	t.Helper()
	f := informers.NewSharedInformerFactoryWithOptions(fake.NewClientset(), 0, informers.WithNamespace(ns))
	for _, o := range objs {
		var err error
		switch o := o.(type) {
		case *corev1.Pod:
			err = f.Core().V1().Pods().Informer().GetStore().Add(o)
		case *corev1.Service:
			err = f.Core().V1().Services().Informer().GetStore().Add(o)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	return f
}

func TestForwardUsesPodWhoseServingContainerIsReady(t *testing.T) {
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: ns},
		Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "web"},
			Ports: []corev1.ServicePort{{Port: 80, TargetPort: intstr.FromInt(8080)}}},
	}
	for _, res := range []Spec{
		{Name: "web", Namespace: ns, Resource: "service/web", Port: 80},
		{Name: "web", Namespace: ns, Resource: "pod/web-1", Port: 8080},
	} {
		tgt, err := resolve(factoryWith(t, sidecarPod(true), svc), res)
		if err != nil {
			t.Fatal(err)
		}
		if tgt.pod == nil || tgt.port != 8080 {
			t.Fatalf("%s: target = %+v, want pod web-1 port 8080 although its sidecar is not ready", res.Resource, tgt)
		}
		if !strings.Contains(tgt.note, "container sidecar is not") || !strings.Contains(tgt.note, "container app, which serves port 8080, is") {
			t.Errorf("%s: note %q does not say why a NotReady pod is used", res.Resource, tgt.note)
		}
		// When the serving container itself is not ready, nothing is forwarded.
		tgt, err = resolve(factoryWith(t, sidecarPod(false), svc), res)
		if err != nil || tgt.pod != nil {
			t.Errorf("%s: serving container not ready: target = %+v, %v; want none", res.Resource, tgt, err)
		}
	}
}
