package ui

import (
	"strings"
	"testing"
	"time"
)

func TestSinceFormats(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	for _, tt := range []struct {
		ago  time.Duration
		want string
	}{
		{0, "0s"},
		{59 * time.Second, "59s"},
		{time.Minute, "1m00s"},
		{61*time.Minute + 5*time.Second, "1h01m"},
		{59*time.Minute + 59*time.Second, "59m59s"},
		{25 * time.Hour, "25h00m"},
	} {
		if got := since(now, now.Add(-tt.ago)); got != tt.want {
			t.Errorf("since(%v ago) = %q, want %q", tt.ago, got, tt.want)
		}
	}
	if got := since(now, time.Time{}); got != "-" {
		t.Errorf("since(zero) = %q, want -", got)
	}
}

func TestRenderStatusErrorsForwardsAndPlaceholders(t *testing.T) {
	v := StatusView{
		Project: "p", Cluster: "c",
		Services: []ServiceRow{{Name: "api", Phase: "failed", Error: "build failed\nstep 3: exit 1"}},
		Forwards: []ForwardRow{{URL: "http://127.0.0.1:8080/", Target: "service/api:80", State: "waiting"}},
		Ingress:  []string{"http://api.localhost:8080/"},
	}
	out := RenderStatus(v, time.Now(), false)
	for _, want := range []string{
		"project p · cluster c\n",
		"  ! api: build failed\n",
		"  http://127.0.0.1:8080/ → service/api:80 (waiting)\n",
		"  http://api.localhost:8080/ (ingress)\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in:\n%s", want, out)
		}
	}
	if strings.Contains(out, "step 3") {
		t.Errorf("only the first line of an error is shown:\n%s", out)
	}
	lines := strings.Split(out, "\n")
	// Unknown pods and image are dashes; the zero Since too.
	if f := strings.Fields(lines[2]); len(f) != 6 || f[2] != "-" || f[3] != "-" || f[4] != "0" || f[5] != "-" {
		t.Errorf("service row = %q", lines[2])
	}
	if strings.Contains(out, "\x1b[") {
		t.Errorf("escape codes without color:\n%q", out)
	}
}
