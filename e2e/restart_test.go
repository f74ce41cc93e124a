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

// restartRule is the sync rule of the example's restart mode: the binary
// the preBuild writes is copied over the image's and the process restarted.
const restartRule = `      - src: bin/hello
        dest: /hello
        restart: true
`

// helloRestartProject is the example with the restart rule (issue 15).
func helloRestartProject(t testing.TB) string {
	t.Helper()
	dir := helloProject(t)
	cfg := strings.Replace(helloConfig, "        dest: /app/static\n", "        dest: /app/static\n"+restartRule, 1)
	if cfg == helloConfig {
		t.Fatal("the e2e config changed shape: no sync rule to add the restart rule after")
	}
	writeFile(t, filepath.Join(dir, "devloop.yaml"), cfg)
	return dir
}

var podInAnswer = regexp.MustCompile(`\(pod (\S+)\)`)

// answer returns the forward's answer and the pod that gave it.
func answer(t *testing.T) (body, pod string) {
	t.Helper()
	code, body, err := httpGet(forwardURL, "")
	if err != nil || code != 200 {
		return "", ""
	}
	if m := podInAnswer.FindStringSubmatch(body); m != nil {
		pod = m[1]
	}
	return body, pod
}

// TestRestart is issue 15 on the example: an edit of the Go code is
// compiled on the host, copied into the running container and served by
// the restarted process, with no image build and no new pod; a pod deleted
// after that comes back serving the latest code, never the image's; an
// edit that crashes on start is explained like a crash loop with its last
// lines, and the next good edit recovers.
func TestRestart(t *testing.T) {
	dir := helloRestartProject(t)
	up := start(t, dir, "up")
	up.waitOutput("all services ready", 0, 8*time.Minute)
	eventually(t, forwardURL, "", "hello from devloop", time.Minute)
	_, pod0 := answer(t)
	if pod0 == "" {
		t.Fatal("the app does not say its pod")
	}

	edit := func(v string) { atomicWrite(t, filepath.Join(dir, "message.go"), message(v)) }

	t.Run("an edit is served by the restarted process: no image build, no new pod", func(t *testing.T) {
		for i := 1; i <= 3; i++ {
			m := up.mark()
			v := fmt.Sprintf("r%d", i)
			edit(v)
			took := eventually(t, forwardURL, "", "hello from devloop "+v, time.Minute)
			up.waitOutput("all services ready", m, time.Minute)
			out := up.out.String()[m:]
			t.Logf("save-to-serving with a restart: %s", took.Round(10*time.Millisecond))
			if !strings.Contains(out, "restarted 1 container(s) with the new build") {
				t.Fatalf("no restart line:\n%s", out)
			}
			for _, bad := range []string{"building (", "rolling out", "image hello:", "after its rollout"} {
				if strings.Contains(out, bad) {
					t.Fatalf("a restart-mode edit did %q:\n%s", bad, out)
				}
			}
			if _, pod := answer(t); pod != pod0 {
				t.Fatalf("served by pod %q, want the same pod %q", pod, pod0)
			}
		}
		st, err := run(t, dir, time.Minute, "status")
		if err != nil || !strings.Contains(st, "live-updated") {
			t.Fatalf("status does not say the pod runs live-updated code (%v):\n%s", err, st)
		}
	})

	t.Run("a pod deleted after a live update comes back serving the latest code", func(t *testing.T) {
		m := up.mark()
		nodeKubectl(t, "delete", "pod", pod0, "--wait=false")
		deadline := time.Now().Add(2 * time.Minute)
		var pod string
		for time.Now().Before(deadline) {
			body, p := answer(t)
			if p != "" && p != pod0 {
				if !strings.Contains(body, "hello from devloop r3") {
					t.Fatalf("the new pod %s served %q: the image's code, not the latest edit", p, body)
				}
				pod = p
				break
			}
			time.Sleep(50 * time.Millisecond) // the request rate, not synchronisation
		}
		if pod == "" {
			t.Fatalf("no new pod served within 2 minutes:\n%s", up.out.String()[m:])
		}
		// Every answer of the new pod is the latest code.
		for i := 0; i < 20; i++ {
			if body, p := answer(t); p == pod && !strings.Contains(body, "hello from devloop r3") {
				t.Fatalf("the new pod served %q", body)
			}
		}
		if out := up.out.String()[m:]; !strings.Contains(out, "brought "+pod+" up to date") || strings.Contains(out, "building (") {
			t.Fatalf("the new pod was not brought up to date by a restart:\n%s", out)
		}
		pod0 = pod
	})

	t.Run("a crash on start after an edit is explained, the next good edit recovers", func(t *testing.T) {
		m := up.mark()
		atomicWrite(t, filepath.Join(dir, "message.go"), `package main

import (
	"fmt"
	"os"
)

const message = "never served"

func init() {
	fmt.Println("hello: fatal: the edit broke the config")
	os.Exit(3)
}
`)
		deadline := time.Now().Add(3 * time.Minute)
		for time.Now().Before(deadline) {
			out := up.out.String()[m:]
			if i := strings.Index(out, "after its rollout, pod hello-"); i >= 0 && strings.Contains(out[i:], "hello: fatal: the edit broke the config") {
				break
			}
			time.Sleep(200 * time.Millisecond) // polling a condition with a deadline
		}
		out := up.out.String()[m:]
		i := strings.Index(out, "after its rollout, pod hello-")
		if i < 0 || !strings.Contains(out[i:], "hello: fatal: the edit broke the config") || !strings.Contains(out[i:], "exit code 3") {
			t.Fatalf("the crash was not explained with its exit code and last line:\n%s", out)
		}
		t.Logf("explained:\n%s", out[i:min(len(out), i+600)])
		m = up.mark()
		edit("r4")
		took := eventually(t, forwardURL, "", "hello from devloop r4", 3*time.Minute)
		t.Logf("recovered in %s:\n%s", took.Round(10*time.Millisecond), up.out.String()[m:])
	})

	up.stop()
	if out, err := run(t, dir, 2*time.Minute, "down"); err != nil {
		t.Fatalf("down: %v\n%s", err, out)
	}
}
