package engine

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/devloop-dev/devloop/internal/build"
)

// Event is anything the loop reduces into State.
type Event interface{ isEvent() }

// Changed is a batch of file changes, already routed to what they affect.
type Changed struct {
	// Rebuild maps a service to the changed paths that need a new image.
	Rebuild map[string][]string
	// Sync maps a service to the changed paths its live-sync rules cover.
	Sync map[string][]string
	// Live maps a service to the changes a live update (pre-build, copy,
	// restart) covers; a path that is not absolute is a marker (a container
	// that started with the image's older code), which needs no pre-build.
	Live map[string][]string
	// Manifests: a manifest file changed; re-apply only.
	Manifests bool
	// Config: devloop.yaml itself changed.
	Config bool
}

// Empty reports whether the change affects nothing.
func (c Changed) Empty() bool {
	return len(c.Rebuild) == 0 && len(c.Sync) == 0 && len(c.Live) == 0 && !c.Manifests && !c.Config
}

// ActionStarted records that the loop started an action Plan asked for.
type ActionStarted struct{ Action Action }

// Progress moves a running action's service to another phase (build → load).
type Progress struct {
	Service string
	Gen     int
	Phase   Phase
}

// ImageDone reports the end of a build-and-load action.
type ImageDone struct {
	Service string
	Gen     int
	Image   *build.Image
	Err     error
	Took    time.Duration
}

// SyncDone reports the end of a live sync.
type SyncDone struct {
	Service string
	Gen     int
	Err     error
	// Fallback: the sync could not be done (no tar, no running container);
	// the files need a rebuild instead. Err says why.
	Fallback bool
}

// LiveDone reports the end of a live update.
type LiveDone struct {
	Service string
	Gen     int
	Err     error
	// Fallback: the restart could not be done (no supervisor, no running
	// container, the copy failed); a rebuild is needed. Err says why.
	Fallback bool
	// Updated counts the containers that were restarted with new code.
	Updated int
}

// DeployDone reports the end of an apply-and-rollout.
type DeployDone struct {
	Gen int
	// Err is a failure of the apply itself (nothing rolled).
	Err error
	// Failed maps a service to why its rollout failed.
	Failed map[string]error
	Took   time.Duration
}

// Retry reports that the cause of a service's failed build, one that was not
// the user's code (a RetryError), has gone: the loop posts it once the
// error's Wait returns. Gen is the generation of the build that failed; a
// save since then has already started a newer build and the retry is dropped.
type Retry struct {
	Service string
	Gen     int
	Reason  string
}

// RetryError is a build failure that a save cannot fix and that goes away
// by itself: the Docker engine stopped answering (restarted, say). The loop
// shows it like any failure (the last good version keeps running), then
// waits with Wait (until the engine answers again) and builds the service
// again without a save. Reason says why the new build runs.
type RetryError struct {
	Err    error
	Reason string
	Wait   func(ctx context.Context) error
}

func (e *RetryError) Error() string { return e.Err.Error() }
func (e *RetryError) Unwrap() error { return e.Err }

func (Changed) isEvent()       {}
func (Retry) isEvent()         {}
func (ActionStarted) isEvent() {}
func (Progress) isEvent()      {}
func (ImageDone) isEvent()     {}
func (SyncDone) isEvent()      {}
func (LiveDone) isEvent()      {}
func (DeployDone) isEvent()    {}

// ErrSuperseded is the error a build reports when a newer change cancelled it.
var ErrSuperseded = errors.New("superseded by a newer change")

// Reduce applies one event to the state. It is pure: no I/O, no clock (the
// loop sets s.Now before calling it).
func Reduce(s *State, ev Event) {
	switch e := ev.(type) {
	case Changed:
		reduceChanged(s, e)
	case ActionStarted:
		reduceStarted(s, e.Action)
	case Progress:
		if ss := s.Services[e.Service]; ss != nil && ss.InFlight == e.Gen && e.Gen != 0 {
			s.setPhase(ss, e.Phase)
		}
	case ImageDone:
		reduceImageDone(s, e)
	case SyncDone:
		reduceSyncDone(s, e)
	case LiveDone:
		reduceLiveDone(s, e)
	case DeployDone:
		reduceDeployDone(s, e)
	case Retry:
		if ss := s.Services[e.Service]; ss != nil && ss.Gen == e.Gen && ss.InFlight == 0 && ss.RetryOwed {
			markDirty(ss, []string{e.Reason})
		}
	}
}

func markDirty(ss *ServiceState, paths []string) {
	if !ss.Dirty {
		ss.Reasons = nil
	}
	ss.Dirty = true
	ss.RetryOwed = false
	ss.Gen++
	ss.Reasons = addReasons(ss.Reasons, paths)
}

func reduceChanged(s *State, e Changed) {
	for name, paths := range e.Rebuild {
		if ss := s.Services[name]; ss != nil && len(paths) > 0 {
			markDirty(ss, paths)
		}
	}
	for name, paths := range e.Sync {
		ss := s.Services[name]
		if ss == nil || len(paths) == 0 {
			continue
		}
		ss.Gen++
		ss.PendingSync = mergeSorted(ss.PendingSync, paths)
	}
	for name, paths := range e.Live {
		ss := s.Services[name]
		if ss == nil || len(paths) == 0 {
			continue
		}
		if ss.Dirty || ss.Deployed == nil || (ss.InFlight != 0 && ss.Action == ActionImage) || ss.NeedsDeploy || s.deployingService(name) {
			// A build is owed, runs, or its image is being rolled: it
			// must hold this change too (it runs the pre-build).
			if sources := realPaths(paths); len(sources) > 0 {
				markDirty(ss, sources)
			}
			continue
		}
		ss.Gen++
		ss.PendingLive = mergeSorted(ss.PendingLive, paths)
	}
	if e.Manifests {
		s.ManifestsDirty = true
	}
}

// realPaths drops the markers (paths that are not absolute) of a live change.
func realPaths(paths []string) []string {
	var out []string
	for _, p := range paths {
		if strings.HasPrefix(p, "/") {
			out = append(out, p)
		}
	}
	return out
}

func reduceStarted(s *State, a Action) {
	switch a.Kind {
	case ActionImage:
		ss := s.Services[a.Service]
		ss.InFlight, ss.Action = a.Gen, ActionImage
		ss.Dirty = false
		// The build snapshots the whole context, synced files included,
		// and runs the pre-build.
		ss.PendingSync = nil
		ss.PendingLive = nil
		s.setPhase(ss, PhaseBuilding)
	case ActionSync:
		ss := s.Services[a.Service]
		ss.InFlight, ss.Action = a.Gen, ActionSync
		ss.PendingSync = nil
		s.setPhase(ss, PhaseSyncing)
	case ActionLive:
		ss := s.Services[a.Service]
		ss.InFlight, ss.Action = a.Gen, ActionLive
		ss.PendingLive = nil
		s.setPhase(ss, PhaseLive)
	case ActionDeploy:
		s.Deploying = a.Gen
		s.deployGen = a.Gen
		s.ManifestsDirty = false
		s.DeployingServices = a.Services
		s.deploying = map[string]*build.Image{}
		for _, name := range a.Services {
			ss := s.Services[name]
			s.deploying[name] = ss.Built
			wanted := ss.NeedsDeploy
			ss.NeedsDeploy = false
			// A service whose last build failed keeps showing that failure
			// while a manifest-only apply runs; one whose last deploy failed
			// is deployed again.
			if ss.InFlight == 0 && (wanted || ss.Phase != PhaseFailed || ss.DeployFailed) {
				s.setPhase(ss, PhaseDeploying)
			}
		}
	case ActionCancel:
		// The loop cancels the context; the result arrives as ImageDone with
		// ErrSuperseded and is dropped there. Remember we asked.
		s.Services[a.Service].Action = ActionCancel
	}
}

func reduceImageDone(s *State, e ImageDone) {
	ss := s.Services[e.Service]
	if ss == nil || ss.InFlight != e.Gen || e.Gen == 0 {
		return // stale
	}
	ss.InFlight, ss.Action = 0, ""
	if e.Err != nil {
		if errors.Is(e.Err, ErrSuperseded) {
			// A newer change is already queued (Dirty); Plan starts it.
			s.setPhase(ss, PhasePending)
			return
		}
		ss.LastError = e.Err.Error()
		var re *RetryError
		ss.RetryOwed = errors.As(e.Err, &re)
		ss.DeployFailed = false
		s.setPhase(ss, PhaseFailed)
		return
	}
	ss.Builds++
	ss.LastError = ""
	ss.Built = e.Image
	if ss.Deployed != nil && ss.Deployed.Ref() == e.Image.Ref() {
		// Same content as what runs: nothing to roll.
		s.setPhase(ss, PhaseReady)
		return
	}
	ss.NeedsDeploy = true
	if !ss.Released {
		s.setPhase(ss, PhaseWaiting)
		return
	}
	s.setPhase(ss, PhaseDeploying)
}

func reduceSyncDone(s *State, e SyncDone) {
	ss := s.Services[e.Service]
	if ss == nil || ss.InFlight != e.Gen || e.Gen == 0 {
		return
	}
	ss.InFlight, ss.Action = 0, ""
	switch {
	case e.Err == nil:
		ss.Syncs++
		ss.LastError = ""
		s.setPhase(ss, PhaseReady)
	case e.Fallback:
		// Say why, then rebuild instead.
		ss.LastError = fmt.Sprintf("live sync not possible, rebuilding instead: %v", e.Err)
		markDirty(ss, []string{"(live sync fallback)"})
		s.setPhase(ss, PhasePending)
	default:
		ss.LastError = e.Err.Error()
		s.setPhase(ss, PhaseFailed)
	}
}

func reduceLiveDone(s *State, e LiveDone) {
	ss := s.Services[e.Service]
	if ss == nil || ss.InFlight != e.Gen || e.Gen == 0 {
		return
	}
	ss.InFlight, ss.Action = 0, ""
	switch {
	case e.Err == nil:
		if e.Updated > 0 {
			ss.LiveUpdates++
		}
		ss.LastError = ""
		s.setPhase(ss, PhaseReady)
	case e.Fallback:
		ss.LastError = fmt.Sprintf("restart not possible, rebuilding instead: %v", e.Err)
		ss.LastFallback = e.Err.Error()
		markDirty(ss, []string{"(restart fallback)"})
		s.setPhase(ss, PhasePending)
	default:
		// The pre-build failed (a compile error): like a failed build, the
		// last good version keeps running.
		ss.LastError = e.Err.Error()
		s.setPhase(ss, PhaseFailed)
	}
}

func reduceDeployDone(s *State, e DeployDone) {
	if s.Deploying != e.Gen || e.Gen == 0 {
		return
	}
	s.Deploying = 0
	services, artifacts := s.DeployingServices, s.deploying
	s.DeployingServices, s.deploying = nil, nil
	if e.Err == nil {
		s.InitialDeployDone = true
	}
	for _, name := range services {
		ss := s.Services[name]
		var err error
		if e.Err != nil {
			err = e.Err
		} else if ferr := e.Failed[name]; ferr != nil {
			err = ferr
		}
		if err != nil {
			ss.LastError = err.Error()
			if ss.Phase == PhaseDeploying {
				ss.DeployFailed = true
				s.setPhase(ss, PhaseFailed)
			}
			continue
		}
		ss.DeployFailed = false
		if artifacts[name] != nil && (ss.Deployed == nil || ss.Deployed.Ref() != artifacts[name].Ref()) {
			// A new image holds the workspace: it no longer lags.
			ss.LiveUpdates = 0
		}
		ss.Deployed = artifacts[name]
		if ss.Phase == PhaseDeploying && !ss.NeedsDeploy {
			ss.LastError = ""
			s.setPhase(ss, PhaseReady)
		}
	}
	release(s)
}

// release lets the services whose dependencies have all rolled out be
// deployed: the next deploy rolls them (if they have an image).
func release(s *State) {
	for changed := true; changed; {
		changed = false
		for _, name := range s.Order {
			ss := s.Services[name]
			if ss.Released || len(s.WaitingFor(name)) > 0 {
				continue
			}
			ss.Released, changed = true, true
			if ss.Built != nil && ss.InFlight == 0 {
				ss.NeedsDeploy = true
				s.setPhase(ss, PhaseDeploying)
			}
		}
	}
}
