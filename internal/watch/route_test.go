package watch

import (
	"reflect"
	"strings"
	"testing"

	"github.com/devloop-dev/devloop/internal/build"
	"github.com/devloop-dev/devloop/internal/config"
	"github.com/devloop-dev/devloop/internal/engine"
)

// suffixIgnore ignores paths with one of its suffixes or containing /bin/.
type suffixIgnore []string

func (s suffixIgnore) Matches(p string) bool {
	for _, suf := range s {
		if strings.HasSuffix(p, suf) {
			return true
		}
	}
	return strings.Contains(p, "/bin/") || DefaultIgnore{}.Matches(p)
}
func (s suffixIgnore) MatchesEntireDir(string) bool { return false }

// route classifies paths as the watcher does (once, by root) and routes them.
func route(r Router, roots []Root, changed []string) engine.Changed {
	w := &Watcher{roots: roots}
	var batch []Change
	for _, p := range changed {
		if names, ok := w.wanters(p); ok {
			batch = append(batch, Change{Path: p, Roots: names})
		}
	}
	return r.Route(batch)
}

func TestRoute(t *testing.T) {
	r := Router{
		ConfigPath: "/p/devloop.yaml",
		Manifests:  []string{"/p/k8s", "/p/extra/*.yaml", "/p/one.yaml"},
		Sync:       map[string][]config.SyncRule{"api": {{Src: "/p/api/static", Dest: "/app/static"}}},
	}
	roots := []Root{
		{Path: "/p/api", Name: "api", Ignore: suffixIgnore{".md"}},
		{Path: "/p/web", Name: "web"}, {Path: "/p/shared", Name: "web"},
		{Path: "/p/shared/lib.go", Name: "all"},
		{Path: "/p/k8s"}, {Path: "/p/extra"}, {Path: "/p/one.yaml"}, {Path: "/p/devloop.yaml"},
	}
	tests := []struct {
		name  string
		paths []string
		want  engine.Changed
	}{
		{"source rebuilds its service", []string{"/p/api/main.go"},
			engine.Changed{Rebuild: map[string][]string{"api": {"/p/api/main.go"}}, Sync: map[string][]string{}}},
		{"ignored path does nothing", []string{"/p/api/README.md", "/p/api/bin/api"},
			engine.Changed{Rebuild: map[string][]string{}, Sync: map[string][]string{}}},
		{"sync-covered path syncs", []string{"/p/api/static/index.html"},
			engine.Changed{Rebuild: map[string][]string{}, Sync: map[string][]string{"api": {"/p/api/static/index.html"}}}},
		{"shared file rebuilds every service watching it", []string{"/p/shared/lib.go"},
			engine.Changed{Rebuild: map[string][]string{"web": {"/p/shared/lib.go"}, "all": {"/p/shared/lib.go"}}, Sync: map[string][]string{}}},
		{"manifest dir, glob and file re-apply", []string{"/p/k8s/deploy.yaml"},
			engine.Changed{Rebuild: map[string][]string{}, Sync: map[string][]string{}, Manifests: true}},
		{"manifest glob", []string{"/p/extra/x.yaml"},
			engine.Changed{Rebuild: map[string][]string{}, Sync: map[string][]string{}, Manifests: true}},
		{"glob does not match other files", []string{"/p/extra/x.txt"},
			engine.Changed{Rebuild: map[string][]string{}, Sync: map[string][]string{}}},
		{"config", []string{"/p/devloop.yaml"},
			engine.Changed{Rebuild: map[string][]string{}, Sync: map[string][]string{}, Config: true}},
		{"sibling prefix is not inside", []string{"/p/apix/main.go"},
			engine.Changed{Rebuild: map[string][]string{}, Sync: map[string][]string{}}},
		{"rescan signal: the root itself", []string{"/p/api"},
			engine.Changed{Rebuild: map[string][]string{"api": {"/p/api"}}, Sync: map[string][]string{}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := route(r, roots, tt.paths); !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("Route(%v)\n got %+v\nwant %+v", tt.paths, got, tt.want)
			}
		})
	}
	if !route(r, roots, []string{"/elsewhere"}).Empty() {
		t.Fatal("unrelated path should route to nothing")
	}
}

func TestChartsAndValuesFilesAreManifests(t *testing.T) {
	cfg := &config.Config{Path: "/p/devloop.yaml",
		Services: []config.Service{{Name: "web", Build: config.Build{Context: "/p/web"}, Watch: []string{"/p/web"}}},
		Charts:   []config.Chart{{Chart: "/p/chart", Values: []string{"/p/values/dev.yaml"}}, {Chart: "/p/pkg/x-1.tgz"}}}
	roots, err := Roots(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var paths []string
	for _, r := range roots {
		paths = append(paths, r.Path)
	}
	for _, want := range []string{"/p/chart", "/p/values/dev.yaml", "/p/pkg/x-1.tgz"} {
		if !strings.Contains(strings.Join(paths, " "), want) {
			t.Errorf("roots %v lack %s", paths, want)
		}
	}
	r := NewRouter(cfg)
	for _, p := range []string{"/p/chart/templates/deployment.yaml", "/p/values/dev.yaml", "/p/pkg/x-1.tgz", "/p/chart/values.yaml"} {
		ch := route(r, roots, []string{p})
		if !ch.Manifests || len(ch.Rebuild) != 0 {
			t.Errorf("%s: %+v, want a re-deploy without a build", p, ch)
		}
	}
	if ch := route(r, roots, []string{"/p/web/main.go"}); ch.Manifests {
		t.Errorf("a source file re-deploys as a manifest: %+v", ch)
	}
}

func TestRouteLiveUpdates(t *testing.T) {
	read := 0
	r := Router{
		Sync: map[string][]config.SyncRule{"hello": {
			{Src: "/p/static", Dest: "/app/static"},
			{Src: "/p/bin/hello", Dest: "/hello", Restart: true},
		}},
		Live: map[string]LiveService{"hello": {Context: "/p", Dockerfile: "/p/Dockerfile"}},
		Inputs: func(df string) build.Inputs {
			read++
			return build.ParseInputs([]byte("FROM scratch\nCOPY bin/hello /hello\nCOPY static /app/static\nCOPY conf.json /etc/\n"))
		},
	}
	roots := []Root{{Path: "/p", Name: "hello"}, {Path: "/other", Name: "hello"}, {Path: "/q", Name: "plain"}}
	got := route(r, roots, []string{"/p/main.go", "/p/message.go", "/p/static/index.html", "/p/conf.json",
		"/p/Dockerfile", "/p/.dockerignore", "/p/bin/hello", "/p", "/other/lib.go", "/q/main.go"})
	want := engine.Changed{
		Rebuild: map[string][]string{"hello": {"/p/conf.json", "/p/Dockerfile", "/p/.dockerignore", "/p"}, "plain": {"/q/main.go"}},
		Sync:    map[string][]string{"hello": {"/p/static/index.html", "/p/bin/hello"}},
		Live:    map[string][]string{"hello": {"/p/main.go", "/p/message.go", "/other/lib.go"}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got  %+v\nwant %+v", got, want)
	}
	if read != 1 {
		t.Fatalf("the Dockerfile was read %d times for one batch", read)
	}
	// NewRouter: only a service with restart rules and a preBuild updates live.
	cfg := &config.Config{Services: []config.Service{
		{Name: "a", Build: config.Build{Context: "/a", PreBuild: &config.Command{Run: "go build"}}, Sync: []config.SyncRule{{Src: "/a/bin/a", Dest: "/a", Restart: true}}},
		{Name: "b", Build: config.Build{Context: "/b"}, Sync: []config.SyncRule{{Src: "/b/app.py", Dest: "/app.py", Restart: true}}},
		{Name: "c", Build: config.Build{Context: "/c", PreBuild: &config.Command{Run: "go build"}}},
	}}
	if live := NewRouter(cfg).Live; !reflect.DeepEqual(live, map[string]LiveService{"a": {Context: "/a", Dockerfile: "/a/Dockerfile"}}) {
		t.Fatalf("live services %+v", live)
	}
}
