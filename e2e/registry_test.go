//go:build e2e

package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// The registry test's own cluster and ports: it never touches the suite's
// cluster (devloop-e2e) or its ports.
const (
	regCluster     = "devloop-e2e-reg"
	regIngressPort = 18780
	regForwardPort = 18781
	regPort        = 18750
)

var regConfig = fmt.Sprintf(`name: hello
cluster:
  name: %s
  workers: 1
  registry:
    enabled: true
    port: %d
  ingress:
    httpPort: %d
    httpsPort: 18743
services:
  - name: hello
    build:
      preBuild:
        run: CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o bin/ . ./toolbox
    ignore: [bin, "*.md"]
    portForwards:
      - local: %d
        port: 80
manifests:
  - k8s
`, regCluster, regPort, regIngressPort, regForwardPort)

// regKubectl runs kubectl inside the registry test's control-plane node.
func regKubectl(t *testing.T, args ...string) string {
	t.Helper()
	return kubectlIn(t, regCluster, args...)
}

// dockerExists reports whether `docker <kind> inspect name` finds it.
func dockerExists(kind, name string) bool {
	return exec.Command("docker", kind, "inspect", name).Run() == nil
}

// TestRegistryMultiNode: a two-node kind cluster with the local registry
// (issue 14). The example is pushed (not streamed), its pod runs on the
// worker and serves through the forward; an edit is pushed and served; the
// registry keeps its images across down/up; down --cluster removes the
// registry and its volume.
func TestRegistryMultiNode(t *testing.T) {
	dir := t.TempDir()
	copyDir(t, filepath.Join(repoRoot, "examples", "hello"), dir)
	writeFile(t, filepath.Join(dir, "go.mod"), "module example.com/hello\n\ngo 1.26\n")
	writeFile(t, filepath.Join(dir, "devloop.yaml"), regConfig)
	// The pod must run on the worker.
	dep := filepath.Join(dir, "k8s", "deployment.yaml")
	b, err := os.ReadFile(dep)
	if err != nil {
		t.Fatal(err)
	}
	pinned := strings.Replace(string(b), "      automountServiceAccountToken: false\n",
		"      automountServiceAccountToken: false\n      nodeSelector:\n        kubernetes.io/hostname: "+regCluster+"-worker\n", 1)
	if pinned == string(b) {
		t.Fatal("could not pin the example's pod to the worker")
	}
	writeFile(t, dep, pinned)
	forward := fmt.Sprintf("http://127.0.0.1:%d/", regForwardPort)
	registry := fmt.Sprintf("localhost:%d", regPort)

	if out, err := run(t, dir, 3*time.Minute, "down", "--cluster"); err != nil {
		t.Fatalf("devloop down --cluster: %v\n%s", err, out)
	}
	t.Cleanup(func() {
		if out, err := run(t, dir, 3*time.Minute, "down", "--cluster"); err != nil {
			t.Errorf("devloop down --cluster at the end: %v\n%s", err, out)
		}
	})

	begin := time.Now()
	up := start(t, dir, "up", "-v")
	up.waitOutput("all services ready", 0, 10*time.Minute)
	t.Logf("cold up with two nodes and the registry: %s", time.Since(begin).Round(time.Second))

	t.Run("the image is pushed, not loaded", func(t *testing.T) {
		out := up.out.String()
		if !regexp.MustCompile(`image ` + regexp.QuoteMeta(registry) + `/hello:devloop-[0-9a-f]{16}: build \S+, push to ` + regexp.QuoteMeta(registry)).MatchString(out) {
			t.Errorf("no push line:\n%s", out)
		}
		if regexp.MustCompile(`hello +│ image \S+: build \S+, load into`).MatchString(out) {
			t.Errorf("the service's image was streamed into the nodes:\n%s", out)
		}
		img := regKubectl(t, "get", "deployment", "hello", "-o", "jsonpath={.spec.template.spec.containers[0].image}")
		if !strings.HasPrefix(img, registry+"/hello:devloop-") {
			t.Errorf("the Deployment runs %q, want the registry's reference", img)
		}
	})

	t.Run("the pod on the worker serves through the forward", func(t *testing.T) {
		eventually(t, forward, "", "hello from devloop v1", time.Minute)
		nodes := regKubectl(t, "get", "pods", "-l", "app=hello", "-o", "jsonpath={.items[*].spec.nodeName}")
		if nodes != regCluster+"-worker" {
			t.Errorf("hello runs on %q, want %s-worker", nodes, regCluster)
		}
		up.waitOutput("GET / 200", 0, 30*time.Second) // its logs are tailed from the worker too
	})

	t.Run("the ingress on the control plane reaches the pod on the worker", func(t *testing.T) {
		// The host ports are the control plane's; Traefik is pinned there
		// (ingress-ready) and routes across nodes to the worker's pod.
		eventually(t, fmt.Sprintf("http://127.0.0.1:%d/", regIngressPort), "hello.localhost", "hello from devloop v1", time.Minute)
		traefik := regKubectl(t, "get", "pods", "-A", "-l", "app.kubernetes.io/name=traefik", "-o", "jsonpath={.items[*].spec.nodeName}")
		if traefik != regCluster+"-control-plane" {
			t.Errorf("Traefik runs on %q, want %s-control-plane (where the host ports are)", traefik, regCluster)
		}
	})

	t.Run("the nodes and other tools find the registry", func(t *testing.T) {
		for _, n := range []string{regCluster + "-control-plane", regCluster + "-worker"} {
			hosts := docker(t, "exec", n, "cat", "/etc/containerd/certs.d/"+registry+"/hosts.toml")
			if !strings.Contains(hosts, `[host."http://`+regCluster+`-registry:5000"]`) {
				t.Errorf("node %s hosts.toml:\n%s", n, hosts)
			}
		}
		cm := regKubectl(t, "get", "configmap", "-n", "kube-public", "local-registry-hosting", "-o", "jsonpath={.data.localRegistryHosting\\.v1}")
		if !strings.Contains(cm, `host: `+registry) {
			t.Errorf("local-registry-hosting:\n%s", cm)
		}
	})

	var v2Tag string
	t.Run("an edit is pushed and served", func(t *testing.T) {
		m := up.mark()
		atomicWrite(t, filepath.Join(dir, "message.go"), message("v2"))
		took := eventually(t, forward, "", "hello from devloop v2", 3*time.Minute)
		t.Logf("save-to-serving with a push: %s", took.Round(10*time.Millisecond))
		up.waitOutput("all services ready", m, time.Minute)
		since := up.out.String()[m:]
		line := regexp.MustCompile(`image ` + regexp.QuoteMeta(registry) + `/hello:(devloop-[0-9a-f]{16}): build \S+, push to \S+ \S+ \((\d+) layer\(s\) sent, (\d+) already there\)`).FindStringSubmatch(since)
		if line == nil {
			t.Fatalf("the edit was not pushed:\n%s", since)
		}
		v2Tag = line[1]
		if line[3] == "0" {
			t.Errorf("every layer was pushed again after a one-file edit: %s", line[0])
		}
	})

	up.stop()
	if out, err := run(t, dir, 3*time.Minute, "down"); err != nil {
		t.Fatalf("devloop down: %v\n%s", err, out)
	}

	t.Run("after down, up finds its images still in the registry", func(t *testing.T) {
		_, tags, err := httpGet("http://127.0.0.1:"+fmt.Sprint(regPort)+"/v2/hello/tags/list", "")
		if err != nil || v2Tag == "" || !strings.Contains(tags, v2Tag) {
			t.Fatalf("the registry lists %q (err %v), want %s", tags, err, v2Tag)
		}
		out, err := run(t, dir, 5*time.Minute, "up", "--once")
		if err != nil {
			t.Fatalf("devloop up --once: %v\n%s", err, out)
		}
		if !strings.Contains(out, registry+"/hello:"+v2Tag+": build") || !strings.Contains(out, "(0 layer(s) sent") {
			t.Errorf("the second up pushed layers again:\n%s", out)
		}
	})

	t.Run("down --cluster removes the registry and its volume", func(t *testing.T) {
		out, err := run(t, dir, 3*time.Minute, "down", "--cluster")
		if err != nil {
			t.Fatalf("devloop down --cluster: %v\n%s", err, out)
		}
		if dockerExists("container", regCluster+"-registry") || dockerExists("volume", regCluster+"-registry-data") {
			t.Errorf("the registry outlived down --cluster:\n%s", out)
		}
	})
}
