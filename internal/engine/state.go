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
}

// State is owned by the loop goroutine alone.
type State struct {
	Config   *config.Config
	Services map[string]*ServiceState
	// Order is the services in config order, for stable plans and output.
	Order []string

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
	s := &State{Config: cfg, Services: map[string]*ServiceState{}, ManifestsDirty: true, Now: now}
	for _, svc := range cfg.Services {
		s.Order = append(s.Order, svc.Name)
		s.Services[svc.Name] = &ServiceState{
			Name: svc.Name, Phase: PhasePending, Dirty: true, Gen: 1,
			Reasons: []string{"initial build"}, PhaseSince: now,
		}
	}
	return s
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
// service is ready or failed and the manifests are applied.
func (s *State) Settled() bool {
	blocked := s.firstDeployBlocked()
	if s.Busy() || (s.ManifestsDirty && !blocked) {
		return false
	}
	for _, ss := range s.Services {
		if ss.Dirty || (ss.NeedsDeploy && !blocked) || len(ss.PendingSync) > 0 || len(ss.PendingLive) > 0 {
			if ss.Phase != PhaseFailed {
				return false
			}
		}
	}
	return true
}

// firstDeployBlocked reports whether the first apply cannot start: it waits
// for every service's first image, and one of them failed to build and is
// not being retried (the user fixes it and saves).
func (s *State) firstDeployBlocked() bool {
	if s.InitialDeployDone {
		return false
	}
	for _, ss := range s.Services {
		if ss.Built == nil && ss.Phase == PhaseFailed && !ss.Dirty {
			return true
		}
	}
	return false
}

// Images maps each service's image repository to the ref a deploy should
// substitute: the newest built artifact.
func (s *State) Images() map[string]string {
	m := map[string]string{}
	for _, ss := range s.Services {
		if ss.Built != nil {
			m[ss.Built.Repo] = ss.Built.Ref()
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
