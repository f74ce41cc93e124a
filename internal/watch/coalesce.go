package watch

import (
	"context"
	"slices"
	"strings"
	"time"

	"k8s.io/utils/clock"
)

// Default debounce timings.
const (
	// DefaultQuiet is how long no new change must arrive before a batch is emitted.
	DefaultQuiet = 150 * time.Millisecond
	// DefaultCap bounds how long a batch may keep growing under a steady
	// stream of changes.
	DefaultCap = 10 * time.Second
)

// coalesce debounces raw changes from in into batches of classified
// changes (one per path, sorted). A batch is emitted once quiet has passed
// without a new kept change, or once capDur has passed since its first,
// whichever comes first; a change acc does not keep (ignored by every root)
// starts no batch. If the consumer is slow, later batches that fall due are
// merged into the one waiting to be received, so in is always drained.
//
// The returned channel is closed when ctx is done, or when in is closed
// (after the pending batch, if any, has been delivered).
func coalesce(ctx context.Context, clk clock.Clock, quiet, capDur time.Duration, in <-chan fsChange, acc *changeSet) <-chan []Change {
	if clk == nil {
		clk = clock.RealClock{}
	}
	if quiet <= 0 {
		quiet = DefaultQuiet
	}
	if capDur <= 0 {
		capDur = DefaultCap
	}
	out := make(chan []Change)
	go func() {
		defer close(out)
		var (
			quietT, capT clock.Timer // non-nil while a batch is accumulating
			pending      []Change    // due, waiting for the consumer
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
			pending = mergeChanges(pending, acc.flush())
		}
		for {
			var quietC, capC <-chan time.Time
			if quietT != nil {
				quietC, capC = quietT.C(), capT.C()
			}
			var outC chan<- []Change
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
				if !acc.add(v) {
					continue
				}
				if quietT == nil {
					quietT, capT = clk.NewTimer(quiet), clk.NewTimer(capDur)
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

// mergeChanges returns the union of two batches sorted by path; a path in
// both keeps the union of its roots.
func mergeChanges(a, b []Change) []Change {
	if len(a) == 0 {
		return b
	}
	byPath := map[string]int{}
	out := append([]Change(nil), a...)
	for i, c := range out {
		byPath[c.Path] = i
	}
	for _, c := range b {
		if i, ok := byPath[c.Path]; ok {
			for _, r := range c.Roots {
				if !slices.Contains(out[i].Roots, r) {
					out[i].Roots = append(out[i].Roots, r)
				}
			}
			slices.Sort(out[i].Roots)
			continue
		}
		byPath[c.Path] = len(out)
		out = append(out, c)
	}
	slices.SortFunc(out, func(x, y Change) int { return strings.Compare(x.Path, y.Path) })
	return out
}
