package config

import (
	"encoding/json"
	"reflect"
	"sort"
)

// Diff names what differs between two loaded configs, as key paths in the
// file's terms: "manifests", "cluster.ingress", "services.api" (added or
// removed), "services.api.sync". Services are matched by name, so reordering
// them is no change; paths are at most three keys deep. Formatting and
// comments are never a change. Empty when a and b mean the same.
func Diff(a, b *Config) []string {
	var out []string
	diffValue("", toTree(a), toTree(b), 0, &out)
	sort.Strings(out)
	return out
}

// toTree turns c into JSON-shaped maps, with services keyed by name.
func toTree(c *Config) map[string]any {
	var m map[string]any
	data, _ := json.Marshal(c) // plain structs of strings, ints, maps: cannot fail
	_ = json.Unmarshal(data, &m)
	if svcs, ok := m["services"].([]any); ok {
		byName := map[string]any{}
		for _, s := range svcs {
			if sm, ok := s.(map[string]any); ok {
				name, _ := sm["name"].(string)
				byName[name] = sm
			}
		}
		m["services"] = byName
	}
	return m
}

func diffValue(path string, a, b any, depth int, out *[]string) {
	if reflect.DeepEqual(a, b) {
		return
	}
	am, aok := a.(map[string]any)
	bm, bok := b.(map[string]any)
	if !aok || !bok || depth == 3 {
		*out = append(*out, path)
		return
	}
	keys := map[string]bool{}
	for k := range am {
		keys[k] = true
	}
	for k := range bm {
		keys[k] = true
	}
	for k := range keys {
		p := k
		if path != "" {
			p = path + "." + k
		}
		diffValue(p, am[k], bm[k], depth+1, out)
	}
}
