package kube

import (
	"context"
	"errors"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/utils/ptr"

	"github.com/devloop-dev/devloop/internal/config"
)

// deployManifests: web runs hello (3 replicas); api runs hello as an init
// container and example.com/team/api; db and agent run no service's image;
// a Job and a CronJob run hello; two Ingresses, one not networking.k8s.io.
const deployManifests = `apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 3
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: app, image: hello}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: api}
spec:
  selector: {matchLabels: {app: api}}
  template:
    metadata: {labels: {app: api}}
    spec:
      initContainers: [{name: migrate, image: hello:old}]
      containers: [{name: api, image: example.com/team/api:v1}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: db}
spec:
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec:
      containers: [{name: pg, image: postgres:17}]
---
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: agent}
spec:
  selector: {matchLabels: {app: agent}}
  template:
    metadata: {labels: {app: agent}}
    spec:
      containers: [{name: agent, image: busybox}]
---
apiVersion: batch/v1
kind: Job
metadata: {name: seed}
spec:
  template:
    spec:
      containers: [{name: seed, image: hello}]
---
apiVersion: batch/v1
kind: CronJob
metadata: {name: nightly}
spec:
  schedule: "@daily"
  jobTemplate:
    spec:
      template:
        spec:
          containers: [{name: n, image: docker.io/library/hello:latest}]
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: web}
spec:
  rules:
  - host: web.localhost
  - {}
  - host: web.localhost
---
apiVersion: extensions/v1beta1
kind: Ingress
metadata: {name: legacy}
spec:
  rules:
  - host: legacy.localhost
`

func deployConfig(t *testing.T) *config.Config {
	t.Helper()
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"k8s/all.yaml": deployManifests})
	return &config.Config{
		Name: "proj", Namespace: "dev", Dir: dir,
		Cluster:   config.Cluster{Ingress: config.Ingress{HTTPPort: 8080}},
		Services:  []config.Service{{Name: "web", Image: "hello"}, {Name: "api", Image: "example.com/team/api"}, {Name: "idle", Image: "nothing"}},
		Manifests: []string{filepath.Join(dir, "k8s/all.yaml")},
	}
}

func keys(ws []Workload) []string {
	out := []string{}
	for _, w := range ws {
		out = append(out, w.Key())
	}
	return out
}

func TestPrepare(t *testing.T) {
	cfg := deployConfig(t)
	m, err := Prepare(cfg, map[string]string{"hello": "hello:devloop-abc"})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]string{
		"web":  {"CronJob/dev/nightly", "Deployment/dev/api", "Deployment/dev/web", "Job/dev/seed"},
		"api":  {"Deployment/dev/api"},
		"idle": {},
	}
	if len(m.Services) != len(want) {
		t.Errorf("Services has %d entries, want %d", len(m.Services), len(want))
	}
	for svc, w := range want {
		ws, ok := m.Services[svc]
		if !ok || !reflect.DeepEqual(keys(ws), w) {
			t.Errorf("Services[%s] = %v (present %v), want %v", svc, keys(ws), ok, w)
		}
	}
	wantAll := []string{"Deployment/dev/web", "Deployment/dev/api", "Deployment/dev/db", "DaemonSet/dev/agent", "Job/dev/seed", "CronJob/dev/nightly"}
	if got := keys(m.Workloads); !reflect.DeepEqual(got, wantAll) {
		t.Errorf("Workloads = %v, want %v", got, wantAll)
	}
	for name, n := range map[string]int{"web": 3, "api": 1, "db": 1} {
		if got := m.Replicas(Workload{Kind: "Deployment", Namespace: "dev", Name: name}); got != n {
			t.Errorf("Replicas(%s) = %d, want %d", name, got, n)
		}
	}
	if got := m.Replicas(Workload{Kind: "DaemonSet", Namespace: "dev", Name: "agent"}); got != 1 {
		t.Errorf("Replicas(daemonset) = %d, want 1", got)
	}
	if got, want := m.IngressURLs, []string{"http://web.localhost:8080/", "http://localhost:8080/"}; !reflect.DeepEqual(got, want) {
		t.Errorf("IngressURLs = %q, want %q", got, want)
	}
	// Substituted and labelled.
	for _, o := range m.Objects {
		if l := o.GetLabels(); l[ProjectLabel] != "proj" || l[ManagedByLabel] != ManagedByValue {
			t.Errorf("%s/%s labels = %v", o.GetKind(), o.GetName(), l)
		}
		if o.GetName() == "web" && o.GetKind() == "Deployment" {
			img := o.Object["spec"].(map[string]any)["template"].(map[string]any)["spec"].(map[string]any)["containers"].([]any)[0].(map[string]any)["image"]
			if img != "hello:devloop-abc" {
				t.Errorf("web image = %v, want the built ref", img)
			}
		}
	}
}

func TestPrepareIngressDisabledAndErrors(t *testing.T) {
	cfg := deployConfig(t)
	cfg.Cluster.Ingress.Enabled = ptr.To(false)
	m, err := Prepare(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if m.IngressURLs == nil || len(m.IngressURLs) != 0 {
		t.Errorf("IngressURLs with ingress disabled = %#v, want empty", m.IngressURLs)
	}
	writeFiles(t, cfg.Dir, map[string]string{"k8s/all.yaml": "kind: [unclosed\n"})
	if _, err := Prepare(cfg, nil); err == nil {
		t.Error("Prepare accepted a manifest that does not parse")
	}
}

func TestManifestsServiceOfAndContainersOf(t *testing.T) {
	m, err := Prepare(deployConfig(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	mk := func(init []string, ctrs ...string) *corev1.Pod {
		p := &corev1.Pod{}
		for i, img := range init {
			p.Spec.InitContainers = append(p.Spec.InitContainers, corev1.Container{Name: "init" + string(rune('0'+i)), Image: img})
		}
		for i, img := range ctrs {
			p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: "c" + string(rune('0'+i)), Image: img})
		}
		return p
	}
	apiPod := mk([]string{"docker.io/library/hello:devloop-1"}, "example.com/team/api:devloop-2", "hello@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef")
	if got := m.ServiceOf(apiPod); got != "web" {
		t.Errorf("ServiceOf(api pod) = %q, want web (first service in config order)", got)
	}
	if got := m.ContainersOf("web", apiPod); !reflect.DeepEqual(got, []string{"init0", "c1"}) {
		t.Errorf("ContainersOf(web) = %q, want init first", got)
	}
	if got := m.ContainersOf("api", apiPod); !reflect.DeepEqual(got, []string{"c0"}) {
		t.Errorf("ContainersOf(api) = %q", got)
	}
	if got := m.ContainersOf("unknown", apiPod); got != nil {
		t.Errorf("ContainersOf(unknown) = %q", got)
	}
	if got := m.ServiceOf(mk(nil, "example.com/team/api")); got != "api" {
		t.Errorf("ServiceOf(api only) = %q", got)
	}
	if got := m.ServiceOf(mk(nil, "postgres:17", "example.com/other/api")); got != "" {
		t.Errorf("ServiceOf(no service image) = %q", got)
	}
}

func TestHTTPURL(t *testing.T) {
	for _, tt := range []struct {
		host string
		port int
		want string
	}{
		{"localhost", 8080, "http://localhost:8080/"},
		{"localhost", 80, "http://localhost/"},
		{"web.localhost", 0, "http://web.localhost/"},
		{"::1", 80, "http://[::1]/"},
		{"::1", 8080, "http://[::1]:8080/"},
		{"127.0.0.1", 9000, "http://127.0.0.1:9000/"},
	} {
		if got := HTTPURL(tt.host, tt.port); got != tt.want {
			t.Errorf("HTTPURL(%q, %d) = %q, want %q", tt.host, tt.port, got, tt.want)
		}
	}
}

// deployCluster is the rollout state: web and agent rolled out; api and db
// crash-looping at their new revision.
func deployCluster() *fake.Clientset {
	webDep, webRS := rollingDeployment("web", 1)
	webDep.UID, webRS.OwnerReferences[0].UID = "web-uid", "web-uid"
	apiDep, apiRS := rollingDeployment("api", 0)
	apiDep.UID, apiRS.OwnerReferences[0].UID = "api-uid", "api-uid"
	dbDep, dbRS := rollingDeployment("db", 0)
	dbDep.UID, dbRS.OwnerReferences[0].UID = "db-uid", "db-uid"
	agent := &appsv1.DaemonSet{
		ObjectMeta: metav1.ObjectMeta{Name: "agent", Namespace: "dev"},
		Spec:       appsv1.DaemonSetSpec{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "agent"}}},
		Status:     appsv1.DaemonSetStatus{DesiredNumberScheduled: 1, UpdatedNumberScheduled: 1, NumberAvailable: 1},
	}
	return fake.NewClientset([]runtime.Object{webDep, webRS, apiDep, apiRS, dbDep, dbRS, agent,
		pod("api-new-1", "api", "new", appSpec("example.com/team/api:devloop-2", nil), crashing(3, 2)),
		pod("db-new-1", "db", "new", appSpec("postgres:17", nil), crashing(1, 4)),
	}...)
}

func deployMapper() *resettableMapper {
	m := testMapper()
	for _, gvk := range []schema.GroupVersionKind{
		{Group: "apps", Version: "v1", Kind: "DaemonSet"},
		{Group: "batch", Version: "v1", Kind: "Job"},
		{Group: "batch", Version: "v1", Kind: "CronJob"},
		{Group: "networking.k8s.io", Version: "v1", Kind: "Ingress"},
		{Group: "extensions", Version: "v1beta1", Kind: "Ingress"},
		{Version: "v1", Kind: "PersistentVolumeClaim"},
	} {
		m.Add(gvk, meta.RESTScopeNamespace)
	}
	return m
}

func testDeployer(t *testing.T, api *fakeAPI) *Deployer {
	cfg := deployConfig(t)
	cs := deployCluster()
	return &Deployer{cfg: cfg, applier: newApplier(api, deployMapper(), cs, cfg.Name, cfg.Namespace, cfg.Path), cs: cs}
}

// waitLog records which workloads Deploy waited for and that each wait ended.
type waitLog struct {
	mu      sync.Mutex
	started []string
	ended   int
}

func (l *waitLog) waiting(w Workload) (func(string), func()) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.started = append(l.started, w.Key())
	return func(string) {}, func() { l.mu.Lock(); l.ended++; l.mu.Unlock() }
}

func (l *waitLog) sorted() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := append([]string(nil), l.started...)
	sort.Strings(s)
	return s
}

func TestDeployServicesWaitsOnlyForTheirRollouts(t *testing.T) {
	api := newFakeAPI()
	d := testDeployer(t, api)
	var log waitLog
	res, err := d.Deploy(context.Background(), map[string]string{"hello": "hello:devloop-abc"},
		DeployOptions{Services: []string{"web"}, Timeout: 10 * time.Second, Waiting: log.waiting})
	if err != nil {
		t.Fatal(err)
	}
	// Job/seed and CronJob/nightly run web's image but are not waited for.
	if got, want := log.sorted(), []string{"Deployment/dev/api", "Deployment/dev/web"}; !reflect.DeepEqual(got, want) {
		t.Errorf("waited for %v, want %v", got, want)
	}
	if log.ended != 2 {
		t.Errorf("%d waits ended, want 2", log.ended)
	}
	if len(res.Failed) != 1 || res.Failed["web"] == nil || !strings.Contains(res.Failed["web"].Error(), "deployment/api") {
		t.Errorf("Failed = %v, want web failing because of deployment/api", res.Failed)
	}
	var re *RolloutError
	if !errors.As(res.Failed["web"], &re) || re.Workload.Name != "api" {
		t.Errorf("Failed[web] = %v, want a *RolloutError for api", res.Failed["web"])
	}
	if len(res.OthersFailed) != 0 {
		t.Errorf("OthersFailed = %v, want none (db was not waited for)", res.OthersFailed)
	}
	if len(res.Applied.Applied) != 8 {
		t.Errorf("applied %d objects, want 8: %q", len(res.Applied.Applied), res.Applied.Lines())
	}
	if _, ok := api.objs["deployments/dev/web"]; !ok {
		t.Errorf("web not applied; have %v", api.keys())
	}
	if res.Manifests == nil || len(res.Manifests.Services["web"]) != 4 {
		t.Errorf("result lacks the prepared manifests")
	}
}

func TestDeployAllMapsFailuresToServicesAndOthers(t *testing.T) {
	d := testDeployer(t, newFakeAPI())
	var log waitLog
	res, err := d.Deploy(context.Background(), nil,
		DeployOptions{Services: []string{"api", "idle"}, All: true, Timeout: 10 * time.Second, Waiting: log.waiting})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"DaemonSet/dev/agent", "Deployment/dev/api", "Deployment/dev/db", "Deployment/dev/web"}
	if got := log.sorted(); !reflect.DeepEqual(got, want) {
		t.Errorf("waited for %v, want %v (each once, no Job/CronJob)", got, want)
	}
	// web was not asked for by name: api's failure is api's only.
	if len(res.Failed) != 1 || res.Failed["api"] == nil || !strings.Contains(res.Failed["api"].Error(), "CrashLoopBackOff") {
		t.Errorf("Failed = %v, want only api (crash loop)", res.Failed)
	}
	if len(res.OthersFailed) != 1 || !strings.Contains(res.OthersFailed[0].Error(), "deployment/db") {
		t.Errorf("OthersFailed = %v, want db", res.OthersFailed)
	}
}

func TestDeployWithoutWaitingCallback(t *testing.T) {
	d := testDeployer(t, newFakeAPI())
	res, err := d.Deploy(context.Background(), nil, DeployOptions{Services: []string{"api"}, Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if res.Failed["api"] == nil {
		t.Errorf("Failed = %v, want api", res.Failed)
	}
}

func TestDeployErrorsBeforeRollout(t *testing.T) {
	api := newFakeAPI()
	api.reject["web"] = apierrors.NewBadRequest("spec.replicas: Invalid value")
	d := testDeployer(t, api)
	var log waitLog
	res, err := d.Deploy(context.Background(), nil, DeployOptions{All: true, Timeout: 10 * time.Second, Waiting: log.waiting})
	if err == nil || res != nil {
		t.Fatalf("Deploy = %v, %v; want the apply error", res, err)
	}
	if len(log.started) != 0 {
		t.Errorf("waited for %v after a failed apply", log.started)
	}

	d = testDeployer(t, newFakeAPI())
	writeFiles(t, d.cfg.Dir, map[string]string{"k8s/all.yaml": "kind: [unclosed\n"})
	if _, err := d.Deploy(context.Background(), nil, DeployOptions{All: true}); err == nil {
		t.Error("Deploy accepted manifests that do not parse")
	}
}
