//go:build e2e

package e2e

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

const pprofAddr = "127.0.0.1:18499"

// nodeKubectl runs kubectl inside the kind node (the suite needs no kubectl on the host).
func nodeKubectl(t *testing.T, args ...string) string {
	t.Helper()
	return kubectlIn(t, clusterName, args...)
}

// kubectlIn runs kubectl inside cluster's control-plane node, as its admin
// (not as devloop).
func kubectlIn(t *testing.T, cluster string, args ...string) string {
	t.Helper()
	return docker(t, append([]string{"exec", cluster + "-control-plane", "kubectl", "--kubeconfig=/etc/kubernetes/admin.conf"}, args...)...)
}

// goroutines reads devloop's goroutine count from its pprof endpoint.
func goroutines(t *testing.T) int {
	t.Helper()
	_, body, err := httpGet("http://"+pprofAddr+"/debug/pprof/goroutine?debug=1", "")
	if err != nil {
		t.Fatalf("reading goroutines: %v", err)
	}
	var n int
	if _, err := fmt.Sscanf(body, "goroutine profile: total %d", &n); err != nil {
		t.Fatalf("parsing %q: %v", body[:min(len(body), 80)], err)
	}
	return n
}

func openFDs(t *testing.T, pid int) int {
	t.Helper()
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// podName extracts the pod from the example's answer "hello from devloop vN (pod NAME)".
var podRe = regexp.MustCompile(`\(pod ([^)]+)\)`)

func servingPod(url string) (string, error) {
	code, body, err := httpGet(url, "")
	if err != nil {
		return "", err
	}
	if code != 200 {
		return "", fmt.Errorf("status %d", code)
	}
	m := podRe.FindStringSubmatch(body)
	if m == nil {
		return "", fmt.Errorf("no pod in %q", body)
	}
	return m[1], nil
}

// testForwardsSurvive is run by TestUp with its devloop up running (started
// with DEVLOOP_PPROF_ADDR).
func testForwardsSurvive(t *testing.T, up *proc) {
	t.Run("every listener devloop opens is on 127.0.0.1", func(t *testing.T) {
		for _, l := range listeners(t, up.cmd.Process.Pid) {
			if !strings.HasPrefix(l, "127.0.0.1:") {
				t.Errorf("devloop listens on %s", l)
			}
		}
	})

	t.Run("deleting the serving pod 10 times: the same port serves again within 5s, no leaks", func(t *testing.T) {
		before, err := servingPod(forwardURL)
		if err != nil {
			t.Fatal(err)
		}
		g0, f0 := goroutines(t), openFDs(t, up.cmd.Process.Pid)
		var worst time.Duration
		for i := 0; i < 10; i++ {
			nodeKubectl(t, "delete", "pod", before, "--wait=false")
			begin := time.Now()
			for {
				pod, err := servingPod(forwardURL)
				if err == nil && pod != before {
					before = pod
					break
				}
				if time.Since(begin) > 5*time.Second {
					t.Fatalf("round %d: the forward did not reach a new pod within 5s (last: %v %v)", i, pod, err)
				}
				time.Sleep(50 * time.Millisecond) // polling a condition with a deadline
			}
			if d := time.Since(begin); d > worst {
				worst = d
			}
		}
		t.Logf("worst time to serve from the new pod: %s", worst.Round(10*time.Millisecond))
		// Let the old tunnels and streams close, then compare.
		var g1, f1 int
		deadline := time.Now().Add(20 * time.Second)
		for {
			g1, f1 = goroutines(t), openFDs(t, up.cmd.Process.Pid)
			if (g1 <= g0+10 && f1 <= f0+5) || time.Now().After(deadline) {
				break
			}
			time.Sleep(500 * time.Millisecond) // polling a condition with a deadline
		}
		t.Logf("goroutines %d → %d, open fds %d → %d after 10 pod deletions", g0, g1, f0, f1)
		if g1 > g0+10 || f1 > f0+5 {
			t.Fatalf("leak: goroutines %d → %d, fds %d → %d", g0, g1, f0, f1)
		}
	})

	t.Run("a rollout to a new image while a client loops: short gap, ends on the new pod", func(t *testing.T) {
		dir := up.cmd.Dir
		stopClient := make(chan struct{})
		gapCh := make(chan time.Duration, 1)
		go func() {
			var worst time.Duration
			var failingSince time.Time
			for {
				select {
				case <-stopClient:
					gapCh <- worst
					return
				default:
				}
				_, err := servingPod(forwardURL)
				if err != nil && failingSince.IsZero() {
					failingSince = time.Now()
				}
				if err == nil && !failingSince.IsZero() {
					if d := time.Since(failingSince); d > worst {
						worst = d
					}
					failingSince = time.Time{}
				}
				time.Sleep(20 * time.Millisecond)
			}
		}()
		writeFile(t, filepath.Join(dir, "message.go"), message("v4"))
		eventually(t, forwardURL, "", "hello from devloop v4", 2*time.Minute)
		close(stopClient)
		gap := <-gapCh
		t.Logf("longest run of failing requests during the rollout: %s", gap.Round(10*time.Millisecond))
		if gap > 3*time.Second {
			t.Fatalf("requests failed for %s during the rollout", gap)
		}
	})

	t.Run("docker pause of the node for 30s: forwards and tails recover by themselves", func(t *testing.T) {
		node := clusterName + "-control-plane"
		pauseNode(t, node)
		paused := time.Now()
		time.Sleep(30 * time.Second) // the scenario itself: the node is frozen this long
		docker(t, "unpause", node)
		t.Logf("paused for %s", time.Since(paused).Round(time.Second))
		m := up.mark()
		took := eventually(t, forwardURL, "", "hello from devloop v4", 90*time.Second)
		t.Logf("forward answered %s after unpause", took.Round(100*time.Millisecond))
		// The request above logs "GET / 200": the tail must show it.
		up.waitOutput("GET / 200", m, 90*time.Second)
	})
}

// listeners lists the TCP addresses devloop's process listens on, from
// /proc/net/tcp{,6} and its socket inodes.
func listeners(t *testing.T, pid int) []string {
	t.Helper()
	inodes := map[string]bool{}
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		l, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, e.Name()))
		if err == nil && strings.HasPrefix(l, "socket:[") {
			inodes[strings.TrimSuffix(strings.TrimPrefix(l, "socket:["), "]")] = true
		}
	}
	var out []string
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		fh, err := os.Open(f)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(fh)
		sc.Scan() // header
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			if len(fields) < 10 || fields[3] != "0A" || !inodes[fields[9]] {
				continue
			}
			out = append(out, decodeAddr(fields[1]))
		}
		fh.Close()
	}
	if len(out) == 0 {
		t.Fatal("found no listening socket of devloop (expected at least the forward)")
	}
	return out
}

// decodeAddr turns /proc/net/tcp's "0100007F:4A61" into "127.0.0.1:19041".
func decodeAddr(s string) string {
	hostHex, portHex, _ := strings.Cut(s, ":")
	port, _ := strconv.ParseUint(portHex, 16, 16)
	if len(hostHex) == 8 {
		v, _ := strconv.ParseUint(hostHex, 16, 32)
		return fmt.Sprintf("%d.%d.%d.%d:%d", byte(v), byte(v>>8), byte(v>>16), byte(v>>24), port)
	}
	return fmt.Sprintf("[%s]:%d", hostHex, port)
}

// counterProject logs "tick N" every 10ms from N=1.
func counterProject(t *testing.T) string {
	return goProject(t, "counter", `package main

import (
	"fmt"
	"time"
)

func main() {
	for n := 1; ; n++ {
		fmt.Printf("tick %d\n", n)
		time.Sleep(10 * time.Millisecond)
	}
}
`, map[string]string{"counter.yaml": `apiVersion: apps/v1
kind: Deployment
metadata:
  name: counter
spec:
  replicas: 1
  selector:
    matchLabels: {app: counter}
  template:
    metadata:
      labels: {app: counter}
    spec:
      containers:
        - name: app
          image: counter
          resources:
            requests: {cpu: 10m, memory: 16Mi}
`})
}

var tickRe = regexp.MustCompile(`counter/\S+/app \| tick (\d+)$`)

// ticks returns the tick numbers devloop printed, in order.
func ticks(out string) []int {
	var ns []int
	for _, l := range strings.Split(out, "\n") {
		if m := tickRe.FindStringSubmatch(strings.TrimSpace(l)); m != nil {
			n, _ := strconv.Atoi(m[1])
			ns = append(ns, n)
		}
	}
	return ns
}

// testLogsAcrossRestart checks that every line a restarted container printed
// appears exactly once in devloop's output.
func testLogsAcrossRestart(t *testing.T) {
	dir := counterProject(t)
	up := start(t, dir, "up")
	up.waitOutput("all services ready", 0, 3*time.Minute)
	up.waitOutput("| tick 300", 0, time.Minute)

	node := clusterName + "-control-plane"
	old := docker(t, "exec", node, "crictl", "ps", "--name", "^app$", "--label", "io.kubernetes.pod.namespace=default", "-q", "--state", "running")
	if old == "" || strings.Contains(old, "\n") {
		t.Fatalf("want one running counter container, got %q", old)
	}
	docker(t, "exec", node, "crictl", "stop", "--timeout", "0", old)
	// The restarted container prints from tick 1 again; wait until it is well along.
	deadline := time.Now().Add(90 * time.Second)
	for {
		ns := ticks(up.out.String())
		resets := 0
		for i := 1; i < len(ns); i++ {
			if ns[i] == 1 {
				resets++
			}
		}
		if resets >= 1 && ns[len(ns)-1] >= 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the restarted container's lines never showed (last ticks %v)", ns[max(0, len(ns)-5):])
		}
		time.Sleep(200 * time.Millisecond) // polling a condition with a deadline
	}
	up.stop()

	// What the old container really printed, from the node's own log files.
	oldLog := docker(t, "exec", node, "crictl", "logs", old)
	last := 0
	for _, l := range strings.Split(oldLog, "\n") {
		var n int
		if _, err := fmt.Sscanf(strings.TrimSpace(l), "tick %d", &n); err == nil {
			last = n
		}
	}
	ns := ticks(up.out.String())
	split := -1
	for i := 1; i < len(ns); i++ {
		if ns[i] == 1 {
			split = i
			break
		}
	}
	if split < 0 {
		t.Fatal("no restart seen in the output")
	}
	first, second := ns[:split], ns[split:]
	for i, n := range first {
		if n != i+1 {
			t.Fatalf("old container: line %d is tick %d (lost or duplicated lines around it)", i+1, n)
		}
	}
	if len(first) != last {
		t.Fatalf("old container printed %d ticks, devloop showed %d", last, len(first))
	}
	for i, n := range second {
		if n != i+1 {
			t.Fatalf("new container: line %d is tick %d (lost or duplicated lines around it)", i+1, n)
		}
	}
	t.Logf("old container: all %d lines exactly once; new container: %d lines in order", last, len(second))
	if out, err := run(t, dir, 2*time.Minute, "down"); err != nil {
		t.Fatalf("down counter: %v\n%s", err, out)
	}
}
