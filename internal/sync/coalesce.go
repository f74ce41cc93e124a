package sync

import (
	"context"
	"slices"
	"time"
)

// Default debounce timings.
const (
	// DefaultQuiet is how long no new change must arrive before a batch is emitted.
	DefaultQuiet = 150 * time.Millisecond
	// DefaultCap bounds how long a batch may keep growing under a steady
	// stream of changes.
	DefaultCap = 10 * time.Second
)

// Coalesce debounces paths from in into batches (deduplicated, sorted). A
// batch is emitted once quiet has passed without a new path, or once capDur
// has passed since its first path, whichever comes first. If the consumer is
// slow, later batches that fall due are merged into the one waiting to be
// received, so in is always drained.
//
// The returned channel is closed when ctx is done, or when in is closed
// (after the pending batch, if any, has been delivered).
func Coalesce(ctx context.Context, clock Clock, quiet, capDur time.Duration, in <-chan string) <-chan []string {
	return coalesce(ctx, clock, quiet, capDur, in, &pathSet{})
}

// accumulator collects items of one batch and turns them into paths.
type accumulator[T any] interface {
	add(T)
	// flush returns the batch (sorted, deduplicated, possibly empty) and resets.
	flush() []string
}

// pathSet is the accumulator for plain paths.
type pathSet struct{ m map[string]struct{} }

func (s *pathSet) add(p string) {
	if s.m == nil {
		s.m = map[string]struct{}{}
	}
	s.m[p] = struct{}{}
}

func (s *pathSet) flush() []string {
	out := make([]string, 0, len(s.m))
	for p := range s.m {
		out = append(out, p)
	}
	s.m = nil
	slices.Sort(out)
	return out
}

func coalesce[T any](ctx context.Context, clock Clock, quiet, capDur time.Duration, in <-chan T, acc accumulator[T]) <-chan []string {
	if clock == nil {
		clock = RealClock{}
	}
	if quiet <= 0 {
		quiet = DefaultQuiet
	}
	if capDur <= 0 {
		capDur = DefaultCap
	}
	out := make(chan []string)
	go func() {
		defer close(out)
		var (
			quietT, capT Timer    // non-nil while a batch is accumulating
			pending      []string // due, waiting for the consumer
		)
		stopTimers := func() {
			if quietT != nil {
				quietT.Stop()
				capT.Stop()
				quietT, capT = nil, nil
			}
		}
		defer stopTimers()
		due := func() {
			stopTimers()
			pending = mergeSorted(pending, acc.flush())
		}
		for {
			var quietC, capC <-chan time.Time
			if quietT != nil {
				quietC, capC = quietT.C(), capT.C()
			}
			var outC chan<- []string
			if len(pending) > 0 {
				outC = out
			}
			select {
			case <-ctx.Done():
				return
			case v, ok := <-in:
				if !ok {
					due()
					if len(pending) > 0 {
						select {
						case out <- pending:
						case <-ctx.Done():
						}
					}
					return
				}
				acc.add(v)
				if quietT == nil {
					quietT, capT = clock.NewTimer(quiet), clock.NewTimer(capDur)
				} else {
					quietT.Reset(quiet)
				}
			case <-quietC:
				due()
			case <-capC:
				due()
			case outC <- pending:
				pending = nil
			}
		}
	}()
	return out
}

// mergeSorted returns the sorted union of two sorted, deduplicated slices.
func mergeSorted(a, b []string) []string {
	if len(a) == 0 {
		return b
	}
	if len(b) == 0 {
		return a
	}
	out := make([]string, 0, len(a)+len(b))
	i, j := 0, 0
	for i < len(a) && j < len(b) {
		switch {
		case a[i] < b[j]:
			out = append(out, a[i])
			i++
		case a[i] > b[j]:
			out = append(out, b[j])
			j++
		default:
			out = append(out, a[i])
			i, j = i+1, j+1
		}
	}
	out = append(out, a[i:]...)
	return append(out, b[j:]...)
}
