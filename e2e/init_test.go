//go:build e2e

package e2e

import (
	"crypto/tls"
	"fmt"
	"net/http"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// initCluster is the cluster a devloop.yaml written by `devloop init` uses
// (config.DefaultClusterName): the tests run it as generated.
const initCluster = "devloop"

// shopRepo writes a repository shaped like issue 18's: a Go backend whose
// Dockerfile copies a binary built on the host, kustomize bases (backend,
// frontend) with overlays dev, staging and production, a plain-manifest
// variant of the same objects, a Helm chart, and manifests that name the
// images by registry path (ghcr.io/acme/...), as a team publishes them.
func shopRepo(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "shop")
	deployment := func(name, image string) string {
		return fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata:
  name: %[1]s
spec:
  replicas: 2
  selector:
    matchLabels: {app: %[1]s}
  template:
    metadata:
      labels: {app: %[1]s}
    spec:
      containers:
        - name: %[1]s
          image: %[2]s
          ports:
            - containerPort: 8080
          readinessProbe:
            httpGet: {path: /, port: 8080}
            periodSeconds: 1
---
apiVersion: v1
kind: Service
metadata:
  name: %[1]s
spec:
  selector: {app: %[1]s}
  ports:
    - port: 80
      targetPort: 8080
`, name, image)
	}
	overlay := func(replicas int) string {
		return fmt.Sprintf("resources:\n  - ../../base/backend\npatches:\n  - target: {kind: Deployment, name: backend}\n    patch: |-\n      - op: replace\n        path: /spec/replicas\n        value: %d\n", replicas)
	}
	files := map[string]string{
		".gitignore":          "bin/\n",
		"go.mod":              "module github.com/acme/shop\n\ngo 1.26\n",
		"cmd/backend/main.go": "package main\n\nimport (\n\t\"fmt\"\n\t\"net/http\"\n)\n\nfunc main() {\n\thttp.HandleFunc(\"/\", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, \"shop backend ok\") })\n\tpanic(http.ListenAndServe(\":8080\", nil))\n}\n",
		"Dockerfile":          "FROM scratch\nCOPY bin/backend /backend\nENTRYPOINT [\"/backend\"]\n",

		"deploy/kustomize/base/backend/kustomization.yaml":        "resources: [backend.yaml]\n",
		"deploy/kustomize/base/backend/backend.yaml":              deployment("backend", "ghcr.io/acme/backend:1.4.0"),
		"deploy/kustomize/overlays/dev/kustomization.yaml":        overlay(1),
		"deploy/kustomize/overlays/staging/kustomization.yaml":    overlay(2),
		"deploy/kustomize/overlays/production/kustomization.yaml": overlay(3),
		"deploy/plain/backend.yaml":                               deployment("backend", "ghcr.io/acme/backend:1.4.0"),

		"deploy/helm/shop/Chart.yaml":                "apiVersion: v2\nname: shop\nversion: 0.1.0\n",
		"deploy/helm/shop/templates/deployment.yaml": "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {{ .Release.Name }}\n",
	}
	for name, body := range files {
		writeFile(t, filepath.Join(dir, name), body)
	}
	return dir
}

// kindNodes lists the node containers of kind cluster name.
func kindNodes(t *testing.T, name string) string {
	return docker(t, "ps", "-a", "--filter", "label=io.x-k8s.kind.cluster="+name, "--format", "{{.Names}}")
}

// TestInitThenUp: `devloop init` on the repository writes a file that
// `devloop up --once` deploys as it is, serving through the forward init
// inferred. Then the API server is stopped: `down` says exactly what to do,
// `down --cluster` removes the cluster.
func TestInitThenUp(t *testing.T) {
	dir := shopRepo(t)
	out, err := run(t, dir, time.Minute, "init")
	if err != nil {
		t.Fatalf("init: %v\n%s", err, out)
	}
	for _, want := range []string{
		"manifests: deploy/kustomize/overlays/dev",
		"left out: deploy/kustomize/overlays/production (shared environment",
		"left out: deploy/plain/*.yaml (variant",
		"helm chart: deploy/helm/shop",
		"service shop: image ghcr.io/acme/backend from Dockerfile, runs in deployment/backend",
		"pre-build shop (inferred from Dockerfile line 2, check it): GOOS=linux CGO_ENABLED=0 go build -trimpath -o bin/backend ./cmd/backend",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("init output lacks %q:\n%s", want, out)
		}
	}
	m := regexp.MustCompile(`forward: 127\.0\.0\.1:(\d+) -> service/backend:80`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no forward to service/backend inferred:\n%s", out)
	}
	url := "http://127.0.0.1:" + m[1] + "/"
	t.Cleanup(func() { _, _ = run(t, dir, 3*time.Minute, "down", "--cluster") })

	if out, err := run(t, dir, 8*time.Minute, "up", "--once"); err != nil {
		t.Fatalf("up --once on the generated file: %v\n%s", err, out)
	}
	// The forward only lives while devloop runs: serve through it.
	up := start(t, dir, "up", "--no-logs")
	up.waitOutput("all services ready", 0, 3*time.Minute)
	eventually(t, url, "", "shop backend ok", time.Minute)
	up.stop()
	img := docker(t, "exec", initCluster+"-control-plane", "kubectl", "--kubeconfig=/etc/kubernetes/admin.conf",
		"get", "deploy", "backend", "-o", "jsonpath={.spec.replicas} {.spec.template.spec.containers[0].image}")
	if !strings.HasPrefix(img, "1 ghcr.io/acme/backend:") || strings.HasSuffix(img, ":1.4.0") {
		t.Errorf("deployment/backend runs %q: want the dev overlay's 1 replica of the image devloop built", img)
	}

	t.Run("api server stopped: down says what to do, down --cluster removes the cluster", func(t *testing.T) {
		node := initCluster + "-control-plane"
		docker(t, "exec", node, "mv", "/etc/kubernetes/manifests/kube-apiserver.yaml", "/etc/kubernetes/kube-apiserver.yaml.stopped")
		waitAPIDown(t, node)
		testBrokenDown(t, dir, "its API server at https://127.0.0.1:", "docker restart "+node)
	})
}

// TestDownPausedCluster: a cluster whose node container is paused: `down`
// says exactly what to do, `down --cluster` removes it.
func TestDownPausedCluster(t *testing.T) {
	dir := shopRepo(t)
	if out, err := run(t, dir, time.Minute, "init"); err != nil {
		t.Fatalf("init: %v\n%s", err, out)
	}
	t.Cleanup(func() { _, _ = run(t, dir, 3*time.Minute, "down", "--cluster") })
	if out, err := run(t, dir, 8*time.Minute, "up", "--once"); err != nil {
		t.Fatalf("up --once: %v\n%s", err, out)
	}
	node := initCluster + "-control-plane"
	pauseNode(t, node)
	testBrokenDown(t, dir, "its node container "+node+" is paused", "docker unpause "+node)
}

// testBrokenDown checks `down` and `down --cluster` on a broken cluster.
func testBrokenDown(t *testing.T, dir, reason, repair string) {
	t.Helper()
	out, err := run(t, dir, 2*time.Minute, "down")
	if err == nil {
		t.Fatalf("down on a broken cluster succeeded:\n%s", out)
	}
	for _, want := range []string{`kind cluster "` + initCluster + `" cannot be reached: ` + reason, "`" + repair + "`", "`devloop down --cluster`"} {
		if !strings.Contains(out, want) {
			t.Errorf("down output lacks %q:\n%s", want, out)
		}
	}
	out, err = run(t, dir, 3*time.Minute, "down", "--cluster")
	if err != nil {
		t.Fatalf("down --cluster on a broken cluster: %v\n%s", err, out)
	}
	for _, want := range []string{`did not remove what devloop deployed inside kind cluster "` + initCluster + `"`, `deleted cluster "` + initCluster + `"`} {
		if !strings.Contains(out, want) {
			t.Errorf("down --cluster output lacks %q:\n%s", want, out)
		}
	}
	if n := kindNodes(t, initCluster); n != "" {
		t.Fatalf("node containers left after down --cluster: %s", n)
	}
}

// waitAPIDown waits until the API server published by node stops answering.
func waitAPIDown(t *testing.T, node string) {
	t.Helper()
	hostPort := docker(t, "port", node, "6443/tcp")
	hostPort = strings.SplitN(hostPort, "\n", 2)[0]
	c := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		resp, err := c.Get("https://" + hostPort + "/readyz")
		if err != nil {
			return
		}
		resp.Body.Close()
		time.Sleep(time.Second) // polling a condition with a deadline
	}
	out, _ := exec.Command("docker", "exec", node, "crictl", "ps").CombinedOutput()
	t.Fatalf("the API server at %s still answers 2 minutes after its static pod manifest was moved away:\n%s", hostPort, out)
}
