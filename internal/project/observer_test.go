package project

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

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
