//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	kindcluster "sigs.k8s.io/kind/pkg/cluster"

	"github.com/devloop-dev/devloop/internal/helm"
)

const helmPort = 18491

// suiteREST is the rest.Config of the suite's cluster (kind's kubeconfig
// for it, as kind would write it).
func suiteREST(t *testing.T) *rest.Config {
	t.Helper()
	kc, err := kindcluster.NewProvider(kindcluster.ProviderWithDocker()).KubeConfig(clusterName, false)
	if err != nil {
		t.Fatalf("kubeconfig of %s: %v", clusterName, err)
	}
	rc, err := clientcmd.RESTConfigFromKubeConfig([]byte(kc))
	if err != nil {
		t.Fatal(err)
	}
	return rc
}

// helmProject copies e2e/testdata/helmapp (a Go app, its Dockerfile and
// its chart) and writes its devloop.yaml for the suite's cluster.
func helmProject(t testing.TB, port int) string {
	dir := t.TempDir()
	copyDir(t, filepath.Join(repoRoot, "e2e", "testdata", "helmapp"), dir)
	writeFile(t, filepath.Join(dir, "devloop.yaml"), fmt.Sprintf(`name: helmapp
cluster:
  name: %s
  ingress:
    httpPort: %d
    httpsPort: 18443
services:
  - name: helmapp
    build:
      preBuild:
        run: CGO_ENABLED=0 go build -o bin/helmapp .
    ignore: [bin]
    portForwards:
      - local: %d
        port: 80
charts:
  - chart: chart
    release: web
    values: [values/dev.yaml]
    set: {replicas: 1}
`, clusterName, ingressPort, port))
	return dir
}

// TestHelmChart: a service whose manifests are a Helm chart (values file,
// set values, a Secret and a pre-install/pre-upgrade hook that runs the
// built image). It is installed as a real release and serves through the
// forward; a values change upgrades the release (a new revision in Helm's
// history) without a build; a broken template shows Helm's error with its
// file and line and the release keeps serving; down uninstalls it.
func TestHelmChart(t *testing.T) {
	dir := helmProject(t, helmPort)
	up := start(t, dir, "up", "--plain")
	downDone := false
	defer func() {
		up.stop()
		if !downDone {
			if out, err := run(t, dir, 2*time.Minute, "down"); err != nil {
				t.Errorf("down: %v\n%s", err, out)
			}
		}
	}()
	up.waitOutput("all services ready", 0, 6*time.Minute)
	if !strings.Contains(up.out.String(), "release web revision 1 (installed)") {
		t.Errorf("no install line in the output")
	}
	url := fmt.Sprintf("http://127.0.0.1:%d/", helmPort)
	eventually(t, url, "", "first from values/dev.yaml", time.Minute)

	rc := suiteREST(t)
	hc := helm.NewClient(rc, nil)
	history := func() []helm.Revision {
		t.Helper()
		h, err := hc.History("default", "web")
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	if h := history(); len(h) != 1 || h[0].Status != "deployed" {
		t.Fatalf("history after up = %+v, want revision 1 deployed", h)
	}
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	job, err := cs.BatchV1().Jobs("default").Get(ctx, "web-hook", metav1.GetOptions{})
	if err != nil || job.Status.Succeeded != 1 {
		t.Fatalf("the pre-install hook job: %v, %+v", err, job)
	}
	if img := job.Spec.Template.Spec.Containers[0].Image; !strings.HasPrefix(img, "helmapp:devloop-") ||
		job.Spec.Template.Spec.Containers[0].ImagePullPolicy != "IfNotPresent" {
		t.Errorf("hook image %s (%s), want the built image, IfNotPresent", img, job.Spec.Template.Spec.Containers[0].ImagePullPolicy)
	}
	dep, err := cs.AppsV1().Deployments("default").Get(ctx, "web-helmapp", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if dep.Labels["devloop.dev/project"] != "helmapp" || dep.Annotations["meta.helm.sh/release-name"] != "web" {
		t.Errorf("deployment labels %v annotations %v", dep.Labels, dep.Annotations)
	}
	releases, err := helm.NewClient(rc, map[string]string{"devloop.dev/project": "helmapp"}).Releases()
	if err != nil || len(releases) != 1 || releases[0].Name != "web" {
		t.Errorf("helm list -l devloop.dev/project=helmapp = %v, %v", releases, err)
	}

	// A values change: a new revision, no build.
	mark := up.mark()
	atomicWrite(t, filepath.Join(dir, "values", "dev.yaml"), "message: second from values/dev.yaml\npassword: s3cret-from-dev-values\n")
	up.waitOutput("release web revision 2 (upgraded)", mark, 2*time.Minute)
	eventually(t, url, "", "second from values/dev.yaml", time.Minute)
	if s := up.out.String()[mark:]; strings.Contains(s, "building") {
		t.Errorf("a values change rebuilt the image:\n%s", s)
	}
	if h := history(); len(h) != 2 || h[1].Status != "deployed" || h[0].Status != "superseded" {
		t.Errorf("history after the values change = %+v, want revision 2 deployed over 1", h)
	}

	// A broken template: Helm's error with file and line; the old release serves.
	mark = up.mark()
	writeFile(t, filepath.Join(dir, "chart", "templates", "broken.yaml"), "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Values.missing.name }}\n")
	up.waitOutput("helmapp/templates/broken.yaml:4:", mark, time.Minute)
	for range 5 {
		if code, body, err := httpGet(url, ""); err != nil || code != 200 || !strings.Contains(body, "second") {
			t.Fatalf("after the broken template: %d %q %v", code, body, err)
		}
		time.Sleep(200 * time.Millisecond) // spacing requests over a second
	}
	if h := history(); len(h) != 2 {
		t.Errorf("a broken template made a revision: %+v", h)
	}
	mark = up.mark()
	if err := os.Remove(filepath.Join(dir, "chart", "templates", "broken.yaml")); err != nil {
		t.Fatal(err)
	}
	atomicWrite(t, filepath.Join(dir, "values", "dev.yaml"), "message: third from values/dev.yaml\npassword: s3cret-from-dev-values\n")
	at := up.waitOutput("release web revision 3 (upgraded)", mark, 2*time.Minute)
	up.waitOutput("all services ready", at, time.Minute) // the fixed chart clears the failure
	eventually(t, url, "", "third from values/dev.yaml", time.Minute)

	// helm rollback (through the SDK) to revision 2: it serves again, and
	// devloop's next change upgrades over it.
	if err := hc.Rollback("default", "web", 2, time.Minute); err != nil {
		t.Fatal(err)
	}
	eventually(t, url, "", "second from values/dev.yaml", time.Minute)
	mark = up.mark()
	atomicWrite(t, filepath.Join(dir, "values", "dev.yaml"), "message: fourth from values/dev.yaml\npassword: s3cret-from-dev-values\n")
	up.waitOutput("release web revision 5 (upgraded)", mark, 2*time.Minute)
	eventually(t, url, "", "fourth from values/dev.yaml", time.Minute)
	if h := history(); len(h) != 5 || h[3].Description != "Rollback to 2" {
		t.Errorf("history = %+v, want 5 revisions, the 4th a rollback to 2", h)
	}

	// A source edit: rebuilt, and the release upgraded to the new image.
	mark = up.mark()
	main := filepath.Join(dir, "main.go")
	src, err := os.ReadFile(main)
	if err != nil {
		t.Fatal(err)
	}
	atomicWrite(t, main, strings.Replace(string(src), "fmt.Fprintln(w, msg)", `fmt.Fprintln(w, "rebuilt:", msg)`, 1))
	up.waitOutput("building", mark, time.Minute)
	up.waitOutput("release web revision 6 (upgraded)", mark, 3*time.Minute)
	eventually(t, url, "", "rebuilt: fourth from values/dev.yaml", time.Minute)

	up.stop()
	for _, secret := range []string{"s3cret-from-dev-values", "chart-default-password"} {
		if strings.Contains(up.out.String(), secret) {
			t.Errorf("the chart's Secret value %q is in devloop's output", secret)
		}
	}
	out, err := run(t, dir, 2*time.Minute, "down")
	downDone = true
	if err != nil || !strings.Contains(out, "release web (helm uninstall)") {
		t.Fatalf("down: %v\n%s", err, out)
	}
	if h, err := hc.History("default", "web"); err == nil && len(h) > 0 {
		t.Errorf("history after down = %+v, want the release gone", h)
	}
	if _, err := cs.AppsV1().Deployments("default").Get(ctx, "web-helmapp", metav1.GetOptions{}); err == nil {
		t.Errorf("the release's deployment is still there after down")
	}
	// helm uninstall leaves the hook's Job; down removes it.
	if !strings.Contains(out, "job/web-hook deleted (hook of release web)") {
		t.Errorf("down did not say it deleted the hook's Job:\n%s", out)
	}
	if _, err := cs.BatchV1().Jobs("default").Get(ctx, "web-hook", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("the hook's Job after down: %v, want not found", err)
	}
}

// BenchmarkHelmValuesToServing measures, on e2e/testdata/helmapp and a real
// cluster, the time from saving a changed values file to the new value
// arriving through the port-forward: the chart re-rendered, the release
// upgraded (its pre-upgrade hook Job run to completion first), the new pod
// Ready and the forward switched to it. No image is built.
//
//	go test -tags e2e -run '^$' -bench HelmValuesToServing -benchtime 1x ./e2e/
//
// Runs DEVLOOP_BENCH_RUNS (default 20) edits whatever b.N is. deploy-done
// is when devloop prints the release's "(upgraded)" line: the deploy's end,
// after the rollout wait (the old pod gone), so it can follow serving.
func BenchmarkHelmValuesToServing(b *testing.B) {
	runs := 20
	if v := getenvInt("DEVLOOP_BENCH_RUNS"); v > 0 {
		runs = v
	}
	dir := helmProject(b, helmPort)
	up := start(b, dir, "up", "--plain")
	defer func() {
		up.stop()
		run(b, dir, 2*time.Minute, "down")
	}()
	up.waitOutput("all services ready", 0, 8*time.Minute)
	url := fmt.Sprintf("http://127.0.0.1:%d/", helmPort)
	eventually(b, url, "", "first from values/dev.yaml", time.Minute)
	var total, upgraded []time.Duration
	for i := 0; i < runs; i++ {
		want := fmt.Sprintf("bench-%d-%d", time.Now().UnixNano(), i)
		mark := up.mark()
		saved := time.Now()
		atomicWrite(b, filepath.Join(dir, "values", "dev.yaml"), "message: "+want+"\npassword: s3cret-from-dev-values\n")
		total = append(total, eventually(b, url, "", want, 3*time.Minute))
		up.waitOutput("all services ready", mark, time.Minute)
		for _, l := range up.out.linesSince(saved) {
			if strings.Contains(l.text, "(upgraded)") {
				upgraded = append(upgraded, l.at.Sub(saved))
				break
			}
		}
	}
	reportPct(b, "helm-values/total", total)
	reportPct(b, "helm-values/deploy-done", upgraded)
}
