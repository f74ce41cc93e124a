//go:build e2e

package e2e

import (
	"crypto/tls"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The fault scenarios of issue 16: each one breaks something devloop depends
// on while `devloop up` runs, and prints its recovery figure as a line
// "FIGURE fault=NAME key=value ..." (collected into BENCHMARKS.md, "Faults").

// faultPort is the local port of the fault project's forward.
const faultPort = 18487

// faultApp serves "faultapp VERSION" on :8080 and logs "seq N" every 50 ms
// from N=1, so lost or duplicated log lines show as a gap or a repeat.
const faultApp = `package main

import (
	"fmt"
	"net/http"
	"time"
)

func main() {
	go func() {
		for n := 1; ; n++ {
			fmt.Printf("seq %d\n", n)
			time.Sleep(50 * time.Millisecond)
		}
	}()
	http.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintf(w, "faultapp %s\n", version) })
	_ = http.ListenAndServe(":8080", nil)
}
`

func faultVersion(v string) string {
	return "package main\n\nconst version = \"" + v + "\"\n"
}

const faultManifests = `apiVersion: apps/v1
kind: Deployment
metadata: {name: faultapp}
spec:
  replicas: 1
  selector: {matchLabels: {app: faultapp}}
  template:
    metadata: {labels: {app: faultapp}}
    spec:
      automountServiceAccountToken: false
      terminationGracePeriodSeconds: 1
      containers:
        - name: app
          image: faultapp
          ports: [{containerPort: 8080}]
          readinessProbe: {httpGet: {path: /, port: 8080}, periodSeconds: 1}
          resources:
            requests: {cpu: 10m, memory: 16Mi}
---
apiVersion: v1
kind: Service
metadata: {name: faultapp}
spec:
  selector: {app: faultapp}
  ports: [{port: 80, targetPort: 8080}]
`

// faultProject writes the fault project (version v1) and returns its directory.
func faultProject(t *testing.T) string {
	t.Helper()
	dir := goProject(t, "faultapp", faultApp, map[string]string{"app.yaml": faultManifests})
	writeFile(t, filepath.Join(dir, "version.go"), faultVersion("v1"))
	// A stage that sleeps as many seconds as slow.txt's first line says: a
	// build that is still running in the engine when the engine is restarted.
	writeFile(t, filepath.Join(dir, "slow.txt"), "0\n")
	writeFile(t, filepath.Join(dir, "Dockerfile"), `FROM `+os.Getenv("DEVLOOP_E2E_DEBIAN_IMAGE")+` AS slow
COPY slow.txt /slow.txt
RUN sleep "$(head -n1 /slow.txt)"
FROM scratch
COPY --from=slow /slow.txt /slow.txt
COPY bin/faultapp /faultapp
ENTRYPOINT ["/faultapp"]
`)
	writeFile(t, filepath.Join(dir, "devloop.yaml"), fmt.Sprintf(`name: faultapp
cluster:
  name: %s
  ingress:
    httpPort: %d
    httpsPort: 18443
services:
  - name: faultapp
    build:
      preBuild:
        run: CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o bin/faultapp .
    ignore: [bin]
    portForwards:
      - local: %d
        port: 80
manifests:
  - k8s/*.yaml
`, clusterName, ingressPort, faultPort))
	return dir
}

var faultURL = fmt.Sprintf("http://127.0.0.1:%d/", faultPort)

var seqRe = regexp.MustCompile(`faultapp/(\S+)/app \| seq (\d+)$`)

// seqLine is one "seq N" line devloop printed, with the pod it came from and
// when the test saw it.
type seqLine struct {
	pod string
	n   int
	at  time.Time
}

func seqLines(up *proc, since time.Time) []seqLine {
	var out []seqLine
	for _, l := range up.out.linesSince(since) {
		if m := seqRe.FindStringSubmatch(strings.TrimSpace(l.text)); m != nil {
			n, _ := strconv.Atoi(m[2])
			out = append(out, seqLine{pod: m[1], n: n, at: l.at})
		}
	}
	return out
}

// checkSeq fails unless, per pod, the seq lines devloop printed since
// `since` are consecutive: no line lost, none printed twice. A container
// restart (seq back to 1) starts a new run.
func checkSeq(t *testing.T, lines []seqLine) {
	t.Helper()
	last := map[string]int{}
	for _, l := range lines {
		prev, seen := last[l.pod]
		if seen && l.n != prev+1 && l.n != 1 {
			if l.n <= prev {
				t.Errorf("pod %s: seq %d printed after seq %d (a duplicated line)", l.pod, l.n, prev)
			} else {
				t.Errorf("pod %s: seq %d follows seq %d (%d lines lost)", l.pod, l.n, prev, l.n-prev-1)
			}
		}
		last[l.pod] = l.n
	}
}

// waitSeqAfter waits until devloop printed a seq line that arrived after t
// and returns when it arrived.
func waitSeqAfter(t *testing.T, up *proc, after time.Time, timeout time.Duration) time.Time {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if ls := seqLines(up, after); len(ls) > 0 {
			return ls[0].at
		}
		if time.Now().After(deadline) {
			t.Fatalf("no app log line printed within %s", timeout)
		}
		time.Sleep(20 * time.Millisecond) // polling a condition with a deadline
	}
}

// waitServe polls the forward until it answers want, for at most timeout,
// and returns when it did.
func waitServe(t *testing.T, want string, timeout time.Duration) time.Time {
	t.Helper()
	eventuallyEvery(t, faultURL, want, timeout, 20*time.Millisecond)
	return time.Now()
}

func eventuallyEvery(t *testing.T, url, want string, timeout, every time.Duration) {
	t.Helper()
	c := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	begin := time.Now()
	var last string
	for time.Since(begin) < timeout {
		resp, err := c.Get(url)
		if err == nil {
			var b [256]byte
			n, _ := resp.Body.Read(b[:])
			resp.Body.Close()
			if resp.StatusCode == 200 && strings.Contains(string(b[:n]), want) {
				return
			}
			last = fmt.Sprintf("%d %q", resp.StatusCode, b[:n])
		} else {
			last = err.Error()
		}
		time.Sleep(every) // polling a condition with a deadline
	}
	t.Fatalf("GET %s never answered %q within %s; last: %s", url, want, timeout, last)
}

// as makes p's waits fail t (a subtest) instead of the test that started
// p, until the returned func restores it.
func (p *proc) as(t testing.TB) func() {
	prev := p.t
	p.t = t
	return func() { p.t = prev }
}

// apiServerURL is the kind API server's address on this host.
func apiServerURL(t *testing.T) string {
	t.Helper()
	hp := docker(t, "port", clusterName+"-control-plane", "6443/tcp")
	hp, _, _ = strings.Cut(hp, "\n")
	return "https://" + strings.TrimSpace(hp)
}

// apiReady reports whether the API server answers /readyz with 200.
func apiReady(url string) bool {
	c := &http.Client{Timeout: time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, DisableKeepAlives: true}}
	resp, err := c.Get(url + "/readyz")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == 200
}

// builds counts the builds devloop started in out ("still building (5s so
// far)" is progress, not a build).
// lineAt returns when the first line containing substr arrived at or after since.
func lineAt(t *testing.T, up *proc, substr string, since time.Time) time.Time {
	t.Helper()
	for _, l := range up.out.linesSince(since) {
		if strings.Contains(l.text, substr) {
			return l.at
		}
	}
	t.Fatalf("no line %q since %s", substr, since.Format(time.TimeOnly))
	return time.Time{}
}

func builds(out string) int { return strings.Count(out, "│ building (") }

// TestFaults runs the fault scenarios that share one `devloop up` of the
// fault project, in order: suspended, API server down, disk full, dockerd
// restarted idle and during a build.
func TestFaults(t *testing.T) {
	if os.Getenv("DEVLOOP_E2E_ENGINE_LEG") == "classic" {
		// About 8 minutes of faults; none of them touches the image store
		// (the builds are FROM scratch plus a cached RUN), so one leg pays.
		t.Skip("the fault scenarios do not depend on the image store: they run on the containerd leg only")
	}
	dir := faultProject(t)
	up := start(t, dir, "up")
	defer func() {
		up.stop()
		if out, err := run(t, dir, 2*time.Minute, "down"); err != nil {
			t.Errorf("down: %v\n%s", err, out)
		}
	}()
	up.waitOutput("all services ready", 0, 8*time.Minute)
	waitServe(t, "faultapp v1", time.Minute)
	waitSeqAfter(t, up, time.Now(), 30*time.Second)

	// disk-full before api-down: after the API server's outage the
	// controller-manager comes back only after its own restart backoff, and
	// a rollout waits for it (not devloop's recovery, but it would be in the
	// figure).
	t.Run("suspended", func(t *testing.T) { defer up.as(t)(); testSuspended(t, up) })
	t.Run("disk-full", func(t *testing.T) { defer up.as(t)(); testDiskFull(t, up, dir) })
	t.Run("api-down", func(t *testing.T) { defer up.as(t)(); testAPIDown(t, up) })
	t.Run("dockerd-restart", func(t *testing.T) { defer up.as(t)(); testDockerdRestart(t, up, dir) })
	up.stop()
	t.Run("sigkill-mid-deploy", func(t *testing.T) { testKilledMidDeploy(t, dir) })
}

// testSuspended: devloop stopped with SIGSTOP for 60 s, then SIGCONT (a
// laptop lid): no rebuild storm, the forward serves within 2 s, the tail
// goes on without loss.
func testSuspended(t *testing.T, up *proc) {
	m := up.mark()
	before := time.Now()
	pid := up.cmd.Process.Pid
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	time.Sleep(60 * time.Second) // the scenario itself: devloop is frozen this long
	if err := syscall.Kill(pid, syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	resumed := time.Now()
	served := waitServe(t, "faultapp v1", 30*time.Second)
	logged := waitSeqAfter(t, up, resumed, 30*time.Second)
	// Let whatever the resume sets off happen, then count.
	time.Sleep(10 * time.Second) // the observation window for a rebuild storm
	out := up.out.String()[m:]
	checkSeq(t, seqLines(up, before))
	t.Logf("FIGURE fault=suspend-60s forward_back=%s tail_back=%s rebuilds=%d applies=%d",
		served.Sub(resumed).Round(10*time.Millisecond), logged.Sub(resumed).Round(10*time.Millisecond),
		builds(out), strings.Count(out, "applying manifests")+strings.Count(out, "rolling out"))
	if n := builds(out); n != 0 {
		t.Errorf("%d rebuilds after the resume, want none:\n%s", n, out)
	}
	if d := served.Sub(resumed); d > 2*time.Second {
		t.Errorf("the forward served %s after the resume, want within 2 s", d)
	}
}

// testAPIDown: the API server's container stopped through the node's crictl
// and kept down for 60 s (its static pod manifest moved away): the forward
// and the tail are back within 2 s of it answering, with no log line lost or
// printed twice.
func testAPIDown(t *testing.T, up *proc) {
	node := clusterName + "-control-plane"
	api := apiServerURL(t)
	before := time.Now()
	m := up.mark()
	docker(t, "exec", node, "mkdir", "-p", "/etc/kubernetes/parked")
	docker(t, "exec", node, "mv", "/etc/kubernetes/manifests/kube-apiserver.yaml", "/etc/kubernetes/parked/")
	restore := func() {
		_ = exec.Command("docker", "exec", node, "mv", "/etc/kubernetes/parked/kube-apiserver.yaml", "/etc/kubernetes/manifests/").Run()
	}
	defer restore()
	// The kubelet stops the static pod once its manifest is gone; make sure
	// the container is stopped now in any case.
	if ids := strings.Fields(docker(t, "exec", node, "crictl", "ps", "-q", "--name", "^kube-apiserver$")); len(ids) > 0 {
		docker(t, "exec", node, "crictl", "stop", "--timeout", "0", ids[0])
	}
	deadline := time.Now().Add(30 * time.Second)
	for apiReady(api) {
		if time.Now().After(deadline) {
			t.Fatal("the API server still answers 30 s after its container was stopped")
		}
		time.Sleep(100 * time.Millisecond) // polling a condition with a deadline
	}
	down := time.Now()
	// A user who keeps reloading the page meanwhile: the forward's dials
	// fail and back off all along.
	stopPoking := make(chan struct{})
	poked := make(chan int)
	go func() {
		n := 0
		c := &http.Client{Timeout: 6 * time.Second}
		for {
			select {
			case <-stopPoking:
				poked <- n
				return
			case <-time.After(2 * time.Second):
			}
			if resp, err := c.Get(faultURL); err == nil {
				resp.Body.Close()
			}
			n++
		}
	}()
	time.Sleep(60 * time.Second) // the scenario itself: the API server is unreachable this long
	close(stopPoking)
	t.Logf("%d requests through the forward while the API server was down", <-poked)
	restore()
	deadline = time.Now().Add(3 * time.Minute)
	for !apiReady(api) {
		if time.Now().After(deadline) {
			t.Fatal("the API server did not answer within 3 minutes of its manifest's return")
		}
		time.Sleep(20 * time.Millisecond) // polling a condition with a deadline
	}
	answering := time.Now()
	served := waitServe(t, "faultapp v2", time.Minute)
	logged := waitSeqAfter(t, up, answering, time.Minute)
	// Lines the app printed while the API server was down come after it answers;
	// wait for a few seconds of lines, then check the sequence.
	time.Sleep(5 * time.Second) // lets the catch-up and some live lines arrive
	lines := seqLines(up, before)
	checkSeq(t, lines)
	t.Logf("FIGURE fault=api-down-60s down_for=%s forward_back=%s tail_back=%s lines_checked=%d",
		answering.Sub(down).Round(100*time.Millisecond), served.Sub(answering).Round(10*time.Millisecond),
		logged.Sub(answering).Round(10*time.Millisecond), len(lines))
	// The user is told what happened, once each way.
	out := up.out.String()
	if n := strings.Count(out[m:], "its API server has not answered"); n != 1 {
		t.Errorf("devloop said %d times that the API server does not answer, want once:\n%s", n, out[m:])
	}
	up.waitOutput("answers again", m, 10*time.Second)
	if d := served.Sub(answering); d > 2*time.Second {
		t.Errorf("the forward served %s after the API server answered, want within 2 s", d)
	}
	if d := logged.Sub(answering); d > 2*time.Second {
		t.Errorf("the tail printed again %s after the API server answered, want within 2 s", d)
	}
}

// testDiskFull: the pre-build's output directory (bin/) on a full 1 MiB
// filesystem: one clear error naming the full disk, the last good version
// keeps serving, and a save once there is room serves the new code.
func testDiskFull(t *testing.T, up *proc, dir string) {
	bin := filepath.Join(dir, "bin")
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=1m", "devloop-e2e-full", bin).CombinedOutput(); err != nil {
		t.Fatalf("mounting a 1 MiB tmpfs on %s (the e2e suite runs as root): %v\n%s", bin, err, out)
	}
	mounted := true
	unmount := func() {
		if mounted {
			if out, err := exec.Command("umount", bin).CombinedOutput(); err != nil {
				t.Errorf("umount %s: %v\n%s", bin, err, out)
			}
			mounted = false
		}
	}
	defer unmount()
	m := up.mark()
	saved := time.Now()
	writeFile(t, filepath.Join(dir, "version.go"), faultVersion("v2"))
	up.waitOutput("build failed", m, 2*time.Minute)
	failed := time.Since(saved)
	up.waitOutput("services failed", m, time.Minute)
	// The last good version keeps serving.
	waitServe(t, "faultapp v1", 5*time.Second)
	out := up.out.String()[m:]
	if n := strings.Count(out, "│ build failed"); n != 1 {
		t.Errorf("%d build failures reported for one save, want one:\n%s", n, out)
	}
	if !strings.Contains(out, "build failed: a disk is full (no space left on device)") || strings.Contains(out, "Fix it") {
		t.Errorf("the error does not say the disk is full:\n%s", out)
	}
	unmount()
	m = up.mark()
	saved = time.Now()
	writeFile(t, filepath.Join(dir, "version.go"), faultVersion("v2")+"\n")
	waitServe(t, "faultapp v2", 2*time.Minute)
	recovered := time.Since(saved)
	t.Logf("FIGURE fault=disk-full error_after=%s errors=%d old_version_served=yes recovered_after_save=%s",
		failed.Round(10*time.Millisecond), strings.Count(out, "│ build failed"), recovered.Round(10*time.Millisecond))
}

// restartEngine restarts the harness's dockerd (stop, then start of the same
// leg) and returns how long it took.
func restartEngine(t *testing.T, leg string) time.Duration {
	t.Helper()
	begin := time.Now()
	cmd := exec.Command(filepath.Join(repoRoot, "e2e", "images", "engine.sh"), "start", leg)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("engine.sh start %s: %v\n%s", leg, err, out)
	}
	return time.Since(begin)
}

// nodeRunning waits until the kind node container runs again after an
// engine restart, and fails saying what Docker reports when it does not.
func nodeRunning(t *testing.T, timeout time.Duration) {
	t.Helper()
	node := clusterName + "-control-plane"
	deadline := time.Now().Add(timeout)
	for {
		st := docker(t, "inspect", "-f", "{{.State.Status}} restarts={{.RestartCount}} policy={{.HostConfig.RestartPolicy.Name}}:{{.HostConfig.RestartPolicy.MaximumRetryCount}}", node)
		if strings.HasPrefix(st, "running") {
			t.Logf("node after the engine restart: %s", st)
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the kind node did not run again within %s of the engine restart: %s", timeout, st)
		}
		time.Sleep(200 * time.Millisecond) // polling a condition with a deadline
	}
}

// testDockerdRestart: the Docker engine restarted while devloop up is idle,
// then while it builds. The kind node comes back with the engine (kind's
// restart policy); the forward and the tail recover; the interrupted build
// fails once, clearly, and is built again by itself once the engine answers.
func testDockerdRestart(t *testing.T, up *proc, dir string) {
	leg := os.Getenv("DEVLOOP_E2E_ENGINE_LEG")
	if leg != "containerd" {
		t.Skipf("the engine is not the harness's own (leg %q): the suite restarts only a dockerd it started", leg)
	}
	api := apiServerURL(t)
	t.Run("idle", func(t *testing.T) {
		defer up.as(t)()
		m := up.mark()
		took := restartEngine(t, leg)
		engineBack := time.Now()
		nodeRunning(t, 2*time.Minute)
		nodeBack := time.Now()
		deadline := time.Now().Add(3 * time.Minute)
		for !apiReady(api) {
			if time.Now().After(deadline) {
				t.Fatalf("the API server did not answer within 3 minutes of the engine restart")
			}
			time.Sleep(50 * time.Millisecond) // polling a condition with a deadline
		}
		answering := time.Now()
		served := waitServe(t, "faultapp v2", 3*time.Minute)
		logged := waitSeqAfter(t, up, answering, 3*time.Minute)
		out := up.out.String()[m:]
		t.Logf("FIGURE fault=dockerd-restart-idle engine_restart=%s node_back=%s api_back=%s forward_back=%s tail_back=%s rebuilds=%d",
			took.Round(100*time.Millisecond), nodeBack.Sub(engineBack).Round(100*time.Millisecond),
			answering.Sub(engineBack).Round(100*time.Millisecond), served.Sub(answering).Round(10*time.Millisecond),
			logged.Sub(answering).Round(10*time.Millisecond), builds(out))
		if n := builds(out); n != 0 {
			t.Errorf("an engine restart while idle caused %d builds:\n%s", n, out)
		}
	})
	t.Run("node-not-back", func(t *testing.T) {
		defer up.as(t)()
		// The state a node is in when it does not restart with the engine
		// (kind's on-failure:1 policy gave up, or it was stopped): devloop
		// says so and how to repair it, then recovers once it runs.
		node := clusterName + "-control-plane"
		m := up.mark()
		docker(t, "stop", node)
		stopped := time.Now()
		up.waitOutput("is stopped, and it did not come back by itself", m, time.Minute)
		said := lineAt(t, up, "is stopped, and it did not come back by itself", stopped).Sub(stopped)
		if !strings.Contains(up.out.String()[m:], "`docker start "+node+"`") {
			t.Errorf("the message does not say how to repair it:\n%s", up.out.String()[m:])
		}
		docker(t, "start", node)
		started := time.Now()
		up.waitOutput("answers again", m, 3*time.Minute)
		back := lineAt(t, up, "answers again", started).Sub(started)
		served := waitServe(t, "faultapp v2", 3*time.Minute)
		logged := waitSeqAfter(t, up, served, 2*time.Minute)
		t.Logf("FIGURE fault=node-not-back said_after=%s answers_after_start=%s forward_after_start=%s tail_after_start=%s",
			said.Round(100*time.Millisecond), back.Round(100*time.Millisecond), served.Sub(started).Round(100*time.Millisecond),
			logged.Sub(started).Round(100*time.Millisecond))
	})
	t.Run("during-a-build", func(t *testing.T) {
		defer up.as(t)()
		m := up.mark()
		binary := filepath.Join(dir, "bin", "faultapp")
		before, _ := os.Stat(binary)
		// The second line makes the step new to BuildKit's cache on every run.
		writeFile(t, filepath.Join(dir, "slow.txt"), fmt.Sprintf("20\n%d\n", time.Now().UnixNano()))
		writeFile(t, filepath.Join(dir, "version.go"), faultVersion("v3"))
		up.waitOutput("building (", m, time.Minute)
		// The pre-build (host) is done once bin/faultapp is rewritten; then
		// the engine runs the 20 s RUN step: restart the engine in it.
		deadline := time.Now().Add(time.Minute)
		for {
			if st, err := os.Stat(binary); err == nil && (before == nil || st.ModTime().After(before.ModTime())) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("the pre-build did not rewrite bin/faultapp within a minute")
			}
			time.Sleep(50 * time.Millisecond) // polling a condition with a deadline
		}
		time.Sleep(3 * time.Second) // the scenario: the engine is 3 s into the 20 s RUN step
		stopping := time.Now()
		took := restartEngine(t, leg)
		engineBack := time.Now()
		at := up.waitOutput("Not your code", m, 2*time.Minute)
		failedAfter := lineAt(t, up, "Not your code", stopping).Sub(stopping)
		retryAt := up.waitOutput("building (retry: the Docker engine answers again)", at, 5*time.Minute)
		retried := lineAt(t, up, "building (retry: the Docker engine answers again)", stopping).Sub(engineBack)
		served := waitServe(t, "faultapp v3", 5*time.Minute)
		out := up.out.String()[m:]
		if n := strings.Count(out, "│ build failed"); n != 1 {
			t.Errorf("%d build failures for one interrupted build, want one:\n%s", n, out)
		}
		if strings.Contains(out, "Fix it and save to retry") {
			t.Errorf("an engine restart was reported as the code's fault:\n%s", out)
		}
		if n := builds(up.out.String()[retryAt:]); n != 0 {
			t.Errorf("%d more builds after the retry:\n%s", n, out)
		}
		waitSeqAfter(t, up, served, time.Minute)
		t.Logf("FIGURE fault=dockerd-restart-build engine_restart=%s failed_after_stop=%s retry_after_engine=%s served_after_engine=%s builds=%d saves=1",
			took.Round(100*time.Millisecond), failedAfter.Round(100*time.Millisecond), retried.Round(100*time.Millisecond),
			served.Sub(engineBack).Round(100*time.Millisecond), builds(out))
	})
}

// testKilledMidDeploy: devloop SIGKILLed while it applies and rolls out (a
// new image and a ConfigMap replacing the last round's), four times at
// different points; then `up` again converges: the last version serves,
// every object exists once, and the inventory lists exactly what is there.
func testKilledMidDeploy(t *testing.T, dir string) {
	extra := func(n int) string { return filepath.Join(dir, "k8s", fmt.Sprintf("extra-%d.yaml", n)) }
	for round, delay := range []time.Duration{0, 100 * time.Millisecond, 300 * time.Millisecond, time.Second} {
		p := start(t, dir, "up")
		p.waitOutput("all services ready", 0, 3*time.Minute)
		m := p.mark()
		_ = os.Remove(extra(round - 1))
		writeFile(t, extra(round), fmt.Sprintf("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: faultapp-extra-%d}\ndata: {round: \"%d\"}\n", round, round))
		writeFile(t, filepath.Join(dir, "version.go"), faultVersion(fmt.Sprintf("k%d", round)))
		p.waitOutput("applying manifests", m, 2*time.Minute)
		time.Sleep(delay) // the scenario: where in the deploy the kill lands
		if err := p.cmd.Process.Kill(); err != nil {
			t.Fatal(err)
		}
		<-p.done
		t.Logf("round %d: killed %s after the deploy started", round, delay)
	}
	begin := time.Now()
	out, err := run(t, dir, 5*time.Minute, "up", "--once")
	converged := time.Since(begin)
	if err != nil || !strings.Contains(out, "all services ready") {
		t.Fatalf("up --once after the kills: %v\n%s", err, out)
	}
	sel := "-l=devloop.dev/project=faultapp"
	objs := strings.Fields(nodeKubectl(t, "get", "deployments,services,configmaps", sel, "-o", "name"))
	want := []string{"configmap/devloop-inventory-faultapp", "configmap/faultapp-extra-3", "deployment.apps/faultapp", "service/faultapp"}
	slices.Sort(objs)
	leaked := 0
	for _, o := range objs {
		if !slices.Contains(want, o) {
			leaked++
		}
	}
	if !slices.Equal(objs, want) {
		t.Errorf("objects after the kills and up: %v, want %v", objs, want)
	}
	inv := nodeKubectl(t, "get", "configmap", "devloop-inventory-faultapp", "-o", "jsonpath={.data.objects}")
	uids := map[string]string{}
	for _, o := range []string{"configmap/faultapp-extra-3", "deployment.apps/faultapp", "service/faultapp"} {
		uids[o] = nodeKubectl(t, "get", o, "-o", "jsonpath={.metadata.uid}")
	}
	wantInv := []string{
		"/v1/ConfigMap/default/faultapp-extra-3 " + uids["configmap/faultapp-extra-3"],
		"/v1/Service/default/faultapp " + uids["service/faultapp"],
		"apps/v1/Deployment/default/faultapp " + uids["deployment.apps/faultapp"],
	}
	gotInv := strings.Fields(strings.ReplaceAll(inv, " ", "|"))
	for i := range gotInv {
		gotInv[i] = strings.ReplaceAll(gotInv[i], "|", " ")
	}
	slices.Sort(gotInv)
	slices.Sort(wantInv)
	if !slices.Equal(gotInv, wantInv) {
		t.Errorf("inventory after the kills and up:\n%s\nwant (with the live UIDs):\n%s", strings.Join(gotInv, "\n"), strings.Join(wantInv, "\n"))
	}
	pods := nodeKubectl(t, "get", "deployment", "faultapp", "-o", "jsonpath={.status.replicas}/{.status.updatedReplicas}/{.status.readyReplicas}")
	if pods != "1/1/1" {
		t.Errorf("deployment replicas/updated/ready = %s, want 1/1/1", pods)
	}
	// The last version is what serves.
	p := start(t, dir, "up")
	p.waitOutput("all services ready", 0, 3*time.Minute)
	waitServe(t, "faultapp k3", time.Minute)
	p.stop()
	t.Logf("FIGURE fault=sigkill-mid-deploy rounds=4 converge_up_once=%s objects=%d leaked=%d inventory_consistent=%v",
		converged.Round(100*time.Millisecond), len(objs)-1, leaked, slices.Equal(gotInv, wantInv))
}
