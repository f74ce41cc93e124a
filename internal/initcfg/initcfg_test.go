package initcfg

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/devloop-dev/devloop/internal/config"
)

// copyExample copies ../../examples/hello into dst, without devloop.yaml and bin/.
func copyExample(t *testing.T, dst string) {
	t.Helper()
	src := filepath.Join("..", "..", "examples", "hello")
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		r, _ := filepath.Rel(src, p)
		if r == "devloop.yaml" || r == "bin" {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dst, r), 0o755)
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, r), data, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}

func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, body := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func allFree(int) bool { return true }

// writeAndLoad runs Write in dir and loads what it wrote back with
// internal/config (which a generated file must always pass), returning the
// loaded config, the file's text and the summary.
func writeAndLoad(t *testing.T, dir string, opts Options) (*config.Config, []byte, Summary) {
	t.Helper()
	path, sum, err := Write(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(path)
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatalf("%v\n%s", err, data)
	}
	return cfg, data, sum
}

func findService(cfg *config.Config, name string) *config.Service {
	for i := range cfg.Services {
		if cfg.Services[i].Name == name {
			return &cfg.Services[i]
		}
	}
	return nil
}

func TestWriteHelloExample(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "hello")
	copyExample(t, dir)
	cfg, data, sum := writeAndLoad(t, dir, Options{PortFree: allFree})
	if cfg.Name != "hello" || len(cfg.Services) != 1 {
		t.Fatalf("name %q, %d services:\n%s", cfg.Name, len(cfg.Services), data)
	}
	s := findService(cfg, "hello")
	if s == nil || s.Image != "hello" || s.Build.Context != dir || s.Build.Dockerfile != filepath.Join(dir, "Dockerfile") {
		t.Fatalf("service = %+v\n%s", s, data)
	}
	if want := []string{filepath.Join(dir, "k8s")}; strings.Join(cfg.Manifests, ",") != strings.Join(want, ",") {
		t.Errorf("manifests = %v, want %v", cfg.Manifests, want)
	}
	if len(s.PortForwards) != 1 || s.PortForwards[0] != (config.PortForward{Local: 18080, Port: 80, Resource: "service/hello", Address: "127.0.0.1"}) {
		t.Errorf("forwards = %+v", s.PortForwards)
	}
	// The Dockerfile copies bin/hello and (twice) bin/toolbox, built on the
	// host: init infers the go build commands, so the file works as is.
	pb := s.Build.PreBuild
	if pb == nil {
		t.Fatalf("no preBuild inferred:\n%s", data)
	}
	// GOOS=linux goes on each go command (the image runs Linux), not in
	// preBuild.env, which would apply to every command of the chain.
	wantRun := "GOOS=linux CGO_ENABLED=0 go build -trimpath -o bin/hello . && GOOS=linux CGO_ENABLED=0 go build -trimpath -o bin/toolbox ./toolbox"
	if pb.Run != wantRun || len(pb.Env) != 0 || pb.Dir != dir {
		t.Errorf("preBuild = %+v, want run %q without env in %s", pb, wantRun, dir)
	}
	if !strings.Contains(string(data), "# GOOS=linux: the image runs Linux whatever the host is.") {
		t.Errorf("no note on GOOS=linux:\n%s", data)
	}
	if strings.Join(s.Ignore, ",") != "bin" {
		t.Errorf("ignore = %q, want [bin]", s.Ignore)
	}
	if strings.Contains(string(data), "# preBuild:") || !strings.Contains(string(data), "Inferred by devloop init from these lines of Dockerfile") {
		t.Errorf("want the inferred preBuild with its origin, not the hint:\n%s", data)
	}
	if c := strings.Count(string(data), "COPY bin/toolbox"); c != 2 {
		t.Errorf("the origin comment lists COPY bin/toolbox %d times, want 2 (one per line):\n%s", c, data)
	}
	if strings.Contains(string(data), "resource:") {
		t.Errorf("resource spelled out although it is the default:\n%s", data)
	}
	if len(sum.Services) != 1 || strings.Join(sum.Services[0].Workloads, ",") != "deployment/hello" || len(sum.Forwards) != 1 {
		t.Errorf("summary = %+v", sum)
	}
	if sum.Services[0].PreBuild != wantRun || len(sum.Services[0].PreBuildFrom) != 3 || len(sum.Services[0].HostBuilt) != 0 {
		t.Errorf("summary service = %+v", sum.Services[0])
	}
	lines := strings.Join(sum.Lines(), "\n") + "\n"
	if !strings.Contains(lines, "  pre-build hello (inferred from Dockerfile lines ") || !strings.Contains(lines, ", check it): "+wantRun+"\n") {
		t.Errorf("summary lines lack the inferred pre-build:\n%s", lines)
	}
}

const deployment = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: %[1]s
spec:
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
`

func deploy(name, image, port string) string {
	return strings.NewReplacer("%[1]s", name, "%[2]s", image, "%[3]s", port).Replace(deployment)
}

func TestWriteTwoServicesPlainManifestDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "Shop_App")
	writeFiles(t, dir, map[string]string{
		"api/Dockerfile":                "FROM scratch\n",
		"web/Dockerfile.dev":            "FROM scratch\n",
		"web/node_modules/x/Dockerfile": "FROM scratch\n",
		".hidden/Dockerfile":            "FROM scratch\n",
		"deploy/api.yaml":               deploy("api", "registry.example.com/shop/api:v1", "9000"),
		"deploy/web.yaml": deploy("web", "web", "3000") + `---
apiVersion: v1
kind: Service
metadata:
  name: frontend
spec:
  selector: {app: web}
  ports:
    - port: 8080
      targetPort: 3000
`,
		"docs/notes.yaml": "title: not a manifest\n",
	})
	busy := map[int]bool{18080: true, 18082: true}
	cfg, data, sum := writeAndLoad(t, dir, Options{PortFree: func(p int) bool { return !busy[p] }})
	if cfg.Name != "shop-app" {
		t.Errorf("name = %q", cfg.Name)
	}
	if want := filepath.Join(dir, "deploy", "*.yaml"); len(cfg.Manifests) != 1 || cfg.Manifests[0] != want {
		t.Errorf("manifests = %v, want [%s]", cfg.Manifests, want)
	}
	if len(cfg.Services) != 2 {
		t.Fatalf("%d services, want 2:\n%s", len(cfg.Services), data)
	}
	api, web := findService(cfg, "api"), findService(cfg, "web")
	if api == nil || web == nil {
		t.Fatalf("services = %+v", cfg.Services)
	}
	if api.Image != "registry.example.com/shop/api" {
		t.Errorf("api image = %q", api.Image)
	}
	if web.Build.Dockerfile != filepath.Join(dir, "web", "Dockerfile.dev") || web.Build.Context != filepath.Join(dir, "web") {
		t.Errorf("web build = %+v", web.Build)
	}
	wantAPI := config.PortForward{Local: 18081, Port: 9000, Resource: "deployment/api", Address: "127.0.0.1"}
	wantWeb := config.PortForward{Local: 18083, Port: 8080, Resource: "service/frontend", Address: "127.0.0.1"}
	if len(api.PortForwards) != 1 || api.PortForwards[0] != wantAPI {
		t.Errorf("api forwards = %+v, want %+v", api.PortForwards, wantAPI)
	}
	if len(web.PortForwards) != 1 || web.PortForwards[0] != wantWeb {
		t.Errorf("web forwards = %+v, want %+v", web.PortForwards, wantWeb)
	}
	if strings.Contains(string(data), "preBuild") {
		t.Errorf("preBuild hint without a Go program:\n%s", data)
	}
	if len(sum.Forwards) != 2 {
		t.Errorf("summary forwards = %v", sum.Forwards)
	}
}

func TestDockerfileWithoutManifestGetsComment(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "solo")
	writeFiles(t, dir, map[string]string{"Dockerfile": "FROM scratch\n", "worker/worker.Dockerfile": "FROM scratch\n"})
	cfg, data, _ := writeAndLoad(t, dir, Options{PortFree: allFree})
	if len(cfg.Services) != 2 || cfg.Services[0].Name != "solo" || cfg.Services[1].Name != "worker" || len(cfg.Manifests) != 0 {
		t.Fatalf("config = %+v", cfg)
	}
	for _, want := range []string{`No manifest uses image "solo" yet`, `No manifest uses image "worker" yet`} {
		if !strings.Contains(string(data), want) {
			t.Errorf("missing %q:\n%s", want, data)
		}
	}
}

func TestWriteErrors(t *testing.T) {
	for _, tc := range []struct {
		name  string
		files map[string]string
		opts  Options
		want  error
	}{
		{"nothing found", map[string]string{"README.md": "hi\n", "config.yaml": "a: 1\n", "bin/Dockerfile": "FROM scratch\n"}, Options{}, ErrNothingFound},
		{"exists", map[string]string{"Dockerfile": "FROM scratch\n", "devloop.yaml": "name: mine\n"}, Options{}, ErrExists},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			writeFiles(t, dir, tc.files)
			tc.opts.PortFree = allFree
			_, _, err := Write(dir, tc.opts)
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if tc.want == ErrExists && err.Error() != "devloop.yaml already exists (use --force to overwrite)" {
				t.Errorf("message = %q", err)
			}
			if data, _ := os.ReadFile(filepath.Join(dir, "devloop.yaml")); string(data) != tc.files["devloop.yaml"] {
				t.Errorf("devloop.yaml changed to %q", data)
			}
		})
	}
}

func TestForceOverwrites(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "app")
	writeFiles(t, dir, map[string]string{"Dockerfile": "FROM scratch\n", "devloop.yaml": "name: mine\n"})
	if cfg, _, _ := writeAndLoad(t, dir, Options{PortFree: allFree, Force: true}); cfg.Name != "app" {
		t.Fatalf("cfg=%+v", cfg)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 2 {
		t.Errorf("leftover files: %v", entries)
	}
}

// TestOverlayDuplicatingBaseIsSkipped: the overlay is picked, its base is
// not included again (init used to keep the base and drop the overlay); a
// templates directory without Chart.yaml is no chart, and does not parse.
func TestOverlayDuplicatingBaseIsSkipped(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "proj")
	writeFiles(t, dir, map[string]string{
		"app/Dockerfile":                      "FROM scratch\n",
		"k8s/base/kustomization.yaml":         "resources: [deploy.yaml]\n",
		"k8s/base/deploy.yaml":                deploy("app", "app", "80"),
		"k8s/overlays/dev/kustomization.yaml": "resources: [../../base]\n",
		"helm/templates/deploy.yaml":          "apiVersion: v1\nkind: {{ .Values.kind }}\n",
	})
	_, sum, err := Generate(dir, Options{PortFree: allFree})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(sum.Manifests, ",") != "k8s/overlays/dev" || len(sum.Skipped) != 1 || len(sum.Alternatives) != 0 {
		t.Fatalf("manifests %v, skipped %v", sum.Manifests, sum.Skipped)
	}
}

func TestSanitize(t *testing.T) {
	for in, want := range map[string]string{"hello": "hello", "My_App": "my-app", "--x..y--": "x-y", "": "app", "___": "app", strings.Repeat("a", 70): strings.Repeat("a", 63)} {
		if got := sanitize(in); got != want {
			t.Errorf("sanitize(%q) = %q, want %q", in, got, want)
		}
	}
}
