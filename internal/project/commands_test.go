package project

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/rest"

	"github.com/devloop-dev/devloop/internal/config"
	"github.com/devloop-dev/devloop/internal/doctor"
	"github.com/devloop-dev/devloop/internal/kube"
)

// logPod is a running pod of the fixture's project (namespace default).
func logPod(name, project, image string, labels map[string]string) *corev1.Pod {
	l := map[string]string{kube.ProjectLabel: project}
	for k, v := range labels {
		l[k] = v
	}
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", Labels: l, UID: types.UID("uid-" + name)},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: image}}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, ContainerStatuses: []corev1.ContainerStatus{{
			Name: "app", ContainerID: "containerd://" + name, State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}}}},
	}
}

// withCluster makes the fixture's cluster exist, holding pods.
func (f *fixture) withCluster(pods ...*corev1.Pod) {
	f.clusters.exists = true
	f.deps.Connect = func(cfg *config.Config, _ *rest.Config) (*Conn, error) {
		cs := fake.NewClientset()
		for _, p := range pods {
			_ = cs.Tracker().Add(p)
		}
		return &Conn{Clients: &kube.Clients{Config: &rest.Config{}, Core: cs},
			Informers: kube.NewInformers(cs, cfg.Namespace, cfg.Name), Deployer: f.deployer}, nil
	}
}

func TestLogsPrefixesByServiceAndFilters(t *testing.T) {
	f := newFixture(t)
	f.withCluster(
		logPod("hello-1", "hello", "hello:devloop-1", nil),
		logPod("db-0", "hello", "postgres:17", map[string]string{"app": "db"}),
		logPod("bare", "hello", "busybox", nil),
		logPod("stranger", "other", "hello:devloop-1", nil),
	)
	if err := Logs(t.Context(), f.cfg, f.deps, f.printer(), LogsOptions{}); err != nil {
		t.Fatal(err)
	}
	out := f.out.String()
	for _, prefix := range []string{"hello/1/app", "db/0/app", "bare/app"} {
		if !hasLine(out, prefix, "fake logs") {
			t.Errorf("no log line of %s:\n%s", prefix, out)
		}
	}
	if strings.Contains(out, "stranger") || strings.Count(out, "fake logs") != 3 {
		t.Errorf("want exactly the project's 3 pods:\n%s", out)
	}

	f.out = newOutput()
	if err := Logs(t.Context(), f.cfg, f.deps, f.printer(), LogsOptions{Service: "hello"}); err != nil {
		t.Fatal(err)
	}
	if out := f.out.String(); strings.Count(out, "fake logs") != 1 || !hasLine(out, "hello/1/app", "fake logs") {
		t.Errorf("logs of service hello:\n%s", out)
	}
}

// hasLine reports whether some line of out starts with prefix and contains s.
func hasLine(out, prefix, s string) bool {
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(strings.TrimSpace(l), prefix) && strings.Contains(l, s) {
			return true
		}
	}
	return false
}

func TestLogsErrors(t *testing.T) {
	f := newFixture(t)
	err := Logs(t.Context(), f.cfg, f.deps, f.printer(), LogsOptions{Service: "nope"})
	if err == nil || !strings.Contains(err.Error(), `no service "nope"`) {
		t.Errorf("unknown service: %v", err)
	}
	var noCluster *ErrNoCluster
	if err := Logs(t.Context(), f.cfg, f.deps, f.printer(), LogsOptions{}); !errors.As(err, &noCluster) || noCluster.Name != f.cfg.Cluster.Name {
		t.Errorf("without a cluster: %v, want ErrNoCluster", err)
	}
	f.write(t, "k8s/deploy.yaml", "kind: [unclosed\n")
	f.withCluster()
	if err := Logs(t.Context(), f.cfg, f.deps, f.printer(), LogsOptions{}); err == nil || errors.As(err, &noCluster) {
		t.Errorf("broken manifests: %v, want the parse error", err)
	}
}

func manifestResults(rs []doctor.Result) []doctor.Result {
	var out []doctor.Result
	for _, r := range rs {
		if r.Check == "manifests" {
			out = append(out, r)
		}
	}
	return out
}

func TestDoctorReportsBrokenManifests(t *testing.T) {
	f := newFixture(t)
	for _, r := range manifestResults(Doctor(t.Context(), f.cfg, f.deps, ContextOptions{})) {
		if r.Level == doctor.Fail {
			t.Errorf("good manifests fail: %+v", r)
		}
	}
	f.write(t, "k8s/deploy.yaml", "kind: [unclosed\n")
	rs := manifestResults(Doctor(t.Context(), f.cfg, f.deps, ContextOptions{}))
	if len(rs) != 1 || rs[0].Level != doctor.Fail || !strings.Contains(rs[0].Message, "deploy.yaml") || rs[0].Fix == "" {
		t.Errorf("broken manifests: %+v, want one failure naming the file, with a fix", rs)
	}
}

// The charts' objects are linted too: a service whose only workload is in
// a chart is used, and a broken template fails with Helm's file and line.
func TestDoctorLintsCharts(t *testing.T) {
	f := newFixture(t)
	if err := os.MkdirAll(filepath.Join(f.dir, "chart", "templates"), 0o755); err != nil {
		t.Fatal(err)
	}
	f.write(t, "devloop.yaml", "name: hello\nservices:\n  - name: hello\n  - name: worker\nmanifests: [k8s/deploy.yaml]\ncharts:\n  - chart: chart\n")
	f.write(t, "chart/Chart.yaml", "apiVersion: v2\nname: worker\nversion: 0.1.0\n")
	f.write(t, "chart/templates/deploy.yaml", strings.ReplaceAll(deployYAML, "hello", "worker"))
	cfg, err := config.Load(filepath.Join(f.dir, "devloop.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range Doctor(t.Context(), cfg, f.deps, ContextOptions{}) {
		if r.Level != doctor.OK && strings.Contains(r.Message, `"worker"`) {
			t.Errorf("the chart's workload is not linted: %+v", r)
		}
		if r.Check == "manifests" {
			t.Errorf("good chart fails: %+v", r)
		}
	}
	f.write(t, "chart/templates/broken.yaml", "a: {{ .Values.nope.deeper }}\n")
	rs := manifestResults(Doctor(t.Context(), cfg, f.deps, ContextOptions{}))
	if len(rs) != 1 || rs[0].Level != doctor.Fail || !strings.Contains(rs[0].Message, "worker/templates/broken.yaml:1:") {
		t.Errorf("broken chart: %+v, want one failure with Helm's file and line", rs)
	}
}
