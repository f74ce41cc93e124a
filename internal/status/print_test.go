package status

import (
	"bytes"
	"encoding/json"
	"testing"

	goldenfile "github.com/devloop-dev/devloop/internal/testutil/golden"
)

// golden compares got with testdata/name, or rewrites it under -update.
func golden(t *testing.T, name string, got []byte) { goldenfile.Assert(t, name, got) }

// sample is a report with a ready, a partly ready and a failing service.
func sample() Report {
	return Report{
		Project: "hello", Cluster: "devloop", Context: "kind-devloop", ClusterRunning: true,
		Services: []Service{
			{Name: "hello", Image: "hello:3f2a9c1d0b7e", Ready: 2, Desired: 2, Restarts: 0, Workloads: []string{"deployment/hello"}},
			{Name: "worker", Image: "worker:9b1c44e0aa12", Ready: 1, Desired: 3, Restarts: 1, Workloads: []string{"deployment/worker"}},
			{Name: "api", Image: "example.com/team/api:77aa01c3d5e2", Ready: 0, Desired: 1, Restarts: 12, Workloads: []string{"deployment/api"},
				Problems: []string{
					"pod api-6d5f8b7c9-x2k4q: container \"api\" is in CrashLoopBackOff (exit code 1, restarted 12 times)\n  last log lines:\n    panic: DATABASE_URL is not set",
				}},
			{Name: "docs", Workloads: []string{"deployment/docs"}, Desired: 1, Problems: []string{NotDeployed}},
		},
		Ingress:  []string{"http://hello.localhost:8080/", "http://api.localhost:8080/"},
		Forwards: []Forward{{Name: "hello", URL: "http://127.0.0.1:18080/", Target: "service/hello:80"}},
	}
}

func TestPrintTableGolden(t *testing.T) {
	stopped := sample()
	stopped.ClusterRunning = false
	for i := range stopped.Services {
		s := &stopped.Services[i]
		s.Image, s.Ready, s.Restarts, s.Problems = "", 0, 0, nil
	}
	tests := []struct {
		file  string
		r     Report
		color bool
	}{
		{"table.golden", sample(), false},
		{"table_color.golden", sample(), true},
		{"table_not_running.golden", stopped, false},
		{"table_empty.golden", Report{Project: "empty", Cluster: "devloop", Context: "kind-devloop", ClusterRunning: true}, false},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			var buf bytes.Buffer
			PrintTable(&buf, tt.r, tt.color)
			golden(t, tt.file, buf.Bytes())
		})
	}
}

func TestWriteJSONGolden(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteJSON(&buf, sample()); err != nil {
		t.Fatal(err)
	}
	golden(t, "status.json.golden", buf.Bytes())

	var back Report
	if err := json.Unmarshal(buf.Bytes(), &back); err != nil {
		t.Fatalf("output is not JSON: %v", err)
	}
	if back.Services[2].Problems[0] != sample().Services[2].Problems[0] || back.Forwards[0] != sample().Forwards[0] {
		t.Errorf("JSON does not round-trip: %+v", back)
	}
}

func TestWriteJSONEmptyLists(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteJSON(&buf, Report{Services: []Service{{Name: "x"}}}); err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(buf.Bytes(), []byte("null")) {
		t.Errorf("empty lists rendered as null:\n%s", buf.Bytes())
	}
}
