package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fixture creates a project directory with the files the test configs
// refer to and returns its path.
func fixture(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	files := map[string]string{
		"Dockerfile":              "FROM scratch\n",
		"app/Dockerfile":          "FROM scratch\n",
		"app/Dockerfile.dev":      "FROM scratch\n",
		"k8s/kustomization.yaml":  "resources: [deploy.yaml]\n",
		"k8s/deploy.yaml":         "kind: Deployment\n",
		"plain/a.yaml":            "kind: Service\n",
		"static/index.html":       "<p>hi</p>\n",
		"file.txt":                "not a directory\n",
		"raw/one.yaml":            "kind: ConfigMap\n",
		"raw/two.yaml":            "kind: ConfigMap\n",
		"kust2/Kustomization":     "resources: []\n",
		"kust3/kustomization.yml": "resources: []\n",
	}
	for name, body := range files {
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

func writeConfig(t testing.TB, dir, body string) string {
	t.Helper()
	p := filepath.Join(dir, "devloop.yaml")
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoadErrors(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		// want is "line:col: key.path: message fragment"; each must appear
		// in the error, on its own line, located exactly.
		want []string
		// count, if set, is the exact number of problems expected.
		count int
	}{
		{
			name:  "unknown top-level key",
			yaml:  "name: p\nservics: []\nmanifests: [k8s]\n",
			want:  []string{`2:1: servics: unknown key; did you mean "services"?`},
			count: 1,
		},
		{
			name: "unknown nested key",
			yaml: "name: p\nservices:\n  - name: web\n    imagee: web\n",
			want: []string{`4:5: services[0].imagee: unknown key; did you mean "image"?`},
		},
		{
			name: "unknown key case-insensitive suggestion",
			yaml: "name: p\nservices:\n  - name: web\n    portforwards: []\n",
			want: []string{`4:5: services[0].portforwards: unknown key; did you mean "portForwards"?`},
		},
		{
			name: "unknown key lists valid keys when nothing is close",
			yaml: "name: p\ncluster:\n  zzzzzzzz: 1\nmanifests: [k8s]\n",
			want: []string{`3:3: cluster.zzzzzzzz: unknown key; valid keys here: context, delivery, ingress, kubernetesVersion, name, nodeImage, registry, workers`},
		},
		{
			name: "push without a registry",
			yaml: "name: p\ncluster:\n  delivery: push\nmanifests: [k8s]\n",
			want: []string{`cluster.delivery: delivery "push" needs the registry: set cluster.registry.enabled: true, or delivery: stream`},
		},
		{
			name: "unknown delivery",
			yaml: "name: p\ncluster:\n  delivery: copy\nmanifests: [k8s]\n",
			want: []string{`cluster.delivery: unknown delivery "copy": expected "stream"`},
		},
		{
			name: "too many workers",
			yaml: "name: p\ncluster:\n  workers: 12\nmanifests: [k8s]\n",
			want: []string{`cluster.workers: 12 worker nodes: must be between 0 and 9`},
		},
		{
			name: "registry port taken by the ingress",
			yaml: "name: p\ncluster:\n  registry:\n    enabled: true\n    port: 8080\nmanifests: [k8s]\n",
			want: []string{`cluster.ingress.httpPort: host port 8080 is already used by cluster.registry.port`},
		},
		{
			name: "bad registry image",
			yaml: "name: p\ncluster:\n  registry:\n    enabled: true\n    image: \"Bad Image\"\nmanifests: [k8s]\n",
			want: []string{`cluster.registry.image: invalid image reference "Bad Image"`},
		},
		{
			name:  "integer given as string",
			yaml:  "name: p\ncluster:\n  ingress:\n    httpPort: \"8080\"\nmanifests: [k8s]\n",
			want:  []string{`4:15: cluster.ingress.httpPort: expected an integer, got string "8080"`},
			count: 1,
		},
		{
			name: "string given as integer",
			yaml: "name: 123\nmanifests: [k8s]\n",
			want: []string{`1:7: name: expected a string, got integer 123 (quote it to make it a string)`},
		},
		{
			name:  "list given as mapping",
			yaml:  "name: p\nservices:\n  name: web\n",
			want:  []string{`3:3: services: expected a list, got a mapping`},
			count: 1,
		},
		{
			name:  "integer too large",
			yaml:  "name: p\nservices:\n  - name: web\n    portForwards: [{local: 99999999999999999999, port: 80}]\n",
			want:  []string{`4:28: services[0].portForwards[0].local: integer 99999999999999999999 is too large`},
			count: 1,
		},
		{
			name: "yes is not a boolean",
			yaml: "name: p\ncluster:\n  ingress:\n    enabled: yes\nmanifests: [k8s]\n",
			want: []string{`4:14: cluster.ingress.enabled: expected true or false, got string "yes"`},
		},
		{
			name: "env value must be a scalar",
			yaml: "name: p\nservices:\n  - name: web\n    build:\n      preBuild:\n        run: make\n        env:\n          A: [1]\n",
			want: []string{`8:14: services[0].build.preBuild.env.A: expected a string value, got a list`},
		},
		{
			name:  "missing project name",
			yaml:  "manifests: [k8s]\n",
			want:  []string{`1:1: name: required`},
			count: 1,
		},
		{
			name: "missing service name",
			yaml: "name: p\nservices:\n  - image: web\n",
			want: []string{`3:5: services[0].name: required`},
		},
		{
			name: "missing sync src and dest",
			yaml: "name: p\nservices:\n  - name: web\n    sync:\n      - run: echo\n",
			want: []string{`5:9: services[0].sync[0].src: required`, `5:9: services[0].sync[0].dest: required`},
		},
		{
			name: "missing portForward local and port",
			yaml: "name: p\nservices:\n  - name: web\n    portForwards:\n      - resource: pod/web\n",
			want: []string{`5:9: services[0].portForwards[0].local: required`, `5:9: services[0].portForwards[0].port: required`},
		},
		{
			name: "duplicate service name",
			yaml: "name: p\nservices:\n  - name: web\n  - name: web\n    build: {context: app}\n",
			want: []string{`4:11: services[1].name: duplicate service name "web" (also services[0])`},
		},
		{
			name: "project name is not a DNS label",
			yaml: "name: Hello_World\nmanifests: [k8s]\n",
			want: []string{`1:7: name: invalid name "Hello_World": a lowercase RFC 1123 label`},
		},
		{
			name: "service name is not a DNS label",
			yaml: "name: p\nservices:\n  - name: web.api\n",
			want: []string{`3:11: services[0].name: invalid name "web.api"`},
		},
		{
			name: "port out of range",
			yaml: "name: p\nservices:\n  - name: web\n    portForwards:\n      - local: 8000\n        port: 80\n      - local: 70000\n        port: 81\n",
			want: []string{`7:16: services[0].portForwards[1].local: port 70000 is out of range (1-65535)`},
		},
		{
			name: "local port reused across services",
			yaml: "name: p\nservices:\n  - name: web\n    portForwards: [{local: 9000, port: 80}]\n  - name: api\n    build: {context: app}\n    portForwards: [{local: 9000, port: 81}]\n",
			want: []string{`7:28: services[1].portForwards[0].local: host port 9000 is already used by services[0].portForwards[0].local`},
		},
		{
			name: "local port equals ingress http port",
			yaml: "name: p\nservices:\n  - name: web\n    portForwards: [{local: 8080, port: 80}]\n",
			want: []string{`4:28: services[0].portForwards[0].local: host port 8080 is already used by cluster.ingress.httpPort`},
		},
		{
			name:  "ingress disabled frees its ports",
			yaml:  "name: p\ncluster: {ingress: {enabled: false}}\nservices:\n  - name: web\n    portForwards: [{local: 8080, port: 80}, {local: 8080, port: 81}]\n",
			want:  []string{`5:53: services[0].portForwards[1].local: host port 8080 is already used by services[0].portForwards[0].local`},
			count: 1,
		},
		{
			name: "ingress ports equal",
			yaml: "name: p\ncluster:\n  ingress: {httpPort: 9000, httpsPort: 9000}\nmanifests: [k8s]\n",
			want: []string{`3:40: cluster.ingress.httpsPort: host port 9000 is already used by cluster.ingress.httpPort`},
		},
		{
			name: "build context missing",
			yaml: "name: p\nservices:\n  - name: web\n    build:\n      context: nope\n",
			want: []string{`5:16: services[0].build.context: build context `, `nope: does not exist`},
		},
		{
			name: "build context is a file",
			yaml: "name: p\nservices:\n  - name: web\n    build:\n      context: file.txt\n",
			want: []string{`5:16: services[0].build.context: build context `, `file.txt is not a directory`},
		},
		{
			name: "Dockerfile missing",
			yaml: "name: p\nservices:\n  - name: web\n    build:\n      context: app\n      dockerfile: Dockerfile.prod\n",
			want: []string{`6:19: services[0].build.dockerfile: Dockerfile `, filepath.Join("app", "Dockerfile.prod") + `: does not exist`},
		},
		{
			name: "default Dockerfile missing",
			yaml: "name: p\nservices:\n  - name: web\n    build: {context: static}\n",
			want: []string{`4:12: services[0].build.dockerfile: Dockerfile `, filepath.Join("static", "Dockerfile") + `: does not exist`},
		},
		{
			name: "manifest glob matches nothing",
			yaml: "name: p\nmanifests:\n  - k8s/*.json\n",
			want: []string{`3:5: manifests[0]: glob `, `*.json matches no files`},
		},
		{
			name: "manifest file missing",
			yaml: "name: p\nmanifests:\n  - k8s\n  - missing.yaml\n",
			want: []string{`4:5: manifests[1]: manifest `, `missing.yaml: does not exist`},
		},
		{
			name: "manifest directory without kustomization",
			yaml: "name: p\nmanifests: [plain]\n",
			want: []string{`2:13: manifests[0]: directory `, `has no kustomization.yaml, kustomization.yml or Kustomization; to apply every file in it use a glob such as`},
		},
		{
			name: "sync dest not absolute",
			yaml: "name: p\nservices:\n  - name: web\n    sync:\n      - src: static\n        dest: app/static\n",
			want: []string{`6:15: services[0].sync[0].dest: "app/static" is not an absolute container path`},
		},
		{
			name: "sync src missing",
			yaml: "name: p\nservices:\n  - name: web\n    sync:\n      - {src: assets, dest: /app}\n",
			want: []string{`5:15: services[0].sync[0].src: sync source `, `assets: does not exist`},
		},
		{
			name: "portForward resource of unknown kind",
			yaml: "name: p\nservices:\n  - name: web\n    portForwards:\n      - {local: 9000, port: 80, resource: services/web}\n",
			want: []string{`5:43: services[0].portForwards[0].resource: unknown resource kind "services"; did you mean "service"?`},
		},
		{
			name: "portForward resource without name",
			yaml: "name: p\nservices:\n  - name: web\n    portForwards:\n      - {local: 9000, port: 80, resource: web}\n",
			want: []string{`5:43: services[0].portForwards[0].resource: "web": expected "<kind>/<name>"`},
		},
		{
			name: "listenAddress is not an IP",
			yaml: "name: p\ncluster:\n  ingress:\n    listenAddress: localhost\nmanifests: [k8s]\n",
			want: []string{`4:20: cluster.ingress.listenAddress: "localhost" is not an IP address`},
		},
		{
			name: "portForward address is not an IP",
			yaml: "name: p\nservices:\n  - name: web\n    portForwards:\n      - {local: 9000, port: 80, address: my-host}\n",
			want: []string{`5:42: services[0].portForwards[0].address: "my-host" is not an IP address`},
		},
		{
			name: "image with a tag",
			yaml: "name: p\nservices:\n  - name: web\n    image: hello:latest\n",
			want: []string{`4:12: services[0].image: image "hello:latest" has a tag or digest: give only the repository ("hello"); devloop tags every build itself`},
		},
		{
			name: "image with a digest",
			yaml: "name: p\nservices:\n  - name: web\n    image: example.com/web@sha256:" + strings.Repeat("a", 64) + "\n",
			want: []string{`4:12: services[0].image: image "example.com/web@sha256:`, `has a tag or digest`},
		},
		{
			name:  "registry port is not a tag",
			yaml:  "name: p\nservices:\n  - name: web\n    image: localhost:5000/web:v1\n",
			want:  []string{`4:12: services[0].image: image "localhost:5000/web:v1" has a tag or digest: give only the repository ("localhost:5000/web")`},
			count: 1,
		},
		{
			name: "two services with the same image repository",
			yaml: "name: p\nservices:\n  - name: web\n    image: example.com/shared\n  - name: api\n    image: example.com/shared\n    build: {context: app}\n",
			want: []string{`6:12: services[1].image: image repository "example.com/shared" is also built by services[0]`},
		},
		{
			name: "same repository spelled differently",
			yaml: "name: p\nservices:\n  - name: web\n    image: docker.io/library/shared\n  - name: api\n    image: shared\n    build: {context: app}\n",
			want: []string{`6:12: services[1].image: image repository "shared" is also built by services[0]`},
		},
		{
			name: "neither services nor manifests",
			yaml: "name: p\nnamespace: dev\n",
			want: []string{`1:1: nothing to do: expected at least one of "services", "manifests" or "charts"`},
		},
		{
			name: "duplicate key",
			yaml: "name: p\nmanifests: [k8s]\nname: q\n",
			want: []string{`3:1: name: duplicate key (first set at line 1)`},
		},
		{
			name: "duplicate map key",
			yaml: "name: p\nservices:\n  - name: web\n    build:\n      args:\n        A: 1\n        A: 2\n",
			want: []string{`7:9: services[0].build.args.A: duplicate key (first set at line 6)`},
		},
		{
			name: "preBuild without run",
			yaml: "name: p\nservices:\n  - name: web\n    build:\n      preBuild:\n        dir: app\n",
			want: []string{`6:9: services[0].build.preBuild.run: required`},
		},
		{
			name: "ignore pattern invalid",
			yaml: "name: p\nservices:\n  - name: web\n    ignore: [\"[\"]\n",
			want: []string{`4:14: services[0].ignore[0]: invalid pattern "["`},
		},
		{
			name: "watch path missing",
			yaml: "name: p\nservices:\n  - name: web\n    watch: [src]\n",
			want: []string{`4:13: services[0].watch[0]: watched path `, `src: does not exist`},
		},
		{
			name: "kubernetes version malformed",
			yaml: "name: p\ncluster: {kubernetesVersion: \"1.37\"}\nmanifests: [k8s]\n",
			want: []string{`2:30: cluster.kubernetesVersion: invalid Kubernetes version "1.37"`},
		},
		{
			name: "bad kind cluster name",
			yaml: "name: p\ncluster: {name: My_Cluster}\nmanifests: [k8s]\n",
			want: []string{`2:17: cluster.name: invalid kind cluster name "My_Cluster"`},
		},
		{
			name: "every problem is reported, in file order",
			yaml: "name: P\nservices:\n  - name: web\n    image: web:1\n    portForwards: [{local: 0, port: 99999}]\nmanifests: [nope.yaml]\nextra: 1\n",
			want: []string{
				`1:7: name: invalid name "P"`,
				`4:12: services[0].image: image "web:1" has a tag`,
				`5:28: services[0].portForwards[0].local: port 0 is out of range`,
				`5:37: services[0].portForwards[0].port: port 99999 is out of range`,
				`6:13: manifests[0]: manifest `,
				`7:1: extra: unknown key`,
			},
			count: 6,
		},
		{
			name:  "a bad value is reported once",
			yaml:  "name: p\nservices:\n  - name: web\n    portForwards: [{local: \"x\", port: 80}]\n",
			want:  []string{`4:28: services[0].portForwards[0].local: expected an integer`},
			count: 1,
		},
		{
			name: "YAML syntax error",
			yaml: "name: p\nservices:\n  - name: web\n   image: x\n",
			want: []string{`devloop.yaml:2: invalid YAML: did not find expected '-' indicator`},
		},
		{
			name: "empty file",
			yaml: "# nothing here\n",
			want: []string{`devloop.yaml: the file is empty`},
		},
		{
			name: "top level is a list",
			yaml: "- name: p\n",
			want: []string{`devloop.yaml:1:1: expected a mapping at the top level, got a list`},
		},
		{
			name:  "secret without a source",
			yaml:  "name: p\nservices:\n  - name: web\n    build:\n      secrets:\n        - id: npmrc\n",
			want:  []string{`6:11: services[0].build.secrets[0]: needs one of "src" (a host file) or "env"`},
			count: 1,
		},
		{
			name:  "secret with both sources",
			yaml:  "name: p\nservices:\n  - name: web\n    build:\n      secrets:\n        - {id: t, src: file.txt, env: TOKEN}\n",
			want:  []string{`6:39: services[0].build.secrets[0].env: give either "src" or "env", not both`},
			count: 1,
		},
		{
			name: "secret id missing, invalid and duplicate",
			yaml: "name: p\nservices:\n  - name: web\n    build:\n      secrets:\n        - {env: A}\n        - {id: 'a b', env: A}\n        - {id: t, env: A}\n        - {id: t, env: B}\n",
			want: []string{
				`6:11: services[0].build.secrets[0].id: required: the id the Dockerfile names`,
				`7:16: services[0].build.secrets[1].id: invalid secret id "a b"`,
				`9:16: services[0].build.secrets[3].id: duplicate secret id "t" (also services[0].build.secrets[2])`,
			},
			count: 3,
		},
		{
			name: "secret file missing or a directory",
			yaml: "name: p\nservices:\n  - name: web\n    build:\n      secrets:\n        - {id: a, src: nope.txt}\n        - {id: b, src: static}\n",
			want: []string{
				`6:24: services[0].build.secrets[0].src: secret file DIR/nope.txt: does not exist`,
				`7:24: services[0].build.secrets[1].src: secret file DIR/static is a directory`,
			},
			count: 2,
		},
		{
			name:  "secret env name invalid",
			yaml:  "name: p\nservices:\n  - name: web\n    build:\n      secrets:\n        - {id: a, env: 'GH-TOKEN'}\n",
			want:  []string{`6:24: services[0].build.secrets[0].env: invalid environment variable name "GH-TOKEN"`},
			count: 1,
		},
		{
			name:  "secrets not a list",
			yaml:  "name: p\nservices:\n  - name: web\n    build:\n      secrets: {id: a}\n",
			want:  []string{`5:16: services[0].build.secrets: expected a list, got a mapping`},
			count: 1,
		},
		{
			name: "secret unknown key",
			yaml: "name: p\nservices:\n  - name: web\n    build:\n      secrets:\n        - {id: a, file: x}\n",
			want: []string{`6:19: services[0].build.secrets[0].file: unknown key; valid keys here: env, id, src`},
		},
		{
			name: "two documents",
			yaml: "name: p\nmanifests: [k8s]\n---\nname: q\n",
			want: []string{`devloop.yaml:3:1: expected one YAML document, found a second one`},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := fixture(t)
			path := writeConfig(t, dir, tc.yaml)
			cfg, err := Load(path)
			if err == nil {
				t.Fatalf("Load succeeded (%+v), want errors %q", cfg, tc.want)
			}
			var list ErrorList
			if !errors.As(err, &list) {
				t.Fatalf("error %T is not an ErrorList: %v", err, err)
			}
			msg := err.Error()
			for _, w := range tc.want {
				w = strings.ReplaceAll(w, "DIR/", dir+"/")
				// The position prefix is absolute: the file path, then the
				// line and column.
				if !strings.HasPrefix(w, "devloop.yaml") {
					if pre, _, ok := strings.Cut(w, ": "); ok && strings.Contains(pre, ":") {
						w = path + ":" + w
					}
				} else {
					w = strings.Replace(w, "devloop.yaml", path, 1)
				}
				if !strings.Contains(msg, w) {
					t.Errorf("error lacks %q; got:\n%s", w, msg)
				}
			}
			if tc.count > 0 && len(list) != tc.count {
				t.Errorf("got %d problems, want %d:\n%s", len(list), tc.count, msg)
			}
			if n := strings.Count(msg, "\n") + 1; n != len(list) {
				t.Errorf("error has %d lines for %d problems:\n%s", n, len(list), msg)
			}
		})
	}
}
