package initcfg

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/devloop-dev/devloop/internal/config"
	goldenfile "github.com/devloop-dev/devloop/internal/testutil/golden"
)

// fakeImages is an ImageChecker over a set; err, when set, is what every
// call returns (an unreachable engine).
type fakeImages struct {
	have  map[string]bool
	err   error
	calls []string
}

func (f *fakeImages) HasImage(_ context.Context, ref string) (bool, error) {
	f.calls = append(f.calls, ref)
	if f.err != nil {
		return false, f.err
	}
	return f.have[ref], nil
}

// k8sDeploy is a Deployment named name running image on port, with labels
// app: name (and a Service of the same name on svcPort when svcPort != "").
func k8sDeploy(name, image, port, svcPort string) string {
	out := deploy(name, image, port)
	if svcPort != "" {
		out += fmt.Sprintf("---\napiVersion: v1\nkind: Service\nmetadata:\n  name: %[1]s\nspec:\n  selector: {app: %[1]s}\n  ports:\n    - port: %[2]s\n      targetPort: %[3]s\n", name, svcPort, port)
	}
	return out
}

const statefulSet = `apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: %[1]s
spec:
  serviceName: %[1]s
  selector:
    matchLabels: {app: %[1]s}
  template:
    metadata:
      labels: {app: %[1]s}
    spec:
      containers:
        - name: main
          image: %[2]s
          ports:
            - containerPort: %[3]s
---
apiVersion: v1
kind: Service
metadata:
  name: %[1]s
spec:
  selector: {app: %[1]s}
  ports:
    - port: %[3]s
`

// shopLayout is a repository shaped like the one in issue 18: a Go backend
// built inside Docker from public base images at the root, a frontend and a
// mailer in subdirectories; kustomize bases for frontend, backend, cache and
// database with overlays dev, staging and production; two plain-manifest
// variants of the same objects; a Helm chart. The manifests name the images
// by registry path; the cache and the database are third-party images.
func shopLayout() map[string]string {
	base := "deploy/kustomize/base/"
	overlay := func(env, ns, replicas string) string {
		return fmt.Sprintf(`apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
namespace: %s
resources:
  - ../../base/frontend
  - ../../base/backend
  - ../../base/cache
  - ../../base/database
  - ../../base/mailer
patches:
  - target: {kind: Deployment, name: backend}
    patch: |-
      - op: replace
        path: /spec/replicas
        value: %s
labels:
  - pairs: {env: %s}
`, ns, replicas, env)
	}
	kust := "resources: [all.yaml]\n"
	return map[string]string{
		"go.mod":              "module github.com/acme/shop\n\ngo 1.26\n",
		"cmd/backend/main.go": mainGo,
		"Dockerfile": `# syntax=docker/dockerfile:1
ARG GO_VERSION=1.26
FROM golang:${GO_VERSION}-alpine AS build
WORKDIR /src
COPY go.mod ./
COPY . .
RUN --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 go build -o /out/backend ./cmd/backend

FROM alpine:3.22
COPY --from=build /out/backend /usr/local/bin/backend
ENTRYPOINT ["/usr/local/bin/backend"]
`,
		"frontend/Dockerfile":   "FROM node:22-alpine AS build\nWORKDIR /app\nCOPY package.json ./\nRUN npm install\nCOPY . .\nRUN npm run build\n\nFROM nginx:1.27-alpine\nCOPY --from=build /app/dist /usr/share/nginx/html\n",
		"frontend/package.json": `{"scripts": {"build": "vite build"}}`,
		"jobs/go.mod":           "module github.com/acme/mailer\n\ngo 1.26\n",
		"jobs/main.go":          mainGo,
		"jobs/Dockerfile":       "FROM golang:1.26-alpine AS build\nWORKDIR /src\nCOPY . .\nRUN go build -o /w .\nFROM scratch\nCOPY --from=build /w /w\nENTRYPOINT [\"/w\"]\n",

		base + "frontend/kustomization.yaml": kust,
		base + "frontend/all.yaml":           k8sDeploy("frontend", "ghcr.io/acme/frontend:1.4.0", "80", "80"),
		base + "backend/kustomization.yaml":  kust,
		base + "backend/all.yaml":            k8sDeploy("backend", "ghcr.io/acme/backend:1.4.0", "8080", "8080"),
		base + "mailer/kustomization.yaml":   kust,
		base + "mailer/all.yaml":             deploy("mailer", "ghcr.io/acme/mailer:1.4.0", "9000"),
		base + "cache/kustomization.yaml":    kust,
		base + "cache/all.yaml":              k8sDeploy("cache", "redis:7-alpine", "6379", "6379"),
		base + "database/kustomization.yaml": kust,
		base + "database/all.yaml":           fmt.Sprintf(statefulSet, "database", "postgres:16-alpine", "5432"),

		"deploy/kustomize/overlays/dev/kustomization.yaml":        overlay("dev", "shop-dev", "1"),
		"deploy/kustomize/overlays/staging/kustomization.yaml":    overlay("staging", "shop-staging", "2"),
		"deploy/kustomize/overlays/production/kustomization.yaml": overlay("production", "shop", "3"),

		"deploy/plain/frontend.yaml": k8sDeploy("frontend", "ghcr.io/acme/frontend:1.4.0", "80", "80"),
		"deploy/plain/backend.yaml":  k8sDeploy("backend", "ghcr.io/acme/backend:1.4.0", "8080", "8080"),
		"deploy/all-in-one.yaml": k8sDeploy("frontend", "ghcr.io/acme/frontend:1.4.0", "80", "80") + "---\n" +
			k8sDeploy("backend", "ghcr.io/acme/backend:1.4.0", "8080", "8080"),

		"deploy/helm/shop/Chart.yaml":                "apiVersion: v2\nname: shop\nversion: 0.1.0\n",
		"deploy/helm/shop/values.yaml":               "image: ghcr.io/acme/backend\n",
		"deploy/helm/shop/templates/deployment.yaml": "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {{ .Release.Name }}\n{{- if .Values.x }}\n",
	}
}

// shopImages: the local engine has the Go toolchain image only.
func shopImages() *fakeImages {
	return &fakeImages{have: map[string]bool{"golang:1.26-alpine": true}}
}

func TestLayoutShop(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "shop")
	writeFiles(t, dir, shopLayout())
	images := shopImages()
	cfg, data, sum := writeAndLoad(t, dir, Options{PortFree: allFree, Images: images})
	goldenfile.Assert(t, "shop.golden", data)

	// One overlay, for local work; no base it builds, no variant, no chart.
	if want := []string{filepath.Join(dir, "deploy/kustomize/overlays/dev")}; strings.Join(cfg.Manifests, ",") != strings.Join(want, ",") {
		t.Errorf("manifests = %v, want %v", cfg.Manifests, want)
	}
	if cfg.Namespace != "shop-dev" {
		t.Errorf("namespace = %q, want the dev overlay's", cfg.Namespace)
	}
	wantImages := map[string]string{"shop": "ghcr.io/acme/backend", "frontend": "ghcr.io/acme/frontend", "jobs": "ghcr.io/acme/mailer"}
	for name, img := range wantImages {
		s := findService(cfg, name)
		if s == nil || s.Image != img {
			t.Errorf("service %s = %+v, want image %s", name, s, img)
		}
	}
	fw := map[string][]config.PortForward{}
	for _, s := range cfg.Services {
		fw[s.Name] = s.PortForwards
	}
	want := map[string][]config.PortForward{
		"shop":     {{Local: 18080, Port: 8080, Resource: "service/backend", Address: "127.0.0.1"}},
		"frontend": {{Local: 18081, Port: 80, Resource: "service/frontend", Address: "127.0.0.1"}},
		"jobs":     {{Local: 18082, Port: 9000, Resource: "deployment/mailer", Address: "127.0.0.1"}},
	}
	if fmt.Sprint(fw) != fmt.Sprint(want) {
		t.Errorf("forwards = %v\nwant %v", fw, want)
	}
	if strings.Join(sum.ThirdParty, ",") != "redis:7-alpine,postgres:16-alpine" {
		t.Errorf("third party = %v", sum.ThirdParty)
	}
	if strings.Join(sum.Charts, ",") != "deploy/helm/shop" || len(sum.Skipped) != 0 {
		t.Errorf("charts %v, skipped %v", sum.Charts, sum.Skipped)
	}
	var alts []string
	for _, a := range sum.Alternatives {
		alts = append(alts, a.Reason+":"+a.Entry)
	}
	if got := strings.Join(alts, ","); got != "shared environment:deploy/kustomize/overlays/production,shared environment:deploy/kustomize/overlays/staging,variant:deploy/*.yaml,variant:deploy/plain/*.yaml" {
		t.Errorf("alternatives = %s", got)
	}
	// Every base image asked about once.
	if got := strings.Join(images.calls, ","); got != "golang:1.26-alpine,alpine:3.22,node:22-alpine,nginx:1.27-alpine" {
		t.Errorf("engine asked about %s", got)
	}
	goldenfile.Assert(t, "shop.summary.golden", []byte(strings.Join(sum.Lines(), "\n")+"\n"))
}

// TestLayoutSharedEnvironmentsOnly: when every overlay is for a shared
// environment, their bases are included, not the overlays.
func TestLayoutSharedEnvironmentsOnly(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "shop")
	files := shopLayout()
	for k := range files {
		if strings.Contains(k, "overlays/dev/") || strings.HasPrefix(k, "deploy/plain") || k == "deploy/all-in-one.yaml" {
			delete(files, k)
		}
	}
	writeFiles(t, dir, files)
	cfg, data, _ := writeAndLoad(t, dir, Options{PortFree: allFree})
	goldenfile.Assert(t, "shared_only.golden", data)
	var got []string
	for _, m := range cfg.Manifests {
		got = append(got, rel(dir, m))
	}
	if strings.Join(got, ",") != "deploy/kustomize/base/backend,deploy/kustomize/base/cache,deploy/kustomize/base/database,deploy/kustomize/base/frontend,deploy/kustomize/base/mailer" {
		t.Errorf("manifests = %v", got)
	}
	if cfg.Namespace != "default" {
		t.Errorf("namespace = %q", cfg.Namespace)
	}
}

// TestLayoutPlainVariants: plain-manifest directories only; the second
// variant of the same objects is offered as a comment, and a production
// directory is never included.
func TestLayoutPlainVariants(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "svc")
	writeFiles(t, dir, map[string]string{
		"Dockerfile":                   "FROM gcr.io/distroless/static:nonroot\nCOPY bin/api /api\n",
		"k8s/local/api.yaml":           k8sDeploy("api", "registry.example.com/team/api:dev", "8000", "80"),
		"k8s/minimal/api.yaml":         k8sDeploy("api", "registry.example.com/team/api:dev", "8000", "80"),
		"k8s/production/api.yaml":      k8sDeploy("api", "registry.example.com/team/api:v3", "8000", "80"),
		"k8s/production/extra.yaml":    k8sDeploy("metrics", "prom/statsd-exporter:v0.28", "9102", ""),
		"deploy/chart/Chart.yaml":      "apiVersion: v2\nname: api\nversion: 1.0.0\n",
		"deploy/chart/templates/a.yml": "{{ template \"x\" . }}\n",
	})
	cfg, data, sum := writeAndLoad(t, dir, Options{PortFree: allFree, Images: &fakeImages{}})
	goldenfile.Assert(t, "plain_variants.golden", data)
	if len(cfg.Manifests) != 1 || cfg.Manifests[0] != filepath.Join(dir, "k8s/local/*.yaml") {
		t.Errorf("manifests = %v", cfg.Manifests)
	}
	api := findService(cfg, "svc")
	if api == nil || api.Image != "registry.example.com/team/api" || len(api.PortForwards) != 1 || api.PortForwards[0].Resource != "service/api" {
		t.Errorf("service = %+v", api)
	}
	if len(sum.Charts) != 1 || len(sum.Skipped) != 0 {
		t.Errorf("charts %v skipped %v", sum.Charts, sum.Skipped)
	}
}

// TestLayoutNoEngine: with the engine unreachable init still names the base
// images, says it could not ask, and asks only once.
func TestLayoutNoEngine(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "shop")
	writeFiles(t, dir, shopLayout())
	images := &fakeImages{err: errors.New("Cannot connect to the Docker daemon at unix:///var/run/docker.sock")}
	_, data, sum := writeAndLoad(t, dir, Options{PortFree: allFree, Images: images})
	if len(images.calls) != 1 {
		t.Errorf("asked the unreachable engine %d times", len(images.calls))
	}
	if !strings.Contains(sum.EngineError, "Cannot connect") {
		t.Errorf("engine error = %q", sum.EngineError)
	}
	if !strings.Contains(string(data), "# Base images the build needs: golang:1.26-alpine, alpine:3.22.") {
		t.Errorf("base images not named:\n%s", data)
	}
	lines := strings.Join(sum.Lines(), "\n")
	if !strings.Contains(lines, "could not ask the local Docker engine") {
		t.Errorf("summary:\n%s", lines)
	}
}

// TestLayoutEnvironments: of several local overlays of one base, dev is
// picked and the others are offered; when dev does not render, the next
// one is picked instead.
func TestLayoutEnvironments(t *testing.T) {
	files := map[string]string{
		"app/Dockerfile":                          "FROM scratch\n",
		"k8s/base/kustomization.yaml":             "resources: [app.yaml]\n",
		"k8s/base/app.yaml":                       k8sDeploy("app", "ghcr.io/o/app:1", "80", "80"),
		"k8s/overlays/dev/kustomization.yaml":     "resources: [../../base]\n",
		"k8s/overlays/local/kustomization.yaml":   "resources: [../../base]\nnamePrefix: local-\n",
		"k8s/overlays/test/kustomization.yaml":    "resources: [../../base]\n",
		"k8s/overlays/staging/kustomization.yaml": "resources: [../../base]\n",
	}
	check := func(t *testing.T, files map[string]string, manifests, alts string, skipped int) {
		t.Helper()
		dir := filepath.Join(t.TempDir(), "p")
		writeFiles(t, dir, files)
		_, _, sum := writeAndLoad(t, dir, Options{PortFree: allFree})
		var got []string
		for _, a := range sum.Alternatives {
			got = append(got, a.Reason+":"+a.Entry)
		}
		if strings.Join(sum.Manifests, ",") != manifests || strings.Join(got, ",") != alts || len(sum.Skipped) != skipped {
			t.Errorf("manifests %v, alternatives %v, skipped %v", sum.Manifests, got, sum.Skipped)
		}
	}
	check(t, files, "k8s/overlays/dev", "environment:k8s/overlays/local,environment:k8s/overlays/test,shared environment:k8s/overlays/staging", 0)
	files["k8s/overlays/dev/kustomization.yaml"] = "resources: [../../base, missing.yaml]\n"
	check(t, files, "k8s/overlays/local", "environment:k8s/overlays/test,shared environment:k8s/overlays/staging", 1)
}
