package project

import (
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/devloop-dev/devloop/internal/config"
	"github.com/devloop-dev/devloop/internal/kube"
)

// shopFixture: web, api (dependsOn db) and db, each in its own directory.
func shopFixture(t *testing.T) *fixture {
	f := newFixture(t)
	files := map[string]string{
		"devloop.yaml": `name: shop
services:
  - name: web
    build: {context: web}
  - name: api
    build: {context: api}
    dependsOn: [db]
  - name: db
    build: {context: db}
manifests: [k8s/all.yaml]
`,
		"k8s/all.yaml": strings.Join([]string{
			strings.ReplaceAll(deployYAML, "hello", "web"),
			strings.ReplaceAll(deployYAML, "hello", "api"),
			strings.ReplaceAll(deployYAML, "hello", "db"),
		}, "---\n"),
	}
	for _, svc := range []string{"web", "api", "db"} {
		files[svc+"/Dockerfile"] = "FROM scratch\nCOPY main.go /\n"
		files[svc+"/main.go"] = "package main\n// " + svc + "\n"
	}
	for name, content := range files {
		p := filepath.Join(f.dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cfg, err := config.Load(filepath.Join(f.dir, "devloop.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	f.cfg = cfg
	f.deployer.cfg = cfg
	return f
}

func TestUpSubsetWaitsForDependencies(t *testing.T) {
	f := shopFixture(t)
	// db's first deploy ends only once api, built, says what it waits for
	// (otherwise db could be ready before api's build ends, and api would
	// never have to wait).
	f.deployer.before = func(opts kube.DeployOptions) {
		if !slices.Contains(opts.Services, "db") {
			return
		}
		deadline := time.After(30 * time.Second)
		for !strings.Contains(f.out.String(), "api      │ built; waiting for db") {
			select {
			case <-f.out.wrote:
			case <-deadline:
				return // the test's checks below say what is missing
			}
		}
	}
	err := Up(t.Context(), f.cfg, f.deps, UpOptions{Out: f.printer(), Once: true, RolloutTimeout: time.Minute, Parallel: 2, Services: []string{"api"}})
	if err != nil {
		t.Fatalf("up --once api: %v\n%s", err, f.out)
	}
	out := f.out.String()
	for _, want := range []string{
		"running api, db only",
		"api      │ built; waiting for db to be ready before its first deploy",
		"api      │ db ready: deploying api",
		"all services ready (api, db)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "web      │") {
		t.Errorf("web, not selected, was built:\n%s", out)
	}
	f.deployer.mu.Lock()
	defer f.deployer.mu.Unlock()
	if len(f.deployer.opts) != 2 {
		t.Fatalf("%d deploys, want 2 (db, then api)", len(f.deployer.opts))
	}
	first, second := f.deployer.opts[0], f.deployer.opts[1]
	if !reflect.DeepEqual(first.Hold, []string{"web", "api"}) || !reflect.DeepEqual(second.Hold, []string{"web"}) || !reflect.DeepEqual(second.Services, []string{"api"}) {
		t.Errorf("deploys %+v then %+v: want db first holding web and api, then api holding web", first, second)
	}
	if _, ok := f.deployer.deploys[0]["web"]; ok {
		t.Errorf("web's image reached a deploy: %v", f.deployer.deploys[0])
	}
}

func TestUpUnknownServiceIsAnError(t *testing.T) {
	f := shopFixture(t)
	err := Up(t.Context(), f.cfg, f.deps, UpOptions{Out: f.printer(), Once: true, Services: []string{"apj"}})
	if err == nil || !strings.Contains(err.Error(), `"apj"; did you mean "api"?`) {
		t.Fatalf("up apj = %v", err)
	}
	if f.builder.builds != 0 || f.clusters.exists {
		t.Errorf("something was built or created before the error")
	}
}

func TestUpDependencyThatFailsIsSaid(t *testing.T) {
	f := shopFixture(t)
	f.write(t, "db/main.go", "package main\nBROKEN\n")
	err := Up(t.Context(), f.cfg, f.deps, UpOptions{Out: f.printer(), Once: true, RolloutTimeout: time.Minute, Parallel: 3})
	if err == nil || err.Error() != "not ready: api (waits for db), db" {
		t.Fatalf("up --once with db broken = %v, want api and db not ready\n%s", err, f.out)
	}
	out := f.out.String()
	for _, want := range []string{
		"api      │ not deployed: it waits for db, which failed. Fix db and save",
		"1 of 3 services failed (db; api waits for db)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	// web does not depend on db: it was deployed all the same.
	f.deployer.mu.Lock()
	defer f.deployer.mu.Unlock()
	if len(f.deployer.opts) != 1 || !reflect.DeepEqual(f.deployer.opts[0].Services, []string{"web"}) {
		t.Errorf("deploys %+v, want web alone", f.deployer.opts)
	}
}
