//go:build e2e

package e2e

import (
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// The existing-cluster test's own cluster and ports (18790-18799): it never
// touches the suite's cluster or the other tests' ports.
const (
	ctxCluster     = "devloop-e2e-ctx"
	ctxRegPort     = 18790
	ctxForwardPort = 18791
)

// ctxOwnerConfig is the project that makes the "existing" cluster: devloop's
// own kind cluster with the local registry (no ingress, to be quick).
var ctxOwnerConfig = fmt.Sprintf(`name: hello
cluster:
  name: %s
  registry:
    enabled: true
    port: %d
  ingress:
    enabled: false
services:
  - name: hello
    build:
      preBuild:
        run: CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o bin/ . ./toolbox
    ignore: [bin, "*.md"]
manifests:
  - k8s
`, ctxCluster, ctxRegPort)

// ctxUserConfig is a second project pointed at that cluster only through
// its kubeconfig context and the registry it pulls from.
var ctxUserConfig = fmt.Sprintf(`name: hello2
cluster:
  context: kind-%s
  registry:
    address: localhost:%d
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
`, ctxCluster, ctxRegPort, ctxForwardPort)

// ctxKubectl runs kubectl inside the cluster's node (as an admin, not as devloop).
func ctxKubectl(t *testing.T, args ...string) string {
	t.Helper()
	return kubectlIn(t, ctxCluster, args...)
}

// snapshot is the names and resourceVersions of the Deployments, Services,
// ConfigMaps and Secrets of each namespace, and the cluster's nodes.
func ctxSnapshot(t *testing.T, namespaces ...string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, ns := range namespaces {
		out[ns] = ctxKubectl(t, "get", "deployments,services,configmaps,secrets", "-n", ns,
			"-o", `jsonpath={range .items[*]}{.kind}/{.metadata.name}@{.metadata.resourceVersion}{"\n"}{end}`)
	}
	out["nodes"] = ctxKubectl(t, "get", "nodes", "-o", `jsonpath={range .items[*]}{.metadata.name}/{.metadata.uid}{"\n"}{end}`)
	out["node containers"] = docker(t, "ps", "-a", "--filter", "label=io.x-k8s.kind.cluster", "--format", "{{.Names}}")
	return out
}

// TestExistingCluster: a kind cluster devloop made for one project plays a
// shared dev cluster; a second project reaches it only through its
// kubeconfig context and the registry (issue 14). It serves through the
// forward, an edit is pushed and served, logs show the app, down removes
// its objects and the namespace it created; devloop neither created nor
// loaded anything, and nothing outside that namespace changed; doctor
// checks the context, the namespace and the registry. An unknown context
// and a production-looking one are refused.
func TestExistingCluster(t *testing.T) {
	t.Setenv("USER", "E2E.User") // the namespace is <project>-<user>: hello2-e2e-user
	const ns = "hello2-e2e-user"
	owner := t.TempDir()
	copyDir(t, filepath.Join(repoRoot, "examples", "hello"), owner)
	writeFile(t, filepath.Join(owner, "go.mod"), "module example.com/hello\n\ngo 1.26\n")
	writeFile(t, filepath.Join(owner, "devloop.yaml"), ctxOwnerConfig)
	user := t.TempDir()
	copyDir(t, filepath.Join(repoRoot, "examples", "hello"), user)
	writeFile(t, filepath.Join(user, "go.mod"), "module example.com/hello\n\ngo 1.26\n")
	writeFile(t, filepath.Join(user, "devloop.yaml"), ctxUserConfig)
	forward := fmt.Sprintf("http://127.0.0.1:%d/", ctxForwardPort)
	registry := fmt.Sprintf("localhost:%d", ctxRegPort)

	t.Cleanup(func() {
		if out, err := run(t, owner, 3*time.Minute, "down", "--cluster"); err != nil {
			t.Errorf("devloop down --cluster at the end: %v\n%s", err, out)
		}
	})
	if out, err := run(t, owner, 10*time.Minute, "up", "--once"); err != nil {
		t.Fatalf("the owner's devloop up --once: %v\n%s", err, out)
	}
	before := ctxSnapshot(t, "kube-system", "default", "kube-public")

	t.Run("an unknown context is refused, naming those that exist", func(t *testing.T) {
		out, err := run(t, user, time.Minute, "status", "--context", "kind-nope")
		if err == nil || !strings.Contains(out, `context "kind-nope" is not in your kubeconfig`) || !strings.Contains(out, "kind-"+ctxCluster) {
			t.Errorf("status --context kind-nope: %v\n%s", err, out)
		}
	})
	t.Run("a production-looking context is refused without the allowance", func(t *testing.T) {
		out, err := run(t, user, time.Minute, "up", "--once", "--context", "kind-prod")
		if err == nil || !strings.Contains(out, `context "kind-prod" looks like production`) || strings.Contains(out, "build") {
			t.Errorf("up --context kind-prod: %v\n%s", err, out)
		}
		// Allowed, it is refused for what it is: not in the kubeconfig.
		out, err = run(t, user, time.Minute, "up", "--once", "--context", "kind-prod", "--allow-context", "kind-prod")
		if err == nil || !strings.Contains(out, `context "kind-prod" is not in your kubeconfig`) {
			t.Errorf("up --context kind-prod --allow-context kind-prod: %v\n%s", err, out)
		}
	})

	up := start(t, user, "up", "-v")
	up.waitOutput("all services ready", 0, 5*time.Minute)

	t.Run("up serves through the forward, pushed to the registry", func(t *testing.T) {
		eventually(t, forward, "", "hello from devloop v1", time.Minute)
		out := up.out.String()
		if !strings.Contains(out, `using the existing cluster of context "kind-`+ctxCluster+`"`) || !strings.Contains(out, "devloop installs no ingress controller") {
			t.Errorf("no existing-cluster lines:\n%s", out)
		}
		if !regexp.MustCompile(`image ` + regexp.QuoteMeta(registry) + `/hello:devloop-[0-9a-f]{16}: build \S+, push to ` + regexp.QuoteMeta(registry)).MatchString(out) {
			t.Errorf("no push line:\n%s", out)
		}
		img := ctxKubectl(t, "get", "deployment", "hello", "-n", ns, "-o", "jsonpath={.spec.template.spec.containers[0].image}")
		if !strings.HasPrefix(img, registry+"/hello:devloop-") {
			t.Errorf("the Deployment runs %q, want the registry's reference", img)
		}
		if a := ctxKubectl(t, "get", "namespace", ns, "-o", `jsonpath={.metadata.annotations.devloop\.dev/created-for}`); a != "hello2" {
			t.Errorf("namespace %s is not marked as created by devloop for hello2: %q", ns, a)
		}
	})

	t.Run("an edit is pushed and served", func(t *testing.T) {
		m := up.mark()
		atomicWrite(t, filepath.Join(user, "message.go"), message("v2"))
		took := eventually(t, forward, "", "hello from devloop v2", 3*time.Minute)
		t.Logf("save-to-serving on an existing cluster: %s", took.Round(10*time.Millisecond))
		up.waitOutput("all services ready", m, time.Minute)
		if !regexp.MustCompile(`image ` + regexp.QuoteMeta(registry) + `/hello:devloop-[0-9a-f]{16}: build \S+, push to`).MatchString(up.out.String()[m:]) {
			t.Errorf("the edit was not pushed:\n%s", up.out.String()[m:])
		}
	})

	t.Run("logs show the app's lines", func(t *testing.T) {
		up.waitOutput("GET / 200", 0, 30*time.Second)
		out, err := run(t, user, time.Minute, "logs", "--follow=false")
		if err != nil || !strings.Contains(out, "GET / 200") {
			t.Errorf("devloop logs: %v\n%s", err, out)
		}
	})
	up.stop()

	t.Run("doctor checks the context, the namespace and the registry", func(t *testing.T) {
		out, _ := run(t, user, 2*time.Minute, "doctor", "--no-color")
		for _, want := range []string{`context "kind-` + ctxCluster + `" answers (Kubernetes v`, "namespace " + ns + " is writable",
			"registry " + registry + " accepts a push"} {
			if !strings.Contains(out, want) {
				t.Errorf("doctor does not say %q:\n%s", want, out)
			}
		}
		if strings.Contains(out, "kind cluster") {
			t.Errorf("doctor checks a kind cluster:\n%s", out)
		}
	})

	t.Run("devloop neither created nor loaded anything", func(t *testing.T) {
		out := up.out.String()
		for _, bad := range []string{"load into", "loaded into node", "ensuring kind cluster", "created cluster", "adopted cluster", "ensuring ingress controller"} {
			if strings.Contains(out, bad) {
				t.Errorf("output has %q:\n%s", bad, out)
			}
		}
	})

	t.Run("down --cluster is refused", func(t *testing.T) {
		out, err := run(t, user, time.Minute, "down", "--cluster", "--force")
		if err == nil || !strings.Contains(out, "never deletes it") {
			t.Errorf("down --cluster --force: %v\n%s", err, out)
		}
	})

	t.Run("down removes its objects and the namespace it created, nothing else", func(t *testing.T) {
		out, err := run(t, user, 3*time.Minute, "down")
		if err != nil {
			t.Fatalf("devloop down: %v\n%s", err, out)
		}
		for _, want := range []string{"deployment/hello deleted", "service/hello deleted", "namespace/" + ns + " deleted (devloop created it)"} {
			if !strings.Contains(out, want) {
				t.Errorf("down does not say %q:\n%s", want, out)
			}
		}
		phase := ctxKubectl(t, "get", "namespaces", "--field-selector", "metadata.name="+ns, "-o", "jsonpath={.items[*].status.phase}")
		if phase != "" && phase != "Terminating" {
			t.Errorf("namespace %s is %q after down", ns, phase)
		}
		after := ctxSnapshot(t, "kube-system", "default", "kube-public")
		for k, v := range before {
			if after[k] != v {
				t.Errorf("%s changed:\nbefore:\n%s\nafter:\n%s", k, v, after[k])
			}
		}
	})
}
