package project

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/rest"

	"github.com/devloop-dev/devloop/internal/cluster"
	"github.com/devloop-dev/devloop/internal/config"
)

// strictKind is the kind Clusters: on an existing cluster any call is a bug.
type strictKind struct {
	fakeClusters
	t *testing.T
}

func (k *strictKind) fail(what string) {
	k.t.Helper()
	k.t.Errorf("kind's Clusters.%s called on an existing cluster", what)
}
func (k *strictKind) Ensure(ctx context.Context, s config.Cluster) (*cluster.Info, error) {
	k.fail("Ensure")
	return k.fakeClusters.Ensure(ctx, s)
}
func (k *strictKind) Exists(n string) (bool, error)           { k.fail("Exists"); return false, nil }
func (k *strictKind) RESTConfig(string) (*rest.Config, error) { k.fail("RESTConfig"); return nil, nil }
func (k *strictKind) Delete(context.Context, string) error    { k.fail("Delete"); return nil }
func (k *strictKind) Owned(string) (bool, error)              { k.fail("Owned"); return false, nil }
func (k *strictKind) Usable(context.Context, string) (*rest.Config, error) {
	k.fail("Usable")
	return nil, nil
}
func (k *strictKind) InstallAddons(context.Context, *Conn, config.Cluster, func(context.Context, string) error) error {
	k.fail("InstallAddons")
	return nil
}

// fakeExisting is the kubeconfig's contexts.
type fakeExisting struct {
	contexts []string
	ensured  []string
	deleted  bool
}

func (e *fakeExisting) Ensure(_ context.Context, s config.Cluster) (*cluster.Info, error) {
	if _, err := e.RESTConfig(s.Context); err != nil {
		return nil, err
	}
	e.ensured = append(e.ensured, s.Context)
	return &cluster.Info{Name: s.Context, Context: s.Context, RESTConfig: &rest.Config{Host: "https://team.example:6443"}}, nil
}
func (e *fakeExisting) Exists(n string) (bool, error) {
	_, err := e.RESTConfig(n)
	return err == nil, nil
}
func (e *fakeExisting) RESTConfig(n string) (*rest.Config, error) {
	for _, c := range e.contexts {
		if c == n {
			return &rest.Config{Host: "https://team.example:6443"}, nil
		}
	}
	return nil, &cluster.NoContextError{Context: n, Known: e.contexts}
}
func (e *fakeExisting) Delete(context.Context, string) error {
	e.deleted = true
	return errors.New("deleted")
}
func (e *fakeExisting) Down(context.Context, string, func(context.Context, *rest.Config) error) (error, error) {
	e.deleted = true
	return nil, errors.New("deleted")
}
func (e *fakeExisting) RemoveRegistry(context.Context, string) ([]string, error) { return nil, nil }
func (e *fakeExisting) Owned(string) (bool, error)                               { return false, nil }
func (e *fakeExisting) Usable(ctx context.Context, n string) (*rest.Config, error) {
	return e.RESTConfig(n)
}
func (e *fakeExisting) InstallAddons(context.Context, *Conn, config.Cluster, func(context.Context, string) error) error {
	return nil
}

// contextFixture is the fixture with a kubeconfig of contexts, the kind
// Clusters failing the test on any call, and push delivery recorded.
func contextFixture(t *testing.T, yaml string, contexts ...string) (*fixture, *fakeExisting, *[]string) {
	t.Helper()
	t.Setenv("USER", "Ana")
	t.Setenv(config.EnvAllowContext, "")
	f := newFixture(t)
	f.write(t, "devloop.yaml", yaml)
	cfg, err := config.Load(f.cfg.Path)
	if err != nil {
		t.Fatal(err)
	}
	f.cfg = cfg
	f.deployer.cfg = cfg
	ex := &fakeExisting{contexts: contexts}
	f.deps.Clusters = &strictKind{t: t}
	f.deps.Existing = ex
	var pushed []string
	eng, _ := f.deps.Engine(t.Context())
	eng.Push = func(host string) Loader { return fakePusher{host: host, pushed: &pushed} }
	return f, ex, &pushed
}

const helloYAML = "name: hello\nservices:\n  - name: hello\nmanifests: [k8s/deploy.yaml]\n"

// Up on an existing cluster: reached through its context only, images
// pushed to registry.address, no kind call, no addons, the developer's
// namespace.
func TestUpOnAnExistingCluster(t *testing.T) {
	f, ex, pushed := contextFixture(t, helloYAML+"cluster:\n  context: team-dev\n  registry: {address: registry.example.com/team}\n", "team-dev", "current")
	if err := Up(t.Context(), f.cfg, f.deps, UpOptions{Out: f.printer(), Once: true, RolloutTimeout: time.Minute}); err != nil {
		t.Fatalf("%v\n%s", err, f.out)
	}
	if len(ex.ensured) != 1 || ex.ensured[0] != "team-dev" {
		t.Errorf("ensured %v", ex.ensured)
	}
	ref := f.ref(t, "package main\n// v1\n")
	if len(*pushed) != 1 || f.deployer.deploys[0]["hello"] != "registry.example.com/team/"+ref {
		t.Errorf("pushed %v, deployed %v", *pushed, f.deployer.deploys)
	}
	if f.cfg.Namespace != "hello-ana" {
		t.Errorf("namespace %q", f.cfg.Namespace)
	}
	out := f.out.String()
	for _, want := range []string{`using the existing cluster of context "team-dev"`, "devloop installs no ingress controller", "namespace hello-ana"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "load into") || strings.Contains(out, "kind cluster") {
		t.Errorf("kind's words on an existing cluster:\n%s", out)
	}
}

// --context on the command line does what cluster.context does.
func TestContextFlag(t *testing.T) {
	f, ex, _ := contextFixture(t, helloYAML+"cluster:\n  registry: {address: 'localhost:5001'}\n", "kind-other")
	if _, err := Status(t.Context(), f.cfg, f.deps, ContextOptions{Context: "kind-other"}); err != nil {
		t.Fatal(err)
	}
	if f.cfg.Cluster.Context != "kind-other" || f.cfg.Namespace != "hello-ana" {
		t.Errorf("cluster %+v namespace %q", f.cfg.Cluster, f.cfg.Namespace)
	}
	if len(ex.ensured) != 0 {
		t.Errorf("status ensured %v", ex.ensured)
	}
}

// Every refusal happens before anything is touched: no build, no cluster.
func TestContextRefusals(t *testing.T) {
	withAddress := helloYAML + "cluster:\n  registry: {address: 'localhost:5001'}\n"
	for _, tc := range []struct {
		name, yaml string
		co         ContextOptions
		env        string
		want       string
	}{
		{"not in the kubeconfig", withAddress, ContextOptions{Context: "missing"}, "",
			`context "missing" is not in your kubeconfig ($KUBECONFIG or ~/.kube/config; it has: team-dev, kind-prod-eu)`},
		{"no registry", helloYAML, ContextOptions{Context: "team-dev"}, "", "cluster.registry.address: with --context team-dev: required"},
		{"production-looking", withAddress, ContextOptions{Context: "kind-prod-eu"}, "",
			`context "kind-prod-eu" looks like production (its name has the word "prod")`},
		{"production in devloop.yaml alone", helloYAML + "cluster:\n  context: kind-prod-eu\n  registry: {address: 'localhost:5001'}\n", ContextOptions{}, "",
			"devloop.yaml alone cannot"},
		{"another context allowed", withAddress, ContextOptions{Context: "kind-prod-eu", Allow: []string{"team-dev"}}, "team-dev", "looks like production"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, ex, pushed := contextFixture(t, tc.yaml, "team-dev", "kind-prod-eu")
			t.Setenv(config.EnvAllowContext, tc.env)
			err := Up(t.Context(), f.cfg, f.deps, UpOptions{Out: f.printer(), Once: true, Context: tc.co})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Up = %v, want %q", err, tc.want)
			}
			if len(ex.ensured) > 0 || len(*pushed) > 0 || f.builder.builds > 0 || len(f.deployer.deploys) > 0 {
				t.Errorf("touched something: ensured %v pushed %v built %d", ex.ensured, *pushed, f.builder.builds)
			}
		})
	}
}

// The person's allowance, on the command line or in the environment.
func TestProductionContextAllowed(t *testing.T) {
	yaml := helloYAML + "cluster:\n  context: kind-prod-eu\n  registry: {address: 'localhost:5001'}\n"
	f, _, _ := contextFixture(t, yaml, "kind-prod-eu")
	if _, err := Status(t.Context(), f.cfg, f.deps, ContextOptions{Allow: []string{"kind-prod-eu"}}); err != nil {
		t.Errorf("--allow-context: %v", err)
	}
	f, _, _ = contextFixture(t, yaml, "kind-prod-eu")
	t.Setenv(config.EnvAllowContext, "other, kind-prod-eu")
	if _, err := Status(t.Context(), f.cfg, f.deps, ContextOptions{}); err != nil {
		t.Errorf("%s: %v", config.EnvAllowContext, err)
	}
}

// down on an existing cluster removes what devloop deployed; --cluster
// (even --force) is refused and deletes nothing.
func TestDownOnAnExistingCluster(t *testing.T) {
	yaml := helloYAML + "cluster:\n  context: team-dev\n  registry: {address: 'localhost:5001'}\n"
	f, ex, _ := contextFixture(t, yaml, "team-dev")
	for _, o := range []DownOptions{{Cluster: true}, {Cluster: true, Force: true}} {
		err := Down(t.Context(), f.cfg, f.deps, f.printer(), o)
		if err == nil || !strings.Contains(err.Error(), `context "team-dev" is an existing cluster devloop did not create: devloop never deletes it`) {
			t.Errorf("down %+v = %v", o, err)
		}
	}
	if ex.deleted || f.deployer.deleted {
		t.Fatal("down --cluster deleted something")
	}
	if err := Down(t.Context(), f.cfg, f.deps, f.printer(), DownOptions{}); err != nil {
		t.Fatal(err)
	}
	if !f.deployer.deleted || ex.deleted {
		t.Errorf("down: deployer deleted %v, cluster deleted %v", f.deployer.deleted, ex.deleted)
	}
}
