package kube

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/devloop-dev/devloop/internal/config"
)

func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// summary is "Kind/namespace/name@source" per object.
func summary(objs []*unstructured.Unstructured, dir string) []string {
	var out []string
	for _, o := range objs {
		src := strings.TrimPrefix(Source(o), dir+string(filepath.Separator))
		out = append(out, o.GetKind()+"/"+o.GetNamespace()+"/"+o.GetName()+"@"+src)
	}
	return out
}

const deployYAML = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  template:
    spec:
      containers:
      - name: app
        image: hello
`

func TestRender(t *testing.T) {
	files := map[string]string{
		"multi.yaml": "# leading comment only\n---\n" + deployYAML + "---\n---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: other\n---\napiVersion: v1\nkind: Service\nmetadata:\n  name: web\n  namespace: other\n",
		"list.yaml": `apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: ConfigMap
  metadata: {name: a}
- apiVersion: rbac.authorization.k8s.io/v1
  kind: ClusterRole
  metadata: {name: reader}
`,
		"dir/b.yml":               "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: b\n",
		"dir/a.json":              `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"a-json"}}`,
		"dir/notes.txt":           "not a manifest",
		"dir/sub/c.yaml":          "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: nested\n",
		"glob/x-1.yaml":           "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x1\n",
		"glob/x-2.yaml":           "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x2\n",
		"glob/y.yaml":             "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: y\n",
		"kust/kustomization.yaml": "namePrefix: k-\nresources:\n- cm.yaml\n",
		"kust/cm.yaml":            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: kcm\n",
	}
	tests := []struct {
		name      string
		manifests []string
		want      []string
	}{
		{"multi-document file, empty documents skipped", []string{"multi.yaml"}, []string{
			"Deployment/dev/web@multi.yaml#1", "Namespace//other@multi.yaml#2", "Service/other/web@multi.yaml#3"}},
		{"List expanded, cluster-scoped kinds keep no namespace", []string{"list.yaml"}, []string{
			"ConfigMap/dev/a@list.yaml#0[0]", "ClusterRole//reader@list.yaml#0[1]"}},
		{"directory: sorted, yaml/yml/json only, not recursive", []string{"dir"}, []string{
			"ConfigMap/dev/a-json@dir/a.json#0", "ConfigMap/dev/b@dir/b.yml#0"}},
		{"glob", []string{"glob/x-*.yaml"}, []string{
			"ConfigMap/dev/x1@glob/x-1.yaml#0", "ConfigMap/dev/x2@glob/x-2.yaml#0"}},
		{"kustomize directory", []string{"kust"}, []string{"ConfigMap/dev/k-kcm@kust (kustomize)"}},
	}
	dir := t.TempDir()
	writeFiles(t, dir, files)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := &config.Config{Namespace: "dev"}
			for _, m := range tt.manifests {
				cfg.Manifests = append(cfg.Manifests, filepath.Join(dir, m))
			}
			objs, err := Render(cfg)
			if err != nil {
				t.Fatalf("Render: %v", err)
			}
			if got := summary(objs, dir); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got  %q\nwant %q", got, tt.want)
			}
		})
	}
}

func TestRenderErrors(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"bad.yaml":                   deployYAML + "---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: [unclosed\n",
		"nokind.yaml":                "apiVersion: v1\nmetadata:\n  name: x\n",
		"noname.yaml":                "apiVersion: v1\nkind: ConfigMap\n",
		"dup.yaml":                   "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n",
		"badkust/kustomization.yaml": "resources:\n- missing.yaml\n",
	})
	tests := []struct {
		manifest string
		want     []string
	}{
		{"bad.yaml", []string{filepath.Join(dir, "bad.yaml"), "document 1"}},
		{"nokind.yaml", []string{"nokind.yaml", "document 0", "no kind"}},
		{"noname.yaml", []string{"noname.yaml", "ConfigMap has no metadata.name"}},
		{"dup.yaml", []string{"configmap x is defined twice", "dup.yaml#0", "dup.yaml#1"}},
		{"missing.yaml", []string{"missing.yaml"}},
		{"none-*.yaml", []string{"matched no files"}},
		{"badkust", []string{"rendering kustomization", "badkust"}},
	}
	for _, tt := range tests {
		t.Run(tt.manifest, func(t *testing.T) {
			_, err := Render(&config.Config{Manifests: []string{filepath.Join(dir, tt.manifest)}})
			if err == nil {
				t.Fatal("Render succeeded, want error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestRenderConfigNamespace(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"d.yaml": deployYAML})
	objs, err := Render(&config.Config{Namespace: "team", Manifests: []string{filepath.Join(dir, "d.yaml")}})
	if err != nil {
		t.Fatal(err)
	}
	if ns := objs[0].GetNamespace(); ns != "team" {
		t.Errorf("namespace = %q, want the config's (team)", ns)
	}
}

// Rendered objects must hold JSON number types only: client-go deep-copies
// them (NestedSlice, the dynamic client) and panics on a plain int.
func TestRenderNumbersAreJSONTypes(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("kustomization.yaml", "resources: [svc.yaml]\n")
	write("svc.yaml", "apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec:\n  ports: [{port: 80, targetPort: 8080}]\n")
	for _, manifests := range [][]string{{dir}, {filepath.Join(dir, "svc.yaml")}} {
		objs, err := Render(&config.Config{Namespace: "default", Manifests: manifests})
		if err != nil {
			t.Fatal(err)
		}
		ports, found, err := unstructured.NestedSlice(objs[0].Object, "spec", "ports")
		if err != nil || !found {
			t.Fatalf("%v: ports: %v %v", manifests, found, err)
		}
		if p := ports[0].(map[string]any)["port"]; p != int64(80) {
			t.Fatalf("%v: port is %T %v, want int64 80", manifests, p, p)
		}
		_ = objs[0].DeepCopy()
	}
}
