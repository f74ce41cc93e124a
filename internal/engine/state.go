// Package engine is devloop's one event loop: it owns all state, turns events
// (file changes, action results) into a new state with the pure Reduce, asks
// the pure Plan what to start next, and runs those actions concurrently. Every
// action reports back as an event; nothing else ever touches State.
//
// The shape follows Tilt's store (one reducer goroutine, actions that report
// back) without its API server, and keeps Skaffold's lesson: builds never
// block forwards or log tails, which live in their own reconcilers.
package engine

import (
	"slices"
	"sort"
	"time"

	"github.com/devloop-dev/devloop/internal/build"
	"github.com/devloop-dev/devloop/internal/config"
)

// Phase is where a service is in its build → load → deploy cycle.
type Phase string

// The phases of a service, in the order a change goes through them.
const (
	PhasePending   Phase = "pending"    // nothing started yet
	PhaseBuilding  Phase = "building"   // image build (with pre-build) running
	PhaseLoading   Phase = "loading"    // loading the image into the kind node(s)
	PhaseDeploying Phase = "deploying"  // waiting for apply + rollout
	PhaseSyncing   Phase = "syncing"    // copying files into running containers
	PhaseLive      Phase = "restarting" // pre-build, copy and process restart in the running containers
	PhaseWaiting   Phase = "waiting"    // built, waiting for its dependencies before its first apply
	PhaseReady     Phase = "ready"      // the latest build (or sync) is running
	PhaseFailed    Phase = "failed"     // the last attempt failed; the last good version keeps running
)

// ServiceState is everything the loop knows about one service.
type ServiceState struct {
	Name  string
	Phase Phase

	// Dirty: the sources changed since the in-flight or last build; a build is owed.
	Dirty bool
	// Reasons says why the next build happens (the first few changed paths).
	Reasons []string
	// PendingSync holds changed files that live-sync rules cover.
	PendingSync []string
	// PendingLive holds changes a live update covers (a service with restart
	// rules and a preBuild: sources the preBuild compiles), and markers of
	// containers that started from an image older than the live state.
	PendingLive []string
	// LiveUpdates counts the live updates (restarts with new code) since the
	// image the service runs: when non-zero the image lags the containers.
	LiveUpdates int
	// LastFallback is the reason of the last fallback from a restart to a
	// rebuild, said once until the reason changes.
	LastFallback string

	// Gen increments on every change to the service; actions carry the Gen
	// they started at so stale results are recognised and dropped.
	Gen int
	// InFlight is the Gen of the running action (0 when none runs).
	InFlight int
	// Action is the kind of the running action, if any.
	Action ActionKind

	// Built is the newest successfully built and loaded artifact; it is what the
	// next deploy substitutes. Deployed is the one the last successful rollout ran.
	Built    *build.Image
	Deployed *build.Image
	// NeedsDeploy: Built differs from what the cluster was last told to run.
	NeedsDeploy bool

	// LastError is the last failure, shown once and kept for status views.
	LastError string
	// RetryOwed: the last build failed with a RetryError (not the code's
	// fault); the loop builds again by itself once its cause has gone.
	RetryOwed bool
	// DeployFailed: the last failure is a deploy's (an apply, a chart that
	// did not render, a rollout), which the next successful apply clears;
	// a build's failure stays until a build succeeds.
	DeployFailed bool
	// Builds counts finished image builds; Syncs counts live syncs.
	Builds, Syncs int
	// PhaseSince is when Phase last changed.
	PhaseSince time.Time

	// DependsOn are the services whose workloads must be ready before this
	// one's are first applied (config dependsOn). Released: they were (or
	// there are none); from then on its deploys never wait.
	DependsOn []string
	Released  bool
}

// State is owned by the loop goroutine alone.
type State struct {
	Config   *config.Config
	Services map[string]*ServiceState
	// Order is the services in config order, for stable plans and output:
	// the selected ones only (`devloop up a b`).
	Order []string
	// Unselected are the config's services not selected: never built,
	// synced or watched, and their workloads are held out of every apply.
	Unselected []string

	// ManifestsDirty: manifests changed (or were never applied) since the last apply.
	ManifestsDirty bool
	// Deploying is the deploy generation in flight (0 when none).
	Deploying int
	deployGen int
	// DeployingServices are the services whose new images the in-flight deploy rolls out.
	DeployingServices []string
	deploying         map[string]*build.Image
	// InitialDeployDone: the first apply succeeded; before it, a deploy waits
	// for every service's first build so the first apply has all images.
	InitialDeployDone bool
	// Now is the time of the event being reduced (from the injected clock).
	Now time.Time
}

// NewState builds the initial state: every service owes a first build, the
// manifests owe a first apply.
func NewState(cfg *config.Config, now time.Time) *State {
	return NewStateOf(cfg, nil, now)
}

// NewStateOf is NewState for the selected services only (nil selects every
// one); the selection must hold the services' dependencies (config.Select).
func NewStateOf(cfg *config.Config, selected []string, now time.Time) *State {
	s := &State{Config: cfg, Services: map[string]*ServiceState{}, ManifestsDirty: true, Now: now}
	want := map[string]bool{}
	for _, n := range selected {
		want[n] = true
	}
	for _, svc := range cfg.Services {
		if selected != nil && !want[svc.Name] {
			s.Unselected = append(s.Unselected, svc.Name)
			continue
		}
		s.Order = append(s.Order, svc.Name)
		s.Services[svc.Name] = &ServiceState{
			Name: svc.Name, Phase: PhasePending, Dirty: true, Gen: 1,
			Reasons: []string{"initial build"}, PhaseSince: now,
			DependsOn: svc.DependsOn, Released: len(svc.DependsOn) == 0,
		}
	}
	return s
}

// WaitingFor returns the dependencies service name still waits for before
// its first apply (none once released).
func (s *State) WaitingFor(name string) []string {
	ss := s.Services[name]
	if ss == nil || ss.Released {
		return nil
	}
	var out []string
	for _, d := range ss.DependsOn {
		if ds := s.Services[d]; ds != nil && ds.Deployed == nil {
			out = append(out, d)
		}
	}
	return out
}

// stuck reports whether a service can make no progress until the user
// saves: its first build failed and is not retried, or its rollout failed
// before it ever ran, or it waits for a dependency that is stuck.
func (s *State) stuck(name string, seen map[string]bool) bool {
	ss := s.Services[name]
	if ss == nil || seen[name] {
		return false
	}
	seen[name] = true
	if ss.Dirty || ss.InFlight != 0 || len(ss.PendingSync) > 0 {
		return false
	}
	if ss.Phase == PhaseFailed && ss.Deployed == nil {
		return true
	}
	for _, d := range s.WaitingFor(name) {
		if s.stuck(d, seen) {
			return true
		}
	}
	return false
}

// Blocked names the stuck dependency service name waits for ("" when none):
// it cannot be deployed until that one is fixed.
func (s *State) Blocked(name string) string {
	for _, d := range s.WaitingFor(name) {
		if s.stuck(d, map[string]bool{}) {
			return d
		}
	}
	return ""
}

// held reports whether service name's workloads stay out of the next apply:
// it waits for its dependencies, or it has no image yet and its first
// build failed (a broken service never holds up the others).
func (s *State) held(ss *ServiceState) bool {
	return !ss.Released || (ss.Built == nil && ss.Phase == PhaseFailed && !ss.Dirty && ss.InFlight == 0)
}

func (s *State) setPhase(ss *ServiceState, p Phase) {
	if ss.Phase != p {
		ss.Phase = p
		ss.PhaseSince = s.Now
	}
}

// Busy reports whether any action is in flight.
func (s *State) Busy() bool {
	if s.Deploying != 0 {
		return true
	}
	for _, ss := range s.Services {
		if ss.InFlight != 0 {
			return true
		}
	}
	return false
}

// Settled reports whether nothing is running and nothing is owed: every
// service is ready, failed or waiting for a failed dependency, and the
// manifests are applied.
func (s *State) Settled() bool {
	if s.Busy() {
		return false
	}
	if _, ok := planDeploy(s); ok {
		return false
	}
	for _, ss := range s.Services {
		if ss.Dirty || len(ss.PendingSync) > 0 || len(ss.PendingLive) > 0 {
			if ss.Phase != PhaseFailed {
				return false
			}
		}
		if !ss.Released && s.Blocked(ss.Name) == "" && ss.Phase != PhaseFailed {
			return false
		}
	}
	return true
}

// Images maps each service's image repository to the ref a deploy should
// substitute: the newest built artifact, as its delivery named it (pushed
// to a registry: that registry's reference).
func (s *State) Images() map[string]string {
	m := map[string]string{}
	for _, ss := range s.Services {
		if ss.Built != nil {
			m[ss.Built.Repo] = ss.Built.DeployRef()
		}
	}
	return m
}

func addReasons(have []string, paths []string) []string {
	const max = 3
	for _, p := range paths {
		if len(have) >= max {
			break
		}
		if !slices.Contains(have, p) {
			have = append(have, p)
		}
	}
	return have
}

func mergeSorted(a, b []string) []string {
	set := map[string]bool{}
	for _, x := range a {
		set[x] = true
	}
	for _, x := range b {
		set[x] = true
	}
	out := make([]string, 0, len(set))
	for x := range set {
		out = append(out, x)
	}
	sort.Strings(out)
	return out
}

// deployingService reports whether the in-flight deploy rolls name's image.
func (s *State) deployingService(name string) bool {
	return s.Deploying != 0 && slices.Contains(s.DeployingServices, name)
}
