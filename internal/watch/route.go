package watch

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/devloop-dev/devloop/internal/build"
	"github.com/devloop-dev/devloop/internal/config"
	"github.com/devloop-dev/devloop/internal/engine"
	"github.com/devloop-dev/devloop/internal/livesync"
	"github.com/devloop-dev/devloop/internal/paths"
)

// Router maps a batch of changes to what they affect. The watcher has
// already decided, once per path, which services want each change (their
// watch roots and ignore rules); the router only adds what is known by path
// alone (devloop.yaml, manifests) and splits each service's paths into live
// syncs and rebuilds. It is pure.
type Router struct {
	// ConfigPath is devloop.yaml itself.
	ConfigPath string
	// Manifests are the config's manifest entries (files, globs or
	// directories), its charts (directories or .tgz) and their values files.
	Manifests []string
	// Sync maps a service to its live-sync rules.
	Sync map[string][]config.SyncRule
	// Live holds the services a live update serves (restart rules and a
	// preBuild), with their build context and Dockerfile.
	Live map[string]LiveService
	// Inputs reads what a Dockerfile puts into its image (build.ReadInputs);
	// it is read on each batch, so an edited Dockerfile counts at once.
	Inputs func(dockerfile string) build.Inputs
}

// LiveService is what routing needs of a service with restart rules.
type LiveService struct {
	Context, Dockerfile string
}

// NewRouter builds the router for cfg.
func NewRouter(cfg *config.Config) Router {
	r := Router{ConfigPath: cfg.Path, Manifests: manifestPaths(cfg), Sync: map[string][]config.SyncRule{},
		Live: map[string]LiveService{}, Inputs: build.ReadInputs}
	for _, s := range cfg.Services {
		r.Sync[s.Name] = s.Sync
		if s.Restarts() && s.Build.PreBuild != nil {
			df := s.Build.Dockerfile
			if df == "" {
				df = filepath.Join(s.Build.Context, "Dockerfile")
			}
			r.Live[s.Name] = LiveService{Context: s.Build.Context, Dockerfile: df}
		}
	}
	return r
}

// Route sorts a batch into rebuilds, syncs, live updates, manifest
// re-applies and config reloads. A path may affect several services. A
// changed path equal to a watch root (the watcher's "rescan everything"
// signal after an event overflow) rebuilds that service. For a service with
// restart rules and a preBuild, a path no sync rule covers is a live update
// unless the image takes it directly: the Dockerfile, its ignore file, or a
// source the Dockerfile copies or binds (those rebuild).
func (r Router) Route(batch []Change) engine.Changed {
	ch := engine.Changed{Rebuild: map[string][]string{}, Sync: map[string][]string{}, Live: map[string][]string{}}
	inputs := map[string]build.Inputs{}
	for _, c := range batch {
		p := filepath.Clean(c.Path)
		if r.ConfigPath != "" && p == filepath.Clean(r.ConfigPath) {
			ch.Config = true
			continue
		}
		if r.isManifest(p) {
			ch.Manifests = true
		}
		for _, svc := range c.Roots {
			if _, ok := livesync.RuleFor(r.Sync[svc], p); ok {
				ch.Sync[svc] = append(ch.Sync[svc], p)
			} else if r.live(svc, p, inputs) {
				ch.Live[svc] = append(ch.Live[svc], p)
			} else {
				ch.Rebuild[svc] = append(ch.Rebuild[svc], p)
			}
		}
	}
	if len(ch.Live) == 0 {
		ch.Live = nil
	}
	return ch
}

// live reports whether p, changed for svc, is a live update's.
func (r Router) live(svc, p string, inputs map[string]build.Inputs) bool {
	ls, ok := r.Live[svc]
	if !ok || r.Inputs == nil {
		return false
	}
	df := filepath.Clean(ls.Dockerfile)
	if p == df || p == df+".dockerignore" || p == filepath.Join(filepath.Clean(ls.Context), ".dockerignore") {
		return false
	}
	in, ok := inputs[svc]
	if !ok {
		in = r.Inputs(df)
		inputs[svc] = in
	}
	rel, err := filepath.Rel(filepath.Clean(ls.Context), p)
	if err != nil || rel == "." {
		return false // the context itself: anything below may have changed
	}
	if strings.HasPrefix(rel, "..") {
		return true // outside the context: the image cannot take it
	}
	return !in.Has(rel)
}

func (r Router) isManifest(p string) bool {
	for _, m := range r.Manifests {
		m = filepath.Clean(m)
		if paths.Under(p, m) {
			return true
		}
		if strings.ContainsAny(m, "*?[") {
			if ok, _ := filepath.Match(m, p); ok {
				return true
			}
		}
	}
	return false
}

// manifestPaths are what re-deploys on a change, without a build: the
// manifest entries, each chart (its templates, values.yaml, charts/...) and
// each chart's values files.
func manifestPaths(cfg *config.Config) []string {
	out := append([]string(nil), cfg.Manifests...)
	for _, c := range cfg.Charts {
		out = append(out, c.Chart)
		out = append(out, c.Values...)
	}
	return out
}

// Roots are the watch roots of cfg: each service's watch paths with its
// ignore rules (.dockerignore, its ignore patterns, editor temp files,
// .git), the manifests (a glob's directory) and devloop.yaml.
func Roots(cfg *config.Config) ([]Root, error) {
	var roots []Root
	for _, svc := range cfg.Services {
		m, err := NewMatcherForDockerfile(svc.Build.Context, svc.Build.Dockerfile, svc.Ignore)
		if err != nil {
			return nil, fmt.Errorf("service %s: %w", svc.Name, err)
		}
		for _, w := range svc.Watch {
			roots = append(roots, Root{Path: w, Name: svc.Name, Ignore: m})
		}
	}
	for _, m := range manifestPaths(cfg) {
		if strings.ContainsAny(m, "*?[") {
			m = filepath.Dir(m)
		}
		roots = append(roots, Root{Path: m})
	}
	if filepath.IsAbs(cfg.Path) {
		roots = append(roots, Root{Path: cfg.Path})
	}
	return roots, nil
}

// Start watches everything cfg names and hands each routed, non-empty
// batch to post until ctx ends. The caller drains Errors and calls Close.
func Start(ctx context.Context, cfg *config.Config, post func(engine.Changed)) (*Watcher, error) {
	roots, err := Roots(cfg)
	if err != nil {
		return nil, err
	}
	w, err := NewWatcher(ctx, WatchOptions{Roots: roots})
	if err != nil {
		return nil, err
	}
	router := NewRouter(cfg)
	go func() {
		for batch := range w.Events() {
			if ch := router.Route(batch); !ch.Empty() {
				post(ch)
			}
		}
	}()
	return w, nil
}
