package engine

import (
	"context"
	"errors"
	"sync"
	"time"

	"golang.org/x/sync/semaphore"
	"k8s.io/utils/clock"

	"github.com/devloop-dev/devloop/internal/build"
	"github.com/devloop-dev/devloop/internal/config"
)

// Runner does the I/O the loop asks for. Each method runs on its own
// goroutine with its own context; the loop never blocks on one.
type Runner interface {
	// Image runs the pre-build, builds the image and loads it into the
	// cluster's nodes. progress moves the service to another phase (loading).
	Image(ctx context.Context, svc config.Service, reasons []string, progress func(Phase)) (*build.Image, error)
	// Sync copies paths into the service's running containers. fallback=true
	// means it could not (no tar, no running pod) and a rebuild is needed.
	Sync(ctx context.Context, svc config.Service, paths []string) (fallback bool, err error)
	// Live runs the service's pre-build when paths hold a source (not only
	// markers), copies its restart rules' files into every running container
	// that lacks them and restarts their processes. updated counts the
	// containers restarted; fallback=true means a restart cannot be done
	// (no supervisor, no running container, the copy failed) and a rebuild
	// is needed.
	Live(ctx context.Context, svc config.Service, paths []string) (updated int, fallback bool, err error)
	// Deploy applies the manifests with a.Images substituted and waits for
	// the rollouts of a.Services (all workloads when a.All). failed maps a
	// service to why its rollout failed; err is a failure of the apply itself.
	Deploy(ctx context.Context, a Action) (failed map[string]error, err error)
}

// Observer sees every event after it was reduced and every action as it
// starts, on the loop goroutine. It must not keep s or block.
type Observer interface {
	Reduced(s *State, ev Event)
	Started(s *State, a Action)
}

// Loop is the one goroutine that owns State.
type Loop struct {
	runner   Runner
	observer Observer
	clock    clock.PassiveClock
	state    *State
	events   chan Event
	images   *semaphore.Weighted

	cancels map[string]context.CancelFunc // per service, for in-flight image/sync actions
	wg      sync.WaitGroup
}

// Options tune a Loop.
type Options struct {
	// ParallelImages bounds concurrent builds (default 2).
	ParallelImages int64
	// Clock is the source of State.Now (default: the real clock).
	Clock    clock.PassiveClock
	Observer Observer
	// Services selects the services to build, sync and deploy (with their
	// dependencies: config.Select); nil selects every one.
	Services []string
}

// New makes a loop for cfg.
func New(cfg *config.Config, r Runner, o Options) *Loop {
	if o.ParallelImages <= 0 {
		o.ParallelImages = 2
	}
	if o.Clock == nil {
		o.Clock = clock.RealClock{}
	}
	if o.Observer == nil {
		o.Observer = nopObserver{}
	}
	return &Loop{
		runner: r, observer: o.Observer, clock: o.Clock,
		state:   NewStateOf(cfg, o.Services, o.Clock.Now()),
		events:  make(chan Event, 64),
		images:  semaphore.NewWeighted(o.ParallelImages),
		cancels: map[string]context.CancelFunc{},
	}
}

// Post hands an event to the loop. It is safe from any goroutine and returns
// false only when ctx ends first.
func (l *Loop) Post(ctx context.Context, ev Event) bool {
	select {
	case l.events <- ev:
		return true
	case <-ctx.Done():
		return false
	}
}

// Run owns the state until ctx ends; then it cancels every action and waits
// for them, so nothing outlives it.
func (l *Loop) Run(ctx context.Context) error {
	actx, cancelAll := context.WithCancel(ctx)
	defer func() {
		cancelAll()
		l.wg.Wait()
	}()
	l.plan(actx)
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case ev := <-l.events:
			l.state.Now = l.clock.Now()
			Reduce(l.state, ev)
			l.observer.Reduced(l.state, ev)
			l.plan(actx)
		}
	}
}

func (l *Loop) plan(ctx context.Context) {
	for _, a := range Plan(l.state) {
		if a.Kind == ActionCancel {
			if c := l.cancels[a.Service]; c != nil {
				c()
			}
			Reduce(l.state, ActionStarted{Action: a})
			continue
		}
		Reduce(l.state, ActionStarted{Action: a})
		l.observer.Started(l.state, a)
		l.start(ctx, a)
	}
}

func (l *Loop) service(name string) config.Service {
	for _, s := range l.state.Config.Services {
		if s.Name == name {
			return s
		}
	}
	return config.Service{Name: name}
}

// start runs one action on its own goroutine; its result comes back as an event.
func (l *Loop) start(ctx context.Context, a Action) {
	post := func(ev Event) {
		// The loop may have stopped: results after that are dropped.
		select {
		case l.events <- ev:
		case <-ctx.Done():
		}
	}
	switch a.Kind {
	case ActionImage:
		svc := l.service(a.Service)
		actx, cancel := context.WithCancel(ctx)
		l.cancels[a.Service] = cancel
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			defer cancel()
			begin := time.Now()
			art, err := l.runImage(actx, svc, a, post)
			if err != nil && actx.Err() != nil && ctx.Err() == nil {
				err = ErrSuperseded
			}
			post(ImageDone{Service: a.Service, Gen: a.Gen, Image: art, Err: err, Took: time.Since(begin)})
			// A failure that is not the code's: build again once its
			// cause has gone, without waiting for a save.
			var re *RetryError
			if errors.As(err, &re) && re.Wait != nil && re.Wait(ctx) == nil {
				post(Retry{Service: a.Service, Gen: a.Gen, Reason: re.Reason})
			}
		}()
	case ActionSync:
		svc := l.service(a.Service)
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			fallback, err := l.runner.Sync(ctx, svc, a.Paths)
			post(SyncDone{Service: a.Service, Gen: a.Gen, Err: err, Fallback: fallback})
		}()
	case ActionLive:
		svc := l.service(a.Service)
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			n, fallback, err := l.runner.Live(ctx, svc, a.Paths)
			post(LiveDone{Service: a.Service, Gen: a.Gen, Err: err, Fallback: fallback, Updated: n})
		}()
	case ActionDeploy:
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			begin := time.Now()
			failed, err := l.runner.Deploy(ctx, a)
			post(DeployDone{Gen: a.Gen, Err: err, Failed: failed, Took: time.Since(begin)})
		}()
	}
}

func (l *Loop) runImage(ctx context.Context, svc config.Service, a Action, post func(Event)) (*build.Image, error) {
	if err := l.images.Acquire(ctx, 1); err != nil {
		return nil, err
	}
	defer l.images.Release(1)
	progress := func(p Phase) { post(Progress{Service: a.Service, Gen: a.Gen, Phase: p}) }
	art, err := l.runner.Image(ctx, svc, a.Paths, progress)
	if err == nil && art == nil {
		err = errors.New("build returned no image")
	}
	return art, err
}

type nopObserver struct{}

func (nopObserver) Reduced(*State, Event)  {}
func (nopObserver) Started(*State, Action) {}
