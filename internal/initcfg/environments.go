package initcfg

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	kusttypes "sigs.k8s.io/kustomize/api/types"
	"sigs.k8s.io/yaml"

	"github.com/devloop-dev/devloop/internal/config"
	"github.com/devloop-dev/devloop/internal/kube"
)

// Environment names, by path element (lower case). An overlay or directory
// named for local work is picked first; one named for a shared environment
// is never picked (it points at real databases, registries, replicas).
var (
	localEnvRank = map[string]int{"dev": 0, "local": 1, "development": 2, "devel": 3, "kind": 3, "minikube": 3}
	sharedEnvs   = map[string]bool{"production": true, "prod": true, "prd": true, "staging": true, "stage": true, "stg": true,
		"live": true, "preprod": true, "pre-prod": true, "uat": true, "qa": true}
)

const (
	rankNeutral = 10
	rankShared  = 100
)

// envRank ranks a directory (relative to the project) for local work: low
// is preferred; rankShared means never pick it.
func envRank(relPath string) int {
	best := rankNeutral
	for _, part := range strings.Split(strings.ToLower(relPath), "/") {
		if sharedEnvs[part] {
			return rankShared
		}
		if r, ok := localEnvRank[part]; ok && r < best {
			best = r
		}
	}
	return best
}

// kustRefs returns the local directories and files the kustomization in dir
// refers to (resources, components and the deprecated bases), absolute;
// remote references (URLs, git) are left out.
func kustRefs(dir string) (dirs, files []string, err error) {
	var data []byte
	for _, k := range kustomizationFiles {
		if data, err = os.ReadFile(filepath.Join(dir, k)); err == nil {
			break
		}
	}
	if err != nil {
		return nil, nil, err
	}
	var k kusttypes.Kustomization
	if err := yaml.Unmarshal(data, &k); err != nil {
		return nil, nil, fmt.Errorf("reading the kustomization in %s: %w", dir, err)
	}
	for _, r := range append(append(append([]string(nil), k.Resources...), k.Components...), k.Bases...) {
		if r == "" || strings.Contains(r, "://") || strings.HasPrefix(r, "git@") || strings.HasPrefix(r, "github.com/") {
			continue
		}
		p := filepath.Clean(filepath.Join(dir, filepath.FromSlash(r)))
		fi, err := os.Stat(p)
		switch {
		case err != nil:
			continue // kustomize says what is missing when it renders
		case fi.IsDir():
			dirs = append(dirs, p)
		default:
			files = append(files, p)
		}
	}
	return dirs, files, nil
}

// unit is a candidate manifest entry set: a kustomization (built on other
// ones, or on its own) or a directory of plain manifests.
type unit struct {
	md      *manifestDir
	rel     string          // the directory, relative to the project
	rank    int             // envRank of rel
	builds  map[string]bool // the kustomize directories it builds, itself included (transitively)
	overlay bool            // a kustomization built on another kustomization
	family  int             // units that build a directory in common share a family
}

// Alternative is a manifest entry init left out, and why.
type Alternative struct {
	// Entry is relative to the project directory.
	Entry string
	// Reason: "environment" (another overlay of the same bases),
	// "shared environment" (production, staging, ...), "variant" (it
	// defines objects already included).
	Reason string
	// Detail says more ("builds k8s/base", "defines deployment/api").
	Detail string
}

// selection is what selectManifests chose.
type selection struct {
	entries      []string // absolute
	included     []*unit
	alternatives []Alternative
	skipped      []string // entries that do not render, with the error
	objs         []*unstructured.Unstructured
}

// selectManifests picks the manifests for local work out of mdirs:
//   - a kustomization another kustomization builds on (a base) is never
//     included by itself when an included overlay builds it;
//   - of the overlays of the same bases (the environments), one is picked:
//     dev, local or development first, never production, prod, staging or
//     the like; the others are listed as alternatives. When every overlay is
//     for a shared environment, their bases are included instead;
//   - a unit whose objects (kind, namespace, name) are already included is
//     an alternative variant of them, listed, not included;
//   - a unit named for a shared environment is never included.
func selectManifests(root string, mdirs []*manifestDir) selection {
	byDir := map[string]*manifestDir{}
	for _, md := range mdirs {
		byDir[md.dir] = md
	}
	// What each kustomization refers to directly.
	refDirs := map[string][]string{}
	refFiles := map[string]bool{}
	referenced := map[string]bool{}
	var sel selection
	for _, md := range mdirs {
		if !md.kustomize {
			continue
		}
		dirs, files, err := kustRefs(md.dir)
		if err != nil {
			sel.skipped = append(sel.skipped, fmt.Sprintf("%s: %v", rel(root, md.dir), err))
			continue
		}
		refDirs[md.dir] = dirs
		for _, d := range dirs {
			if d != md.dir {
				referenced[d] = true
			}
		}
		for _, f := range files {
			refFiles[f] = true
			if d := filepath.Dir(f); d != md.dir {
				referenced[d] = true // a plain directory a kustomization takes files from
			}
		}
	}
	var closure func(d string, seen map[string]bool)
	closure = func(d string, seen map[string]bool) {
		if seen[d] {
			return
		}
		seen[d] = true
		for _, r := range refDirs[d] {
			closure(r, seen)
		}
	}
	var units []*unit
	for _, md := range mdirs {
		if referenced[md.dir] {
			continue // built by a kustomization: included through it
		}
		r := rel(root, md.dir)
		u := &unit{md: md, rel: r, rank: envRank(r), builds: map[string]bool{}}
		if md.kustomize {
			closure(md.dir, u.builds)
			for d := range u.builds {
				if d != md.dir && byDir[d] != nil && byDir[d].kustomize {
					u.overlay = true
				}
			}
		}
		units = append(units, u)
	}
	// Families: overlays that build a directory in common (union-find).
	parent := make([]int, len(units))
	for i := range parent {
		parent[i] = i
	}
	var find func(int) int
	find = func(i int) int {
		if parent[i] != i {
			parent[i] = find(parent[i])
		}
		return parent[i]
	}
	for i := range units {
		for j := i + 1; j < len(units); j++ {
			for d := range units[i].builds {
				if units[j].builds[d] {
					parent[find(j)] = find(i)
					break
				}
			}
		}
	}
	for i, u := range units {
		u.family = find(i)
	}
	sort.SliceStable(units, func(i, j int) bool {
		a, b := units[i], units[j]
		if a.rank != b.rank {
			return a.rank < b.rank
		}
		if a.overlay != b.overlay {
			return a.overlay // an environment of kustomize bases before plain variants
		}
		if pa, pb := preferred(root, a.md.dir), preferred(root, b.md.dir); pa != pb {
			return pa
		}
		return a.rel < b.rel
	})

	// One unit per family: the best ranked that renders; the others are
	// environments left out. A family of shared environments only gets its
	// bases.
	picked := map[int]*unit{}
	backups := map[int][]*unit{} // the family's other local environments, best first
	var candidates []*unit
	for _, u := range units {
		if u.rank >= rankShared {
			sel.alternatives = append(sel.alternatives, Alternative{Entry: u.rel, Reason: "shared environment", Detail: "not for local work"})
			if _, ok := picked[u.family]; !ok && u.overlay {
				picked[u.family] = nil
			}
			continue
		}
		if p := picked[u.family]; p != nil {
			backups[u.family] = append(backups[u.family], u)
			continue
		}
		picked[u.family] = u
		candidates = append(candidates, u)
	}
	// Families whose overlays were all shared environments: their bases.
	var fams []int
	for fam := range familiesWithoutPick(units, picked) {
		fams = append(fams, fam)
	}
	sort.Ints(fams)
	for _, fam := range fams {
		candidates = append(candidates, sharedBases(root, units, fam, refDirs, byDir)...)
	}

	seen := map[string]string{} // object key -> the unit defining it
	for i := 0; i < len(candidates); i++ {
		u := candidates[i]
		entries := u.md.entries(root)
		objs, err := kube.Render(&config.Config{Dir: root, Manifests: entries, Namespace: "default"})
		if err != nil {
			sel.skipped = append(sel.skipped, fmt.Sprintf("%s: %v", u.rel, err))
			// The next environment of its family, if it was the pick.
			if picked[u.family] == u && len(backups[u.family]) > 0 {
				next := backups[u.family][0]
				backups[u.family] = backups[u.family][1:]
				picked[u.family] = next
				candidates = append(candidates[:i+1], append([]*unit{next}, candidates[i+1:]...)...)
			}
			continue
		}
		var dup []string
		for _, o := range objs {
			if prev, ok := seen[objectKey(o)]; ok && prev != u.rel {
				dup = append(dup, strings.ToLower(o.GetKind())+"/"+o.GetName())
			}
		}
		if len(dup) > 0 {
			sort.Strings(dup)
			var shown []string
			for _, e := range entries {
				shown = append(shown, rel(root, e))
			}
			sel.alternatives = append(sel.alternatives, Alternative{Entry: strings.Join(shown, ", "), Reason: "variant", Detail: "defines " + joinShort(dup, 3) + ", already included"})
			continue
		}
		for _, o := range objs {
			seen[objectKey(o)] = u.rel
		}
		sel.entries = append(sel.entries, entries...)
		sel.included = append(sel.included, u)
		sel.objs = append(sel.objs, objs...)
	}
	var envs []Alternative
	for _, u := range units {
		for _, b := range backups[u.family] {
			if b == u {
				envs = append(envs, Alternative{Entry: u.rel, Reason: "environment", Detail: "another environment of the bases " + picked[u.family].rel + " builds"})
			}
		}
	}
	sel.alternatives = append(envs, sel.alternatives...)
	return sel
}

// familiesWithoutPick returns the families of overlays none of which was
// picked (all named for shared environments).
func familiesWithoutPick(units []*unit, picked map[int]*unit) map[int]bool {
	out := map[int]bool{}
	for _, u := range units {
		if p, ok := picked[u.family]; ok && p == nil && u.overlay {
			out[u.family] = true
		}
	}
	return out
}

// sharedBases returns, as units, the kustomize bases the overlays of family
// fam build on directly, leaving out a base another of them builds.
func sharedBases(root string, units []*unit, fam int, refDirs map[string][]string, byDir map[string]*manifestDir) []*unit {
	bases := map[string]bool{}
	for _, u := range units {
		if u.family != fam || !u.overlay {
			continue
		}
		for _, d := range refDirs[u.md.dir] {
			if byDir[d] != nil && envRank(rel(root, d)) < rankShared {
				bases[d] = true
			}
		}
	}
	var out []*unit
	for d := range bases {
		covered := false
		for o := range bases {
			if o == d {
				continue
			}
			seen := map[string]bool{}
			var walk func(string)
			walk = func(x string) {
				if seen[x] {
					return
				}
				seen[x] = true
				for _, r := range refDirs[x] {
					walk(r)
				}
			}
			walk(o)
			if seen[d] {
				covered = true
			}
		}
		if !covered {
			r := rel(root, d)
			out = append(out, &unit{md: byDir[d], rel: r, rank: envRank(r), family: fam})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].rel < out[j].rel })
	return out
}

// objectKey identifies an object for finding variants: kind and name,
// not the namespace (an overlay moves its bases' objects to its namespace,
// a plain variant of them leaves them in the default one).
func objectKey(o *unstructured.Unstructured) string {
	return o.GroupVersionKind().GroupKind().String() + "/" + o.GetName()
}

// joinShort joins the first n of items and says how many more there are.
func joinShort(items []string, n int) string {
	if len(items) <= n {
		return strings.Join(items, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(items[:n], ", "), len(items)-n)
}
