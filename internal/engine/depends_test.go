package engine

import (
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/devloop-dev/devloop/internal/config"
)

// shopConfig: web → api → db, worker → db, and a lone service.
func shopConfig() *config.Config {
	return &config.Config{Name: "shop", Services: []config.Service{
		{Name: "web", Image: "web", DependsOn: []string{"api"}},
		{Name: "api", Image: "api", DependsOn: []string{"db"}},
		{Name: "db", Image: "db"},
		{Name: "worker", Image: "worker", DependsOn: []string{"db"}},
	}}
}

// builtAll finishes every started image action with tag "1".
func builtAll(s *State, acts []Action) {
	for _, a := range acts {
		if a.Kind == ActionImage {
			Reduce(s, ImageDone{Service: a.Service, Gen: a.Gen, Image: art(a.Service, "1")})
		}
	}
}

func deployOf(t *testing.T, acts []Action) Action {
	t.Helper()
	for _, a := range acts {
		if a.Kind == ActionDeploy {
			return a
		}
	}
	t.Fatalf("no deploy in %v", kinds(acts))
	return Action{}
}

func phases(s *State) map[string]Phase {
	out := map[string]Phase{}
	for n, ss := range s.Services {
		out[n] = ss.Phase
	}
	return out
}

func TestDependsOnDeploysInDependencyOrder(t *testing.T) {
	type deploy struct {
		services, hold []string
		failed         map[string]error
	}
	tests := []struct {
		name     string
		selected []string
		// deploys are the deploys expected one after the other (each
		// completes with its failures), after every first build succeeded.
		deploys []deploy
		// then: the phases once settled, and who is blocked by whom.
		phases  map[string]Phase
		blocked map[string]string
	}{
		{
			name: "every service, in three waves",
			deploys: []deploy{
				{services: []string{"db"}, hold: []string{"web", "api", "worker"}},
				{services: []string{"api", "worker"}, hold: []string{"web"}},
				{services: []string{"web"}},
			},
			phases: map[string]Phase{"web": PhaseReady, "api": PhaseReady, "db": PhaseReady, "worker": PhaseReady},
		},
		{
			name:     "up api: api and db only, the others held out",
			selected: []string{"api", "db"},
			deploys: []deploy{
				{services: []string{"db"}, hold: []string{"web", "worker", "api"}},
				{services: []string{"api"}, hold: []string{"web", "worker"}},
			},
			phases: map[string]Phase{"api": PhaseReady, "db": PhaseReady},
		},
		{
			name: "the dependency fails its rollout: its dependents wait, the state settles",
			deploys: []deploy{
				{services: []string{"db"}, hold: []string{"web", "api", "worker"}, failed: map[string]error{"db": errors.New("CrashLoopBackOff")}},
			},
			phases:  map[string]Phase{"web": PhaseWaiting, "api": PhaseWaiting, "db": PhaseFailed, "worker": PhaseWaiting},
			blocked: map[string]string{"web": "api", "api": "db", "worker": "db"},
		},
		{
			name: "one dependent fails: the other and the rest go on",
			deploys: []deploy{
				{services: []string{"db"}, hold: []string{"web", "api", "worker"}},
				{services: []string{"api", "worker"}, hold: []string{"web"}, failed: map[string]error{"worker": errors.New("OOMKilled")}},
				{services: []string{"web"}},
			},
			phases: map[string]Phase{"web": PhaseReady, "api": PhaseReady, "db": PhaseReady, "worker": PhaseFailed},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := NewStateOf(shopConfig(), tc.selected, time.Unix(0, 0))
			acts := step(s)
			if len(acts) != len(s.Order) {
				t.Fatalf("first plan %v: want every selected service built at once", kinds(acts))
			}
			builtAll(s, acts)
			for i, want := range tc.deploys {
				acts := step(s)
				if len(acts) != 1 {
					t.Fatalf("deploy %d: plan %v, want one deploy", i, kinds(acts))
				}
				d := deployOf(t, acts)
				if !reflect.DeepEqual(d.Services, want.services) || !reflect.DeepEqual(d.Hold, want.hold) {
					t.Fatalf("deploy %d rolls %q holding %q; want %q holding %q", i, d.Services, d.Hold, want.services, want.hold)
				}
				for _, h := range want.hold {
					if ss := s.Services[h]; ss != nil && ss.Phase != PhaseWaiting {
						t.Errorf("deploy %d: held %s is %s, want waiting", i, h, ss.Phase)
					}
				}
				Reduce(s, DeployDone{Gen: d.Gen, Failed: want.failed})
			}
			if acts := step(s); len(acts) != 0 {
				t.Fatalf("after the deploys: %v, want nothing", kinds(acts))
			}
			if !s.Settled() {
				t.Fatal("not settled")
			}
			if got := phases(s); !reflect.DeepEqual(got, tc.phases) {
				t.Errorf("phases %v, want %v", got, tc.phases)
			}
			for name := range s.Services {
				if got := s.Blocked(name); got != tc.blocked[name] {
					t.Errorf("Blocked(%s) = %q, want %q", name, got, tc.blocked[name])
				}
			}
		})
	}
}

func TestDependsOnWaitsOnlyOnTheFirstUp(t *testing.T) {
	s := NewState(shopConfig(), time.Unix(0, 0))
	builtAll(s, step(s))
	if got := s.WaitingFor("web"); !reflect.DeepEqual(got, []string{"api"}) {
		t.Errorf("WaitingFor(web) = %q", got)
	}
	for range 3 {
		Reduce(s, DeployDone{Gen: deployOf(t, step(s)).Gen})
	}
	if !s.Settled() {
		t.Fatal("not settled")
	}
	// A rebuild of db, then of api: each rolls at once, alone, nothing held or waited for.
	for _, svc := range []string{"db", "api"} {
		Reduce(s, Changed{Rebuild: map[string][]string{svc: {"/x/main.go"}}})
		acts := step(s)
		Reduce(s, ImageDone{Service: svc, Gen: acts[0].Gen, Image: art(svc, "2")})
		d := deployOf(t, step(s))
		if !reflect.DeepEqual(d.Services, []string{svc}) || len(d.Hold) != 0 || d.All {
			t.Fatalf("rebuild of %s deploys %+v, want it alone", svc, d)
		}
		if got := s.WaitingFor("web"); len(got) != 0 {
			t.Errorf("web waits for %q after its release", got)
		}
		Reduce(s, DeployDone{Gen: d.Gen})
	}
}

func TestDependsOnDependentBuiltAfterItsDependencyRolledOut(t *testing.T) {
	cfg := &config.Config{Name: "p", Services: []config.Service{{Name: "api", Image: "api", DependsOn: []string{"db"}}, {Name: "db", Image: "db"}}}
	s := NewState(cfg, time.Unix(0, 0))
	acts := step(s)
	// db is built and rolled out while api still builds: the first apply does not wait for api.
	Reduce(s, ImageDone{Service: "db", Gen: acts[1].Gen, Image: art("db", "1")})
	d := deployOf(t, step(s))
	if !reflect.DeepEqual(d.Services, []string{"db"}) || !reflect.DeepEqual(d.Hold, []string{"api"}) {
		t.Fatalf("first deploy %+v", d)
	}
	Reduce(s, DeployDone{Gen: d.Gen})
	if ss := s.Services["api"]; !ss.Released || ss.Phase != PhaseBuilding {
		t.Fatalf("api after db rolled out: released %v phase %s", ss.Released, ss.Phase)
	}
	Reduce(s, ImageDone{Service: "api", Gen: acts[0].Gen, Image: art("api", "1")})
	if p := s.Services["api"].Phase; p != PhaseDeploying {
		t.Errorf("api built after its release is %s, want deploying", p)
	}
	d = deployOf(t, step(s))
	if !reflect.DeepEqual(d.Services, []string{"api"}) || len(d.Hold) != 0 {
		t.Fatalf("api's deploy %+v", d)
	}
}

func TestDependsOnDependencyFirstBuildFails(t *testing.T) {
	s := NewState(shopConfig(), time.Unix(0, 0))
	acts := step(s)
	for _, a := range acts {
		var err error
		if a.Service == "db" {
			err = errors.New("compile error")
		}
		Reduce(s, ImageDone{Service: a.Service, Gen: a.Gen, Image: art(a.Service, "1"), Err: err})
	}
	if acts := step(s); len(acts) != 0 {
		t.Fatalf("plan %v: no service can be deployed, want nothing applied", kinds(acts))
	}
	if !s.Settled() || s.Blocked("web") != "api" || s.Blocked("api") != "db" {
		t.Fatalf("settled %v, blocked web=%q api=%q", s.Settled(), s.Blocked("web"), s.Blocked("api"))
	}
	// The fix of db releases the rest.
	Reduce(s, Changed{Rebuild: map[string][]string{"db": {"/db/main.go"}}})
	acts = step(s)
	Reduce(s, ImageDone{Service: "db", Gen: acts[0].Gen, Image: art("db", "2")})
	d := deployOf(t, step(s))
	if !reflect.DeepEqual(d.Services, []string{"db"}) {
		t.Fatalf("after the fix: %+v", d)
	}
	Reduce(s, DeployDone{Gen: d.Gen})
	if d = deployOf(t, step(s)); !reflect.DeepEqual(d.Services, []string{"api", "worker"}) {
		t.Fatalf("after db: %+v", d)
	}
}
