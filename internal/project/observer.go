package project

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/devloop-dev/devloop/internal/build"
	"github.com/devloop-dev/devloop/internal/config"
	"github.com/devloop-dev/devloop/internal/engine"
	"github.com/devloop-dev/devloop/internal/ui"
)

// observer turns the loop's events into lines for the user. It runs on the
// loop goroutine and only prints.
type observer struct {
	p    *ui.Printer
	base string // config dir, to shorten paths
	// ready is called each time the state settles after work (for URLs, --once).
	ready func(s *engine.State)
	// changed, if set, sees the state after every event and action (the live view).
	changed func(s *engine.State)
	wasBusy bool
	// reload loads devloop.yaml again, to say what changed in it.
	reload  func() (*config.Config, error)
	started *config.Config // the config the loop runs with
	// fallbacks is the last reason said, per service, for a restart that
	// fell back to a rebuild: each reason is said once.
	fallbacks map[string]string
	// waiting, blocked, released: services said to wait for their
	// dependencies, to be blocked by a failed one, to be released.
	waiting, blocked, released map[string]bool
	// once: the command ends when the state settles (up --once), so the
	// summary does not say it watches.
	once bool
}

var _ engine.Observer = (*observer)(nil)

func (o *observer) Started(s *engine.State, a engine.Action) {
	switch a.Kind {
	case engine.ActionImage:
		o.p.Line(a.Service, "building (%s)", o.reasons(a.Paths))
	case engine.ActionSync:
		o.p.Line(a.Service, "live-syncing %s", o.reasons(a.Paths))
	case engine.ActionLive:
		o.p.Line(a.Service, "live-updating (%s)", o.reasons(a.Paths))
	case engine.ActionDeploy:
		if a.All {
			o.p.Line("devloop", "applying manifests, waiting for rollouts...")
		} else {
			o.p.Line("devloop", "rolling out %s...", strings.Join(a.Services, ", "))
		}
	}
	o.wasBusy = true
	if o.changed != nil {
		o.changed(s)
	}
}

func (o *observer) Reduced(s *engine.State, ev engine.Event) {
	switch e := ev.(type) {
	case engine.Changed:
		if e.Config {
			o.configChanged()
		}
	case engine.ImageDone:
		switch {
		case e.Err == nil:
			// The runner already said what was built and how long each step took.
		case errors.Is(e.Err, engine.ErrSuperseded):
			o.p.Line(e.Service, "build superseded by a newer change")
		case errors.As(e.Err, new(*engine.RetryError)):
			o.p.Error(e.Service, "build failed; the last good version keeps running. Not your code: %v", e.Err)
		case diskFull(e.Err):
			o.p.Error(e.Service, "build failed: a disk is full (no space left on device); the last good version keeps running. "+
				"Free some space, then save to retry:\n%v", e.Err)
		default:
			o.p.Error(e.Service, "build failed; the last good version keeps running. Fix it and save to retry:\n%v", e.Err)
		}
	case engine.SyncDone:
		if e.Err != nil && e.Fallback {
			o.p.Line(e.Service, "live sync not possible (%v): rebuilding instead", e.Err)
		} else if e.Err != nil {
			o.p.Error(e.Service, "live sync failed: %v", e.Err)
		}
	case engine.LiveDone:
		switch {
		case e.Err != nil && e.Fallback:
			if o.fallbacks == nil {
				o.fallbacks = map[string]string{}
			}
			if reason := e.Err.Error(); o.fallbacks[e.Service] != reason {
				o.fallbacks[e.Service] = reason
				o.p.Line(e.Service, "restart not possible (%v): rebuilding instead", e.Err)
			}
		case e.Err != nil:
			o.p.Error(e.Service, "pre-build failed; the last good version keeps running. Fix it and save to retry:\n%v", e.Err)
		}
	case engine.DeployDone:
		if e.Err != nil {
			o.p.Error("devloop", "apply failed; what was running keeps running. Fix the manifests and save to retry:\n%v", e.Err)
			break
		}
		for name, err := range e.Failed {
			o.p.Error(name, "rollout failed; the last good version keeps running:\n%v", err)
		}
		if len(e.Failed) == 0 {
			o.p.Line("devloop", "rolled out in %s", e.Took.Round(time.Millisecond))
		}
	}
	o.dependencies(s)
	if o.changed != nil {
		o.changed(s)
	}
	if o.wasBusy && s.Settled() {
		o.wasBusy = false
		o.summary(s)
		if o.ready != nil {
			o.ready(s)
		}
	}
}

// diskFull reports whether a failed build ran out of disk space: the error
// or the failed step's output says ENOSPC (a pre-build's "write bin/app: no
// space left on device", a RUN step's, the engine's own).
func diskFull(err error) bool {
	text := err.Error()
	var be *build.BuildError
	if errors.As(err, &be) {
		text += "\n" + be.Output
	}
	return errors.Is(err, syscall.ENOSPC) || strings.Contains(text, "no space left on device")
}

// dependencies says which services wait for which (once, when their image
// is ready), which can wait no more (a dependency failed), and when their
// dependencies are ready.
func (o *observer) dependencies(s *engine.State) {
	if o.waiting == nil {
		o.waiting = map[string]bool{}
		o.released = map[string]bool{}
	}
	for _, name := range s.Order {
		ss := s.Services[name]
		if len(ss.DependsOn) == 0 || o.released[name] {
			continue
		}
		said := o.waiting[name]
		switch {
		case ss.Released:
			o.released[name] = true
			if ss.Built != nil {
				o.p.Line(name, "%s ready: deploying %s", strings.Join(ss.DependsOn, ", "), name)
			} else {
				o.p.Line(name, "%s ready: %s deploys once built", strings.Join(ss.DependsOn, ", "), name)
			}
		case ss.Phase == engine.PhaseWaiting && !said:
			o.waiting[name] = true
			o.p.Line(name, "built; waiting for %s to be ready before its first deploy", strings.Join(s.WaitingFor(name), ", "))
		}
		if b := s.Blocked(name); b != "" && !ss.Released && !o.blocked[name] {
			if o.blocked == nil {
				o.blocked = map[string]bool{}
			}
			o.blocked[name] = true
			o.p.Error(name, "not deployed: it waits for %s, which failed. Fix %s and save", b, b)
		}
	}
}

// configChanged says what changed in devloop.yaml, compared with the
// config the loop runs with, and that a restart applies it.
func (o *observer) configChanged() {
	next, err := o.reload()
	if err != nil {
		o.p.Error("devloop", "devloop.yaml changed but does not load; devloop up goes on with the config it started with:\n%v", err)
		return
	}
	keys := config.Diff(o.started, next)
	if len(keys) == 0 {
		o.p.Line("devloop", "devloop.yaml changed, but not in anything that matters (comments, formatting, order)")
		return
	}
	o.p.Line("devloop", "devloop.yaml changed (%s): restart devloop up to apply it; until then builds, syncs and applies go on with the config it started with",
		strings.Join(keys, ", "))
}

func (o *observer) summary(s *engine.State) {
	var ready, failed, waiting []string
	for _, name := range s.Order {
		ss := s.Services[name]
		switch {
		case ss.Phase == engine.PhaseFailed:
			failed = append(failed, name)
		case !ss.Released:
			waiting = append(waiting, fmt.Sprintf("%s waits for %s", name, strings.Join(s.WaitingFor(name), ", ")))
		default:
			ready = append(ready, name)
		}
	}
	watching := " — watching for changes"
	if o.once {
		watching = ""
	}
	if len(failed) == 0 && len(waiting) == 0 {
		o.p.Line("devloop", "all services ready (%s)%s", strings.Join(ready, ", "), watching)
		return
	}
	what := strings.Join(failed, ", ")
	if len(waiting) > 0 {
		if what != "" {
			what += "; "
		}
		what += strings.Join(waiting, "; ")
	}
	o.p.Error("devloop", "%d of %d services failed (%s)%s", len(failed), len(s.Order), what, watching)
}

// reasons shortens the changed paths of a build or sync for one line.
func (o *observer) reasons(paths []string) string {
	if len(paths) == 0 {
		return "changes"
	}
	var short []string
	for _, p := range paths {
		if rel, err := filepath.Rel(o.base, p); err == nil && !strings.HasPrefix(rel, "..") && filepath.IsAbs(p) {
			p = rel
		}
		short = append(short, p)
	}
	s := strings.Join(short, ", ")
	if !slices.ContainsFunc(paths, filepath.IsAbs) {
		return s // not files: "initial build", "(new container …)"
	}
	return fmt.Sprintf("changed: %s", s)
}
