package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/devloop-dev/devloop/internal/config"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	storagev1 "k8s.io/api/storage/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	"k8s.io/client-go/kubernetes/fake"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	k8stesting "k8s.io/client-go/testing"
)

func TestTraefikObjects(t *testing.T) {
	objs, err := TraefikObjects("example.test/traefik:v3.0.0")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, o := range objs {
		got = append(got, o.GetKind()+"/"+o.GetName())
	}
	want := []string{"Namespace/devloop-ingress", "ServiceAccount/traefik", "ClusterRole/devloop-traefik",
		"ClusterRoleBinding/devloop-traefik", "IngressClass/traefik", "Deployment/traefik"}
	if !slices.Equal(got, want) {
		t.Fatalf("objects = %v, want %v", got, want)
	}

	var ic networkingv1.IngressClass
	fromUnstructured(t, objs[4].Object, &ic)
	if ic.Annotations["ingressclass.kubernetes.io/is-default-class"] != "true" || ic.Spec.Controller != "traefik.io/ingress-controller" {
		t.Errorf("IngressClass = %+v", ic)
	}

	var d appsv1.Deployment
	fromUnstructured(t, objs[5].Object, &d)
	if d.Namespace != IngressNamespace || d.Spec.Replicas == nil || *d.Spec.Replicas != 1 {
		t.Errorf("Deployment meta/replicas wrong: %s %v", d.Namespace, d.Spec.Replicas)
	}
	ps := d.Spec.Template.Spec
	if ps.NodeSelector["ingress-ready"] != "true" {
		t.Errorf("nodeSelector = %v", ps.NodeSelector)
	}
	if !slices.ContainsFunc(ps.Tolerations, func(tl corev1.Toleration) bool {
		return tl.Key == "node-role.kubernetes.io/control-plane" && tl.Effect == corev1.TaintEffectNoSchedule
	}) {
		t.Errorf("no control-plane toleration: %v", ps.Tolerations)
	}
	c := ps.Containers[0]
	if c.Image != "example.test/traefik:v3.0.0" || c.ImagePullPolicy != corev1.PullIfNotPresent {
		t.Errorf("image = %q policy %q", c.Image, c.ImagePullPolicy)
	}
	for _, a := range []string{"--entryPoints.web.address=:80", "--entryPoints.websecure.address=:443",
		"--entryPoints.traefik.address=:8080", "--ping.entryPoint=traefik", "--providers.kubernetesingress=true"} {
		if !slices.Contains(c.Args, a) {
			t.Errorf("args %v lack %s", c.Args, a)
		}
	}
	// The API server is reached on the node, not through a VIP that kube-proxy programs later.
	env := map[string]string{}
	for _, e := range c.Env {
		v := e.Value
		if e.ValueFrom != nil && e.ValueFrom.FieldRef != nil {
			v = "fieldRef:" + e.ValueFrom.FieldRef.FieldPath
		}
		env[e.Name] = v
	}
	if env["KUBERNETES_SERVICE_HOST"] != "fieldRef:status.hostIP" || env["KUBERNETES_SERVICE_PORT"] != "6443" {
		t.Errorf("env = %v, want the API server on the node's IP", env)
	}
	// An ingressclass filter would drop classless Ingresses that predate the IngressClass.
	for _, a := range c.Args {
		if strings.HasPrefix(a, "--providers.kubernetesingress.ingressclass") {
			t.Errorf("unexpected %s", a)
		}
	}
	hostPorts := map[int32]int32{}
	for _, p := range c.Ports {
		if p.HostPort != 0 {
			hostPorts[p.ContainerPort] = p.HostPort
		}
	}
	if hostPorts[80] != 80 || hostPorts[443] != 443 || len(hostPorts) != 2 {
		t.Errorf("hostPorts = %v", hostPorts)
	}
	for _, probe := range []*corev1.Probe{c.ReadinessProbe, c.LivenessProbe} {
		if probe == nil || probe.HTTPGet == nil || probe.HTTPGet.Path != "/ping" || probe.HTTPGet.Port.String() != "traefik" {
			t.Errorf("probe = %+v", probe)
		}
	}
	if !slices.ContainsFunc(c.Ports, func(p corev1.ContainerPort) bool { return p.Name == "traefik" && p.ContainerPort == 8080 }) {
		t.Error("probe port traefik is not container port 8080")
	}
	if c.SecurityContext == nil || c.SecurityContext.Capabilities == nil ||
		!slices.Contains(c.SecurityContext.Capabilities.Add, "NET_BIND_SERVICE") {
		t.Errorf("securityContext = %+v", c.SecurityContext)
	}
	if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() {
		t.Errorf("no resource requests: %+v", c.Resources)
	}
}

func TestLocalPathManifestParses(t *testing.T) {
	objs, err := decodeManifest(localPathManifest)
	if err != nil {
		t.Fatal(err)
	}
	var sc *storagev1.StorageClass
	for _, o := range objs {
		if o.GetKind() == "StorageClass" {
			sc = &storagev1.StorageClass{}
			fromUnstructured(t, o.Object, sc)
		}
	}
	if sc == nil || sc.Annotations[defaultClassAnno] != "true" || sc.Provisioner != "rancher.io/local-path" || sc.Namespace != "" {
		t.Errorf("StorageClass = %+v", sc)
	}
}

func fromUnstructured(t *testing.T, u map[string]interface{}, into interface{}) {
	t.Helper()
	if err := runtime.DefaultUnstructuredConverter.FromUnstructuredWithValidation(u, into, true); err != nil {
		t.Fatalf("converting to %T: %v", into, err)
	}
}

// applyRecorder records server-side applies made through a fake dynamic client.
type applyRecorder struct {
	mu      sync.Mutex
	applies []string // "resource ns/name"
	bodies  []string
	opts    []metav1.PatchOptions
}

func newRecordingDynamic(rec *applyRecorder) *dynamicfake.FakeDynamicClient {
	dyn := dynamicfake.NewSimpleDynamicClient(runtime.NewScheme())
	dyn.PrependReactor("patch", "*", func(a k8stesting.Action) (bool, runtime.Object, error) {
		pa := a.(k8stesting.PatchActionImpl)
		if pa.GetPatchType() != types.ApplyPatchType {
			return true, nil, errors.New("not an apply patch")
		}
		rec.mu.Lock()
		defer rec.mu.Unlock()
		rec.applies = append(rec.applies, pa.GetResource().Resource+" "+pa.GetNamespace()+"/"+pa.GetName())
		rec.bodies = append(rec.bodies, string(pa.GetPatch()))
		rec.opts = append(rec.opts, pa.PatchOptions)
		return true, nil, nil
	})
	return dyn
}

func availableDeployment() *appsv1.Deployment {
	one := int32(1)
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: IngressDeployment, Namespace: IngressNamespace, Generation: 1},
		Spec:       appsv1.DeploymentSpec{Replicas: &one},
		Status: appsv1.DeploymentStatus{ObservedGeneration: 1, UpdatedReplicas: 1, AvailableReplicas: 1,
			Conditions: []appsv1.DeploymentCondition{{Type: appsv1.DeploymentAvailable, Status: corev1.ConditionTrue}}},
	}
}

func defaultStorageClass() *storagev1.StorageClass {
	return &storagev1.StorageClass{ObjectMeta: metav1.ObjectMeta{Name: "standard",
		Annotations: map[string]string{defaultClassAnno: "true"}}, Provisioner: "kubernetes.io/host-path"}
}

func TestInstallAddonsIdempotent(t *testing.T) {
	cs := fake.NewClientset(availableDeployment(), defaultStorageClass())
	rec := &applyRecorder{}
	dyn := newRecordingDynamic(rec)
	var ensured []string
	ensure := func(ctx context.Context, ref string) error { ensured = append(ensured, ref); return nil }
	spec := config.Cluster{Name: "cx-a"}.WithDefaults()

	if err := InstallAddons(context.Background(), cs, dyn, spec, ensure, AddonOptions{PollInterval: time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	first := slices.Clone(rec.bodies)
	wantApplies := []string{"namespaces /devloop-ingress", "serviceaccounts devloop-ingress/traefik",
		"clusterroles /devloop-traefik", "clusterrolebindings /devloop-traefik", "ingressclasses /traefik",
		"deployments devloop-ingress/traefik"}
	if !slices.Equal(rec.applies, wantApplies) {
		t.Fatalf("applies = %v, want %v (a default StorageClass exists: nothing else)", rec.applies, wantApplies)
	}
	for _, o := range rec.opts {
		if o.FieldManager != "devloop" || o.Force == nil || !*o.Force {
			t.Errorf("patch options = %+v", o)
		}
	}
	if !slices.Equal(ensured, []string{config.DefaultIngressImage}) {
		t.Errorf("ensured = %v", ensured)
	}
	var d map[string]interface{}
	if err := json.Unmarshal([]byte(first[5]), &d); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(first[5], `"image":"`+config.DefaultIngressImage+`"`) {
		t.Errorf("deployment apply lacks the image: %s", first[5])
	}

	// Second run: the very same apply requests (so server-side apply is a no-op).
	rec.bodies = nil
	if err := InstallAddons(context.Background(), cs, dyn, spec, ensure, AddonOptions{PollInterval: time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(rec.bodies, first) {
		t.Error("second run applied different objects")
	}
}

func TestInstallAddonsImageOverrideAndDisabled(t *testing.T) {
	cs := fake.NewClientset(availableDeployment(), defaultStorageClass())
	rec := &applyRecorder{}
	dyn := newRecordingDynamic(rec)
	var ensured []string
	ensure := func(ctx context.Context, ref string) error { ensured = append(ensured, ref); return nil }
	spec := config.Cluster{Ingress: config.Ingress{Image: "my/traefik:v3.9.9"}}
	if err := InstallAddons(context.Background(), cs, dyn, spec, ensure, AddonOptions{}); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(ensured, []string{"my/traefik:v3.9.9"}) || !strings.Contains(rec.bodies[len(rec.bodies)-1], "my/traefik:v3.9.9") {
		t.Errorf("override not used: ensured %v", ensured)
	}

	off := false
	rec.applies, ensured = nil, nil
	if err := InstallAddons(context.Background(), cs, dyn, config.Cluster{Ingress: config.Ingress{Enabled: &off}}, ensure, AddonOptions{}); err != nil {
		t.Fatal(err)
	}
	if len(rec.applies) != 0 || len(ensured) != 0 {
		t.Errorf("ingress disabled but applied %v / ensured %v", rec.applies, ensured)
	}
}

func TestInstallAddonsEnsureFailure(t *testing.T) {
	cs := fake.NewClientset(defaultStorageClass())
	rec := &applyRecorder{}
	err := InstallAddons(context.Background(), cs, newRecordingDynamic(rec), config.Cluster{}.WithDefaults(),
		func(context.Context, string) error { return errors.New("image not in docker") }, AddonOptions{})
	if err == nil || !strings.Contains(err.Error(), config.DefaultIngressImage) || !strings.Contains(err.Error(), "image not in docker") {
		t.Fatalf("err = %v", err)
	}
	if len(rec.applies) != 0 {
		t.Errorf("applied %v although the image could not be loaded", rec.applies)
	}
}

func TestEnsureDefaultStorageClass(t *testing.T) {
	tests := []struct {
		name      string
		existing  []runtime.Object
		wantApply bool
	}{
		{"default exists", []runtime.Object{defaultStorageClass()}, false},
		{"beta annotation counts", []runtime.Object{&storagev1.StorageClass{ObjectMeta: metav1.ObjectMeta{Name: "x",
			Annotations: map[string]string{defaultClassAnnoOld: "true"}}}}, false},
		{"none", nil, true},
		{"only non-default", []runtime.Object{&storagev1.StorageClass{ObjectMeta: metav1.ObjectMeta{Name: "slow"}}}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := &applyRecorder{}
			if err := EnsureDefaultStorageClass(context.Background(), fake.NewClientset(tt.existing...), newRecordingDynamic(rec)); err != nil {
				t.Fatal(err)
			}
			applied := slices.Contains(rec.applies, "storageclasses /standard")
			if applied != tt.wantApply {
				t.Errorf("applied StorageClass = %v, want %v (%v)", applied, tt.wantApply, rec.applies)
			}
			if tt.wantApply && rec.applies[0] != "namespaces /local-path-storage" {
				t.Errorf("namespace not applied first: %v", rec.applies)
			}
		})
	}
}

func TestInstallIngressTimeoutExplains(t *testing.T) {
	d := availableDeployment()
	d.Status = appsv1.DeploymentStatus{ObservedGeneration: 1}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "traefik-abc", Namespace: IngressNamespace, Labels: map[string]string{"app.kubernetes.io/name": "traefik"}},
		Status: corev1.PodStatus{ContainerStatuses: []corev1.ContainerStatus{{Name: "traefik",
			State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ErrImagePull", Message: "failed to pull docker.io/traefik"}}}}},
	}
	cs := fake.NewClientset(d, pod)
	err := InstallIngress(context.Background(), cs, newRecordingDynamic(&applyRecorder{}), config.DefaultIngressImage, nil,
		AddonOptions{Timeout: 20 * time.Millisecond, PollInterval: time.Millisecond})
	if err == nil {
		t.Fatal("want timeout error")
	}
	for _, s := range []string{"did not become available", config.DefaultIngressImage, "traefik-abc", "ErrImagePull", "local Docker engine"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q lacks %q", err, s)
		}
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err = InstallIngress(ctx, cs, newRecordingDynamic(&applyRecorder{}), config.DefaultIngressImage, nil, AddonOptions{})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: err = %v", err)
	}
}

func TestDeploymentAvailable(t *testing.T) {
	stale := availableDeployment()
	stale.Generation = 2
	notUpdated := availableDeployment()
	notUpdated.Status.UpdatedReplicas = 0
	condFalse := availableDeployment()
	condFalse.Status.Conditions[0].Status = corev1.ConditionFalse
	tests := []struct {
		name string
		d    *appsv1.Deployment
		want bool
	}{
		{"available", availableDeployment(), true},
		{"generation not observed", stale, false},
		{"old replicas only", notUpdated, false},
		{"condition false", condFalse, false},
	}
	for _, tt := range tests {
		if got := deploymentAvailable(tt.d); got != tt.want {
			t.Errorf("%s: got %v want %v", tt.name, got, tt.want)
		}
	}
}

// TestManifestsStrictlyTyped converts every embedded object into its typed
// API struct, rejecting unknown or misspelt fields.
func TestManifestsStrictlyTyped(t *testing.T) {
	for name, data := range map[string][]byte{"traefik": traefikManifest, "local-path": localPathManifest} {
		objs, err := decodeManifest(data)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		for _, o := range objs {
			typed, err := clientgoscheme.Scheme.New(o.GroupVersionKind())
			if err != nil {
				t.Fatalf("%s: %s: %v", name, o.GetKind(), err)
			}
			fromUnstructured(t, o.Object, typed)
		}
	}
}
