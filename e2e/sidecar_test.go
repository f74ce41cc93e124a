//go:build e2e

package e2e

import (
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// sidecarPort is the local port of the sidecar project's forward.
const sidecarPort = 18485

// TestSidecarCrashAfterRollout (issue 16 item 10): a sidecar that starts
// crash-looping after the rollout makes its pod NotReady; the forward to
// the main container keeps serving, and devloop explains the sidecar once.
func TestSidecarCrashAfterRollout(t *testing.T) {
	const main = `package main

import (
	"fmt"
	"net/http"
	"os"
	"time"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "sidecar" {
		fmt.Println("sidecar: started")
		time.Sleep(6 * time.Second)
		fmt.Println("sidecar: lost its upstream, exiting")
		os.Exit(1)
	}
	http.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "app container serving") })
	fmt.Println("app: listening on :8080")
	_ = http.ListenAndServe(":8080", nil)
}
`
	const deploy = `apiVersion: apps/v1
kind: Deployment
metadata: {name: sidecarapp}
spec:
  replicas: 1
  selector: {matchLabels: {app: sidecarapp}}
  template:
    metadata: {labels: {app: sidecarapp}}
    spec:
      automountServiceAccountToken: false
      containers:
        - name: app
          image: sidecarapp
          ports: [{containerPort: 8080}]
          readinessProbe: {httpGet: {path: /, port: 8080}, periodSeconds: 1}
        - name: sidecar
          image: sidecarapp
          args: [sidecar]
---
apiVersion: v1
kind: Service
metadata: {name: sidecarapp}
spec:
  selector: {app: sidecarapp}
  ports: [{port: 80, targetPort: 8080}]
`
	dir := goProject(t, "sidecarapp", main, map[string]string{"app.yaml": deploy})
	writeFile(t, filepath.Join(dir, "devloop.yaml"), fmt.Sprintf(`name: sidecarapp
cluster:
  name: %s
  ingress:
    httpPort: %d
    httpsPort: 18443
services:
  - name: sidecarapp
    build:
      preBuild:
        run: CGO_ENABLED=0 go build -o bin/sidecarapp .
    ignore: [bin]
    portForwards:
      - local: %d
        port: 80
manifests:
  - k8s/*.yaml
`, clusterName, ingressPort, sidecarPort))

	up := start(t, dir, "up")
	defer func() {
		up.stop()
		if out, err := run(t, dir, 2*time.Minute, "down"); err != nil {
			t.Errorf("down: %v\n%s", err, out)
		}
	}()
	from := up.waitOutput("all services ready", 0, 5*time.Minute)
	url := fmt.Sprintf("http://127.0.0.1:%d/", sidecarPort)
	eventually(t, url, "", "app container serving", time.Minute)

	// Keep asking through the forward while the sidecar crashes, until
	// devloop has explained it and 10 s more have passed.
	client := &http.Client{Timeout: 2 * time.Second}
	var ok, failed int
	explained := time.Time{}
	deadline := time.Now().Add(90 * time.Second)
	for time.Now().Before(deadline) && (explained.IsZero() || time.Since(explained) < 10*time.Second) {
		if resp, err := client.Get(url); err == nil && resp.StatusCode == http.StatusOK {
			ok++
			resp.Body.Close()
		} else {
			failed++
			if err == nil {
				resp.Body.Close()
			}
		}
		if explained.IsZero() {
			out := up.out.String()[from:]
			if i := strings.Index(out, "after its rollout, pod sidecarapp-"); i >= 0 && strings.Contains(out[i:], `container "sidecar"`) {
				explained = time.Now()
			}
		}
		time.Sleep(250 * time.Millisecond) // the request rate, not synchronisation
	}
	out := up.out.String()[from:]
	if explained.IsZero() {
		t.Fatalf("the sidecar's crash loop after the rollout was not explained within 90 s:\n%s", out)
	}
	t.Logf("requests through the forward while the sidecar crash-looped: %d ok, %d failed", ok, failed)
	if failed*10 > ok+failed {
		t.Errorf("more than 10%% of the requests failed (%d of %d): the forward gave up on a pod whose app container serves", failed, ok+failed)
	}
	if n := strings.Count(out, `after its rollout, pod sidecarapp-`); n != 1 {
		t.Errorf("the crash loop was explained %d times, want once:\n%s", n, out)
	}
	if !strings.Contains(out, "container sidecar is not); container app, which serves port 8080, is") {
		t.Errorf("the forward's status does not say it uses a NotReady pod whose app container is ready:\n%s", out)
	}
}
