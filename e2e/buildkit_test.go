//go:build e2e

package e2e

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// featuresPort is the local port of the BuildKit features project.
const featuresPort = 18482

// featuresDockerfile uses what users' Dockerfiles use: a toolchain stage with
// a cache mount, independent stages BuildKit runs in parallel, secret and
// bind mounts, a build arg, heredocs, COPY --link, and a last stage that
// fails, so only --target (build.target: app) builds.
const featuresDockerfile = `FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod main.go ./
RUN --mount=type=cache,target=/root/.cache/go-build CGO_ENABLED=0 go build -o /out/app .

FROM debian:bookworm-slim AS secret
# BuildKit leaves secrets out of the cache key: NONCE (a build arg) reruns this step.
ARG NONCE
RUN --mount=type=secret,id=token sh -c 'sha256sum /run/secrets/token | cut -c1-16 > /secret.txt'

FROM debian:bookworm-slim AS bind
RUN --mount=type=bind,source=bound.txt,target=/mnt/bound.txt cp /mnt/bound.txt /bind.txt

FROM debian:bookworm-slim AS ctxlist
COPY . /ctx
RUN cd /ctx && find . -type f | sort | tr '\n' ' ' > /ctx.txt

FROM debian:bookworm-slim AS app
ARG GREETING
RUN <<EOF
set -e
mkdir -p /features
echo "arg=$GREETING" > /features/1-arg.txt
EOF
COPY <<EOT /features/2-heredoc.txt
heredoc=ok
EOT
COPY --link --from=secret /secret.txt /features/3-secret.txt
COPY --link --from=bind /bind.txt /features/4-bind.txt
COPY --link --from=ctxlist /ctx.txt /features/5-ctx.txt
COPY --link --from=build /out/app /app
ENTRYPOINT ["/app"]

FROM app AS broken
RUN exit 1
`

// featuresMain serves the files the build left in /features.
const featuresMain = `package main

import (
	"net/http"
	"os"
	"path/filepath"
)

func main() {
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		files, _ := filepath.Glob("/features/*.txt")
		for _, f := range files {
			b, _ := os.ReadFile(f)
			w.Write(b)
		}
	})
	http.ListenAndServe(":8080", nil)
}
`

const featuresManifest = `apiVersion: apps/v1
kind: Deployment
metadata: {name: features}
spec:
  selector: {matchLabels: {app: features}}
  template:
    metadata: {labels: {app: features}}
    spec:
      containers:
        - name: features
          image: features
          ports: [{name: http, containerPort: 8080}]
          readinessProbe: {httpGet: {path: /, port: http}, periodSeconds: 1}
---
apiVersion: v1
kind: Service
metadata: {name: features}
spec:
  selector: {app: features}
  ports: [{name: http, port: 80, targetPort: http}]
`

var imageRefRE = regexp.MustCompile(`features:devloop-[0-9a-f]{16}`)

// TestBuildKitFeaturesUp builds a Dockerfile using every BuildKit feature
// users rely on through `devloop up --once -v`, checks what the build made
// (served by the running pod), and that the secret's value is nowhere: not
// devloop's output (with the build steps shown), not `docker history
// --no-trunc`, not `docker save`.
func TestBuildKitFeaturesUp(t *testing.T) {
	secret := fmt.Sprintf("e2e-secret-%d", time.Now().UnixNano())
	t.Setenv("DEVLOOP_E2E_TOKEN", secret)
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "go.mod"), "module example.com/features\n\ngo 1.26\n")
	writeFile(t, filepath.Join(dir, "main.go"), featuresMain)
	writeFile(t, filepath.Join(dir, "Dockerfile"), featuresDockerfile)
	writeFile(t, filepath.Join(dir, "bound.txt"), "bind=ok\n")
	writeFile(t, filepath.Join(dir, "ignored-by-dockerfile.txt"), "x\n")
	writeFile(t, filepath.Join(dir, "ignored-by-context.txt"), "x\n")
	// Dockerfile.dockerignore replaces .dockerignore for this Dockerfile.
	writeFile(t, filepath.Join(dir, ".dockerignore"), "ignored-by-context.txt\n")
	writeFile(t, filepath.Join(dir, "Dockerfile.dockerignore"), "ignored-by-dockerfile.txt\nk8s\ndevloop.yaml\n")
	writeFile(t, filepath.Join(dir, "k8s", "app.yaml"), featuresManifest)
	writeFile(t, filepath.Join(dir, "devloop.yaml"), fmt.Sprintf(`name: features
cluster:
  name: %s
  ingress:
    httpPort: %d
    httpsPort: 18443
services:
  - name: features
    build:
      target: app
      args: {GREETING: hi-args, NONCE: "%d"}
      secrets:
        - {id: token, env: DEVLOOP_E2E_TOKEN}
    portForwards:
      - local: %d
        port: 80
manifests:
  - k8s/app.yaml
`, clusterName, ingressPort, time.Now().UnixNano(), featuresPort))

	up := start(t, dir, "up", "-v")
	up.waitOutput("all services ready", 0, 10*time.Minute)
	sum := sha256.Sum256([]byte(secret))
	want := "arg=hi-args\nheredoc=ok\n" + hex.EncodeToString(sum[:])[:16] + "\nbind=ok\n" +
		"./.dockerignore ./Dockerfile ./Dockerfile.dockerignore ./bound.txt ./go.mod ./ignored-by-context.txt ./main.go "
	eventually(t, fmt.Sprintf("http://127.0.0.1:%d/", featuresPort), "", want, time.Minute)
	up.stop()
	t.Cleanup(func() { run(t, dir, 2*time.Minute, "down") })

	out := up.out.String()
	if strings.Contains(out, secret) {
		t.Errorf("devloop's output holds the secret:\n%s", out)
	}
	// -v shows the steps: the independent stages and the cache mount ran.
	for _, step := range []string{"[secret 2/2] RUN --mount=type=secret,id=token", "[bind 2/2] RUN --mount=type=bind", "RUN --mount=type=cache,target=/root/.cache/go-build"} {
		if !strings.Contains(out, step) {
			t.Errorf("output lacks the step %q:\n%s", step, out)
		}
	}
	ref := imageRefRE.FindString(out)
	if ref == "" {
		t.Fatalf("no features:devloop-<hash> image in the output:\n%s", out)
	}
	if history := docker(t, "history", "--no-trunc", ref); strings.Contains(history, secret) {
		t.Errorf("docker history holds the secret:\n%s", history)
	}
	if savedContains(t, ref, secret) {
		t.Errorf("docker save of %s holds the secret", ref)
	}
	if !savedContains(t, ref, "arg=hi-args") {
		t.Errorf("docker save of %s lacks a file the build wrote: the search is broken", ref)
	}
}

// savedContains reports whether `docker save ref`, with every gzip blob
// decompressed, contains s.
func savedContains(t *testing.T, ref, s string) bool {
	t.Helper()
	cmd := exec.Command("docker", "save", ref)
	var buf bytes.Buffer
	cmd.Stdout = &buf
	if err := cmd.Run(); err != nil {
		t.Fatalf("docker save %s: %v", ref, err)
	}
	tr := tar.NewReader(&buf)
	for {
		_, err := tr.Next()
		if err == io.EOF {
			return false
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(tr)
		if bytes.Contains(b, []byte(s)) {
			return true
		}
		if zr, err := gzip.NewReader(bytes.NewReader(b)); err == nil {
			if d, _ := io.ReadAll(zr); bytes.Contains(d, []byte(s)) {
				return true
			}
		}
	}
}

// TestSyntaxLineOffline: a `# syntax=` line naming a frontend image cannot be
// pulled here; devloop says which line, why, and the fix.
func TestSyntaxLineOffline(t *testing.T) {
	dir := goProject(t, "syntax", "package main\n\nfunc main() {}\n", map[string]string{"cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: syntax}\n"})
	writeFile(t, filepath.Join(dir, "Dockerfile"), "# syntax=docker/dockerfile:1.7\nFROM scratch\n")
	out, err := run(t, dir, 3*time.Minute, "build")
	if err == nil {
		t.Fatalf("devloop build succeeded:\n%s", out)
	}
	for _, want := range []string{"Dockerfile:1: `# syntax=docker/dockerfile:1.7`", "delete that line"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

// multistageProject copies examples/multistage into a temp dir with a
// devloop.yaml for the e2e cluster, forwarding 127.0.0.1:port.
func multistageProject(t testing.TB, port int) string {
	dir := t.TempDir()
	copyDir(t, filepath.Join(repoRoot, "examples", "multistage"), dir)
	writeFile(t, filepath.Join(dir, "devloop.yaml"), fmt.Sprintf(`name: multistage
cluster:
  name: %s
  ingress:
    httpPort: %d
    httpsPort: 18443
services:
  - name: multistage
    portForwards:
      - local: %d
        port: 80
manifests:
  - k8s
`, clusterName, ingressPort, port))
	return dir
}

// TestMultistageExampleServesAnEdit runs examples/multistage (compiled in
// Docker with cache mounts) and edits its message.
func TestMultistageExampleServesAnEdit(t *testing.T) {
	port := featuresPort + 1
	dir := multistageProject(t, port)
	up := start(t, dir, "up")
	up.waitOutput("all services ready", 0, 10*time.Minute)
	url := fmt.Sprintf("http://127.0.0.1:%d/", port)
	eventually(t, url, "", "hello from a multi-stage build", time.Minute)
	main := filepath.Join(dir, "main.go")
	src, err := os.ReadFile(main)
	if err != nil {
		t.Fatal(err)
	}
	atomicWrite(t, main, strings.Replace(string(src), "hello from a multi-stage build", "edited in Docker", 1))
	took := eventually(t, url, "", "edited in Docker", 3*time.Minute)
	t.Logf("save-to-serving, in-Docker build with warm cache mounts: %s", took.Round(10*time.Millisecond))
	up.stop()
	run(t, dir, 2*time.Minute, "down")
}
