package status

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/devloop-dev/devloop/internal/config"
	"github.com/devloop-dev/devloop/internal/kube"
)

const manifests = `
apiVersion: apps/v1
kind: Deployment
metadata: {name: hello}
spec:
  replicas: 3
  selector: {matchLabels: {app: hello}}
  template:
    metadata: {labels: {app: hello}}
    spec:
      containers: [{name: app, image: hello}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: worker, namespace: jobs}
spec:
  selector: {matchLabels: {app: worker}}
  template:
    metadata: {labels: {app: worker}}
    spec:
      initContainers: [{name: migrate, image: "docker.io/library/hello:dev"}]
      containers: [{name: worker, image: "redis:7.4"}]
---
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: agent}
spec:
  selector: {matchLabels: {app: agent}}
  template:
    metadata: {labels: {app: agent}}
    spec:
      containers: [{name: agent, image: example.com/team/agent}]
---
apiVersion: batch/v1
kind: Job
metadata: {name: once}
spec:
  template:
    spec:
      containers: [{name: once, image: hello}]
---
apiVersion: v1
kind: Service
metadata: {name: hello}
spec:
  selector: {app: hello}
  ports: [{port: 80}]
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: hello}
spec:
  rules:
    - host: hello.localhost
      http: {paths: [{path: /, pathType: Prefix, backend: {service: {name: hello, port: {number: 80}}}}]}
    - host: api.localhost
    - host: hello.localhost
    - http: {paths: [{path: /, pathType: Prefix, backend: {service: {name: hello, port: {number: 80}}}}]}
`

// prepare writes the fixture manifests to a file of cfg's and prepares them
// as devloop does (render, no images built, labels).
func prepare(t *testing.T, cfg *config.Config) *kube.Manifests {
	t.Helper()
	path := filepath.Join(t.TempDir(), "manifests.yaml")
	if err := os.WriteFile(path, []byte(manifests), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg.Manifests = []string{path}
	m, err := kube.Prepare(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func testConfig() *config.Config {
	return &config.Config{
		Name:      "hello",
		Namespace: "default",
		Cluster:   config.Cluster{Name: "devloop", Ingress: config.Ingress{HTTPPort: 8080, HTTPSPort: 8443, ListenAddress: "127.0.0.1"}},
		Services: []config.Service{
			{Name: "hello", Image: "hello", PortForwards: []config.PortForward{
				{Local: 18080, Port: 80, Resource: "service/hello", Address: "127.0.0.1"},
				{Local: 18081, Port: 8080, Resource: "deployment/hello", Address: "0.0.0.0"},
			}},
			{Name: "agent", Image: "example.com/team/agent"},
			{Name: "docs", Image: "docs"}, // no workload uses it
		},
	}
}

func int32p(n int32) *int32 { return &n }

func deployment(ns, name string, replicas, ready int32, image string) *appsv1.Deployment {
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: appsv1.DeploymentSpec{
			Replicas: int32p(replicas),
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": name}},
			Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: image}}}},
		},
		Status: appsv1.DeploymentStatus{ReadyReplicas: ready},
	}
}

func pod(ns, name, app string, restarts ...int32) *corev1.Pod {
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{"app": app}}}
	for i, r := range restarts {
		p.Status.ContainerStatuses = append(p.Status.ContainerStatuses, corev1.ContainerStatus{
			Name: "c" + string(rune('0'+i)), RestartCount: r, Ready: true,
			State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}},
		})
	}
	return p
}

func crashLooping(p *corev1.Pod) *corev1.Pod {
	p.Status.ContainerStatuses[0].Ready = false
	p.Status.ContainerStatuses[0].State = corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff"}}
	p.Status.ContainerStatuses[0].LastTerminationState = corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 2}}
	return p
}

func TestCollectClusterNotRunning(t *testing.T) {
	r, err := Collect(context.Background(), nil, testConfig(), prepare(t, testConfig()))
	if err != nil {
		t.Fatal(err)
	}
	if r.ClusterRunning || r.Project != "hello" || r.Cluster != "devloop" || r.Context != "kind-devloop" {
		t.Errorf("header = %+v", r)
	}
	if len(r.Services) != 3 {
		t.Fatalf("services = %+v", r.Services)
	}
	hello := r.Services[0]
	if hello.Desired != 4 || hello.Ready != 0 || len(hello.Problems) != 0 {
		t.Errorf("hello = %+v; want desired 3+1 (deployment and statefulset), ready 0, no problems", hello)
	}
	if got := strings.Join(hello.Workloads, ","); got != "deployment/hello,statefulset/worker" {
		t.Errorf("hello workloads = %s (the Job is not tracked)", got)
	}
	if got := strings.Join(r.Ingress, " "); got != "http://hello.localhost:8080/ http://api.localhost:8080/ http://localhost:8080/" {
		t.Errorf("ingress = %s", got)
	}
	want := []Forward{
		{Name: "hello", URL: "http://127.0.0.1:18080/", Target: "service/hello:80"},
		{Name: "hello", URL: "http://127.0.0.1:18081/", Target: "deployment/hello:8080"},
	}
	if len(r.Forwards) != 2 || r.Forwards[0] != want[0] || r.Forwards[1] != want[1] {
		t.Errorf("forwards = %+v, want %+v", r.Forwards, want)
	}
	if docs := r.Services[2]; len(docs.Problems) != 1 || !strings.Contains(docs.Problems[0], `uses image "docs"`) {
		t.Errorf("docs problems = %q", docs.Problems)
	}
}

func TestCollectLive(t *testing.T) {
	cs := fake.NewClientset(
		deployment("default", "hello", 3, 2, "hello:0123abcd"),
		&appsv1.DaemonSet{
			ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "agent"},
			Spec: appsv1.DaemonSetSpec{
				Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "agent"}},
				Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "agent", Image: "example.com/team/agent:77aa"}}}},
			},
			Status: appsv1.DaemonSetStatus{DesiredNumberScheduled: 1, NumberReady: 1},
		},
		pod("default", "hello-a", "hello", 1, 0),
		pod("default", "hello-b", "hello", 0),
		crashLooping(pod("default", "hello-c", "hello", 4)),
		pod("default", "other", "other", 9), // another app's restarts are not counted
		pod("jobs", "hello-x", "hello", 9),  // nor another namespace's
		pod("default", "agent-1", "agent", 0),
	)
	r, err := Collect(context.Background(), cs, testConfig(), prepare(t, testConfig()))
	if err != nil {
		t.Fatal(err)
	}
	if !r.ClusterRunning {
		t.Error("ClusterRunning = false with a clientset")
	}
	hello := r.Services[0]
	if hello.Image != "hello:0123abcd" || hello.Ready != 2 || hello.Desired != 3+1 || hello.Restarts != 5 {
		t.Errorf("hello = %+v; want image hello:0123abcd, 2/4 ready, 5 restarts", hello)
	}
	// The StatefulSet is missing: named, since the service has two workloads.
	// The crash loop comes from kube.Diagnose.
	if len(hello.Problems) != 2 || !strings.Contains(hello.Problems[0], "pod hello-c") || !strings.Contains(hello.Problems[0], "CrashLoopBackOff") ||
		hello.Problems[1] != "statefulset/worker: "+NotDeployed {
		t.Errorf("hello problems = %q", hello.Problems)
	}
	if !strings.HasPrefix(hello.Problems[0], "deployment/hello: ") {
		t.Errorf("problem not attributed to its workload: %q", hello.Problems[0])
	}
	agent := r.Services[1]
	if agent.Image != "example.com/team/agent:77aa" || agent.Ready != 1 || agent.Desired != 1 || agent.Restarts != 0 || len(agent.Problems) != 0 {
		t.Errorf("agent = %+v", agent)
	}
}

func TestCollectNotDeployed(t *testing.T) {
	cfg := testConfig()
	cfg.Services = cfg.Services[1:2] // agent only: one workload, so the problem is not prefixed
	r, err := Collect(context.Background(), fake.NewClientset(), cfg, prepare(t, cfg))
	if err != nil {
		t.Fatal(err)
	}
	agent := r.Services[0]
	if agent.Ready != 0 || agent.Desired != 1 || agent.Image != "" || len(agent.Problems) != 1 || agent.Problems[0] != NotDeployed {
		t.Errorf("agent = %+v, want 0/1 and %q", agent, NotDeployed)
	}
}

func TestCollectAPIError(t *testing.T) {
	cs := fake.NewClientset()
	boom := errors.New("connection refused")
	cs.PrependReactor("get", "deployments", func(k8stesting.Action) (bool, runtime.Object, error) { return true, nil, boom })
	r, err := Collect(context.Background(), cs, testConfig(), prepare(t, testConfig()))
	if !errors.Is(err, boom) || !strings.Contains(err.Error(), "reading deployment/hello in namespace default") {
		t.Fatalf("err = %v, want the wrapped API error", err)
	}
	if r.Project != "hello" || len(r.Ingress) != 3 {
		t.Errorf("partial report lost what cfg and objs say: %+v", r)
	}
}

func TestIngressDisabled(t *testing.T) {
	cfg := testConfig()
	off := false
	cfg.Cluster.Ingress.Enabled = &off
	r, err := Collect(context.Background(), nil, cfg, prepare(t, cfg))
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Ingress) != 0 || r.Ingress == nil {
		t.Errorf("ingress = %#v, want empty (not nil)", r.Ingress)
	}
}
