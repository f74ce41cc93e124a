package logs

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// tail follows one container instance (one container ID).
type tail struct {
	m         *Manager
	ns, pod   string
	container string
	id        string
	prefix    string
	since     *metav1.Time // only for the first stream

	// Resume point: the newest timestamp printed and how many lines
	// carrying exactly that timestamp were printed.
	haveTS      bool
	lastTS      time.Time
	countAtLast int
}

func (m *Manager) newTail(p *corev1.Pod, container, id string) *tail {
	return &tail{
		m:         m,
		ns:        p.Namespace,
		pod:       p.Name,
		container: container,
		id:        id,
		prefix:    Prefix(m.opts.ServiceOf(p), p.Name, container, m.opts.Color),
		since:     m.since,
	}
}

func (t *tail) status(state string) {
	t.m.notify(TailStatus{Pod: t.pod, Container: t.container, ContainerID: t.id, State: state})
}

// streamEnd says how a stream ended.
type streamEnd int

const (
	endEOF    streamEnd = iota // clean end of stream
	endError                   // read error: lines may be missing
	endSilent                  // silent too long; closed by the watchdog
)

// next says what to do after a stream ended.
type next int

const (
	stop       next = iota
	resume          // same container is still current
	resumePrev      // container was replaced: drain via Previous
)

func (t *tail) run(ctx context.Context) {
	defer t.status(StateEnded)
	var backoff time.Duration
	previous := false
	failures := 0 // consecutive streams that printed nothing and did not end cleanly
	for {
		opts := &corev1.PodLogOptions{Container: t.container, Follow: t.m.opts.Follow, Timestamps: true, Previous: previous}
		switch {
		case t.haveTS:
			st := metav1.NewTime(t.lastTS.Truncate(time.Second))
			opts.SinceTime = &st
		case t.since != nil:
			opts.SinceTime = t.since
		}
		rc, err := t.m.opts.Streamer.Stream(ctx, t.ns, t.pod, opts)
		how := endError
		printed := 0
		if err == nil {
			t.status(StateAttached)
			printed, how = t.consume(ctx, rc)
			rc.Close()
		}
		if ctx.Err() != nil || !t.m.opts.Follow || previous && how == endEOF {
			return
		}
		t.status(StateDetached)
		if printed > 0 {
			backoff = 0
		}
		if printed > 0 || how == endEOF {
			failures = 0
		} else {
			failures++
		}
		if backoff > 0 && !t.sleep(ctx, backoff) {
			return
		}
		backoff = min(max(backoff*2, backoffMin), backoffMax)

		n, ok := t.decide(ctx, how, failures, &backoff)
		if !ok {
			return
		}
		switch n {
		case stop:
			return
		case resumePrev:
			previous = true
		}
	}
}

func (t *tail) sleep(ctx context.Context, d time.Duration) bool {
	timer := t.m.clock.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C():
		return true
	case <-ctx.Done():
		return false
	}
}

// decide looks at the pod as the API server has it now (not the informer
// cache, which may lag the stream's end) to choose between stopping and
// resuming. It retries with backoff while the API server is unreachable.
func (t *tail) decide(ctx context.Context, how streamEnd, failures int, backoff *time.Duration) (next, bool) {
	settle, waited := backoffMin, time.Duration(0)
	for {
		p, err := t.m.cs.CoreV1().Pods(t.ns).Get(ctx, t.pod, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return stop, true
		}
		if err == nil {
			// The pod as the API server has it now may show a container
			// the informer has not delivered yet (after an outage its
			// relist can lag by up to 30 s): tail that one at once.
			t.m.podUpdated(p)
			n := t.decideFor(p, how, failures)
			if n != resume || how != endEOF || waited >= settleMax {
				return n, true
			}
			// A clean end while the pod still shows our container
			// running usually means it has just exited and the status
			// lags (kubelet relists every second). Resuming now would
			// read its successor's log under our ID, so give the
			// status a moment to catch up first.
			if !t.sleep(ctx, settle) {
				return stop, false
			}
			waited += settle
			settle *= 2
			continue
		}
		if ctx.Err() != nil || !t.sleep(ctx, *backoff) {
			return stop, false
		}
		*backoff = min(max(*backoff*2, backoffMin), backoffMax)
	}
}

// settleMax bounds how long a cleanly ended stream of a container still
// shown as running waits for the pod status before resuming.
const settleMax = 3 * time.Second

func (t *tail) decideFor(p *corev1.Pod, how streamEnd, failures int) next {
	// A finished container whose log cannot be read keeps failing; give
	// up on it after a few tries. A running one is retried forever.
	statuses := append(append([]corev1.ContainerStatus(nil), p.Status.InitContainerStatuses...), p.Status.ContainerStatuses...)
	for _, cs := range statuses {
		if cs.Name != t.container {
			continue
		}
		if cs.ContainerID == t.id {
			if cs.State.Terminated != nil && (how == endEOF || failures >= maxDrainFailures) {
				return stop // read to the end of a finished container
			}
			return resume
		}
		if lt := cs.LastTerminationState.Terminated; lt != nil && lt.ContainerID == t.id && how != endEOF && failures < maxDrainFailures {
			return resumePrev // replaced before we read all of it
		}
		return stop
	}
	return stop
}

// maxDrainFailures bounds retries of a finished container's stream.
const maxDrainFailures = 5

// consume prints the lines of one stream, skipping those printed before a
// resume, and returns how many it printed and how the stream ended.
func (t *tail) consume(ctx context.Context, rc io.ReadCloser) (int, streamEnd) {
	activity := make(chan struct{}, 1)
	done := make(chan struct{})
	var (
		mu     sync.Mutex
		silent bool
	)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		// Watchdog: close the stream if ctx ends or it is silent too long
		// (a stalled follow, e.g. after kubelet log rotation).
		defer wg.Done()
		timer := t.m.clock.NewTimer(t.m.opts.SilenceTimeout)
		defer timer.Stop()
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				rc.Close()
				return
			case <-activity:
				if !timer.Stop() {
					select {
					case <-timer.C():
					default:
					}
				}
				timer.Reset(t.m.opts.SilenceTimeout)
			case <-timer.C():
				if !t.m.opts.Follow {
					timer.Reset(t.m.opts.SilenceTimeout)
					continue
				}
				mu.Lock()
				silent = true
				mu.Unlock()
				rc.Close()
				return
			}
		}
	}()
	defer func() { close(done); wg.Wait() }()

	r := bufio.NewReaderSize(rc, t.m.opts.MaxLineBytes)
	skipEq := 0
	if t.haveTS {
		skipEq = t.countAtLast
	}
	printed := 0
	continuing := false // in the middle of a long line
	skipping := false   // dropping the current logical line
	for {
		frag, isPrefix, err := r.ReadLine()
		if err != nil {
			mu.Lock()
			s := silent
			mu.Unlock()
			switch {
			case s:
				return printed, endSilent
			case errors.Is(err, io.EOF):
				return printed, endEOF
			default:
				return printed, endError
			}
		}
		select {
		case activity <- struct{}{}:
		default:
		}
		text := frag
		if !continuing {
			ts, rest, ok := splitTimestamp(frag)
			skipping = false
			if ok {
				text = rest
				switch {
				case t.haveTS && ts.Before(t.lastTS):
					skipping = true
				case t.haveTS && ts.Equal(t.lastTS) && skipEq > 0:
					skipEq--
					skipping = true
				case t.haveTS && ts.Equal(t.lastTS):
					t.countAtLast++
				default:
					t.haveTS, t.lastTS, t.countAtLast = true, ts, 1
				}
			}
			if !skipping {
				printed++
			}
		}
		if !skipping {
			t.m.writeLine(t.prefix, text)
		}
		continuing = isPrefix
	}
}

// splitTimestamp splits the RFC3339Nano timestamp the API prepends
// (Timestamps: true) from the line.
func splitTimestamp(line []byte) (time.Time, []byte, bool) {
	i := bytes.IndexByte(line, ' ')
	if i < 0 {
		// An empty log line is just the timestamp.
		if ts, err := time.Parse(time.RFC3339Nano, string(line)); err == nil {
			return ts, nil, true
		}
		return time.Time{}, line, false
	}
	ts, err := time.Parse(time.RFC3339Nano, string(line[:i]))
	if err != nil {
		return time.Time{}, line, false
	}
	return ts, line[i+1:], true
}
