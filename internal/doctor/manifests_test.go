package doctor

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

// parse turns a multi-document YAML string into objects.
func parse(t *testing.T, docs string) []*unstructured.Unstructured {
	t.Helper()
	var out []*unstructured.Unstructured
	for _, doc := range strings.Split(docs, "\n---\n") {
		if strings.TrimSpace(doc) == "" {
			continue
		}
		var m map[string]any
		if err := yaml.Unmarshal([]byte(doc), &m); err != nil {
			t.Fatalf("parsing fixture: %v\n%s", err, doc)
		}
		out = append(out, &unstructured.Unstructured{Object: m})
	}
	return out
}

// goodDeployment follows every practice Manifests checks.
const goodDeployment = `
apiVersion: apps/v1
kind: Deployment
metadata: {name: hello}
spec:
  selector: {matchLabels: {app: hello}}
  template:
    metadata: {labels: {app: hello, tier: web}}
    spec:
      securityContext: {runAsNonRoot: true}
      containers:
        - name: app
          image: hello
          readinessProbe: {httpGet: {path: /healthz, port: 8080}}
          livenessProbe: {httpGet: {path: /healthz, port: 8080}}
          resources: {requests: {cpu: 10m}, limits: {memory: 64Mi}}
`

const goodService = `
apiVersion: v1
kind: Service
metadata: {name: hello}
spec:
  selector: {app: hello}
  ports: [{name: http, port: 80, targetPort: 8080}]
`

const goodIngress = `
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: hello}
spec:
  rules:
    - host: hello.localhost
      http:
        paths:
          - path: /
            pathType: Prefix
            backend: {service: {name: hello, port: {number: 80}}}
          - path: /api
            pathType: Prefix
            backend: {service: {name: hello, port: {name: http}}}
`

func TestManifestsClean(t *testing.T) {
	objs := parse(t, goodDeployment+"\n---\n"+goodService+"\n---\n"+goodIngress)
	rs := Manifests(objs, testConfig())
	if len(rs) != 1 || rs[0].Level != OK || rs[0].Check != checkManifests {
		t.Fatalf("want one OK result, got %+v", rs)
	}
	if want := "3 objects and 1 workload checked; nothing to improve"; rs[0].Message != want {
		t.Errorf("message = %q, want %q", rs[0].Message, want)
	}
}

func TestManifestsFindings(t *testing.T) {
	type want struct {
		level   Level
		check   string
		message string // exact
		fix     string // substring
	}
	tests := []struct {
		name string
		yaml string
		want []want
	}{
		{
			name: "bare container",
			yaml: `
apiVersion: apps/v1
kind: Deployment
metadata: {name: hello}
spec:
  selector: {matchLabels: {app: hello}}
  template:
    metadata: {labels: {app: hello}}
    spec:
      containers: [{name: app, image: hello}]
`,
			want: []want{
				{Warn, checkReadiness, `deployment/hello container "app": no readiness probe`, "add readinessProbe (e.g. httpGet /healthz) so devloop and Services know when it is ready"},
				{Warn, checkLiveness, `deployment/hello container "app": no liveness probe`, "livenessProbe"},
				{Warn, checkResources, `deployment/hello container "app": no resource requests or limits`, "resources.requests"},
				{Warn, checkRoot, `deployment/hello container "app": may run as root`, "runAsNonRoot: true"},
			},
		},
		{
			name: "only limits; container uid 0 overrides pod runAsNonRoot",
			yaml: `
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db}
spec:
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec:
      securityContext: {runAsNonRoot: true}
      containers:
        - name: postgres
          image: postgres:16.4
          readinessProbe: {exec: {command: [pg_isready]}}
          livenessProbe: {exec: {command: [pg_isready]}}
          resources: {limits: {memory: 1Gi}}
          securityContext: {runAsUser: 0}
`,
			want: []want{
				{Warn, checkResources, `statefulset/db container "postgres": no resource requests`, "resources.requests"},
				{Warn, checkRoot, `statefulset/db container "postgres": may run as root`, "runAsUser"},
				{Warn, checkImages, `service hello: no workload in the manifests uses image "hello", so nothing runs what devloop builds`, "services[].image"},
			},
		},
		{
			name: "unpinned images that devloop does not build; jobs need no probes",
			yaml: `
apiVersion: batch/v1
kind: Job
metadata: {name: migrate}
spec:
  template:
    spec:
      securityContext: {runAsUser: 1000}
      restartPolicy: Never
      initContainers:
        - {name: wait, image: "busybox:latest", resources: {requests: {cpu: 1m}, limits: {cpu: 10m}}}
      containers:
        - name: migrate
          image: example.com/tools/migrate
          resources: {requests: {cpu: 1m}, limits: {cpu: 10m}}
        - name: pinned
          image: redis@sha256:0123456789012345678901234567890123456789012345678901234567890123
          resources: {requests: {cpu: 1m}, limits: {cpu: 10m}}
        - name: ours
          image: docker.io/library/hello:latest
          resources: {requests: {cpu: 1m}, limits: {cpu: 10m}}
        - name: registry-port
          image: localhost:5000/tool
          resources: {requests: {cpu: 1m}, limits: {cpu: 10m}}
`,
			want: []want{
				{Warn, checkImageTag, `job/migrate init container "wait": image "busybox:latest" uses :latest, so what runs can change under you`, "pin a tag; devloop tags the images it builds itself"},
				{Warn, checkImageTag, `job/migrate container "migrate": image "example.com/tools/migrate" has no tag, so what runs can change under you`, "pin a tag"},
				{Warn, checkImageTag, `job/migrate container "registry-port": image "localhost:5000/tool" has no tag, so what runs can change under you`, "pin a tag"},
			},
		},
		{
			name: "service selector matches nothing",
			yaml: goodDeployment + "\n---\n" + `
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{port: 80}]
---
apiVersion: v1
kind: Service
metadata: {name: external}
spec:
  ports: [{port: 5432}]
---
apiVersion: v1
kind: Service
metadata: {name: other-namespace, namespace: tools}
spec:
  selector: {app: hello}
  ports: [{port: 80}]
`,
			want: []want{
				{Fail, checkSelector, `service/web: selector app=web matches no pod template in the manifests, so it has no endpoints`, "spec.template.metadata.labels"},
				{Fail, checkSelector, `service/other-namespace: selector app=hello matches no pod template in the manifests, so it has no endpoints`, "spec.selector"},
			},
		},
		{
			name: "ingress to a missing service and a missing port",
			yaml: goodDeployment + "\n---\n" + goodService + "\n---\n" + `
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: hello}
spec:
  defaultBackend: {service: {name: frontend, port: {number: 80}}}
  rules:
    - http:
        paths:
          - path: /
            pathType: Prefix
            backend: {service: {name: hello, port: {number: 8080}}}
          - path: /a
            pathType: Prefix
            backend: {service: {name: hello, port: {name: grpc}}}
          - path: /b
            pathType: Prefix
            backend: {service: {name: hello, port: {number: 8080}}}
`,
			want: []want{
				{Fail, checkIngress, `ingress/hello: backend service "frontend" is not in the manifests`, "(hello)"},
				{Fail, checkIngress, `ingress/hello: service "hello" has no port 8080 (it has 80 (http))`, "spec.ports[].port"},
				{Fail, checkIngress, `ingress/hello: service "hello" has no port "grpc" (it has 80 (http))`, "Ingress backend"},
			},
		},
		{
			name: "service image used by no workload",
			yaml: `
apiVersion: v1
kind: Pod
metadata: {name: debug}
spec:
  securityContext: {runAsNonRoot: true}
  containers:
    - name: sh
      image: busybox:1.36
      readinessProbe: {exec: {command: ["true"]}}
      livenessProbe: {exec: {command: ["true"]}}
      resources: {requests: {cpu: 1m}, limits: {cpu: 10m}}
`,
			want: []want{
				{Warn, checkImages, `service hello: no workload in the manifests uses image "hello", so nothing runs what devloop builds`, `set a container's image to "hello"`},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			objs := parse(t, tt.yaml)
			rs := Manifests(objs, testConfig())
			if len(rs) != len(tt.want) {
				var lines []string
				for _, r := range rs {
					lines = append(lines, r.Level.String()+" "+r.Check+": "+r.Message)
				}
				t.Fatalf("got %d results, want %d:\n%s", len(rs), len(tt.want), strings.Join(lines, "\n"))
			}
			for i, w := range tt.want {
				g := rs[i]
				if g.Level != w.level || g.Check != w.check || g.Message != w.message || !strings.Contains(g.Fix, w.fix) {
					t.Errorf("result %d:\n got  %s %s: %q (fix %q)\n want %s %s: %q (fix containing %q)", i, g.Level, g.Check, g.Message, g.Fix, w.level, w.check, w.message, w.fix)
				}
			}
		})
	}
}

func TestRunsAsRoot(t *testing.T) {
	yes, no := true, false
	root, user := int64(0), int64(1000)
	tests := []struct {
		name    string
		podNR   *bool
		podUser *int64
		cNR     *bool
		cUser   *int64
		want    bool
	}{
		{"nothing set", nil, nil, nil, nil, true},
		{"pod runAsNonRoot", &yes, nil, nil, nil, false},
		{"pod runAsUser 1000", nil, &user, nil, nil, false},
		{"container runAsNonRoot", nil, nil, &yes, nil, false},
		{"container overrides pod nonroot", &yes, nil, &no, nil, true},
		{"container uid 0 overrides pod uid", nil, &user, nil, &root, true},
		{"pod runAsNonRoot false", &no, nil, nil, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pod := &corev1.PodSecurityContext{RunAsNonRoot: tt.podNR, RunAsUser: tt.podUser}
			c := &corev1.SecurityContext{RunAsNonRoot: tt.cNR, RunAsUser: tt.cUser}
			if got := runsAsRoot(pod, c); got != tt.want {
				t.Errorf("runsAsRoot = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestImageTag(t *testing.T) {
	tests := []struct {
		image  string
		tag    string
		pinned bool
	}{
		{"redis", "", false},
		{"redis:latest", "latest", false},
		{"redis:7.4", "7.4", true},
		{"localhost:5000/tool", "", false},
		{"localhost:5000/tool:v1", "v1", true},
		{"redis@sha256:abcd", "", true},
	}
	for _, tt := range tests {
		tag, pinned := imageTag(tt.image)
		if tag != tt.tag || pinned != tt.pinned {
			t.Errorf("imageTag(%q) = %q, %v; want %q, %v", tt.image, tag, pinned, tt.tag, tt.pinned)
		}
	}
}
