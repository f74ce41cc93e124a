package config

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

func TestDiff(t *testing.T) {
	dir := t.TempDir()
	for _, d := range []string{"api", "web", "k8s"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{"api/Dockerfile", "web/Dockerfile", "k8s/app.yaml"} {
		if err := os.WriteFile(filepath.Join(dir, f), []byte("FROM scratch\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	load := func(t *testing.T, yaml string) *Config {
		t.Helper()
		c, err := Parse(filepath.Join(dir, "devloop.yaml"), []byte(yaml))
		if err != nil {
			t.Fatalf("parse: %v", err)
		}
		return c
	}
	base := `name: p
services:
  - name: api
    build: {context: api}
    sync: [{src: api, dest: /app}]
  - name: web
    build: {context: web}
manifests: ["k8s/*.yaml"]
`
	tests := []struct {
		name, yaml string
		want       []string
	}{
		{"same", base, nil},
		{"comments and formatting", "# hi\n" + base + "\n\n", nil},
		{"services reordered", `name: p
services:
  - name: web
    build: {context: web}
  - name: api
    sync: [{src: api, dest: /app}]
    build: {context: api}
manifests: ["k8s/*.yaml"]
`, nil},
		{"a sync rule and the ingress port", `name: p
cluster: {ingress: {httpPort: 9090}}
services:
  - name: api
    build: {context: api}
    sync: [{src: api, dest: /srv}]
  - name: web
    build: {context: web}
manifests: ["k8s/*.yaml"]
`, []string{"cluster.ingress.httpPort", "services.api.sync"}},
		{"a service removed, a forward added", `name: p
services:
  - name: api
    build: {context: api}
    sync: [{src: api, dest: /app}]
    portForwards: [{local: 18080, port: 80}]
manifests: ["k8s/*.yaml"]
`, []string{"services.api.portForwards", "services.web"}},
	}
	a := load(t, base)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Diff(a, load(t, tt.yaml))
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Diff = %q, want %q", got, tt.want)
			}
		})
	}
}
