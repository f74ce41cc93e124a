package doctor

import (
	"bytes"
	"testing"

	goldenfile "github.com/devloop-dev/devloop/internal/testutil/golden"
)

// golden compares got with testdata/name, or rewrites it under -update.
func golden(t *testing.T, name string, got []byte) { goldenfile.Assert(t, name, got) }

var printResults = []Result{
	{Level: OK, Check: "docker", Message: "Docker 20.10.24 (API 1.41)"},
	{Level: Warn, Check: "file watches", Message: "fs.inotify.max_user_watches is 8192 (want at least 65536): watching a large project may silently miss changes",
		Fix: "sudo sysctl fs.inotify.max_user_watches=524288 (add it to /etc/sysctl.d/ to keep it after a reboot)"},
	{Level: Fail, Check: "port 8080", Message: "127.0.0.1:8080 (ingress http) is already in use, so the cluster cannot be created",
		Fix: "stop what listens there (see: ss -ltnp 'sport = :8080') or set cluster.ingress.httpPort in devloop.yaml"},
	{Level: Warn, Check: "readiness", Message: `deployment/hello container "app": no readiness probe`,
		Fix: "add readinessProbe (e.g. httpGet /healthz) so devloop and Services know when it is ready"},
	{Level: OK, Check: "kubeconfig", Message: "/home/dev/.kube/config is writable"},
}

func TestPrintGolden(t *testing.T) {
	tests := []struct {
		file    string
		results []Result
		color   bool
	}{
		{"print.golden", printResults, false},
		{"print_color.golden", printResults, true},
		{"print_all_ok.golden", []Result{printResults[0], printResults[4]}, false},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			var buf bytes.Buffer
			Print(&buf, tt.results, tt.color)
			golden(t, tt.file, buf.Bytes())
		})
	}
}

func TestWorst(t *testing.T) {
	tests := []struct {
		in   []Result
		want Level
	}{
		{nil, OK},
		{[]Result{{Level: OK}}, OK},
		{[]Result{{Level: Warn}, {Level: OK}}, Warn},
		{[]Result{{Level: OK}, {Level: Fail}, {Level: Warn}}, Fail},
	}
	for _, tt := range tests {
		if got := Worst(tt.in); got != tt.want {
			t.Errorf("Worst(%v) = %s, want %s", tt.in, got, tt.want)
		}
	}
}

func TestSummary(t *testing.T) {
	tests := []struct {
		in   []Result
		want string
	}{
		{nil, "nothing to check"},
		{[]Result{{Level: OK}}, "the check passed"},
		{[]Result{{Level: OK}, {Level: OK}}, "all 2 checks passed"},
		{[]Result{{Level: Warn}, {Level: Warn}, {Level: Fail}}, "2 warnings, 1 failure"},
		{[]Result{{Level: Fail}, {Level: Fail}}, "2 failures"},
		{[]Result{{Level: Warn}}, "1 warning"},
	}
	for _, tt := range tests {
		if got := summary(tt.in); got != tt.want {
			t.Errorf("summary = %q, want %q", got, tt.want)
		}
	}
}
