package helm

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"helm.sh/helm/v4/pkg/chart/v2/loader"
	chartutil "helm.sh/helm/v4/pkg/chart/v2/util"
	repo "helm.sh/helm/v4/pkg/repo/v1"

	"github.com/devloop-dev/devloop/internal/config"
)

// writeChart writes files (path → content) under dir and returns dir.
func writeChart(t *testing.T, dir string, files map[string]string) string {
	t.Helper()
	for p, c := range files {
		full := filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func webChart(t *testing.T) string {
	return writeChart(t, filepath.Join(t.TempDir(), "web"), map[string]string{
		"Chart.yaml":  "apiVersion: v2\nname: web\nversion: 0.1.0\n",
		"values.yaml": "replicas: 1\nmessage: from-chart\nimage: hello\n",
		"templates/deployment.yaml": `apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ .Release.Name }}-web
spec:
  replicas: {{ .Values.replicas }}
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
        - name: web
          image: {{ .Values.image }}
          env: [{name: MESSAGE, value: {{ .Values.message | quote }}}]
`,
		"templates/hook.yaml": `apiVersion: batch/v1
kind: Job
metadata:
  name: {{ .Release.Name }}-migrate
  annotations: {"helm.sh/hook": "pre-install,pre-upgrade"}
spec:
  template:
    spec:
      restartPolicy: Never
      containers: [{name: migrate, image: {{ .Values.image }}}]
`,
	})
}

func spec(chart string) config.Chart {
	return config.Chart{Chart: chart, Release: "shop", Namespace: "dev"}
}

func TestLoadRenderValuesAndSet(t *testing.T) {
	dir := webChart(t)
	vf := filepath.Join(t.TempDir(), "dev.yaml")
	if err := os.WriteFile(vf, []byte("message: from-file\nreplicas: 2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	s := spec(dir)
	s.Values = []string{vf}
	s.Set = map[string]string{"replicas": "3", "message": "a,b"}
	ch, err := Load(s, Repositories{})
	if err != nil {
		t.Fatal(err)
	}
	var seen []string
	post := PostRenderer(func(in []byte) ([]byte, error) {
		seen = append(seen, string(in))
		return []byte(strings.ReplaceAll(string(in), "image: hello", "image: hello:built")), nil
	})
	r, err := Render(context.Background(), ch, post)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"name: shop-web", "replicas: 3", `value: "a,b"`, "image: hello:built", "# Source: web/templates/deployment.yaml"} {
		if !strings.Contains(r.Manifest, want) {
			t.Errorf("manifest lacks %q:\n%s", want, r.Manifest)
		}
	}
	if strings.Contains(r.Manifest, "migrate") {
		t.Errorf("the hook is in the manifest:\n%s", r.Manifest)
	}
	if len(r.Hooks) != 1 || !strings.Contains(r.Hooks[0], "hello:built") {
		t.Errorf("hooks = %q, want the migrate job post-rendered", r.Hooks)
	}
	if len(seen) != 1 || !strings.Contains(seen[0], "migrate") {
		t.Errorf("post-renderer saw %d streams; want one with the hooks too", len(seen))
	}
}

func TestRenderTemplateErrorNamesFileAndLine(t *testing.T) {
	dir := webChart(t)
	writeChart(t, dir, map[string]string{"templates/broken.yaml": "a: b\nc: {{ .Values.nope.deeper }}\n"})
	ch, err := Load(spec(dir), Repositories{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = Render(context.Background(), ch, nil)
	if err == nil || !strings.Contains(err.Error(), "web/templates/broken.yaml:2:") || !strings.Contains(err.Error(), dir) {
		t.Fatalf("err = %v, want the chart path and Helm's template file:line", err)
	}
}

func TestLoadErrors(t *testing.T) {
	dir := webChart(t)
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(bad, []byte("a: [unclosed\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	s := spec(dir)
	s.Values = []string{bad}
	if _, err := Load(s, Repositories{}); err == nil || !strings.Contains(err.Error(), "values file "+bad+" is not valid YAML") {
		t.Errorf("values not YAML: err = %v", err)
	}
	if _, err := Load(spec(filepath.Join(t.TempDir(), "nochart")), Repositories{}); err == nil || !strings.Contains(err.Error(), "no such chart") {
		t.Errorf("missing chart: err = %v", err)
	}
}

// depChart is a chart "app" depending on "redis" 1.2.3 from repoURL.
func depChart(t *testing.T, repoURL string) string {
	return writeChart(t, filepath.Join(t.TempDir(), "app"), map[string]string{
		"Chart.yaml":        "apiVersion: v2\nname: app\nversion: 0.1.0\ndependencies:\n  - name: redis\n    version: 1.2.3\n    repository: " + repoURL + "\n",
		"templates/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: app}\n",
	})
}

func tempRepos(t *testing.T) Repositories {
	d := t.TempDir()
	return Repositories{Config: filepath.Join(d, "repositories.yaml"), Cache: filepath.Join(d, "cache")}
}

func TestMissingDependencyUnreachableNamesIt(t *testing.T) {
	// A port nothing listens on: the download fails at once.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + l.Addr().String()
	l.Close()
	dir := depChart(t, url)
	_, err = Load(spec(dir), tempRepos(t))
	if err == nil || !strings.Contains(err.Error(), `"redis" 1.2.3 from `+url) || !strings.Contains(err.Error(), "helm dependency build") {
		t.Fatalf("err = %v, want the dependency named with its repository", err)
	}
}

func TestMissingDependencyOfPackagedChart(t *testing.T) {
	ch, err := loader.Load(depChart(t, "https://charts.example.com"))
	if err != nil {
		t.Fatal(err)
	}
	tgz, err := chartutil.Save(ch, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	_, err = Load(spec(tgz), tempRepos(t))
	if err == nil || !strings.Contains(err.Error(), `lacks its dependencies "redis" 1.2.3 from https://charts.example.com`) {
		t.Fatalf("err = %v", err)
	}
}

// TestDependencyBuildFromLocalRepository serves a chart repository on
// 127.0.0.1 (index.yaml and the packaged dependency) and loads a chart
// whose charts/ lacks it: devloop builds the dependency as helm would.
func TestDependencyBuildFromLocalRepository(t *testing.T) {
	repoDir := t.TempDir()
	redis := writeChart(t, filepath.Join(t.TempDir(), "redis"), map[string]string{
		"Chart.yaml":       "apiVersion: v2\nname: redis\nversion: 1.2.3\n",
		"templates/s.yaml": "apiVersion: v1\nkind: Service\nmetadata: {name: {{ .Release.Name }}-redis}\nspec: {ports: [{port: 6379}]}\n",
	})
	rc, err := loader.Load(redis)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := chartutil.Save(rc, repoDir); err != nil {
		t.Fatal(err)
	}
	var requests []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests = append(requests, r.URL.Path)
		http.FileServer(http.Dir(repoDir)).ServeHTTP(w, r)
	}))
	defer srv.Close()
	if !strings.HasPrefix(srv.URL, "http://127.0.0.1:") {
		t.Fatalf("server at %s", srv.URL)
	}
	idx, err := repo.IndexDirectory(repoDir, srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	if err := idx.WriteFile(filepath.Join(repoDir, "index.yaml"), 0o644); err != nil {
		t.Fatal(err)
	}

	dir := depChart(t, srv.URL)
	ch, err := Load(spec(dir), tempRepos(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(ch.Chart.Dependencies()) != 1 || ch.Chart.Dependencies()[0].Name() != "redis" {
		t.Fatalf("dependencies = %v", ch.Chart.Dependencies())
	}
	if _, err := os.Stat(filepath.Join(dir, "charts", "redis-1.2.3.tgz")); err != nil {
		t.Errorf("charts/ lacks the downloaded dependency: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "Chart.lock")); err != nil {
		t.Errorf("no Chart.lock written: %v", err)
	}
	r, err := Render(context.Background(), ch, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(r.Manifest, "name: shop-redis") {
		t.Errorf("the dependency did not render:\n%s", r.Manifest)
	}
	got := strings.Join(requests, " ")
	if !strings.Contains(got, "/index.yaml") || !strings.Contains(got, "/redis-1.2.3.tgz") {
		t.Errorf("requests = %s", got)
	}

	// With Chart.lock now there and charts/ emptied, `helm dependency
	// build` goes by the lock file: Helm wants the repository defined
	// (helm repo add) and says so, naming it.
	if err := os.RemoveAll(filepath.Join(dir, "charts")); err != nil {
		t.Fatal(err)
	}
	repos := tempRepos(t)
	if _, err := Load(spec(dir), repos); err == nil || !strings.Contains(err.Error(), "no repository definition for "+srv.URL) ||
		!strings.Contains(err.Error(), `"redis" 1.2.3`) {
		t.Fatalf("lock file, repository not added: err = %v", err)
	}
	f := repo.NewFile()
	f.Add(&repo.Entry{Name: "local", URL: srv.URL})
	if err := f.WriteFile(repos.Config, 0o644); err != nil {
		t.Fatal(err)
	}
	requests = nil
	if _, err := Load(spec(dir), repos); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(strings.Join(requests, " "), "/redis-1.2.3.tgz") {
		t.Errorf("lock-file build made no download: %v", requests)
	}
}

func TestDependencyInChartsDirNeedsNoRepository(t *testing.T) {
	dir := depChart(t, "https://charts.example.com")
	writeChart(t, dir, map[string]string{
		"charts/redis/Chart.yaml":       "apiVersion: v2\nname: redis\nversion: 1.2.3\n",
		"charts/redis/templates/c.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: redis}\n",
	})
	ch, err := Load(spec(dir), tempRepos(t))
	if err != nil {
		t.Fatal(err)
	}
	r, err := Render(context.Background(), ch, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(r.Manifest, "name: redis") {
		t.Errorf("manifest:\n%s", r.Manifest)
	}
}
