package config

import (
	"fmt"
	"sort"
	"strings"

	// Helm's own --set parser, so `set:` means what `helm --set` means.
	"helm.sh/helm/v4/pkg/strvals"
)

// SetValue sets one `set:` entry of a chart (key "a.b[0].c", value as
// `helm --set` reads it: numbers and booleans typed, everything else a
// string) into vals. The value is taken whole: commas in it are not
// Helm's list separators.
func SetValue(vals map[string]any, key, value string) error {
	if key == "" {
		return fmt.Errorf("empty key: name a value such as image.tag")
	}
	if strings.ContainsAny(key, "=,") {
		return fmt.Errorf("key %q: a key has no '=' or ','", key)
	}
	esc := strings.NewReplacer(`\`, `\\`, `,`, `\,`).Replace(value)
	if err := strvals.ParseInto(key+"="+esc, vals); err != nil {
		return fmt.Errorf("key %q: %v", key, err)
	}
	return nil
}

// SetValues is the values of c.Set, applied in key order.
func (c Chart) SetValues() (map[string]any, error) {
	keys := make([]string, 0, len(c.Set))
	for k := range c.Set {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	vals := map[string]any{}
	for _, k := range keys {
		if err := SetValue(vals, k, c.Set[k]); err != nil {
			return nil, fmt.Errorf("chart %s: set: %w", c.Chart, err)
		}
	}
	return vals, nil
}
