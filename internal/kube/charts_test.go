package kube

import (
	"context"
	"errors"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/devloop-dev/devloop/internal/config"
	"github.com/devloop-dev/devloop/internal/helm"
)

// fakeReleaser records the releases it is asked to deploy and uninstall.
type fakeReleaser struct {
	deployed     []string // release names
	rendered     []string // each deploy's post-rendered hook manifest
	listed       []helm.Deployed
	uninstalled  []string
	hooks        map[string][]string // "namespace/release" → what Uninstall returns
	uninstallErr error               // and its error
}

func (f *fakeReleaser) Deploy(ctx context.Context, ch *helm.Chart, post helm.PostRenderer, _ time.Duration) (helm.Result, error) {
	f.deployed = append(f.deployed, ch.Spec.Release)
	r, err := helm.Render(ctx, ch, post)
	if err != nil {
		return helm.Result{}, err
	}
	f.rendered = append(f.rendered, strings.Join(r.Hooks, "---\n"))
	return helm.Result{Release: ch.Spec.Release, Namespace: ch.Spec.Namespace, Revision: len(f.deployed), Installed: len(f.deployed) == 1}, nil
}

func (f *fakeReleaser) Releases() ([]helm.Deployed, error) { return f.listed, nil }

func (f *fakeReleaser) Uninstall(ns, name string, _ time.Duration) ([]string, error) {
	f.uninstalled = append(f.uninstalled, ns+"/"+name)
	return f.hooks[ns+"/"+name], f.uninstallErr
}

const chartDeployment = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ .Release.Name }}-web
spec:
  selector: {matchLabels: {app: shop-web}}
  template:
    metadata: {labels: {app: shop-web}}
    spec:
      containers:
        - name: web
          image: {{ .Values.image }}:{{ .Values.tag }}
          imagePullPolicy: Always
`

const chartHook = `apiVersion: batch/v1
kind: Job
metadata:
  name: {{ .Release.Name }}-migrate
  annotations: {"helm.sh/hook": "pre-install,pre-upgrade"}
spec:
  template:
    spec:
      restartPolicy: Never
      containers: [{name: migrate, image: "{{ .Values.image }}:{{ .Values.tag }}"}]
`

func chartConfig(t *testing.T) *config.Config {
	cfg := deployConfig(t)
	writeFiles(t, cfg.Dir, map[string]string{
		"chart/Chart.yaml":                "apiVersion: v2\nname: shop\nversion: 0.1.0\n",
		"chart/values.yaml":               "image: hello\ntag: v1\n",
		"chart/templates/deployment.yaml": chartDeployment,
		"chart/templates/hook.yaml":       chartHook,
		"chart/templates/secret.yaml":     "apiVersion: v1\nkind: Secret\nmetadata: {name: shop-db}\nstringData: {password: hunter2}\n",
	})
	cfg.Charts = []config.Chart{{Chart: filepath.Join(cfg.Dir, "chart"), Release: "shop", Namespace: "dev"}}
	return cfg
}

func TestPrepareRendersChartsWithImagesAndLabels(t *testing.T) {
	cfg := chartConfig(t)
	m, err := Prepare(cfg, map[string]string{"hello": "hello:devloop-abc"})
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Releases) != 1 || len(m.Plain()) != 8 || len(m.Objects) != 10 {
		t.Fatalf("releases %d, plain %d, objects %d; want 1, 8, 10 (the hook is not an object of the release)", len(m.Releases), len(m.Plain()), len(m.Objects))
	}
	var dep *unstructured.Unstructured
	for _, o := range m.Releases[0].Objects {
		if o.GetKind() == "Deployment" {
			dep = o
		}
		if o.GetNamespace() != "dev" || o.GetLabels()[ProjectLabel] != "proj" {
			t.Errorf("%s/%s: namespace %q labels %v", o.GetKind(), o.GetName(), o.GetNamespace(), o.GetLabels())
		}
	}
	if dep == nil {
		t.Fatal("no deployment rendered")
	}
	if src := Source(dep); src != "shop/templates/deployment.yaml (release shop)" {
		t.Errorf("source = %q", src)
	}
	cs, _, _ := unstructured.NestedSlice(dep.Object, "spec", "template", "spec", "containers")
	c := cs[0].(map[string]any)
	if c["image"] != "hello:devloop-abc" || c["imagePullPolicy"] != "IfNotPresent" {
		t.Errorf("container = %v, want the built image with IfNotPresent", c)
	}
	tl, _, _ := unstructured.NestedStringMap(dep.Object, "spec", "template", "metadata", "labels")
	if tl[ProjectLabel] != "proj" || tl["app"] != "shop-web" {
		t.Errorf("pod template labels = %v", tl)
	}
	if got := keys(m.Services["web"]); !contains(got, "Deployment/dev/shop-web") {
		t.Errorf("web's workloads %v lack the chart's deployment", got)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func TestDeployAppliesPlainAndUpgradesReleases(t *testing.T) {
	api := newFakeAPI()
	d := testDeployer(t, api)
	d.cfg = chartConfig(t)
	rel := &fakeReleaser{}
	d.releases = rel
	res, err := d.Deploy(context.Background(), map[string]string{"hello": "hello:devloop-abc"}, DeployOptions{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Applied.Applied) != 8 {
		t.Errorf("applied %d objects, want the 8 plain ones: %q", len(res.Applied.Applied), res.Applied.Lines())
	}
	for k := range api.objs {
		if strings.Contains(k, "shop") {
			t.Errorf("the chart's %s was applied by devloop's applier, not its release", k)
		}
	}
	if !reflect.DeepEqual(rel.deployed, []string{"shop"}) {
		t.Errorf("deployed releases %v", rel.deployed)
	}
	if !strings.Contains(rel.rendered[0], "hello:devloop-abc") || !strings.Contains(rel.rendered[0], ProjectLabel) {
		t.Errorf("the release's hook was not post-rendered:\n%s", rel.rendered[0])
	}
	if got := res.ReleaseLines(); !reflect.DeepEqual(got, []string{"release shop revision 1 (installed)"}) {
		t.Errorf("ReleaseLines = %q", got)
	}

	rel.listed = []helm.Deployed{{Name: "shop", Namespace: "dev"}, {Name: "old", Namespace: "other"}}
	// What the releases' hooks made, as Helm leaves it after an uninstall:
	// shop's migrate Job (post-rendered: devloop's labels), a Job of old's
	// hook that someone replaced with their own, and a hook already gone.
	jobs := schema.GroupVersionResource{Group: "batch", Version: "v1", Resource: "jobs"}
	claims := schema.GroupVersionResource{Version: "v1", Resource: "persistentvolumeclaims"}
	namespaces := schema.GroupVersionResource{Version: "v1", Resource: "namespaces"}
	ours := map[string]string{ProjectLabel: d.cfg.Name, ManagedByLabel: ManagedByValue}
	hookObj := func(gvr schema.GroupVersionResource, apiVersion, kind, ns, name string, labels map[string]string) string {
		o := &unstructured.Unstructured{}
		o.SetAPIVersion(apiVersion)
		o.SetKind(kind)
		o.SetNamespace(ns)
		o.SetName(name)
		o.SetLabels(labels)
		o.SetAnnotations(map[string]string{"helm.sh/hook": "pre-install"})
		api.objs[key(gvr, ns, name)] = o
		meta := "metadata:\n  name: " + name + "\n  annotations: {\"helm.sh/hook\": pre-install}\n"
		if ns == "" {
			return "apiVersion: " + apiVersion + "\nkind: " + kind + "\n" + meta
		}
		return "apiVersion: " + apiVersion + "\nkind: " + kind + "\n" + meta + "  namespace: " + ns + "\n"
	}
	hookJob := func(ns, name string, labels map[string]string) string {
		return hookObj(jobs, "batch/v1", "Job", ns, name, labels)
	}
	rel.hooks = map[string][]string{
		"dev/shop": {
			hookJob("dev", "shop-migrate", ours),
			// a claim made a hook so that an uninstall keeps its data, and a namespace: both stay
			hookObj(claims, "v1", "PersistentVolumeClaim", "dev", "shop-data", ours),
			hookObj(namespaces, "v1", "Namespace", "", "shop-extra", ours),
		},
		"other/old": {hookJob("other", "old-seed", map[string]string{"team": "db"}), "apiVersion: batch/v1\nkind: Job\nmetadata: {name: old-gone}\n"},
	}
	removed, err := d.DeleteAll(context.Background(), false)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(rel.uninstalled, []string{"dev/shop", "other/old"}) {
		t.Errorf("uninstalled %v", rel.uninstalled)
	}
	for _, want := range []string{"release shop (helm uninstall)", "job/shop-migrate deleted (hook of release shop)",
		"job/old-seed kept (not devloop's) (hook of release old)"} {
		if !contains(removed.Deleted, want) {
			t.Errorf("deleted = %q, want %q among them", removed.Deleted, want)
		}
	}
	if _, ok := api.objs[key(jobs, "dev", "shop-migrate")]; ok {
		t.Error("shop's hook Job is still there")
	}
	if _, ok := api.objs[key(jobs, "other", "old-seed")]; !ok {
		t.Error("a Job without devloop's labels was deleted")
	}
	if _, ok := api.objs[key(claims, "dev", "shop-data")]; !ok || !contains(removed.KeptVolumes, "persistentvolumeclaim/shop-data") {
		t.Errorf("the hook's claim: there %v, kept volumes %q; want it kept and said so", ok, removed.KeptVolumes)
	}
	if _, ok := api.objs[key(namespaces, "", "shop-extra")]; !ok {
		t.Error("a hook's namespace was deleted")
	}

	// down --volumes takes the hook's claim too; an uninstall that fails
	// after Helm purged the release still has its hooks' objects removed.
	rel.listed = []helm.Deployed{{Name: "shop", Namespace: "dev"}}
	hookJob("dev", "shop-migrate", ours)
	rel.uninstallErr = errors.New("uninstallation completed with 1 error(s): timed out")
	removed, err = d.DeleteAll(context.Background(), true)
	if err == nil || !strings.Contains(err.Error(), "timed out") {
		t.Errorf("DeleteAll = %v, want the uninstall's error", err)
	}
	if _, ok := api.objs[key(jobs, "dev", "shop-migrate")]; ok {
		t.Error("a failed uninstall left the hook's Job")
	}
	if _, ok := api.objs[key(claims, "dev", "shop-data")]; ok || contains(removed.KeptVolumes, "persistentvolumeclaim/shop-data") {
		t.Errorf("with volumes, the hook's claim: there %v, kept %q; want it deleted", ok, removed.KeptVolumes)
	}
}

func TestDeployBrokenChartAppliesNothing(t *testing.T) {
	api := newFakeAPI()
	d := testDeployer(t, api)
	d.cfg = chartConfig(t)
	writeFiles(t, d.cfg.Dir, map[string]string{"chart/templates/broken.yaml": "a: {{ .Values.nope.deeper }}\n"})
	rel := &fakeReleaser{}
	d.releases = rel
	_, err := d.Deploy(context.Background(), nil, DeployOptions{})
	if err == nil || !strings.Contains(err.Error(), "shop/templates/broken.yaml:1:") {
		t.Fatalf("err = %v, want Helm's template error with file and line", err)
	}
	if len(api.objs) != 0 || len(rel.deployed) != 0 {
		t.Errorf("applied %v and deployed %v after a render error", api.keys(), rel.deployed)
	}
}

func TestPrepareChartObjectDefinedTwice(t *testing.T) {
	cfg := chartConfig(t)
	writeFiles(t, cfg.Dir, map[string]string{"chart/templates/web.yaml": "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec: {template: {spec: {containers: [{name: a, image: x}]}}}\n"})
	_, err := Prepare(cfg, nil)
	if err == nil || !strings.Contains(err.Error(), "deployment web is defined twice") || !strings.Contains(err.Error(), "shop/templates/web.yaml (release shop)") {
		t.Fatalf("err = %v", err)
	}
}

func TestPostRendererLeavesOtherImages(t *testing.T) {
	out, err := PostRenderer(map[string]string{"hello": "hello:devloop-1"}, nil, "p")([]byte(`apiVersion: v1
kind: Pod
metadata: {name: a}
spec: {containers: [{name: a, image: hello:v1}, {name: b, image: redis:7, imagePullPolicy: Always}]}
---
# only a comment
---
apiVersion: v1
kind: ConfigMap
metadata: {name: c}
`))
	if err != nil {
		t.Fatal(err)
	}
	objs, err := parseManifests(out, "out")
	if err != nil {
		t.Fatal(err)
	}
	if len(objs) != 2 {
		t.Fatalf("%d objects:\n%s", len(objs), out)
	}
	cs, _, _ := unstructured.NestedSlice(objs[0].Object, "spec", "containers")
	if cs[0].(map[string]any)["image"] != "hello:devloop-1" || cs[1].(map[string]any)["image"] != "redis:7" || cs[1].(map[string]any)["imagePullPolicy"] != "Always" {
		t.Errorf("containers = %v", cs)
	}
	if objs[1].GetLabels()[ProjectLabel] != "p" {
		t.Errorf("configmap labels %v", objs[1].GetLabels())
	}
}

func TestDeployHoldsAReleaseWhoseServicesAreAllHeld(t *testing.T) {
	for _, tc := range []struct {
		name string
		hold []string
		want []string // releases deployed
	}{
		{"its service held", []string{"web"}, nil},
		{"another service held", []string{"api"}, []string{"shop"}},
		{"nothing held", nil, []string{"shop"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			api := newFakeAPI()
			d := testDeployer(t, api)
			d.cfg = chartConfig(t)
			rel := &fakeReleaser{}
			d.releases = rel
			var log waitLog
			res, err := d.Deploy(context.Background(), map[string]string{"hello": "hello:devloop-abc"},
				DeployOptions{All: true, Hold: tc.hold, Timeout: 10 * time.Second, Waiting: log.waiting})
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(rel.deployed, tc.want) {
				t.Errorf("deployed releases %v, want %v", rel.deployed, tc.want)
			}
			if len(tc.want) == 0 {
				if len(res.Releases) != 0 || len(res.ReleaseLines()) != 0 {
					t.Errorf("a held release has results %v", res.Releases)
				}
				if contains(log.sorted(), "Deployment/dev/shop-web") {
					t.Errorf("waited for the held release's deployment: %v", log.sorted())
				}
			}
		})
	}
}

func TestReleaseWithoutServiceWorkloadsIsNeverHeld(t *testing.T) {
	cfg := chartConfig(t)
	writeFiles(t, cfg.Dir, map[string]string{"chart/templates/deployment.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: only-config}\n"})
	m, err := Prepare(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if m.releaseHeld(m.Releases[0], map[string]bool{"Deployment/dev/api": true}) {
		t.Error("a release that runs no service's image was held")
	}
}
