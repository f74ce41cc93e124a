package examples

import (
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/devloop-dev/devloop/internal/config"
	"github.com/devloop-dev/devloop/internal/kube"
)

func TestExtractKeepsEdits(t *testing.T) {
	dir := t.TempDir()
	if err := Extract(HelloFS(), dir); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"go.mod", "devloop.yaml", "Dockerfile", ".dockerignore", "main.go", "message.go", "k8s/kustomization.yaml", "static/index.html", "toolbox/main.go"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Fatalf("missing %s: %v", f, err)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "bin")); err == nil {
		t.Fatal("build output must not be embedded")
	}
	msg := filepath.Join(dir, "message.go")
	if err := os.WriteFile(msg, []byte("edited"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := Extract(HelloFS(), dir); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(msg); string(b) != "edited" {
		t.Fatalf("user edit overwritten: %q", b)
	}
}

// The extracted shop builds on its own: every service's program compiles
// in the extracted module, and no preBuild output is embedded.
func TestShopExtractsAndBuilds(t *testing.T) {
	dir := t.TempDir()
	if err := ExtractModule(ShopFS(), dir, "example.com/shop"); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"devloop.yaml", "k8s/kustomization.yaml", "k8s/db.yaml", "api/main.go", "api/Dockerfile", "api/.dockerignore",
		"db/main.go", "worker/main.go", "web/main.go", "web/toolbox/main.go", "web/static/index.html", "web/.dockerignore",
		"chart/Chart.yaml", "chart/values.yaml", "chart/templates/deployment.yaml", "chart/templates/hook.yaml", "values/dev.yaml"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("missing %s: %v", f, err)
		}
	}
	for _, svc := range []string{"api", "db", "web", "worker"} {
		if _, err := os.Stat(filepath.Join(dir, svc, "bin")); err == nil {
			t.Errorf("%s/bin (build output) was embedded", svc)
		}
	}
	cfg, err := config.Load(filepath.Join(dir, "devloop.yaml"))
	if err != nil {
		t.Fatalf("the extracted shop's devloop.yaml: %v", err)
	}
	if got, err := cfg.Select([]string{"api"}); err != nil || len(got) != 2 {
		t.Errorf("up api would run %v (%v), want api and db", got, err)
	}
}

// The embedded shop is the whole example: every file of examples/shop but
// its build output is embedded unchanged (go:embed leaves out a directory's
// files named .* or _*, such as a chart's _helpers.tpl, unless named), and
// the extracted project renders the same objects and release as the
// repository's.
func TestShopEmbedsTheWholeExample(t *testing.T) {
	err := filepath.WalkDir("shop", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel("shop", p)
		if d.IsDir() {
			if d.Name() == "bin" {
				return filepath.SkipDir // preBuild output
			}
			return nil
		}
		want, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if got, err := fs.ReadFile(ShopFS(), filepath.ToSlash(rel)); err != nil {
			t.Errorf("%s is not embedded: %v", rel, err)
		} else if !bytes.Equal(got, want) {
			t.Errorf("%s is embedded with other content", rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	dir := t.TempDir()
	if err := ExtractModule(ShopFS(), dir, "example.com/shop"); err != nil {
		t.Fatal(err)
	}
	render := func(path string) (objs, release []string) {
		t.Helper()
		cfg, err := config.Load(path)
		if err != nil {
			t.Fatal(err)
		}
		m, err := kube.Prepare(cfg, nil)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		for _, o := range m.Objects {
			objs = append(objs, o.GetKind()+"/"+o.GetName())
		}
		for _, r := range m.Releases {
			release = append(release, r.Chart.Spec.Release)
			for _, o := range r.Objects {
				release = append(release, o.GetKind()+"/"+o.GetName())
			}
		}
		return objs, release
	}
	wantObjs, wantRelease := render("shop/devloop.yaml")
	gotObjs, gotRelease := render(filepath.Join(dir, "devloop.yaml"))
	if !reflect.DeepEqual(gotObjs, wantObjs) || !reflect.DeepEqual(gotRelease, wantRelease) {
		t.Errorf("the extracted shop renders %v, release %v; the repository's %v, release %v", gotObjs, gotRelease, wantObjs, wantRelease)
	}
}

func TestShopManifestsRunEveryService(t *testing.T) {
	cfg, err := config.Load("shop/devloop.yaml")
	if err != nil {
		t.Fatal(err)
	}
	m, err := kube.Prepare(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	for svc, want := range map[string]string{"db": "StatefulSet/default/db", "api": "Deployment/default/api", "web": "Deployment/default/web", "worker": "Deployment/default/worker"} {
		if ws := m.Services[svc]; len(ws) != 1 || ws[0].Key() != want {
			t.Errorf("service %s runs in %v, want %s", svc, ws, want)
		}
	}
	if len(m.Releases) != 1 || m.Releases[0].Chart.Spec.Release != "worker" {
		t.Errorf("releases %v, want the worker's chart", m.Releases)
	} else if ws := workloadsIn(m.Releases[0]); !reflect.DeepEqual(ws, []string{"Deployment/default/worker"}) {
		t.Errorf("the worker's release runs %v, want its Deployment only", ws)
	}
	if want := []string{"http://shop.localhost:8080/"}; !reflect.DeepEqual(m.IngressURLs, want) {
		t.Errorf("ingress URLs %v, want %v", m.IngressURLs, want)
	}
	if vals := kube.SecretValues(m.Objects); len(vals) != 1 || vals[0] != "shop-s3cret-a1b2c3" {
		t.Errorf("secret values %q", vals)
	}
}

// workloadsIn are the keys of a release's workloads (its hooks are not
// among its objects).
func workloadsIn(r kube.Release) []string {
	var out []string
	for _, w := range kube.WorkloadsOf(r.Objects) {
		out = append(out, w.Key())
	}
	return out
}
