package engine

import (
	"path/filepath"
	"strings"

	"github.com/devloop-dev/devloop/internal/config"
)

// RouteService is what the router needs to know about one service.
type RouteService struct {
	Name string
	// Roots are the service's watch paths (absolute files or directories).
	Roots []string
	// Ignored reports whether a changed path is ignored for this service
	// (.dockerignore, its ignore patterns, editor temp files, .git).
	Ignored func(path string) bool
	// Sync are its live-sync rules.
	Sync []config.SyncRule
}

// Router maps changed paths to what they affect. It is pure once built.
type Router struct {
	// ConfigPath is devloop.yaml itself.
	ConfigPath string
	// Manifests are the config's manifest entries: files, globs or directories.
	Manifests []string
	Services  []RouteService
}

// NewRouter builds a router for cfg; ignored gives each service's ignore check.
func NewRouter(cfg *config.Config, ignored func(svc string) func(string) bool) Router {
	r := Router{ConfigPath: cfg.Path, Manifests: cfg.Manifests}
	for _, s := range cfg.Services {
		r.Services = append(r.Services, RouteService{Name: s.Name, Roots: s.Watch, Ignored: ignored(s.Name), Sync: s.Sync})
	}
	return r
}

// Route sorts a batch of changed paths into rebuilds, syncs, manifest
// re-applies and config reloads. A path may affect several services. A
// changed path equal to a watch root (the watcher's "rescan everything"
// signal after an event overflow) rebuilds that service.
func (r Router) Route(paths []string) Changed {
	ch := Changed{Rebuild: map[string][]string{}, Sync: map[string][]string{}}
	for _, p := range paths {
		p = filepath.Clean(p)
		if r.ConfigPath != "" && p == filepath.Clean(r.ConfigPath) {
			ch.Config = true
			continue
		}
		if r.isManifest(p) {
			ch.Manifests = true
		}
		for _, s := range r.Services {
			if !underAny(p, s.Roots) {
				continue
			}
			if s.Ignored != nil && s.Ignored(p) {
				continue
			}
			if syncCovers(s.Sync, p) {
				ch.Sync[s.Name] = append(ch.Sync[s.Name], p)
			} else {
				ch.Rebuild[s.Name] = append(ch.Rebuild[s.Name], p)
			}
		}
	}
	return ch
}

// Empty reports whether the change affects nothing.
func (c Changed) Empty() bool {
	return len(c.Rebuild) == 0 && len(c.Sync) == 0 && !c.Manifests && !c.Config
}

func (r Router) isManifest(p string) bool {
	for _, m := range r.Manifests {
		m = filepath.Clean(m)
		if p == m || within(p, m) {
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

func syncCovers(rules []config.SyncRule, p string) bool {
	for _, r := range rules {
		if p == filepath.Clean(r.Src) || within(p, r.Src) {
			return true
		}
	}
	return false
}

func underAny(p string, roots []string) bool {
	for _, root := range roots {
		if p == filepath.Clean(root) || within(p, root) {
			return true
		}
	}
	return false
}

// within reports whether p is strictly inside dir.
func within(p, dir string) bool {
	rel, err := filepath.Rel(filepath.Clean(dir), p)
	return err == nil && rel != "." && !strings.HasPrefix(rel, "..") && !filepath.IsAbs(rel)
}
