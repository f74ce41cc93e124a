package project

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/devloop-dev/devloop/internal/build"
	"github.com/devloop-dev/devloop/internal/config"
	"github.com/devloop-dev/devloop/internal/engine"
	"github.com/devloop-dev/devloop/internal/ui"
)

func TestObserverSaysWhatChangedInTheConfig(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte("FROM scratch\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	parse := func(yaml string) *config.Config {
		c, err := config.Parse(filepath.Join(dir, "devloop.yaml"), []byte(yaml))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	started := parse("name: p\nservices:\n  - name: api\n")
	tests := []struct {
		name string
		next *config.Config
		err  error
		want string
	}{
		{"a forward added", parse("name: p\nservices:\n  - name: api\n    portForwards: [{local: 18080, port: 80}]\n"), nil,
			"devloop.yaml changed (services.api.portForwards): restart devloop up to apply it"},
		{"a comment", parse("# note\nname: p\nservices:\n  - name: api\n"), nil,
			"devloop.yaml changed, but not in anything that matters"},
		{"does not load", nil, errors.New("devloop.yaml:3:5: services[0].nme: unknown key (did you mean name?)"),
			"devloop.yaml changed but does not load; devloop up goes on with the config it started with:\ndevloop │ devloop.yaml:3:5"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b bytes.Buffer
			p := ui.NewPrinter(&b, false, false)
			p.SetPrefixWidth(0)
			o := &observer{p: p, started: started, reload: func() (*config.Config, error) { return tt.next, tt.err }}
			st := engine.NewState(started, time.Now())
			o.Reduced(st, engine.Changed{Config: true})
			if !strings.Contains(b.String(), tt.want) {
				t.Errorf("printed %q, want it to contain %q", b.String(), tt.want)
			}
		})
	}
}

// A build that fails because a disk is full (issue 16, fault 5) says so in
// its one error line, not "fix it": the code is fine.
func TestObserverSaysTheDiskIsFull(t *testing.T) {
	var b bytes.Buffer
	p := ui.NewPrinter(&b, false, false)
	o := &observer{p: p}
	cfg := &config.Config{Name: "p", Services: []config.Service{{Name: "api"}}}
	st := engine.NewState(cfg, time.Now())
	err := &build.BuildError{Service: "api", Stage: "pre-build", Err: errors.New(`running "go build -o bin/api .": exit status 1`),
		Output: "go build example.com/api: copying /tmp/go-build1/b001/exe/a.out to bin/api: write bin/api: no space left on device"}
	o.Reduced(st, engine.ImageDone{Service: "api", Gen: 1, Err: err})
	out := b.String()
	if !strings.Contains(out, "build failed: a disk is full (no space left on device)") || strings.Contains(out, "Fix it") {
		t.Errorf("printed %q", out)
	}
	if n := strings.Count(out, "│ build failed"); n != 1 {
		t.Errorf("%d failure lines, want one: %q", n, out)
	}
}

// The summary says devloop watches only when it does: up --once ends there.
func TestObserverSummaryWatchesOnlyWithoutOnce(t *testing.T) {
	cfg := &config.Config{Name: "p", Services: []config.Service{{Name: "api"}}}
	for _, once := range []bool{false, true} {
		var b bytes.Buffer
		o := &observer{p: ui.NewPrinter(&b, false, false), once: once}
		o.summary(engine.NewState(cfg, time.Now()))
		if got := strings.Contains(b.String(), "watching for changes"); got == once || !strings.Contains(b.String(), "all services ready (api)") {
			t.Errorf("once=%v: %q", once, b.String())
		}
	}
}
