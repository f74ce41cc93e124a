package config

import (
	"slices"
	"strings"
	"testing"
)

func TestDependsOnErrors(t *testing.T) {
	tests := []struct {
		name, yaml string
		want       []string
	}{
		{
			name: "unknown service, with a suggestion",
			yaml: "name: p\nservices:\n  - name: api\n    dependsOn: [dbb]\n  - name: db\n",
			want: []string{`4:17: services[0].dependsOn[0]: unknown service "dbb"; did you mean "db"?`},
		},
		{
			name: "unknown service, nothing close",
			yaml: "name: p\nservices:\n  - name: api\n    dependsOn: [zzzzzzzzz]\n  - name: db\n",
			want: []string{`services[0].dependsOn[0]: unknown service "zzzzzzzzz"; services: api, db`},
		},
		{
			name: "itself",
			yaml: "name: p\nservices:\n  - name: api\n    dependsOn: [api]\n",
			want: []string{`4:17: services[0].dependsOn[0]: service "api" cannot depend on itself`},
		},
		{
			name: "twice",
			yaml: "name: p\nservices:\n  - name: api\n    dependsOn: [db, db]\n  - name: db\n",
			want: []string{`4:21: services[0].dependsOn[1]: "db" is listed twice`},
		},
		{
			name: "a cycle of two",
			yaml: "name: p\nservices:\n  - name: api\n    dependsOn: [db]\n  - name: db\n    dependsOn: [api]\n",
			want: []string{`4:17: services[0].dependsOn[0]: dependency cycle: api → db → api`},
		},
		{
			name: "a cycle of three behind a service outside it",
			yaml: "name: p\nservices:\n  - name: web\n    dependsOn: [a]\n  - name: a\n    dependsOn: [b]\n  - name: b\n    dependsOn: [c]\n  - name: c\n    dependsOn: [a]\n",
			want: []string{`6:17: services[1].dependsOn[0]: dependency cycle: a → b → c → a`},
		},
		{
			name: "not a list",
			yaml: "name: p\nservices:\n  - name: api\n    dependsOn: db\n",
			want: []string{`4:16: services[0].dependsOn: expected a list, got string "db"`},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := fixture(t)
			path := writeConfig(t, dir, tc.yaml)
			_, err := Load(path)
			if err == nil {
				t.Fatalf("Load succeeded, want %q", tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q; got:\n%v", w, err)
				}
			}
		})
	}
}

func TestDependsOnLoads(t *testing.T) {
	dir := fixture(t)
	path := writeConfig(t, dir, "name: p\nservices:\n  - name: web\n    dependsOn: [api]\n  - name: api\n    dependsOn: [db]\n  - name: db\n  - name: worker\n    dependsOn: [db]\n")
	cfg, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		names, want []string
	}{
		{nil, []string{"web", "api", "db", "worker"}},
		{[]string{"web"}, []string{"web", "api", "db"}},
		{[]string{"worker", "db"}, []string{"db", "worker"}},
		{[]string{"db"}, []string{"db"}},
		{[]string{"api", "api"}, []string{"api", "db"}},
	} {
		got, err := cfg.Select(tc.names)
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("Select(%q) = %q, %v; want %q", tc.names, got, err, tc.want)
		}
	}
	_, err = cfg.Select([]string{"wbe", "nope"})
	if err == nil || !strings.Contains(err.Error(), `"wbe"; did you mean "web"?`) || !strings.Contains(err.Error(), `"nope"`) {
		t.Errorf("Select of unknown names: %v", err)
	}
}
