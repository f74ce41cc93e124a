package ui

import (
	"regexp"
	"testing"
	"time"

	"github.com/devloop-dev/devloop/internal/testutil/golden"
)

func TestRenderStatusGolden(t *testing.T) {
	now := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	v := StatusView{
		Project: "hello", Cluster: "devloop (kind-devloop)",
		Services: []ServiceRow{
			{Name: "hello", Phase: "ready", Since: now.Add(-83 * time.Second), Image: "hello:devloop-0123456789abcdef", Pods: "1/1"},
			{Name: "api", Phase: "failed", Since: now.Add(-5 * time.Second), Image: "api:devloop-fedcba9876543210", Pods: "0/2", Restarts: 7,
				Error: "build failed: main.go:3:1: syntax error\nmore detail"},
			{Name: "worker", Phase: "building", Since: now.Add(-2 * time.Second)},
		},
		Forwards: []ForwardRow{{URL: "http://127.0.0.1:18080/", Target: "service/hello:80", State: "up", Pod: "hello-7d9c5b6f4-x2x9z"}},
		Ingress:  []string{"http://hello.localhost:8080/"},
	}
	golden.Assert(t, "status.golden", []byte(RenderStatus(v, now, false)))
}

func TestLiveModelKeepsLatestViewAndTicks(t *testing.T) {
	m := liveModel{now: time.Unix(0, 0)}
	next, _ := m.Update(viewMsg(StatusView{Project: "p", Services: []ServiceRow{{Name: "a", Phase: "ready"}}}))
	m = next.(liveModel)
	next, cmd := m.Update(tickMsg(time.Unix(60, 0)))
	m = next.(liveModel)
	if cmd == nil || !m.now.Equal(time.Unix(60, 0)) || m.view.Project != "p" {
		t.Fatalf("model after tick: %+v (cmd %v)", m, cmd)
	}
}

// Colors must not shift the columns: without its escape codes, the colored
// table is the plain one.
func TestRenderStatusColorKeepsColumns(t *testing.T) {
	now := time.Unix(100, 0)
	v := StatusView{Project: "p", Cluster: "c", Services: []ServiceRow{
		{Name: "a", Phase: "ready", Since: time.Unix(90, 0), Image: "a:devloop-1"},
		{Name: "bbbbbb", Phase: "building", Since: time.Unix(99, 0)},
	}}
	ansi := regexp.MustCompile("\x1b\\[[0-9;]*m")
	plain := RenderStatus(v, now, false)
	colored := RenderStatus(v, now, true)
	if colored == plain {
		t.Fatal("color=true drew no colors")
	}
	if got := ansi.ReplaceAllString(colored, ""); got != plain {
		t.Fatalf("colored table without escapes:\n%s\nplain:\n%s", got, plain)
	}
}
