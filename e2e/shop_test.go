//go:build e2e

package e2e

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/devloop-dev/devloop/internal/helm"
)

// The shop example's forwards and namespace in the suite (its own
// namespace: the init test has a project named shop too).
const (
	shopWebPort   = 18490
	shopAPIPort   = 18491
	shopNamespace = "shop-e2e"
	shopSecret    = "shop-s3cret-a1b2c3" // examples/shop/k8s/config.yaml
)

var (
	shopAPIURL     = fmt.Sprintf("http://127.0.0.1:%d/api/", shopAPIPort)
	shopWebURL     = fmt.Sprintf("http://127.0.0.1:%d/", shopWebPort)
	shopIngressURL = fmt.Sprintf("http://127.0.0.1:%d/", ingressPort)
)

// shopProject copies examples/shop into a temp dir, with the suite's
// cluster, ports and namespace in its devloop.yaml.
func shopProject(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	copyDir(t, filepath.Join(repoRoot, "examples", "shop"), dir)
	for _, svc := range []string{"api", "db", "web", "worker"} {
		_ = os.RemoveAll(filepath.Join(dir, svc, "bin")) // a local run's build output
	}
	writeFile(t, filepath.Join(dir, "go.mod"), "module example.com/shop\n\ngo 1.26\n")
	cfgPath := filepath.Join(dir, "devloop.yaml")
	b, err := os.ReadFile(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	cfg := strings.Replace(string(b), "name: shop\n", fmt.Sprintf("name: shop\nnamespace: %s\ncluster:\n  name: %s\n  ingress:\n    httpPort: %d\n    httpsPort: 18443\n",
		shopNamespace, clusterName, ingressPort), 1)
	cfg = strings.Replace(cfg, "local: 18083", fmt.Sprintf("local: %d", shopAPIPort), 1)
	cfg = strings.Replace(cfg, "local: 18082", fmt.Sprintf("local: %d", shopWebPort), 1)
	writeFile(t, cfgPath, cfg)
	return dir
}

// shopPrefix is how devloop prefixes a line of the shop's service name
// (prefixes as wide as "devloop", the longest).
func shopPrefix(name string) string {
	return name + strings.Repeat(" ", len("devloop")-len(name)) + " │ "
}

// podLine is how a line a pod's container logged begins in devloop's
// output, whatever the pod: "<service>/<pod>/<container> | " (the pod's
// name changes with each rollout).
func podLine(container string) string { return "/" + container + " | " }

func httpPut(url, body string) error {
	req, err := http.NewRequest(http.MethodPut, url, strings.NewReader(body))
	if err != nil {
		return err
	}
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		return fmt.Errorf("PUT %s: %s", url, resp.Status)
	}
	return nil
}

// podTime reads a jsonpath of a pod in the shop's namespace (a timestamp).
func podTime(t *testing.T, selector, jsonpath string) time.Time {
	t.Helper()
	s := nodeKubectl(t, "get", "pods", "-n", shopNamespace, "-l", selector, "-o", "jsonpath="+jsonpath)
	at, err := time.Parse(time.RFC3339, strings.Fields(s + " x")[0])
	if err != nil {
		t.Fatalf("pod %s %s = %q: %v", selector, jsonpath, s, err)
	}
	return at
}

// TestShopExample runs examples/shop: four services, dependsOn, a
// StatefulSet with a volume, an Ingress with two paths, a Secret.
func TestShopExample(t *testing.T) {
	dir := shopProject(t)
	var outputs []string // every output devloop gave: the Secret's value must be in none
	defer func() {
		out, _ := run(t, dir, 3*time.Minute, "down", "--volumes")
		outputs = append(outputs, out)
		for i, o := range outputs {
			if strings.Contains(o, shopSecret) {
				t.Errorf("output %d shows the Secret's value:\n%s", i, o)
			}
		}
	}()

	begin := time.Now()
	up := start(t, dir, "up")
	defer func() { up.stop(); outputs = append(outputs, up.out.String()) }()
	up.waitOutput("all services ready (db, api, web, worker)", 0, 8*time.Minute)
	t.Logf("up to all services ready: %s", time.Since(begin).Round(time.Second))

	t.Run("ready in dependency order", func(t *testing.T) {
		out := up.out.String()
		for _, want := range []string{shopPrefix("api") + "db ready: ", shopPrefix("worker") + "db ready: "} {
			if !strings.Contains(out, want) {
				t.Errorf("output lacks %q:\n%s", want, out)
			}
		}
		// In the cluster: api's and worker's pods were created only after db's pod was Ready.
		dbReady := podTime(t, "app=db", `{.items[0].status.conditions[?(@.type=="Ready")].lastTransitionTime}`)
		for _, svc := range []string{"api", "worker"} {
			if created := podTime(t, "app="+svc, "{.items[0].metadata.creationTimestamp}"); created.Before(dbReady) {
				t.Errorf("%s's pod was created at %s, before db was ready at %s", svc, created, dbReady)
			}
		}
	})

	t.Run("the worker's release is installed once db is ready, its hook run", func(t *testing.T) {
		out := up.out.String()
		installed := strings.Index(out, "release worker revision 1 (installed)")
		if installed < 0 || installed < strings.Index(out, shopPrefix("worker")+"db ready: ") {
			t.Errorf("no install of the worker's release after db was ready:\n%s", out)
		}
		up.waitOutput(podLine("worker")+"worker: hello from values/dev.yaml; ", 0, time.Minute)
		job := nodeKubectl(t, "get", "job", "worker-check", "-n", shopNamespace, "-o",
			"jsonpath={.status.succeeded} {.spec.template.spec.containers[0].image} {.spec.template.spec.containers[0].imagePullPolicy}")
		if f := strings.Fields(job); len(f) != 3 || f[0] != "1" || !strings.HasPrefix(f[1], "worker:devloop-") || f[2] != "IfNotPresent" {
			t.Errorf("the pre-install hook job: %q, want succeeded 1, the built worker image, IfNotPresent", job)
		}
	})

	t.Run("both ingress paths answer on one host", func(t *testing.T) {
		eventually(t, shopIngressURL, "shop.localhost", "<h1>shop</h1>", time.Minute)
		eventually(t, shopIngressURL+"api/", "shop.localhost", `"greeting":"welcome to the shop"`, time.Minute)
	})

	t.Run("the api's log line shows the Secret masked", func(t *testing.T) {
		up.waitOutput("with password [redacted]", 0, time.Minute)
	})

	t.Run("status -o json", func(t *testing.T) {
		out, err := run(t, dir, time.Minute, "status", "-o", "json")
		outputs = append(outputs, out)
		if err != nil || !strings.Contains(out, `"name": "api"`) {
			t.Fatalf("status -o json: %v\n%s", err, out)
		}
	})

	if err := httpPut(shopAPIURL+"value", "kept-42"); err != nil {
		t.Fatal(err)
	}
	eventually(t, shopAPIURL, "", `"value":"kept-42"`, 30*time.Second)

	t.Run("an edit of one service rebuilds only that one", func(t *testing.T) {
		m := up.mark()
		main := filepath.Join(dir, "api", "main.go")
		src, err := os.ReadFile(main)
		if err != nil {
			t.Fatal(err)
		}
		atomicWrite(t, main, strings.Replace(string(src), `"service": "api"`, `"service": "api-v2"`, 1))
		took := eventually(t, shopAPIURL, "", `"service":"api-v2"`, 2*time.Minute)
		t.Logf("save-to-serving of api: %s", took.Round(10*time.Millisecond))
		up.waitOutput("all services ready", m, time.Minute)
		since := up.out.String()[m:]
		if n := strings.Count(since, "building ("); n != 1 || !strings.Contains(since, shopPrefix("api")+"building (") {
			t.Fatalf("an edit of api gave %d builds:\n%s", n, since)
		}
		if strings.Contains(since, "waiting for db") {
			t.Errorf("a rebuild of api waited for db:\n%s", since)
		}
	})

	t.Run("the web front end is live-synced", func(t *testing.T) {
		m := up.mark()
		writeFile(t, filepath.Join(dir, "web", "static", "index.html"), "<h1>shop, synced</h1>\n")
		eventually(t, shopWebURL, "", "shop, synced", time.Minute)
		up.waitOutput("synced 1 file", m, 30*time.Second)
		if strings.Contains(up.out.String()[m:], "building (") {
			t.Errorf("a synced file caused a build:\n%s", up.out.String()[m:])
		}
	})

	t.Run("the db keeps its value across a pod deletion", func(t *testing.T) {
		uid := nodeKubectl(t, "get", "pod", "db-0", "-n", shopNamespace, "-o", "jsonpath={.metadata.uid}")
		nodeKubectl(t, "delete", "pod", "db-0", "-n", shopNamespace, "--wait=false")
		deadline := time.Now().Add(2 * time.Minute)
		for nodeKubectl(t, "get", "pod", "db-0", "-n", shopNamespace, "-o", "jsonpath={.metadata.uid}") == uid {
			if time.Now().After(deadline) {
				t.Fatal("db-0 was not re-created")
			}
			time.Sleep(200 * time.Millisecond) // polling a condition with a deadline
		}
		eventually(t, shopAPIURL, "", `"value":"kept-42"`, 2*time.Minute)
	})

	t.Run("and across an upgrade of the db", func(t *testing.T) {
		m := up.mark()
		main := filepath.Join(dir, "db", "main.go")
		src, err := os.ReadFile(main)
		if err != nil {
			t.Fatal(err)
		}
		atomicWrite(t, main, strings.Replace(string(src), `"db: serving %s on :8080"`, `"db v2: serving %s on :8080"`, 1))
		up.waitOutput("db v2: serving /data/value", m, 3*time.Minute)
		up.waitOutput("all services ready", m, time.Minute)
		eventually(t, shopAPIURL, "", `"value":"kept-42"`, time.Minute)
	})

	t.Run("the worker's chart", func(t *testing.T) { shopWorkerChart(t, dir, up) })

	up.stop()
	outputs = append(outputs, up.out.String())

	t.Run("down keeps the volume, and the next up finds the value", func(t *testing.T) {
		out, err := run(t, dir, 3*time.Minute, "down")
		outputs = append(outputs, out)
		if err != nil || !strings.Contains(out, "kept persistentvolumeclaim/data-db-0 and the data in them") {
			t.Fatalf("down: %v\n%s", err, out)
		}
		if got := nodeKubectl(t, "get", "pvc", "-n", shopNamespace, "-o", "name"); got != "persistentvolumeclaim/data-db-0" {
			t.Fatalf("claims after down: %q", got)
		}
		// helm uninstall leaves what the worker's pre-install hook made; down does not.
		if !strings.Contains(out, "job/worker-check deleted (hook of release worker)") {
			t.Errorf("down did not say it deleted the hook's Job:\n%s", out)
		}
		if got := nodeKubectl(t, "get", "jobs", "-n", shopNamespace, "-o", "name"); got != "" {
			t.Errorf("jobs after down: %q, want none", got)
		}
		out, err = run(t, dir, 5*time.Minute, "up", "--once")
		outputs = append(outputs, out)
		if err != nil {
			t.Fatalf("up --once after down: %v\n%s", err, out)
		}
		eventually(t, shopIngressURL+"api/", "shop.localhost", `"value":"kept-42"`, time.Minute)
	})

	t.Run("down --volumes deletes it", func(t *testing.T) {
		out, err := run(t, dir, 3*time.Minute, "down", "--volumes")
		outputs = append(outputs, out)
		if err != nil || !strings.Contains(out, "persistentvolumeclaim/data-db-0 deleted") || strings.Contains(out, "kept persistentvolumeclaim") {
			t.Fatalf("down --volumes: %v\n%s", err, out)
		}
		out, err = run(t, dir, 5*time.Minute, "up", "--once")
		outputs = append(outputs, out)
		if err != nil {
			t.Fatalf("up --once after down --volumes: %v\n%s", err, out)
		}
		eventually(t, shopIngressURL+"api/", "shop.localhost", `"value":""`, time.Minute)
	})

	t.Run("up api runs api and db only", func(t *testing.T) {
		out, err := run(t, dir, 5*time.Minute, "up", "--once", "api")
		outputs = append(outputs, out)
		if err != nil || !strings.Contains(out, "running db, api only") || !strings.Contains(out, "all services ready (db, api)") {
			t.Fatalf("up --once api: %v\n%s", err, out)
		}
		for _, other := range []string{shopPrefix("web"), shopPrefix("worker")} {
			if strings.Contains(out, other) {
				t.Errorf("up api output has %q:\n%s", other, out)
			}
		}
		// web's pod, deployed before, is left as it is.
		eventually(t, shopIngressURL, "shop.localhost", "<h1>shop", time.Minute)
	})
}

// workerPod waits until the worker runs one pod, Running, and returns its UID.
func workerPod(t *testing.T) string {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		s := nodeKubectl(t, "get", "pods", "-n", shopNamespace, "-l", "app=worker", "-o", `jsonpath={range .items[*]}{.metadata.uid} {.status.phase}{"\n"}{end}`)
		if f := strings.Fields(s); len(f) == 2 && f[1] == "Running" {
			return f[0]
		}
		if time.Now().After(deadline) {
			t.Fatalf("the worker's pods: %q, want one Running", s)
		}
		time.Sleep(200 * time.Millisecond) // polling a condition with a deadline
	}
}

// shopWorkerChart: the worker is a Helm chart (examples/shop/chart,
// values/dev.yaml). A values change upgrades its release (a new revision in
// Helm's history) without a build, and the new pod logs the new greeting; a
// broken template shows Helm's error with its file and line, makes no
// revision and leaves the worker running; the fix upgrades again.
func shopWorkerChart(t *testing.T, dir string, up *proc) {
	hc := helm.NewClient(suiteREST(t), nil)
	history := func() []helm.Revision {
		t.Helper()
		h, err := hc.History(shopNamespace, "worker")
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	h := history()
	if len(h) == 0 || h[len(h)-1].Status != "deployed" {
		t.Fatalf("history of the worker's release = %+v, want a deployed revision", h)
	}
	rev := h[len(h)-1].Revision
	values := filepath.Join(dir, "values", "dev.yaml")

	m := up.mark()
	atomicWrite(t, values, "greeting: hello again from values/dev.yaml\n")
	at := up.waitOutput(fmt.Sprintf("release worker revision %d (upgraded)", rev+1), m, 2*time.Minute)
	up.waitOutput(podLine("worker")+"worker: hello again from values/dev.yaml; ", m, time.Minute)
	up.waitOutput("all services ready", at, time.Minute)
	if since := up.out.String()[m:]; strings.Contains(since, "building (") {
		t.Errorf("a values change built an image:\n%s", since)
	}
	if h := history(); len(h) < 2 || h[len(h)-1].Revision != rev+1 || h[len(h)-1].Status != "deployed" || h[len(h)-2].Status != "superseded" {
		t.Errorf("history after the values change = %+v, want revision %d deployed over %d", h, rev+1, rev)
	}
	uid := workerPod(t)

	m = up.mark()
	broken := filepath.Join(dir, "chart", "templates", "broken.yaml")
	writeFile(t, broken, "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Values.missing.name }}\n")
	up.waitOutput("worker/templates/broken.yaml:4:", m, time.Minute)
	if h := history(); h[len(h)-1].Revision != rev+1 || h[len(h)-1].Status != "deployed" {
		t.Errorf("a broken template changed the release: %+v", h)
	}
	for range 5 {
		if got := workerPod(t); got != uid {
			t.Fatalf("the worker's pod changed after a broken template: %s, was %s", got, uid)
		}
		time.Sleep(200 * time.Millisecond) // spacing checks over a second
	}
	eventually(t, shopAPIURL, "", `"value":"kept-42"`, 10*time.Second) // the rest of the shop serves too

	m = up.mark()
	if err := os.Remove(broken); err != nil {
		t.Fatal(err)
	}
	atomicWrite(t, values, "greeting: hello, fixed, from values/dev.yaml\n")
	at = up.waitOutput(fmt.Sprintf("release worker revision %d (upgraded)", rev+2), m, 2*time.Minute)
	up.waitOutput("all services ready", at, time.Minute) // the fixed chart clears the failure
	up.waitOutput(podLine("worker")+"worker: hello, fixed, from values/dev.yaml; ", m, time.Minute)
	if since := up.out.String()[m:]; strings.Contains(since, "building (") {
		t.Errorf("the fix built an image:\n%s", since)
	}
}
