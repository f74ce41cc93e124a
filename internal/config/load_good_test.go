package config

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestLoadDefaults(t *testing.T) {
	dir := fixture(t)
	path := writeConfig(t, dir, `
name: p
services:
  - name: web
    sync:
      - src: static
        dest: /app/static
    portForwards:
      - local: 18080
        port: 80
    build:
      preBuild:
        run: make
manifests:
  - k8s
  - raw/*.yaml
  - kust2
  - kust3
  - raw/one.yaml
`)
	cfg, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	tr := true
	want := &Config{
		Path:      path,
		Dir:       dir,
		Name:      "p",
		Namespace: "default",
		Cluster: Cluster{
			Name:     "devloop",
			Ingress:  Ingress{Enabled: &tr, Image: DefaultIngressImage, HTTPPort: 8080, HTTPSPort: 8443, ListenAddress: "127.0.0.1"},
			Registry: Registry{Port: DefaultRegistryPort, Image: DefaultRegistryImage},
			Delivery: DeliveryStream,
		},
		Services: []Service{{
			Name:  "web",
			Image: "web",
			Build: Build{
				Context:    dir,
				Dockerfile: filepath.Join(dir, "Dockerfile"),
				PreBuild:   &Command{Run: "make", Dir: dir},
			},
			Watch:        []string{dir},
			Sync:         []SyncRule{{Src: filepath.Join(dir, "static"), Dest: "/app/static"}},
			PortForwards: []PortForward{{Local: 18080, Port: 80, Resource: "service/web", Address: "127.0.0.1"}},
		}},
		Manifests: []string{
			filepath.Join(dir, "k8s"),
			filepath.Join(dir, "raw/*.yaml"),
			filepath.Join(dir, "kust2"),
			filepath.Join(dir, "kust3"),
			filepath.Join(dir, "raw/one.yaml"),
		},
	}
	cfg.keys = nil // which keys the file set: not a setting
	if !reflect.DeepEqual(cfg, want) {
		t.Errorf("Load =\n%+v\nwant\n%+v", cfg, want)
	}
	if !cfg.Cluster.Ingress.IsEnabled() {
		t.Error("ingress should be enabled by default")
	}
}

func TestLoadExplicitValues(t *testing.T) {
	dir := fixture(t)
	path := writeConfig(t, dir, `
name: p
namespace: dev
cluster:
  name: mine
  nodeImage: kindest/node:v1.37.2
  kubernetesVersion: v1.37.2
  ingress:
    enabled: false
    image: traefik:v3.5
    httpPort: 80
    httpsPort: 443
    listenAddress: 0.0.0.0
services:
  - name: api
    image: example.com/team/api
    build:
      context: app
      dockerfile: Dockerfile.dev   # relative to the context
      target: dev
      args: {VERSION: 1.2, DEBUG: true}
      preBuild:
        run: go build
        dir: .
        env: {CGO_ENABLED: 0}
    watch: [app, `+filepath.Join(dir, "static")+`]   # an absolute path inside the project
    ignore: ["*.md", "!keep.md"]
    sync:
      - {src: static/index.html, dest: /srv/index.html, run: "kill -HUP 1"}
    portForwards:
      - {local: 9000, port: 8080, resource: deployment/api, address: "::1"}
      - {local: 80, port: 80, resource: pod/api-0}
`)
	cfg, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	s := cfg.Services[0]
	checks := []struct {
		name      string
		got, want any
	}{
		{"namespace", cfg.Namespace, "dev"},
		{"cluster.name", cfg.Cluster.Name, "mine"},
		{"nodeImage", cfg.Cluster.NodeImage, "kindest/node:v1.37.2"},
		{"ingress enabled", cfg.Cluster.Ingress.IsEnabled(), false},
		{"httpPort", cfg.Cluster.Ingress.HTTPPort, 80},
		{"listenAddress", cfg.Cluster.Ingress.ListenAddress, "0.0.0.0"},
		{"image", s.Image, "example.com/team/api"},
		{"context", s.Build.Context, filepath.Join(dir, "app")},
		{"dockerfile", s.Build.Dockerfile, filepath.Join(dir, "app", "Dockerfile.dev")},
		{"target", s.Build.Target, "dev"},
		{"args", s.Build.Args, map[string]string{"VERSION": "1.2", "DEBUG": "true"}},
		{"preBuild", *s.Build.PreBuild, Command{Run: "go build", Dir: dir, Env: map[string]string{"CGO_ENABLED": "0"}}},
		{"watch", s.Watch, []string{filepath.Join(dir, "app"), filepath.Join(dir, "static")}},
		{"ignore", s.Ignore, []string{"*.md", "!keep.md"}},
		{"sync", s.Sync[0], SyncRule{Src: filepath.Join(dir, "static", "index.html"), Dest: "/srv/index.html", Run: "kill -HUP 1"}},
		{"pf0", s.PortForwards[0], PortForward{Local: 9000, Port: 8080, Resource: "deployment/api", Address: "::1"}},
		{"pf1", s.PortForwards[1], PortForward{Local: 80, Port: 80, Resource: "pod/api-0", Address: "127.0.0.1"}},
	}
	for _, c := range checks {
		if !reflect.DeepEqual(c.got, c.want) {
			t.Errorf("%s = %#v, want %#v", c.name, c.got, c.want)
		}
	}
}

func TestLoadAnchorsAndMerge(t *testing.T) {
	dir := fixture(t)
	path := writeConfig(t, dir, `
name: p
x-common: &common
  build: {context: app}
  ignore: ["*.md"]
services:
  - <<: *common
    name: web
  - <<: *common
    name: api
    image: api-image
    ignore: ["*.txt"]
`)
	_, err := Load(path)
	// x-common is not a key devloop knows: anchors must live inside known keys.
	if err == nil || !strings.Contains(err.Error(), `:3:1: x-common: unknown key`) {
		t.Fatalf("want unknown key error for x-common, got %v", err)
	}
	path = writeConfig(t, dir, `
name: p
services:
  - &web
    name: web
    build: {context: app}
    ignore: ["*.md"]
  - <<: *web
    name: api
    image: api-image
    ignore: ["*.txt"]
`)
	cfg, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	api := cfg.Services[1]
	if api.Name != "api" || api.Image != "api-image" || api.Build.Context != filepath.Join(dir, "app") ||
		!reflect.DeepEqual(api.Ignore, []string{"*.txt"}) {
		t.Errorf("merged service = %+v", api)
	}
}

func TestNullLeavesDefault(t *testing.T) {
	dir := fixture(t)
	cfg, err := Load(writeConfig(t, dir, "name: p\nnamespace:\ncluster: ~\nmanifests: [k8s]\n"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Namespace != "default" || cfg.Cluster.Name != "devloop" {
		t.Errorf("namespace %q cluster %q", cfg.Namespace, cfg.Cluster.Name)
	}
}

func TestParseResolvesAgainstPathDir(t *testing.T) {
	dir := fixture(t)
	cfg, err := Parse(filepath.Join(dir, "devloop.yaml"), []byte("name: p\nmanifests: [k8s]\n"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Dir != dir || cfg.Manifests[0] != filepath.Join(dir, "k8s") {
		t.Errorf("Dir %q Manifests %q", cfg.Dir, cfg.Manifests)
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "devloop.yaml"))
	if !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("want ErrNotExist, got %v", err)
	}
}

func TestErrorListUnwrap(t *testing.T) {
	dir := fixture(t)
	_, err := Load(writeConfig(t, dir, "name: p\nbogus: 1\nmanifests: [k8s]\n"))
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("errors.As(*Error) failed on %v", err)
	}
	if e.Line != 2 || e.Column != 1 || e.Path != "bogus" {
		t.Errorf("got %+v", e)
	}
}

func TestErrorFormat(t *testing.T) {
	for _, tc := range []struct {
		e    Error
		want string
	}{
		{Error{File: "devloop.yaml", Line: 12, Column: 5, Path: "services[0].portForwards[1].local", Msg: "port 70000 is out of range (1-65535)"},
			"devloop.yaml:12:5: services[0].portForwards[1].local: port 70000 is out of range (1-65535)"},
		{Error{File: "d.yaml", Line: 3, Msg: "invalid YAML: x"}, "d.yaml:3: invalid YAML: x"},
		{Error{File: "d.yaml", Msg: "empty"}, "d.yaml: empty"},
	} {
		if got := tc.e.Error(); got != tc.want {
			t.Errorf("got %q, want %q", got, tc.want)
		}
	}
}

func TestApplyEnv(t *testing.T) {
	cfg := &Config{Cluster: Cluster{NodeImage: "from-file"}}
	ApplyEnv(cfg, func(string) string { return "" })
	if cfg.Cluster.NodeImage != "from-file" {
		t.Errorf("empty env changed nodeImage to %q", cfg.Cluster.NodeImage)
	}
	ApplyEnv(cfg, func(k string) string {
		if k == "DEVLOOP_NODE_IMAGE" {
			return "kindest/node:v1.37.2"
		}
		return ""
	})
	if cfg.Cluster.NodeImage != "kindest/node:v1.37.2" {
		t.Errorf("nodeImage = %q", cfg.Cluster.NodeImage)
	}
}

func TestSuggest(t *testing.T) {
	keys := []string{"name", "image", "build", "watch", "ignore", "sync", "portForwards"}
	for _, tc := range []struct{ key, want string }{
		{"nmae", `; did you mean "name"?`},
		{"Image", `; did you mean "image"?`},
		{"port_forwards", `; did you mean "portForwards"?`},
		{"qqqqqqqq", "; valid keys here: build, ignore, image, name, portForwards, sync, watch"},
	} {
		if got := suggest(tc.key, keys); got != tc.want {
			t.Errorf("suggest(%q) = %q, want %q", tc.key, got, tc.want)
		}
	}
	if d := levenshtein("kitten", "sitting"); d != 3 {
		t.Errorf("levenshtein = %d", d)
	}
}

// TestShippedConfigsLoad keeps the example project and the documented
// example file valid.
func TestLoadSecrets(t *testing.T) {
	dir := fixture(t)
	home := t.TempDir()
	t.Setenv("HOME", home)
	if err := os.WriteFile(filepath.Join(home, ".npmrc"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	path := writeConfig(t, dir, "name: p\nservices:\n  - name: web\n    build:\n      secrets:\n"+
		"        - {id: npmrc, src: ~/.npmrc}\n        - {id: f, src: file.txt}\n        - {id: token, env: GH_TOKEN}\n")
	cfg, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	want := []Secret{
		{ID: "npmrc", Src: filepath.Join(home, ".npmrc")},
		{ID: "f", Src: filepath.Join(dir, "file.txt")},
		{ID: "token", Env: "GH_TOKEN"},
	}
	if got := cfg.Services[0].Build.Secrets; !reflect.DeepEqual(got, want) {
		t.Errorf("secrets = %+v, want %+v", got, want)
	}
}

func TestShippedConfigsLoad(t *testing.T) {
	for _, p := range []string{"../../examples/hello/devloop.yaml", "../../devloop.example.yaml"} {
		t.Run(p, func(t *testing.T) {
			cfg, err := Load(p)
			if err != nil {
				t.Fatal(err)
			}
			hello, _ := filepath.Abs("../../examples/hello")
			s := cfg.Services[0]
			if cfg.Name != "hello" || s.Name != "hello" || s.Image != "hello" ||
				s.Build.Context != hello || s.Build.Dockerfile != filepath.Join(hello, "Dockerfile") ||
				s.Build.PreBuild == nil || s.Build.PreBuild.Dir != hello ||
				s.Sync[0].Src != filepath.Join(hello, "static") || s.Sync[0].Dest != "/app/static" ||
				s.PortForwards[0] != (PortForward{Local: 18080, Port: 80, Resource: "service/hello", Address: "127.0.0.1"}) ||
				!reflect.DeepEqual(cfg.Manifests, []string{filepath.Join(hello, "k8s")}) {
				t.Errorf("unexpected config: %+v", cfg)
			}
		})
	}
}

func TestMultistageExampleLoads(t *testing.T) {
	cfg, err := Load("../../examples/multistage/devloop.yaml")
	if err != nil {
		t.Fatal(err)
	}
	dir, _ := filepath.Abs("../../examples/multistage")
	s := cfg.Services[0]
	if cfg.Name != "multistage" || s.Image != "multistage" || s.Build.Context != dir || s.Build.PreBuild != nil ||
		s.PortForwards[0] != (PortForward{Local: 18081, Port: 80, Resource: "service/multistage", Address: "127.0.0.1"}) {
		t.Errorf("unexpected config: %+v", cfg)
	}
}

func TestRegistryDefaults(t *testing.T) {
	for _, tc := range []struct {
		name, yaml    string
		push          bool
		delivery      string
		workers, port int
	}{
		{"off", "name: p\nmanifests: [k8s/*.yaml]\n", false, DeliveryStream, 0, DefaultRegistryPort},
		{"on: push by default", "name: p\ncluster:\n  workers: 2\n  registry: {enabled: true, port: 5055}\nmanifests: [k8s/*.yaml]\n", true, DeliveryPush, 2, 5055},
		{"on, streamed", "name: p\ncluster:\n  delivery: stream\n  registry: {enabled: true}\nmanifests: [k8s/*.yaml]\n", false, DeliveryStream, 0, DefaultRegistryPort},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.Mkdir(filepath.Join(dir, "k8s"), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, "k8s", "a.yaml"), nil, 0o644); err != nil {
				t.Fatal(err)
			}
			cfg, err := Parse(filepath.Join(dir, "devloop.yaml"), []byte(tc.yaml))
			if err != nil {
				t.Fatal(err)
			}
			c := cfg.Cluster
			if c.Push() != tc.push || c.Delivery != tc.delivery || c.Workers != tc.workers || c.Registry.Port != tc.port || c.Registry.Image != DefaultRegistryImage {
				t.Errorf("cluster = %+v", c)
			}
			if got, want := c.Registry.Host(), fmt.Sprintf("localhost:%d", tc.port); got != want {
				t.Errorf("Host = %q, want %q", got, want)
			}
			ApplyEnv(cfg, func(k string) string {
				if k == EnvRegistryImage {
					return "devloop.local/registry:3.1.2"
				}
				return ""
			})
			if cfg.Cluster.Registry.Image != "devloop.local/registry:3.1.2" {
				t.Errorf("DEVLOOP_REGISTRY_IMAGE not applied: %q", cfg.Cluster.Registry.Image)
			}
		})
	}
}
