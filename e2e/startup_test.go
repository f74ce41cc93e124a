//go:build e2e

package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The start-up tests run on a cluster of their own, so that deleting and
// re-creating it never touches the suite's cluster.
const (
	startupCluster     = "devloop-e2e-start"
	startupIngressPort = 18590
	startupForwardPort = 18591
)

// startupProject is the example on the start-up tests' cluster and ports.
func startupProject(t testing.TB) string {
	t.Helper()
	dir := helloProject(t)
	cfg := strings.NewReplacer(
		"name: "+clusterName, "name: "+startupCluster,
		fmt.Sprintf("httpPort: %d", ingressPort), fmt.Sprintf("httpPort: %d", startupIngressPort),
		"httpsPort: 18443", "httpsPort: 18592",
		fmt.Sprintf("local: %d", forwardPort), fmt.Sprintf("local: %d", startupForwardPort),
	).Replace(helloConfig)
	if cfg == helloConfig || !strings.Contains(cfg, startupCluster) || !strings.Contains(cfg, fmt.Sprint(startupForwardPort)) {
		t.Fatalf("startupProject: the example's e2e config changed shape; update the replacements:\n%s", helloConfig)
	}
	writeFile(t, filepath.Join(dir, "devloop.yaml"), cfg)
	return dir
}

// nodeContainers lists every container (running or not) of kind cluster name.
func nodeContainers(t testing.TB, name string) string {
	return docker(t, "ps", "-a", "--filter", "label=io.x-k8s.kind.cluster="+name, "--format", "{{.Names}}")
}

// TestColdStartInterrupted interrupts a cold `up` (Ctrl-C) at each step of
// the cluster's creation and just after it, as a user who changes their mind
// would, and checks what is left: nothing at all (no node container, no
// kubeconfig context) while the cluster was being made, or a whole cluster
// that the next `up --once` adopts and serves on (issue 17).
func TestColdStartInterrupted(t *testing.T) {
	if leg := os.Getenv("DEVLOOP_E2E_ENGINE_LEG"); leg == "classic" {
		// Cluster creation does not touch the image store; one leg covers it.
		t.Skip("cluster creation is the same on both image stores: run on the containerd leg only")
	}
	dir := startupProject(t)
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	t.Setenv("KUBECONFIG", kubeconfig)
	t.Cleanup(func() { _, _ = run(t, dir, 3*time.Minute, "down", "--cluster") })
	if out, err := run(t, dir, 3*time.Minute, "down", "--cluster"); err != nil {
		t.Fatalf("devloop down --cluster: %v\n%s", err, out)
	}

	steps := []struct {
		at string
		// whole: the interrupt lands after the cluster is made, so it stays.
		// Otherwise it lands while kind works, and nothing may stay; steps
		// that take well under a second may race with their end (either).
		whole, either bool
	}{
		{at: "ensuring kind cluster"},
		{at: "• Preparing nodes"},
		{at: "• Writing configuration"},
		{at: "• Starting control-plane"},
		{at: "• Installing CNI", either: true},
		{at: "• Waiting ≤", either: true},
		{at: "created cluster", whole: true},    // the ingress controller is being installed
		{at: "applying manifests", whole: true}, // the app's rollout is awaited
	}
	for _, s := range steps {
		t.Run(strings.TrimPrefix(s.at, "• "), func(t *testing.T) {
			if nodes := nodeContainers(t, startupCluster); nodes != "" {
				if out, err := run(t, dir, 3*time.Minute, "down", "--cluster"); err != nil {
					t.Fatalf("devloop down --cluster: %v\n%s", err, out)
				}
			}
			up := start(t, dir, "up")
			up.waitOutput(s.at, 0, 5*time.Minute)
			sent := time.Now()
			_ = up.cmd.Process.Signal(syscall.SIGINT)
			select {
			case <-up.done:
			case <-time.After(2 * time.Minute):
				t.Fatalf("devloop did not exit within 2m of Ctrl-C at %q:\n%s", s.at, up.out.String())
			}
			t.Logf("FIGURE interrupt at=%q exit_after=%s", s.at, time.Since(sent).Round(10*time.Millisecond))
			if up.err != nil {
				t.Errorf("devloop exited with %v after Ctrl-C; want a clean exit:\n%s", up.err, up.out.String())
			}
			out := up.out.String()
			made := strings.Contains(out, "created cluster")
			nodes := nodeContainers(t, startupCluster)
			switch {
			case made && !s.whole && !s.either:
				t.Fatalf("Ctrl-C at %q: the cluster was still made:\n%s", s.at, out)
			case !made && s.whole:
				t.Fatalf("Ctrl-C at %q: devloop says no cluster was made:\n%s", s.at, out)
			case !made:
				if nodes != "" {
					t.Fatalf("Ctrl-C at %q left node containers behind: %s\n%s", s.at, nodes, out)
				}
				if !strings.Contains(out, "nothing half-made was left behind") {
					t.Errorf("Ctrl-C at %q: devloop did not say what it left:\n%s", s.at, out)
				}
				if b, err := os.ReadFile(kubeconfig); err == nil && strings.Contains(string(b), "kind-"+startupCluster) {
					t.Errorf("Ctrl-C at %q left context kind-%s in the kubeconfig:\n%s", s.at, startupCluster, b)
				}
			default:
				// A whole cluster stays: the next up adopts it and serves.
				if nodes == "" {
					t.Fatalf("Ctrl-C at %q after the cluster was made: its node is gone:\n%s", s.at, out)
				}
				again := start(t, dir, "up")
				again.waitOutput("all services ready", 0, 5*time.Minute)
				if !strings.Contains(again.out.String(), "adopted cluster") {
					t.Fatalf("up after Ctrl-C at %q did not adopt the cluster:\n%s", s.at, again.out.String())
				}
				eventually(t, fmt.Sprintf("http://127.0.0.1:%d/", startupForwardPort), "", "hello from devloop", 30*time.Second)
				again.stop()
				if out, err := run(t, dir, 3*time.Minute, "down", "--cluster"); err != nil {
					t.Fatalf("devloop down --cluster: %v\n%s", err, out)
				}
			}
		})
	}
}

// BenchmarkStartUp measures a cold `up` (no cluster) to the first answer
// through the forward and through the ingress, with its steps from devloop's
// own lines, then two warm `up --once` (everything running, nothing
// changed), DEVLOOP_BENCH_RUNS rounds (default 5) whatever b.N is, on the
// example; then 2×DEVLOOP_BENCH_RUNS warm `up --once` in a row on the last
// round's cluster, settled by then.
//
//	go test -tags e2e -run '^$' -bench 'StartUp$' -benchtime 1x ./e2e/
func BenchmarkStartUp(b *testing.B) {
	benchStartUp(b, startupProject(b), startupCluster,
		fmt.Sprintf("http://127.0.0.1:%d/", startupForwardPort), "hello from devloop",
		fmt.Sprintf("http://127.0.0.1:%d/", startupIngressPort), "hello.localhost", "hello from devloop")
}

// BenchmarkStartUpShop is BenchmarkStartUp on the multi-service example
// (four services, db first: api and worker depend on it), to the api's
// answer through its forward and through the ingress's /api path.
//
//	go test -tags e2e -run '^$' -bench 'StartUpShop$' -benchtime 1x ./e2e/
func BenchmarkStartUpShop(b *testing.B) {
	benchStartUp(b, shopProject(b), clusterName, shopAPIURL, `"service":"api"`,
		shopIngressURL+"api/", "shop.localhost", `"service":"api"`)
}

func benchStartUp(b *testing.B, dir, cluster, forward, forwardWant, ingress, ingressHost, ingressWant string) {
	runs := 5
	if v := getenvInt("DEVLOOP_BENCH_RUNS"); v > 0 {
		runs = v
	}
	b.Cleanup(func() { _, _ = run(b, dir, 3*time.Minute, "down", "--cluster") })
	steps := []struct{ name, line string }{
		{"first-build-started", "building (initial build)"},
		{"cluster-created", "created cluster"},
		{"image-loaded", "load into"},
		{"all-ready", "all services ready"},
		{"ingress-ready", "ingress ready in"},
	}
	cold := map[string][]time.Duration{}
	var warm []time.Duration
	for i := 0; i < runs; i++ {
		if out, err := run(b, dir, 3*time.Minute, "down", "--cluster"); err != nil {
			b.Fatalf("devloop down --cluster: %v\n%s", err, out)
		}
		if nodes := nodeContainers(b, cluster); nodes != "" {
			b.Fatalf("cluster %s still has nodes after down --cluster: %s", cluster, nodes)
		}
		begin := time.Now()
		up := start(b, dir, "up")
		var wg sync.WaitGroup
		var toForward, toIngress time.Duration
		wg.Add(2)
		go func() { defer wg.Done(); toForward = firstAnswer(forward, "", forwardWant, begin) }()
		go func() { defer wg.Done(); toIngress = firstAnswer(ingress, ingressHost, ingressWant, begin) }()
		wg.Wait()
		if toForward < 0 || toIngress < 0 {
			b.Fatalf("round %d: no answer within 5m (forward %s, ingress %s):\n%s", i, toForward, toIngress, up.out.String())
		}
		up.waitOutput("ingress ready in", 0, time.Minute)
		up.stop()
		cold["forward-answer"] = append(cold["forward-answer"], toForward)
		cold["ingress-answer"] = append(cold["ingress-answer"], toIngress)
		lines := up.out.linesSince(begin)
		row := fmt.Sprintf("round %d: forward %s ingress %s", i+1, toForward.Round(10*time.Millisecond), toIngress.Round(10*time.Millisecond))
		for _, s := range steps {
			for _, l := range lines {
				if strings.Contains(l.text, s.line) {
					d := l.at.Sub(begin)
					cold[s.name] = append(cold[s.name], d)
					row += fmt.Sprintf(" %s %s", s.name, d.Round(10*time.Millisecond))
					break
				}
			}
		}
		for j := 0; j < 2; j++ {
			t0 := time.Now()
			if out, err := run(b, dir, 2*time.Minute, "up", "--once"); err != nil || !strings.Contains(out, "adopted cluster") {
				b.Fatalf("warm up --once: %v\n%s", err, out)
			}
			warm = append(warm, time.Since(t0))
			row += fmt.Sprintf(" warm %s", warm[len(warm)-1].Round(10*time.Millisecond))
		}
		b.Log(row)
	}
	reportPct(b, "cold/forward-answer", cold["forward-answer"])
	reportPct(b, "cold/ingress-answer", cold["ingress-answer"])
	for _, s := range steps {
		reportPct(b, "cold/"+s.name, cold[s.name])
	}
	reportPct(b, "warm/right-after-cold", warm)
	// The morning's warm up: the cluster has run for a while (the rounds
	// above measure it seconds after a cold start, while the new control
	// plane and the ingress controller still settle).
	time.Sleep(30 * time.Second) // a benchmark's pause, not synchronisation: the new cluster's start-up work ends
	settled := make([]time.Duration, 0, 2*runs)
	for j := 0; j < 2*runs; j++ {
		t0 := time.Now()
		if out, err := run(b, dir, 2*time.Minute, "up", "--once"); err != nil || !strings.Contains(out, "adopted cluster") {
			b.Fatalf("warm up --once: %v\n%s", err, out)
		}
		settled = append(settled, time.Since(t0))
	}
	b.Logf("warm (settled): %v", settled)
	reportPct(b, "warm/up-once", settled)
}

// firstAnswer polls url until it answers 200 with want in the body and
// returns how long after begin that was, or -1 after five minutes.
func firstAnswer(url, host, want string, begin time.Time) time.Duration {
	for time.Since(begin) < 5*time.Minute {
		if code, body, err := httpGet(url, host); err == nil && code == 200 && strings.Contains(body, want) {
			return time.Since(begin)
		}
		time.Sleep(50 * time.Millisecond) // polling a condition with a deadline
	}
	return -1
}
