package kube

import (
	"reflect"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

func mustObj(t *testing.T, y string) *unstructured.Unstructured {
	t.Helper()
	var m map[string]any
	if err := yaml.Unmarshal([]byte(y), &m); err != nil {
		t.Fatal(err)
	}
	return &unstructured.Unstructured{Object: m}
}

func TestNormalizeRepo(t *testing.T) {
	tests := map[string]string{
		"hello":                          "docker.io/library/hello",
		"hello:1.2":                      "docker.io/library/hello",
		"docker.io/hello":                "docker.io/library/hello",
		"docker.io/library/hello:tag":    "docker.io/library/hello",
		"index.docker.io/library/hello":  "docker.io/library/hello",
		"team/hello":                     "docker.io/team/hello",
		"example.com/x/hello":            "example.com/x/hello",
		"example.com:5000/x/hello:v1":    "example.com:5000/x/hello",
		"localhost/hello":                "localhost/hello",
		"hello@sha256:abcd":              "docker.io/library/hello",
		"example.com/hello:v1@sha256:ab": "example.com/hello",
	}
	for in, want := range tests {
		if got := normalizeRepo(in); got != want {
			t.Errorf("normalizeRepo(%q) = %q, want %q", in, got, want)
		}
	}
}

func podSpecYAML(indent string) string {
	return indent + "initContainers:\n" +
		indent + "- name: init\n" + indent + "  image: docker.io/library/hello:old\n" +
		indent + "containers:\n" +
		indent + "- name: app\n" + indent + "  image: hello\n" + indent + "  imagePullPolicy: Always\n" +
		indent + "- name: side\n" + indent + "  image: example.com/x/side@sha256:0123\n" +
		indent + "- name: other\n" + indent + "  image: busybox:1.36\n"
}

func TestSubstitute(t *testing.T) {
	tmpl := "  template:\n    metadata:\n      labels: {app: w}\n    spec:\n" + podSpecYAML("      ")
	objs := []*unstructured.Unstructured{}
	for _, kind := range []string{"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet"} {
		objs = append(objs, mustObj(t, "apiVersion: apps/v1\nkind: "+kind+"\nmetadata: {name: w, namespace: ns}\nspec:\n"+tmpl))
	}
	objs = append(objs,
		mustObj(t, "apiVersion: batch/v1\nkind: Job\nmetadata: {name: w, namespace: ns}\nspec:\n"+tmpl),
		mustObj(t, "apiVersion: batch/v1\nkind: CronJob\nmetadata: {name: w, namespace: ns}\nspec:\n  jobTemplate:\n    spec:\n      template:\n        spec:\n"+podSpecYAML("          ")),
		mustObj(t, "apiVersion: v1\nkind: Pod\nmetadata: {name: w, namespace: ns}\nspec:\n"+podSpecYAML("  ")),
		mustObj(t, "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: w, namespace: ns}\ndata: {image: hello}\n"),
	)
	images := map[string]string{"hello": "hello:devloop-abc", "example.com/x/side": "example.com/x/side:devloop-def"}
	if err := Substitute(objs, images, nil); err != nil {
		t.Fatal(err)
	}
	var all []string
	for _, w := range workloadsRunning(objs, "hello") {
		all = append(all, w.Key())
	}
	if want := []string{"CronJob/ns/w", "DaemonSet/ns/w", "Deployment/ns/w", "Job/ns/w", "Pod/ns/w", "ReplicaSet/ns/w", "StatefulSet/ns/w"}; !reflect.DeepEqual(all, want) {
		t.Errorf("workloads running hello after substitution = %v\nwant %v", all, want)
	}
	for _, o := range objs[:7] {
		tm, ok := podTemplate(o)
		if !ok {
			t.Fatalf("%s: no pod template", o.GetKind())
		}
		spec := tm["spec"].(map[string]any)
		check := func(field string, i int, image, policy string) {
			c := spec[field].([]any)[i].(map[string]any)
			if c["image"] != image {
				t.Errorf("%s %s[%d] image = %v, want %s", o.GetKind(), field, i, c["image"], image)
			}
			if p, _ := c["imagePullPolicy"].(string); p != policy {
				t.Errorf("%s %s[%d] imagePullPolicy = %q, want %q", o.GetKind(), field, i, p, policy)
			}
		}
		check("initContainers", 0, "hello:devloop-abc", "IfNotPresent")
		check("containers", 0, "hello:devloop-abc", "IfNotPresent")
		check("containers", 1, "example.com/x/side:devloop-def", "IfNotPresent")
		check("containers", 2, "busybox:1.36", "")
	}
	if got := objs[7].Object["data"].(map[string]any)["image"]; got != "hello" {
		t.Errorf("ConfigMap data changed: %v", got)
	}
}

func TestSubstituteConflictingKeys(t *testing.T) {
	if err := Substitute(nil, map[string]string{"hello": "a", "docker.io/library/hello": "b"}, nil); err == nil {
		t.Error("want error for two keys naming the same repository")
	}
}

func TestLabel(t *testing.T) {
	dep := mustObj(t, `apiVersion: apps/v1
kind: Deployment
metadata: {name: w, labels: {app: w}}
spec:
  selector: {matchLabels: {app: w}}
  template:
    metadata: {labels: {app: w}}
    spec: {containers: [{name: a, image: x}]}
`)
	cron := mustObj(t, "apiVersion: batch/v1\nkind: CronJob\nmetadata: {name: c}\nspec:\n  jobTemplate:\n    spec:\n      template:\n        spec: {containers: [{name: a, image: x}]}\n")
	cm := mustObj(t, "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n")
	Label([]*unstructured.Unstructured{dep, cron, cm}, "proj")

	want := map[string]string{"app": "w", ManagedByLabel: "devloop", ProjectLabel: "proj"}
	if got := dep.GetLabels(); !reflect.DeepEqual(got, want) {
		t.Errorf("deployment labels = %v", got)
	}
	if got, _, _ := unstructured.NestedStringMap(dep.Object, "spec", "template", "metadata", "labels"); !reflect.DeepEqual(got, want) {
		t.Errorf("template labels = %v", got)
	}
	if got, _, _ := unstructured.NestedStringMap(dep.Object, "spec", "selector", "matchLabels"); !reflect.DeepEqual(got, map[string]string{"app": "w"}) {
		t.Errorf("selector changed: %v", got)
	}
	onlyOurs := map[string]string{ManagedByLabel: "devloop", ProjectLabel: "proj"}
	if got, _, _ := unstructured.NestedStringMap(cron.Object, "spec", "jobTemplate", "spec", "template", "metadata", "labels"); !reflect.DeepEqual(got, onlyOurs) {
		t.Errorf("cronjob template labels = %v", got)
	}
	if got := cm.GetLabels(); !reflect.DeepEqual(got, onlyOurs) {
		t.Errorf("configmap labels = %v", got)
	}
}

func TestWorkloadsOf(t *testing.T) {
	objs := []*unstructured.Unstructured{
		mustObj(t, "apiVersion: v1\nkind: Service\nmetadata: {name: s, namespace: web}\n"),
		mustObj(t, "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d, namespace: web}\n"),
		mustObj(t, "apiVersion: example.com/v1\nkind: Deployment\nmetadata: {name: fake, namespace: web}\n"),
		mustObj(t, "apiVersion: v1\nkind: Pod\nmetadata: {name: p, namespace: web}\n"),
	}
	want := []Workload{{"Deployment", "web", "d"}, {"Pod", "web", "p"}}
	if got := WorkloadsOf(objs); !reflect.DeepEqual(got, want) {
		t.Errorf("WorkloadsOf = %#v, want %#v", got, want)
	}
}

func TestSubstitutePutsACommandBehindTheSupervisor(t *testing.T) {
	obj := mustObj(t, `apiVersion: apps/v1
kind: Deployment
metadata: {name: w, namespace: ns}
spec:
  template:
    spec:
      containers:
      - {name: cmd, image: hello, command: ["/hello", "-v"], args: ["x"]}
      - {name: plain, image: hello, args: ["y"]}
      - {name: again, image: hello, command: ["/.devloop/supervisor", "/hello"]}
      - {name: other, image: side, command: ["/side"]}
`)
	images := map[string]string{"hello": "hello:devloop-abc", "side": "side:devloop-def"}
	if err := Substitute([]*unstructured.Unstructured{obj}, images, map[string]bool{"hello": true}); err != nil {
		t.Fatal(err)
	}
	cs := obj.Object["spec"].(map[string]any)["template"].(map[string]any)["spec"].(map[string]any)["containers"].([]any)
	want := [][]any{
		{"/.devloop/supervisor", "/hello", "-v"},
		nil,
		{"/.devloop/supervisor", "/hello"},
		{"/side"},
	}
	for i, c := range cs {
		cm := c.(map[string]any)
		got, _ := cm["command"].([]any)
		if !reflect.DeepEqual(got, want[i]) {
			t.Errorf("%s: command %v, want %v", cm["name"], got, want[i])
		}
	}
	if args := cs[0].(map[string]any)["args"]; !reflect.DeepEqual(args, []any{"x"}) {
		t.Errorf("args changed: %v", args)
	}
	gates := obj.Object["spec"].(map[string]any)["template"].(map[string]any)["spec"].(map[string]any)["readinessGates"]
	if !reflect.DeepEqual(gates, []any{map[string]any{"conditionType": UpToDateCondition}}) {
		t.Errorf("readiness gates %v, want devloop's once", gates)
	}
	bad := mustObj(t, "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n  - {name: c, image: hello, command: /hello}\n")
	if err := Substitute([]*unstructured.Unstructured{bad}, images, map[string]bool{"hello": true}); err == nil {
		t.Error("a command that is not a list: no error")
	}
}
