package engine

import (
	"reflect"
	"strings"
	"testing"

	"github.com/devloop-dev/devloop/internal/config"
)

func TestRoute(t *testing.T) {
	r := Router{
		ConfigPath: "/p/devloop.yaml",
		Manifests:  []string{"/p/k8s", "/p/extra/*.yaml", "/p/one.yaml"},
		Services: []RouteService{
			{
				Name: "api", Roots: []string{"/p/api"},
				Ignored: func(p string) bool { return strings.HasSuffix(p, ".md") || strings.Contains(p, "/bin/") },
				Sync:    []config.SyncRule{{Src: "/p/api/static", Dest: "/app/static"}},
			},
			{Name: "web", Roots: []string{"/p/web", "/p/shared"}},
			{Name: "all", Roots: []string{"/p/shared/lib.go"}},
		},
	}
	tests := []struct {
		name  string
		paths []string
		want  Changed
	}{
		{"source rebuilds its service", []string{"/p/api/main.go"},
			Changed{Rebuild: map[string][]string{"api": {"/p/api/main.go"}}, Sync: map[string][]string{}}},
		{"ignored path does nothing", []string{"/p/api/README.md", "/p/api/bin/api"},
			Changed{Rebuild: map[string][]string{}, Sync: map[string][]string{}}},
		{"sync-covered path syncs", []string{"/p/api/static/index.html"},
			Changed{Rebuild: map[string][]string{}, Sync: map[string][]string{"api": {"/p/api/static/index.html"}}}},
		{"shared file rebuilds every service watching it", []string{"/p/shared/lib.go"},
			Changed{Rebuild: map[string][]string{"web": {"/p/shared/lib.go"}, "all": {"/p/shared/lib.go"}}, Sync: map[string][]string{}}},
		{"manifest dir, glob and file re-apply", []string{"/p/k8s/deploy.yaml"},
			Changed{Rebuild: map[string][]string{}, Sync: map[string][]string{}, Manifests: true}},
		{"manifest glob", []string{"/p/extra/x.yaml"},
			Changed{Rebuild: map[string][]string{}, Sync: map[string][]string{}, Manifests: true}},
		{"glob does not match other files", []string{"/p/extra/x.txt"},
			Changed{Rebuild: map[string][]string{}, Sync: map[string][]string{}}},
		{"config", []string{"/p/devloop.yaml"},
			Changed{Rebuild: map[string][]string{}, Sync: map[string][]string{}, Config: true}},
		{"sibling prefix is not inside", []string{"/p/apix/main.go"},
			Changed{Rebuild: map[string][]string{}, Sync: map[string][]string{}}},
		{"rescan signal: the root itself", []string{"/p/api"},
			Changed{Rebuild: map[string][]string{"api": {"/p/api"}}, Sync: map[string][]string{}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := r.Route(tt.paths); !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("Route(%v)\n got %+v\nwant %+v", tt.paths, got, tt.want)
			}
		})
	}
	if !r.Route([]string{"/elsewhere"}).Empty() {
		t.Fatal("unrelated path should route to nothing")
	}
}
