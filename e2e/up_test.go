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

const (
	clusterName = "devloop-e2e"
	ingressPort = 18480
	forwardPort = 18481
)

// helloConfig is the example's devloop.yaml with e2e-specific cluster name and ports,
// so the suite never touches a developer's own cluster.
var helloConfig = fmt.Sprintf(`name: hello
cluster:
  name: %s
  ingress:
    httpPort: %d
    httpsPort: 18443
services:
  - name: hello
    build:
      preBuild:
        run: CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o bin/ . ./toolbox
    ignore: [bin, "*.md"]
    sync:
      - src: static
        dest: /app/static
    portForwards:
      - local: %d
        port: 80
manifests:
  - k8s
`, clusterName, ingressPort, forwardPort)

func helloProject(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	copyDir(t, filepath.Join(repoRoot, "examples", "hello"), dir)
	writeFile(t, filepath.Join(dir, "go.mod"), "module example.com/hello\n\ngo 1.26\n")
	writeFile(t, filepath.Join(dir, "devloop.yaml"), helloConfig)
	return dir
}

func message(v string) string {
	return "package main\n\n// message is what GET / answers.\nconst message = \"hello from devloop " + v + "\"\n"
}

var forwardURL = fmt.Sprintf("http://127.0.0.1:%d/", forwardPort)
var ingressURL = fmt.Sprintf("http://127.0.0.1:%d/", ingressPort)

// TestUp drives the whole inner loop on the example, as a user would, on
// one cluster created from nothing.
func TestUp(t *testing.T) {
	dir := helloProject(t)
	// Start from no cluster.
	if out, err := run(t, dir, 3*time.Minute, "down", "--cluster"); err != nil {
		t.Fatalf("devloop down --cluster: %v\n%s", err, out)
	}

	begin := time.Now()
	up := start(t, dir, "up")
	at := up.waitOutput("all services ready", 0, 8*time.Minute)
	t.Logf("cold up (cluster create + ingress + build + load + rollout): %s", time.Since(begin).Round(time.Second))
	if !strings.Contains(up.out.String(), "created cluster") {
		t.Fatalf("expected a created cluster")
	}
	// The first build runs while the cluster is being created (issue 17).
	if out := up.out.String(); strings.Index(out, "building (initial build)") > strings.Index(out, "created cluster") {
		t.Errorf("the first build started only after the cluster was created:\n%s", out)
	}
	// Output is not a terminal here: long steps say how long so far.
	if !regexp.MustCompile(`cluster +│ still ensuring cluster "devloop-e2e" \(\d+s so far\)`).MatchString(up.out.String()) {
		t.Errorf("no progress line during cluster creation:\n%s", up.out.String())
	}

	t.Run("images go in through the fast loader", func(t *testing.T) {
		// A fallback to the whole image always prints this warning.
		if out := up.out.String(); strings.Contains(out, "loading the whole image") {
			t.Errorf("the fast image loader fell back:\n%s", out)
		}
	})

	t.Run("serves through the forward and the ingress", func(t *testing.T) {
		eventually(t, forwardURL, "", "hello from devloop v1", 30*time.Second)
		eventually(t, ingressURL, "hello.localhost", "hello from devloop v1", 60*time.Second)
	})

	t.Run("logs of the app are tailed with a prefix", func(t *testing.T) {
		up.waitOutput("GET / 200", 0, 30*time.Second)
	})

	t.Run("an atomic save rebuilds once and serves the new code", func(t *testing.T) {
		m := up.mark()
		atomicWrite(t, filepath.Join(dir, "message.go"), message("v2"))
		took := eventually(t, forwardURL, "", "hello from devloop v2", 2*time.Minute)
		t.Logf("save-to-serving with a rebuild: %s", took.Round(10*time.Millisecond))
		up.waitOutput("all services ready", m, time.Minute)
		if n := strings.Count(up.out.String()[m:], "building ("); n != 1 {
			t.Fatalf("one atomic save gave %d builds:\n%s", n, up.out.String()[m:])
		}
	})

	t.Run("ignored paths trigger nothing; a synced file skips the image build", func(t *testing.T) {
		m := up.mark()
		writeFile(t, filepath.Join(dir, "NOTES.md"), "ignored\n")
		writeFile(t, filepath.Join(dir, "bin", "junk"), "ignored\n")
		// The sentinel: a live-synced file. When it has been synced, the ignored
		// writes before it have long been seen (and must have done nothing).
		writeFile(t, filepath.Join(dir, "static", "index.html"), "<h1>synced v2</h1>\n")
		eventually(t, forwardURL+"static/", "", "synced v2", time.Minute)
		up.waitOutput("synced 1 file", m, 30*time.Second)
		if strings.Contains(up.out.String()[m:], "building (") {
			t.Fatalf("ignored or synced files caused a build:\n%s", up.out.String()[m:])
		}
	})

	t.Run("a pod that replaces the synced one gets the synced files, without a build", func(t *testing.T) {
		before, err := servingPod(forwardURL)
		if err != nil {
			t.Fatal(err)
		}
		m := up.mark()
		nodeKubectl(t, "delete", "pod", before, "--wait=false")
		for begin := time.Now(); ; {
			if pod, err := servingPod(forwardURL); err == nil && pod != before {
				break
			}
			if time.Since(begin) > 30*time.Second {
				t.Fatalf("no new pod served within 30s")
			}
			time.Sleep(50 * time.Millisecond) // polling a condition with a deadline
		}
		// The new pod started from the image, whose page is older than the
		// sync: devloop copies the synced files into it.
		took := eventually(t, forwardURL+"static/", "", "synced v2", 30*time.Second)
		t.Logf("the new pod served the synced page %s after it served", took.Round(10*time.Millisecond))
		up.waitOutput("live-syncing (new container", m, 30*time.Second)
		if strings.Contains(up.out.String()[m:], "building (") {
			t.Fatalf("a replaced pod caused a build:\n%s", up.out.String()[m:])
		}
	})

	t.Run("an edit of devloop.yaml is named, checked, and needs a restart", func(t *testing.T) {
		cfgPath := filepath.Join(dir, "devloop.yaml")
		m := up.mark()
		writeFile(t, cfgPath, strings.Replace(helloConfig, "    ignore: [bin, \"*.md\"]", "    ignore: [bin, \"*.md\", tmp]", 1))
		up.waitOutput("devloop.yaml changed (services.hello.ignore): restart devloop up to apply it", m, 30*time.Second)
		m = up.mark()
		writeFile(t, cfgPath, helloConfig+"  - nowhere\n")
		up.waitOutput("devloop.yaml changed but does not load", m, 30*time.Second)
		m = up.mark()
		writeFile(t, cfgPath, "# back as it was\n"+helloConfig)
		up.waitOutput("devloop.yaml changed, but not in anything that matters", m, 30*time.Second)
		if strings.Contains(up.out.String()[m:], "building (") {
			t.Fatalf("a devloop.yaml edit caused a build:\n%s", up.out.String()[m:])
		}
	})

	t.Run("a broken build keeps the last good version serving and says why", func(t *testing.T) {
		m := up.mark()
		writeFile(t, filepath.Join(dir, "message.go"), "package main\n\nconst message = \"unterminated\n")
		up.waitOutput("build failed", m, 2*time.Minute)
		if out := up.out.String()[m:]; !strings.Contains(out, "message.go") {
			t.Fatalf("the compiler error should name message.go:\n%s", out)
		}
		eventually(t, forwardURL, "", "hello from devloop v2", 5*time.Second)

		writeFile(t, filepath.Join(dir, "message.go"), message("v3"))
		eventually(t, forwardURL, "", "hello from devloop v3", 2*time.Minute)
	})

	t.Run("forwards and log tails survive pod deletions, rollouts and a frozen node", func(t *testing.T) {
		testForwardsSurvive(t, up)
	})

	t.Run("every line of a restarted container appears exactly once", func(t *testing.T) {
		testLogsAcrossRestart(t)
	})

	t.Run("Ctrl-C stops devloop and leaves the app running", func(t *testing.T) {
		up.stop()
		if up.err != nil {
			t.Fatalf("devloop up exited with %v", up.err)
		}
		if !strings.Contains(up.out.String()[at:], "stopped") {
			t.Fatalf("no stop message:\n%s", up.out.String()[at:])
		}
	})

	t.Run("a second up adopts everything and changes nothing", func(t *testing.T) {
		begin := time.Now()
		// -v: the loader says, per node and image, how it got there.
		out, err := run(t, dir, 3*time.Minute, "-v", "up", "--once")
		took := time.Since(begin)
		if err != nil {
			t.Fatalf("up --once: %v\n%s", err, out)
		}
		t.Logf("warm up --once (nothing changed): %s", took.Round(10*time.Millisecond))
		for _, want := range []string{"adopted cluster", "all services ready"} {
			if !strings.Contains(out, want) {
				t.Fatalf("missing %q:\n%s", want, out)
			}
		}
		if strings.Contains(out, "applied:") {
			t.Fatalf("a no-op up must not change any object:\n%s", out)
		}
		// Nothing is sent again: not the ingress's image, not the app's.
		for _, bad := range []string{"loading the whole image", "fast image load into", "whole image loaded into"} {
			if strings.Contains(out, bad) {
				t.Errorf("a no-op up sent an image (%q):\n%s", bad, out)
			}
		}
		if !regexp.MustCompile(`node ` + clusterName + `-control-plane already has \S*traefik`).MatchString(out) {
			t.Errorf("the ingress image was not found already in the node:\n%s", out)
		}
		if !strings.Contains(out, "already in the node(s)") {
			t.Errorf("the app's image was not found already in the node:\n%s", out)
		}
		// The app kept running across both devloop runs.
		eventually(t, ingressURL, "hello.localhost", "hello from devloop v4", 30*time.Second)
	})

	t.Run("an edit between two ups reaches the node through the image relay, its new layer only", func(t *testing.T) {
		atomicWrite(t, filepath.Join(dir, "message.go"), message("v5"))
		out, err := run(t, dir, 3*time.Minute, "-v", "up", "--once")
		if err != nil {
			t.Fatalf("up --once: %v\n%s", err, out)
		}
		// The engine pushed to devloop, which sent the node the one layer the
		// build changed (the binary); every other layer was there.
		re := regexp.MustCompile(`fast image load into ` + clusterName + `-control-plane \(relay\): 1 layer\(s\) sent, [1-9]\d* already there`)
		if !re.MatchString(out) || strings.Contains(out, "reading docker save instead") {
			t.Fatalf("the changed image did not go through the relay:\n%s", out)
		}
		eventually(t, ingressURL, "hello.localhost", "hello from devloop v5", 30*time.Second)
		// The name the image was pushed under is gone from the engine again
		// (names of the relay's that other tests' killed devloops left behind
		// are removed in the background by the next devloop: not checked here).
		if names := docker(t, "images", "--format", "{{.Repository}}:{{.Tag}}"); regexp.MustCompile(`(?m)^127\.0\.0\.1:\d+/devloop-[0-9a-f]+/\d+/library/hello:`).MatchString(names) {
			t.Errorf("the relay's name for the app's image stayed in the engine:\n%s", names)
		}
	})

	t.Run("rollout failures are explained", func(t *testing.T) {
		crashy := crashyProject(t)
		out, err := run(t, crashy, 5*time.Minute, "up", "--once", "--rollout-timeout", "3m")
		if err == nil {
			t.Fatalf("a crashing app must fail up --once:\n%s", out)
		}
		for _, want := range []string{
			"CrashLoopBackOff",
			"crashy: fatal: DATABASE_URL is not set", // the app's last log line
			"Insufficient cpu",                       // the scheduler's reason
		} {
			if !strings.Contains(out, want) {
				t.Errorf("output lacks %q:\n%s", want, out)
			}
		}
		if out, err := run(t, crashy, 2*time.Minute, "down"); err != nil {
			t.Fatalf("down crashy: %v\n%s", err, out)
		}
	})

	t.Run("logs and status work without the loop", func(t *testing.T) {
		out, err := run(t, dir, time.Minute, "logs", "hello", "--follow=false")
		if err != nil || !strings.Contains(out, "| GET / 200") {
			t.Fatalf("devloop logs hello: %v\n%s", err, out)
		}
		out, err = run(t, dir, time.Minute, "status")
		if err != nil || !strings.Contains(out, "running") || !strings.Contains(out, "1/1") {
			t.Fatalf("devloop status: %v\n%s", err, out)
		}
	})

	t.Run("doctor flags missing probes and a :latest image", func(t *testing.T) {
		lint := crashyProject(t)
		writeFile(t, filepath.Join(lint, "k8s", "cache.yaml"), `apiVersion: apps/v1
kind: Deployment
metadata:
  name: cache
spec:
  selector:
    matchLabels: {app: cache}
  template:
    metadata:
      labels: {app: cache}
    spec:
      containers:
        - name: redis
          image: redis:latest
`)
		out, _ := run(t, lint, time.Minute, "doctor")
		for _, want := range []string{
			`deployment/crashy container "app": no readiness probe`,
			`deployment/cache container "redis"`,
			":latest",
			// The engine (on this machine) reaches the loader's image relay.
			"the engine reaches devloop on 127.0.0.1",
		} {
			if !strings.Contains(out, want) {
				t.Errorf("doctor output lacks %q:\n%s", want, out)
			}
		}
	})

	t.Run("down removes what was deployed, down --cluster the cluster", func(t *testing.T) {
		out, err := run(t, dir, 2*time.Minute, "down")
		if err != nil || !strings.Contains(out, "deployment/hello") {
			t.Fatalf("down: %v\n%s", err, out)
		}
		node := clusterName + "-control-plane"
		got := docker(t, "exec", node, "kubectl", "--kubeconfig=/etc/kubernetes/admin.conf", "get", "deploy", "-A", "-l", "devloop.dev/project=hello", "-o", "name")
		if got != "" {
			t.Fatalf("still deployed after down: %s", got)
		}
		out, err = run(t, dir, 2*time.Minute, "down", "--cluster")
		if err != nil || !strings.Contains(out, "deleted cluster") {
			t.Fatalf("down --cluster: %v\n%s", err, out)
		}
		if ps := docker(t, "ps", "-a", "--filter", "name="+node, "--format", "{{.Names}}"); ps != "" {
			t.Fatalf("node container still there: %s", ps)
		}
	})
}

// crashyProject is an app that exits on start, plus a Deployment asking for
// more CPU than the node has.
func crashyProject(t *testing.T) string {
	const main = `package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Println("crashy: starting")
	fmt.Println("crashy: fatal: DATABASE_URL is not set")
	os.Exit(3)
}
`
	deploy := func(name, cpu string) string {
		return fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata:
  name: %[1]s
spec:
  replicas: 1
  selector:
    matchLabels: {app: %[1]s}
  template:
    metadata:
      labels: {app: %[1]s}
    spec:
      containers:
        - name: app
          image: crashy
          resources:
            requests: {cpu: "%[2]s", memory: 16Mi}
`, name, cpu)
	}
	return goProject(t, "crashy", main, map[string]string{
		"crashy.yaml": deploy("crashy", "10m"),
		"greedy.yaml": deploy("greedy", "64"),
	})
}
