//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// devloopBin is the devloop binary built once for the whole suite.
var devloopBin string

// repoRoot is the checkout the tests run from.
var repoRoot string

func TestMain(m *testing.M) {
	os.Exit(func() int {
		wd, err := os.Getwd()
		if err != nil {
			panic(err)
		}
		repoRoot = filepath.Dir(wd)
		if os.Getenv("DEVLOOP_E2E_NODE_IMAGE") == "" {
			fmt.Fprintln(os.Stderr, "e2e: DEVLOOP_E2E_NODE_IMAGE is not set: run the suite through `make e2e` (it runs e2e/setup.sh first)")
			return 1
		}
		if leg := os.Getenv("DEVLOOP_E2E_ENGINE_LEG"); leg != "" {
			fmt.Fprintf(os.Stderr, "e2e: engine leg %s\n", leg)
		}
		dir, err := os.MkdirTemp("", "devloop-e2e-bin")
		if err != nil {
			panic(err)
		}
		defer os.RemoveAll(dir)
		devloopBin = filepath.Join(dir, "devloop")
		// The process supervisor devloop embeds for restart rules, as make build does.
		gen := exec.Command("go", "generate", "./internal/supervisor/embedded")
		gen.Dir = repoRoot
		gen.Stdout, gen.Stderr = os.Stderr, os.Stderr
		if err := gen.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "e2e: building the supervisor:", err)
			return 1
		}
		build := exec.Command("go", "build", "-o", devloopBin, "./cmd/devloop")
		build.Dir = repoRoot
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "e2e: building devloop:", err)
			return 1
		}
		return m.Run()
	}())
}

// syncBuffer is a bytes.Buffer safe for one writer and many readers. It
// also records when each complete line arrived (for the benchmarks).
type syncBuffer struct {
	mu      sync.Mutex
	b       bytes.Buffer
	partial []byte
	lines   []timedLine
}

type timedLine struct {
	at   time.Time
	text string
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	s.partial = append(s.partial, p...)
	for {
		i := bytes.IndexByte(s.partial, '\n')
		if i < 0 {
			break
		}
		s.lines = append(s.lines, timedLine{at: now, text: string(s.partial[:i])})
		s.partial = s.partial[i+1:]
	}
	return s.b.Write(p)
}

// linesSince returns the lines that arrived at or after t.
func (s *syncBuffer) linesSince(t time.Time) []timedLine {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []timedLine
	for _, l := range s.lines {
		if !l.at.Before(t) {
			out = append(out, l)
		}
	}
	return out
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// proc is a running devloop command.
type proc struct {
	t    testing.TB
	cmd  *exec.Cmd
	out  *syncBuffer
	done chan struct{}
	err  error
}

// devloopEnv is the environment devloop runs with in the suite.
func devloopEnv() []string {
	return append(os.Environ(),
		"DEVLOOP_NODE_IMAGE="+os.Getenv("DEVLOOP_E2E_NODE_IMAGE"),
		"DEVLOOP_REGISTRY_IMAGE="+os.Getenv("DEVLOOP_E2E_REGISTRY_IMAGE"),
		"NO_COLOR=1",
		"DEVLOOP_PPROF_ADDR="+pprofAddr,
	)
}

// start runs devloop in dir with args, capturing its output (also echoed to the test log on failure).
func start(t testing.TB, dir string, args ...string) *proc {
	t.Helper()
	p := &proc{t: t, out: &syncBuffer{}, done: make(chan struct{})}
	p.cmd = exec.Command(devloopBin, args...)
	p.cmd.Dir = dir
	p.cmd.Env = devloopEnv()
	p.cmd.Stdout = p.out
	p.cmd.Stderr = p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("starting devloop %v: %v", args, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.stop()
		if t.Failed() {
			t.Logf("devloop %s output:\n%s", strings.Join(args, " "), p.out.String())
		}
	})
	return p
}

// run runs devloop to completion and returns its output and error.
func run(t testing.TB, dir string, timeout time.Duration, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, devloopBin, args...)
	cmd.Dir = dir
	cmd.Env = devloopEnv()
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// stop interrupts devloop like Ctrl-C and waits for it to exit.
func (p *proc) stop() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// waitOutput waits until devloop's output contains substr after offset `from`,
// and returns the offset just past it.
func (p *proc) waitOutput(substr string, from int, timeout time.Duration) int {
	p.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		s := p.out.String()
		if from > len(s) {
			from = len(s)
		}
		if i := strings.Index(s[from:], substr); i >= 0 {
			return from + i + len(substr)
		}
		select {
		case <-p.done:
			p.t.Fatalf("devloop exited (%v) before printing %q; output:\n%s", p.err, substr, s)
		default:
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("devloop did not print %q within %s; output since offset %d:\n%s", substr, timeout, from, s[from:])
		}
		time.Sleep(100 * time.Millisecond) // polling a condition with a deadline
	}
}

func (p *proc) mark() int { return len(p.out.String()) }

// httpGet does one GET with an optional Host header.
func httpGet(url, host string) (int, string, error) {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return 0, "", err
	}
	if host != "" {
		req.Host = host
	}
	// A new connection per request, like curl: a kept-alive connection
	// stays with the pod it was opened to until that pod closes it, which
	// would measure the old pod's shutdown rather than the forward.
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// eventually polls GET url until the body contains want, or fails after timeout.
func eventually(t testing.TB, url, host, want string, timeout time.Duration) time.Duration {
	t.Helper()
	begin := time.Now()
	var last string
	for time.Since(begin) < timeout {
		code, body, err := httpGet(url, host)
		if err == nil && code == 200 && strings.Contains(body, want) {
			return time.Since(begin)
		}
		last = fmt.Sprintf("code=%d body=%q err=%v", code, body, err)
		time.Sleep(100 * time.Millisecond) // polling a condition with a deadline
	}
	t.Fatalf("GET %s (Host %q) never returned %q within %s; last: %s", url, host, want, timeout, last)
	return 0
}

// copyDir copies the tree at src into dst (skipping build output).
func copyDir(t testing.TB, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if rel == "bin" {
			return filepath.SkipDir
		}
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(target, b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}

func writeFile(t testing.TB, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// atomicWrite saves like vim with backupcopy=no: write a temp file, rename over.
func atomicWrite(t testing.TB, path, content string) {
	t.Helper()
	tmp := path + ".tmp~"
	writeFile(t, tmp, content)
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func docker(t testing.TB, args ...string) string {
	t.Helper()
	out, err := exec.Command("docker", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("docker %v: %v\n%s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}

// pauseNode runs `docker pause` on a node container. On cgroup v1 (this
// VM) runc's freezer gives up with "unable to freeze" when the node's many
// processes keep forking while it tries (a kind node right after a
// rollout); runc thaws the container again, so trying a few more times is
// what a user would do, and is what this does. Any other error fails.
func pauseNode(t testing.TB, node string) {
	t.Helper()
	var out []byte
	var err error
	for attempt := 1; attempt <= 6; attempt++ {
		out, err = exec.Command("docker", "pause", node).CombinedOutput()
		if err == nil {
			if attempt > 1 {
				t.Logf("docker pause %s: frozen at attempt %d", node, attempt)
			}
			return
		}
		if !strings.Contains(string(out), "unable to freeze") {
			break
		}
		time.Sleep(2 * time.Second) // let the node's start-up churn settle before the next try
	}
	t.Fatalf("docker pause %s: %v\n%s", node, err, out)
}

// goProject writes a one-service project: a Go main package built on the
// host, a FROM scratch image, the given manifests under k8s/, and a
// devloop.yaml on the suite's cluster.
func goProject(t testing.TB, name, mainGo string, manifests map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "go.mod"), "module example.com/"+name+"\n\ngo 1.26\n")
	writeFile(t, filepath.Join(dir, "main.go"), mainGo)
	writeFile(t, filepath.Join(dir, "Dockerfile"), fmt.Sprintf("FROM scratch\nCOPY bin/%[1]s /%[1]s\nENTRYPOINT [\"/%[1]s\"]\n", name))
	writeFile(t, filepath.Join(dir, "devloop.yaml"), fmt.Sprintf(`name: %[1]s
cluster:
  name: %[2]s
  ingress:
    httpPort: %[3]d
    httpsPort: 18443
services:
  - name: %[1]s
    build:
      preBuild:
        run: CGO_ENABLED=0 go build -o bin/%[1]s .
    ignore: [bin]
manifests:
  - k8s/*.yaml
`, name, clusterName, ingressPort))
	for file, body := range manifests {
		writeFile(t, filepath.Join(dir, "k8s", file), body)
	}
	return dir
}
