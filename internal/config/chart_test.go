package config

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"
)

func chartFixture(t *testing.T) string {
	dir := fixture(t)
	for name, body := range map[string]string{
		"chart/Chart.yaml":  "apiVersion: v2\nname: web\nversion: 0.1.0\n",
		"chart/values.yaml": "a: 1\n",
		"values/dev.yaml":   "a: 2\n",
		"pkg/web-0.1.0.tgz": "not really\n",
	} {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestLoadChartsDefaults(t *testing.T) {
	dir := chartFixture(t)
	cfg, err := Load(writeConfig(t, dir, `name: p
namespace: dev
charts:
  - chart: ./chart
    values: [values/dev.yaml]
    set: {replicas: 2, image.tag: "v1,v2"}
  - chart: pkg/web-0.1.0.tgz
    release: web2
    namespace: other
`))
	if err != nil {
		t.Fatal(err)
	}
	want := []Chart{
		{Chart: filepath.Join(dir, "chart"), Release: "chart", Namespace: "dev", Values: []string{filepath.Join(dir, "values/dev.yaml")},
			Set: map[string]string{"replicas": "2", "image.tag": "v1,v2"}},
		{Chart: filepath.Join(dir, "pkg/web-0.1.0.tgz"), Release: "web2", Namespace: "other"},
	}
	if !reflect.DeepEqual(cfg.Charts, want) {
		t.Errorf("charts = %+v\nwant %+v", cfg.Charts, want)
	}
	vals, err := cfg.Charts[0].SetValues()
	if err != nil {
		t.Fatal(err)
	}
	if got := vals["image"].(map[string]any)["tag"]; got != "v1,v2" || vals["replicas"] != int64(2) {
		t.Errorf("set values = %#v", vals)
	}
}

func TestDefaultRelease(t *testing.T) {
	for in, want := range map[string]string{"/a/chart": "chart", "/a/web-0.1.0.tgz": "web", "/a/My-App.tgz": "my-app", "/a/x-1.tar.gz": "x"} {
		if got := DefaultRelease(in); got != want {
			t.Errorf("DefaultRelease(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestChartErrors(t *testing.T) {
	dir := chartFixture(t)
	tests := []struct{ yaml, want string }{
		{"charts:\n  - chart: nochart\n", `3:12: charts[0].chart: chart ` + filepath.Join(dir, "nochart") + `: does not exist`},
		{"charts:\n  - chart: k8s\n", `charts[0].chart: chart ` + filepath.Join(dir, "k8s") + ` has no Chart.yaml`},
		{"charts:\n  - chart: file.txt\n", `charts[0].chart: chart ` + filepath.Join(dir, "file.txt") + ` is a file but not a packaged chart`},
		{"charts:\n  - release: x\n", `3:5: charts[0]: chart: required`},
		{"charts:\n  - chart: chart\n    release: Bad_Name\n", `4:14: charts[0].release: invalid release name "Bad_Name"`},
		{"charts:\n  - chart: chart\n  - chart: chart\n", `charts[1].release: release chart in namespace default is also made by charts[0]`},
		{"charts:\n  - chart: chart\n    values: [nope.yaml]\n", `4:14: charts[0].values[0]: values file ` + filepath.Join(dir, "nope.yaml")},
		{"charts:\n  - chart: chart\n    set: {\"a[x]\": 1}\n", `charts[0].set.a[x]: key "a[x]"`},
		{"charts:\n  - chart: ../outside\n", `charts[0].chart: chart ` + filepath.Join(filepath.Dir(dir), "outside") + ` is outside the project directory`},
	}
	for _, tt := range tests {
		_, err := Load(writeConfig(t, dir, "name: p\n"+tt.yaml))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%q:\n got %v\nwant %s", tt.yaml, err, tt.want)
		}
	}
}

func TestSetValue(t *testing.T) {
	vals := map[string]any{}
	for k, v := range map[string]string{"a.b": "x,y", "n": "3", "t": "true", "s": `back\slash`, "l[1]": "z"} {
		if err := SetValue(vals, k, v); err != nil {
			t.Fatalf("%s: %v", k, err)
		}
	}
	want := map[string]any{"a": map[string]any{"b": "x,y"}, "n": int64(3), "t": true, "s": `back\slash`, "l": []any{nil, "z"}}
	if !reflect.DeepEqual(vals, want) {
		t.Errorf("vals = %#v\nwant %#v", vals, want)
	}
	for _, k := range []string{"", "a=b", "a,b"} {
		if err := SetValue(map[string]any{}, k, "v"); err == nil {
			t.Errorf("key %q: no error", k)
		}
	}
}

// FuzzSetValue: a set entry never panics, and a plain key takes any value
// whole (commas, backslashes, '=' and all).
func FuzzSetValue(f *testing.F) {
	for _, s := range [][2]string{{"a.b", "x,y"}, {"l[2]", `\`}, {"a[0].b", "c=d"}, {"x", ""}, {"a.b[", "v"}, {"a[99999999]", "v"}} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, key, value string) {
		if strings.Contains(key, "[") && len(key) > 64 {
			return // list indexes allocate; Helm bounds them, not us
		}
		vals := map[string]any{}
		err := SetValue(vals, key, value)
		plain := key != "" && !strings.ContainsAny(key, "=,.[]\\{}") && utf8.ValidString(key) && utf8.ValidString(value) && strings.TrimSpace(key) == key
		if !plain || err != nil {
			return
		}
		got, ok := vals[key]
		if !ok {
			t.Fatalf("SetValue(%q, %q) set %#v", key, value, vals)
		}
		if s, isStr := got.(string); isStr && s != value {
			t.Fatalf("SetValue(%q, %q) = %q", key, value, s)
		}
	})
}
