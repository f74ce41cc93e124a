package watch

import (
	"context"
	"reflect"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"github.com/fsnotify/fsnotify"
)

// The coalescer tests run inside synctest bubbles: time there is virtual and
// only advances when every goroutine in the bubble is blocked, so the
// time.Sleep calls below advance a fake clock deterministically and
// instantly; they are not synchronisation by waiting. synctest.Wait then
// guarantees the coalescer goroutine has processed everything sent so far.

// startCoalesce runs the coalescer on plain paths that every root wants
// and returns its input and its output as paths.
func startCoalesce(ctx context.Context, quiet, capDur time.Duration) (chan<- string, <-chan []Change) {
	in, raw := make(chan string), make(chan fsChange)
	acc := &changeSet{classify: func(string) ([]string, bool) { return nil, true }}
	out := coalesce(ctx, nil, quiet, capDur, raw, acc)
	go func() {
		defer close(raw)
		for {
			var p string
			select {
			case v, ok := <-in:
				if !ok {
					return
				}
				p = v
			case <-ctx.Done():
				return
			}
			select {
			case raw <- fsChange{path: p, op: fsnotify.Write}:
			case <-ctx.Done():
				return
			}
		}
	}()
	return in, out
}

func changePaths(b []Change) []string {
	var out []string
	for _, c := range b {
		out = append(out, c.Path)
	}
	return out
}

// recvNow returns a batch if one is ready right now (after synctest.Wait).
func recvNow(t *testing.T, out <-chan []Change) ([]string, bool) {
	t.Helper()
	synctest.Wait()
	select {
	case b, ok := <-out:
		if !ok {
			t.Fatalf("output closed")
		}
		return changePaths(b), true
	default:
		return nil, false
	}
}

func TestCoalesceQuiet(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		in, out := startCoalesce(t.Context(), 150*time.Millisecond, 10*time.Second)
		in <- "/b"
		time.Sleep(50 * time.Millisecond)
		in <- "/a"
		time.Sleep(100 * time.Millisecond)
		in <- "/b" // restarts the quiet period: now due at t=300ms
		time.Sleep(149 * time.Millisecond)
		if b, ok := recvNow(t, out); ok {
			t.Fatalf("batch %v emitted before the quiet period passed", b)
		}
		time.Sleep(time.Millisecond)
		b, ok := recvNow(t, out)
		if !ok {
			t.Fatalf("no batch after the quiet period")
		}
		if want := []string{"/a", "/b"}; !slices.Equal(b, want) {
			t.Errorf("batch = %v, want %v (deduplicated, sorted)", b, want)
		}
		// A later change starts a new batch.
		in <- "/c"
		time.Sleep(150 * time.Millisecond)
		b, ok = recvNow(t, out)
		if !ok || !slices.Equal(b, []string{"/c"}) {
			t.Errorf("second batch = %v, %v; want [/c]", b, ok)
		}
	})
}

func TestCoalesceCap(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		quiet, capDur := 150*time.Millisecond, time.Second
		in, out := startCoalesce(t.Context(), quiet, capDur)
		start := time.Now()
		var batches [][]string
		var times []time.Duration
		// A change every 100ms never lets the quiet period pass.
		for i := range 25 {
			in <- string(rune('a' + i))
			time.Sleep(100 * time.Millisecond)
			if b, ok := recvNow(t, out); ok {
				batches = append(batches, b)
				times = append(times, time.Since(start))
			}
		}
		if len(batches) != 2 {
			t.Fatalf("got %d batches %v, want 2 capped batches in 2.5s", len(batches), batches)
		}
		if times[0] != time.Second || len(batches[0]) != 10 {
			t.Errorf("first batch at %v with %d paths, want at 1s with 10", times[0], len(batches[0]))
		}
	})
}

func TestCoalesceSlowConsumerMerges(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		in, out := startCoalesce(t.Context(), 150*time.Millisecond, 10*time.Second)
		in <- "/x"
		time.Sleep(time.Second) // batch [/x] is due; nobody receives
		in <- "/a"              // input is still accepted
		time.Sleep(time.Second)
		b, ok := recvNow(t, out)
		if !ok || !slices.Equal(b, []string{"/a", "/x"}) {
			t.Errorf("batch = %v, %v; want merged [/a /x]", b, ok)
		}
		if b, ok := recvNow(t, out); ok {
			t.Errorf("unexpected extra batch %v", b)
		}
	})
}

func TestCoalesceInputClosedFlushes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		in, out := startCoalesce(t.Context(), time.Hour, time.Hour)
		in <- "/a"
		close(in)
		b, ok := <-out
		if !ok || !slices.Equal(changePaths(b), []string{"/a"}) {
			t.Errorf("batch = %v, %v; want [/a] flushed on close", b, ok)
		}
		if _, ok := <-out; ok {
			t.Errorf("output not closed after input closed")
		}
	})
}

func TestCoalesceContextCancelCloses(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		in, out := startCoalesce(ctx, 0, 0) // defaults
		in <- "/a"
		cancel()
		for range out { // must terminate
		}
	})
}

func TestMergeChanges(t *testing.T) {
	a := []Change{{Path: "a", Roots: []string{"web"}}, {Path: "c", Roots: []string{"api"}}}
	b := []Change{{Path: "b"}, {Path: "c", Roots: []string{"web", "api"}}, {Path: "d"}}
	got := mergeChanges(a, b)
	want := []Change{{Path: "a", Roots: []string{"web"}}, {Path: "b"}, {Path: "c", Roots: []string{"api", "web"}}, {Path: "d"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("mergeChanges = %+v, want %+v", got, want)
	}
	if got := mergeChanges(nil, b); !reflect.DeepEqual(got, b) {
		t.Errorf("mergeChanges(nil, b) = %+v, want b", got)
	}
}
