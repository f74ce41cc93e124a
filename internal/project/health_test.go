package project

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/devloop-dev/devloop/internal/cluster"
	"github.com/devloop-dev/devloop/internal/ui"
)

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}
func (l *lockedBuffer) String() string { l.mu.Lock(); defer l.mu.Unlock(); return l.b.String() }

// The kind node did not come back after a Docker engine restart (issue 16,
// fault 1): devloop says so once, with the repair, and says when the
// cluster answers again. An API server that is only restarting is named as
// such, without the node's advice.
func TestClusterWatchSaysWhyTheClusterIsGoneAndWhenItIsBack(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var out lockedBuffer
		var mu sync.Mutex
		probeErr, diagErr := error(nil), error(nil)
		set := func(p, d error) { mu.Lock(); probeErr, diagErr = p, d; mu.Unlock() }
		w := &clusterWatch{name: "dev", out: ui.NewPrinter(&out, false, false),
			probe:    func(context.Context) error { mu.Lock(); defer mu.Unlock(); return probeErr },
			diagnose: func(context.Context) error { mu.Lock(); defer mu.Unlock(); return diagErr },
			every:    2 * time.Second, after: 5 * time.Second, rediagnose: 10 * time.Second}
		var backs atomic.Int32
		w.onBack = func() { backs.Add(1) }
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { w.run(ctx); close(done) }()

		refused := errors.New("dial tcp 127.0.0.1:37903: connect: connection refused")
		time.Sleep(10 * time.Second)
		set(refused, &cluster.BrokenError{Name: "dev", Reason: "its node container dev-control-plane is stopped",
			Repair: "docker start dev-control-plane", NodeDown: true})
		time.Sleep(4 * time.Second)
		synctest.Wait()
		if s := out.String(); s != "" {
			t.Fatalf("spoke within 4 s of the first failed probe: %q", s)
		}
		time.Sleep(60 * time.Second)
		synctest.Wait()
		s := out.String()
		if n := strings.Count(s, "is stopped"); n != 1 || !strings.Contains(s, "docker start dev-control-plane") ||
			!strings.Contains(s, "did not come back by itself") {
			t.Fatalf("after a minute with the node stopped (%d mentions):\n%s", n, s)
		}
		set(nil, nil)
		time.Sleep(3 * time.Second)
		synctest.Wait()
		if s := out.String(); !strings.Contains(s, `kind cluster "dev" answers again`) {
			t.Fatalf("no word when it answered again:\n%s", s)
		}
		if n := backs.Load(); n != 1 {
			t.Errorf("onBack called %d times, want once (the log tails recheck the pods then)", n)
		}

		// Only the API server is down (restarting), the node runs.
		before := len(out.String())
		set(refused, &cluster.BrokenError{Name: "dev", Reason: "its API server at https://127.0.0.1:37903 does not answer", Repair: "docker restart dev-control-plane"})
		time.Sleep(30 * time.Second)
		synctest.Wait()
		s = out.String()[before:]
		if n := strings.Count(s, "its API server has not answered"); n != 1 || strings.Contains(s, "did not come back") {
			t.Fatalf("API server down:\n%s", s)
		}
		cancel()
		<-done
	})
}
