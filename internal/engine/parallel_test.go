package engine

import (
	"context"
	"errors"
	"reflect"
	"sync"
	"testing"

	"github.com/devloop-dev/devloop/internal/build"
	"github.com/devloop-dev/devloop/internal/config"
)

// gateRunner: each build announces itself on started and finishes when
// its service's gate gets a result (nil error: an image).
type gateRunner struct {
	started chan string
	gates   map[string]chan error
	mu      sync.Mutex
	deploys []Action
}

func (g *gateRunner) Image(ctx context.Context, svc config.Service, _ []string, _ func(Phase)) (*build.Image, error) {
	g.started <- svc.Name
	select {
	case err := <-g.gates[svc.Name]:
		if err != nil {
			return nil, err
		}
		return art(svc.Image, "1"), nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (g *gateRunner) Sync(context.Context, config.Service, []string) (bool, error) { return false, nil }

func (g *gateRunner) Live(context.Context, config.Service, []string) (int, bool, error) {
	return 0, false, nil
}

func (g *gateRunner) Deploy(_ context.Context, a Action) (map[string]error, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.deploys = append(g.deploys, a)
	return nil, nil
}

// Independent services build at the same time, and one whose build breaks
// holds up neither the others' builds nor their first deploy.
func TestLoopBuildsInParallelAndABrokenBuildHoldsUpNothing(t *testing.T) {
	g := &gateRunner{started: make(chan string, 3), gates: map[string]chan error{"a": make(chan error), "b": make(chan error), "c": make(chan error)}}
	obs := newObserver()
	l := New(testConfig("a", "b", "c"), g, Options{Observer: obs, ParallelImages: 3})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- l.Run(ctx) }()

	// All three builds are running at once: none waits for another to end.
	running := map[string]bool{}
	for range 3 {
		running[<-g.started] = true
	}
	if len(running) != 3 {
		t.Fatalf("running builds %v", running)
	}
	g.gates["a"] <- errors.New("compile error") // a breaks first...
	g.gates["c"] <- nil
	g.gates["b"] <- nil // ...and b and c are deployed all the same
	s := <-obs.settled
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.deploys) != 1 || !reflect.DeepEqual(g.deploys[0].Services, []string{"b", "c"}) || !reflect.DeepEqual(g.deploys[0].Hold, []string{"a"}) {
		t.Fatalf("deploys %+v, want b and c rolled, a held", g.deploys)
	}
	if s.Services["a"].Phase != PhaseFailed || s.Services["b"].Phase != PhaseReady || s.Services["c"].Phase != PhaseReady {
		t.Fatalf("phases %v", phases(s))
	}
	cancel()
	<-done
}
