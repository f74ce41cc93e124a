package config

import (
	"errors"
	"strings"
	"testing"
)

func withUser(t *testing.T, name string) {
	t.Helper()
	old := currentUser
	currentUser = func() string { return name }
	t.Cleanup(func() { currentUser = old })
}

const contextBase = "name: hello\nmanifests: [k8s]\n"

func TestContextDefaults(t *testing.T) {
	withUser(t, "Ana.Lopez")
	dir := fixture(t)
	cfg, err := Load(writeConfig(t, dir, contextBase+`cluster:
  context: team-dev
  registry:
    address: registry.dev.example.com/team/
charts:
  - chart: app
`))
	if err != nil && !strings.Contains(err.Error(), "charts[0].chart") {
		t.Fatal(err)
	}
	if err == nil {
		t.Fatal("the chart directory does not exist: want an error for it")
	}
	cfg, err = Load(writeConfig(t, dir, contextBase+`cluster:
  context: team-dev
  registry:
    address: registry.dev.example.com/team
`))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Namespace != "hello-ana-lopez" {
		t.Errorf("namespace %q, want hello-ana-lopez", cfg.Namespace)
	}
	c := cfg.Cluster
	if !c.Push() || c.Delivery != DeliveryPush || c.Ingress.IsEnabled() || !c.Existing() || c.Target() != "team-dev" {
		t.Errorf("cluster %+v: want push, no ingress, existing team-dev", c)
	}
	if c.Registry.Host() != "registry.dev.example.com/team" {
		t.Errorf("host %q", c.Registry.Host())
	}

	// An explicit namespace wins.
	cfg, err = Load(writeConfig(t, dir, contextBase+"namespace: mine\ncluster: {context: x, registry: {address: 'localhost:5001'}}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Namespace != "mine" || cfg.Cluster.Registry.Host() != "localhost:5001" {
		t.Errorf("namespace %q host %q", cfg.Namespace, cfg.Cluster.Registry.Host())
	}
	// Without a context nothing changes.
	cfg, err = Load(writeConfig(t, dir, contextBase))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Namespace != "default" || cfg.Cluster.Push() || !cfg.Cluster.Ingress.IsEnabled() || cfg.Cluster.Existing() || cfg.Cluster.Target() != "devloop" {
		t.Errorf("kind config changed: ns %q %+v", cfg.Namespace, cfg.Cluster)
	}
}

func TestContextNamespace(t *testing.T) {
	for _, tc := range []struct{ project, user, want string }{
		{"hello", "ana", "hello-ana"},
		{"hello", "Ana Lopez", "hello-ana-lopez"},
		{"hello", "DOMAIN\\bob_smith", "hello-domain-bob-smith"},
		{"hello", "--", ""},
		{"hello", "", ""},
		{"hello", "日本", ""},
		{strings.Repeat("p", 60), "user", strings.Repeat("p", 60) + "-us"},
		{strings.Repeat("p", 62), "user", strings.Repeat("p", 62)},
	} {
		if got := ContextNamespace(tc.project, tc.user); got != tc.want {
			t.Errorf("ContextNamespace(%q, %q) = %q, want %q", tc.project, tc.user, got, tc.want)
		}
	}
}

func TestContextRefusals(t *testing.T) {
	withUser(t, "ana")
	dir := fixture(t)
	for _, tc := range []struct{ name, yaml, want string }{
		{"no registry", "cluster: {context: dev}\n", "cluster.registry.address: required with cluster.context"},
		{"enabled", "cluster: {context: dev, registry: {address: 'localhost:5001', enabled: true}}\n", "cluster.registry.enabled: the local registry container runs only beside devloop's own kind cluster"},
		{"port", "cluster: {context: dev, registry: {address: 'localhost:5001', port: 5002}}\n", "cluster.registry.port: the local registry"},
		{"image", "cluster: {context: dev, registry: {address: 'localhost:5001', image: 'registry:3'}}\n", "cluster.registry.image: the local registry"},
		{"stream", "cluster: {context: dev, delivery: stream, registry: {address: 'localhost:5001'}}\n", "cluster.delivery: \"stream\" loads into kind nodes"},
		{"workers", "cluster: {context: dev, workers: 2, registry: {address: 'localhost:5001'}}\n", "cluster.workers: devloop does not create"},
		{"ingress", "cluster: {context: dev, ingress: {enabled: true}, registry: {address: 'localhost:5001'}}\n", "cluster.ingress.enabled: devloop installs no ingress controller"},
		{"address and enabled", "cluster: {registry: {address: 'localhost:5001', enabled: true}}\n", "cluster.registry.address: an address names the registry of an existing cluster"},
		{"bad address", "cluster: {context: dev, registry: {address: 'team/images'}}\n", "has no registry host"},
		{"scheme", "cluster: {context: dev, registry: {address: 'http://localhost:5001'}}\n", "has a scheme"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Load(writeConfig(t, dir, contextBase+tc.yaml))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
		})
	}
	t.Run("no user", func(t *testing.T) {
		withUser(t, "")
		_, err := Load(writeConfig(t, dir, contextBase+"cluster: {context: dev, registry: {address: 'localhost:5001'}}\n"))
		if err == nil || !strings.Contains(err.Error(), "namespace: cannot tell your user name") {
			t.Fatalf("error %v", err)
		}
	})
}

func TestUseContext(t *testing.T) {
	withUser(t, "ana")
	dir := fixture(t)
	cfg, err := Load(writeConfig(t, dir, contextBase+"cluster: {registry: {address: 'localhost:5001'}}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Namespace != "default" || cfg.Cluster.Push() {
		t.Fatalf("before: %q %+v", cfg.Namespace, cfg.Cluster)
	}
	if err := cfg.UseContext("kind-other"); err != nil {
		t.Fatal(err)
	}
	if cfg.Namespace != "hello-ana" || !cfg.Cluster.Push() || cfg.Cluster.Ingress.IsEnabled() || cfg.Cluster.Target() != "kind-other" {
		t.Errorf("after: %q %+v", cfg.Namespace, cfg.Cluster)
	}

	// The file's own choices are checked against the flag.
	cfg, err = Load(writeConfig(t, dir, contextBase+"namespace: team\ncluster: {registry: {enabled: true}}\n"))
	if err != nil {
		t.Fatal(err)
	}
	err = cfg.UseContext("dev")
	var list ErrorList
	if !errors.As(err, &list) || len(list) != 2 {
		t.Fatalf("error %v, want 2 problems (no address, enabled)", err)
	}
	if !strings.Contains(err.Error(), "cluster.registry.address: with --context dev: required") ||
		!strings.Contains(err.Error(), "cluster.registry.enabled: with --context dev:") {
		t.Errorf("error %v", err)
	}
	if cfg.Namespace != "team" {
		t.Errorf("namespace %q: the file's namespace is kept", cfg.Namespace)
	}
}

func TestProductionWord(t *testing.T) {
	for name, want := range map[string]string{
		"prod":                          "prod",
		"gke_acme-prod_europe-west1_a":  "prod",
		"arn:aws:eks:eu:1:cluster/LIVE": "live",
		"team.Production":               "production",
		"prd-eu":                        "prd",
		"kind-devloop":                  "",
		"products":                      "",
		"delivery":                      "",
		"liverpool-dev":                 "",
		"kind-prodtest":                 "",
	} {
		if got := ProductionWord(name); got != want {
			t.Errorf("ProductionWord(%q) = %q, want %q", name, got, want)
		}
	}
}

func TestParseRegistryAddress(t *testing.T) {
	for in, want := range map[string]string{
		"localhost:5001":                 "localhost:5001",
		"registry.dev.example.com/team":  "registry.dev.example.com/team",
		"registry.dev.example.com/team/": "registry.dev.example.com/team",
		"10.0.0.5:5000/a/b":              "10.0.0.5:5000/a/b",
		"localhost":                      "localhost",
	} {
		got, err := ParseRegistryAddress(in)
		if err != nil || got != want {
			t.Errorf("ParseRegistryAddress(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"", "team", "team/images", "https://r.example.com", "r.example.com/Team", "r.example.com/a:v1", "r.example.com/a@sha256:" + strings.Repeat("a", 64), "r.example.com//a", "a b"} {
		if got, err := ParseRegistryAddress(in); err == nil {
			t.Errorf("ParseRegistryAddress(%q) = %q, want an error", in, got)
		}
	}
}

// FuzzRegistryAddress: an accepted address is one a pushed reference can be
// made of (address/repo:tag parses with the address as its prefix), and
// parsing never panics; nor does ProductionWord.
func FuzzRegistryAddress(f *testing.F) {
	for _, s := range []string{"localhost:5001", "registry.dev.example.com/team", "team/x", "http://a", "a:1/b/", "prod-eu", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		_ = ProductionWord(s)
		addr, err := ParseRegistryAddress(s)
		if err != nil {
			return
		}
		if addr == "" || strings.HasSuffix(addr, "/") {
			t.Fatalf("%q accepted as %q", s, addr)
		}
		again, err := ParseRegistryAddress(addr)
		if err != nil || again != addr {
			t.Fatalf("%q: accepted as %q, which parses as %q, %v", s, addr, again, err)
		}
	})
}
