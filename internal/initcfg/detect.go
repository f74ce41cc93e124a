// Package initcfg writes a starting devloop.yaml for a repository that has
// Dockerfiles and Kubernetes manifests (`devloop init`).
//
// Generate is pure apart from reading the directory (and the port probe it
// is given); Write adds the file handling: refusing to overwrite, loading the
// result back with config.Load, and never leaving an invalid file behind.
package initcfg

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
)

// skipDirs are directory names never searched.
var skipDirs = map[string]bool{".git": true, "node_modules": true, "vendor": true, "bin": true}

// preferredManifestDirs are directory names searched for manifests first.
var preferredManifestDirs = map[string]bool{"k8s": true, "kube": true, "kubernetes": true, "manifests": true, "deploy": true}

var kustomizationFiles = []string{"kustomization.yaml", "kustomization.yml", "Kustomization"}

// dockerfile is one Dockerfile found under the project directory.
type dockerfile struct {
	path    string // absolute
	dir     string // absolute directory holding it
	variant string // "worker" for Dockerfile.worker or worker.Dockerfile; "" for Dockerfile
}

// dockerfileVariant reports whether name is a Dockerfile name and its variant.
func dockerfileVariant(name string) (variant string, ok bool) {
	switch {
	case name == "Dockerfile":
		return "", true
	case strings.HasSuffix(name, ".dockerignore"):
		return "", false
	case strings.HasPrefix(name, "Dockerfile.") && len(name) > len("Dockerfile."):
		return strings.TrimPrefix(name, "Dockerfile."), true
	case strings.HasSuffix(name, ".Dockerfile") && len(name) > len(".Dockerfile"):
		return strings.TrimSuffix(name, ".Dockerfile"), true
	}
	return "", false
}

var (
	apiVersionLine = regexp.MustCompile(`(?m)^apiVersion:`)
	kindLine       = regexp.MustCompile(`(?m)^kind:`)
)

// isManifest reports whether data looks like a Kubernetes manifest.
func isManifest(data []byte) bool {
	return apiVersionLine.Match(data) && kindLine.Match(data)
}

func isYAML(name string) bool {
	switch strings.ToLower(filepath.Ext(name)) {
	case ".yaml", ".yml":
		return true
	}
	return false
}

// manifestDir is a directory holding manifests.
type manifestDir struct {
	dir        string   // absolute
	kustomize  bool     // has a kustomization file
	manifests  []string // absolute paths of the YAML files in it that are manifests, sorted
	otherYAML  bool     // it also holds YAML files that are not manifests
	extensions map[string]bool
}

// scanResult is what scan found.
type scanResult struct {
	dockerfiles []dockerfile
	// mdirs are the manifest directories, the preferred directory names
	// first, then by path.
	mdirs []*manifestDir
	// charts are the Helm chart directories (absolute): a directory with a
	// Chart.yaml, whose templates are not YAML until Helm renders them.
	charts []string
}

// scan walks dir and returns its Dockerfiles, manifest directories and Helm
// charts. A chart's directory is not searched further (a chart's Dockerfiles
// and templates belong to the chart).
func scan(dir string) (scanResult, error) {
	var dfs []dockerfile
	var charts []string
	dirs := map[string]*manifestDir{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() {
			if p != dir && (skipDirs[name] || strings.HasPrefix(name, ".")) {
				return filepath.SkipDir
			}
			if fi, err := os.Stat(filepath.Join(p, "Chart.yaml")); err == nil && fi.Mode().IsRegular() {
				charts = append(charts, p)
				return filepath.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() {
			return nil
		}
		parent := filepath.Dir(p)
		if v, ok := dockerfileVariant(name); ok {
			dfs = append(dfs, dockerfile{path: p, dir: parent, variant: v})
			return nil
		}
		isKust := false
		for _, k := range kustomizationFiles {
			if name == k {
				isKust = true
			}
		}
		if !isYAML(name) && !isKust {
			return nil
		}
		md := dirs[parent]
		if md == nil {
			md = &manifestDir{dir: parent, extensions: map[string]bool{}}
			dirs[parent] = md
		}
		if isKust {
			md.kustomize = true
			return nil
		}
		if p == filepath.Join(dir, "devloop.yaml") {
			return nil
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if isManifest(data) {
			md.manifests = append(md.manifests, p)
			md.extensions[filepath.Ext(name)] = true
		} else {
			md.otherYAML = true
		}
		return nil
	})
	if err != nil {
		return scanResult{}, err
	}
	var out []*manifestDir
	for _, md := range dirs {
		if len(md.manifests) > 0 || md.kustomize {
			sort.Strings(md.manifests)
			out = append(out, md)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		pi, pj := preferred(dir, out[i].dir), preferred(dir, out[j].dir)
		if pi != pj {
			return pi
		}
		return out[i].dir < out[j].dir
	})
	return scanResult{dockerfiles: dfs, mdirs: out, charts: charts}, nil
}

// preferred reports whether p (under root) is or is inside a directory with a
// conventional manifest directory name.
func preferred(root, p string) bool {
	rel, err := filepath.Rel(root, p)
	if err != nil {
		return false
	}
	for _, part := range strings.Split(filepath.ToSlash(rel), "/") {
		if preferredManifestDirs[strings.ToLower(part)] {
			return true
		}
	}
	return false
}

// entries returns the config manifest entries (absolute) for md: the
// directory for a kustomization, a glob when every YAML file in it is a
// manifest, otherwise the files one by one. The project directory itself
// never gets a glob, because devloop.yaml will live there.
func (md *manifestDir) entries(root string) []string {
	if md.kustomize {
		return []string{md.dir}
	}
	if md.otherYAML || md.dir == root {
		return md.manifests
	}
	var exts []string
	for e := range md.extensions {
		exts = append(exts, e)
	}
	sort.Strings(exts)
	var out []string
	for _, e := range exts {
		out = append(out, filepath.Join(md.dir, "*"+e))
	}
	return out
}

var nonLabel = regexp.MustCompile(`[^a-z0-9-]+`)

// sanitize turns s into a DNS-1123 label ("My_App" → "my-app"); "app" if nothing is left.
func sanitize(s string) string {
	s = nonLabel.ReplaceAllString(strings.ToLower(s), "-")
	for strings.Contains(s, "--") {
		s = strings.ReplaceAll(s, "--", "-")
	}
	s = strings.Trim(s, "-")
	if len(s) > 63 {
		s = strings.Trim(s[:63], "-")
	}
	if s == "" {
		return "app"
	}
	return s
}
