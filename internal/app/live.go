package app

import (
	"context"
	"fmt"
	"sort"
	gosync "sync"
	"time"

	"github.com/devloop-dev/devloop/internal/engine"
	"github.com/devloop-dev/devloop/internal/kube"
	"github.com/devloop-dev/devloop/internal/portfwd"
	"github.com/devloop-dev/devloop/internal/status"
	"github.com/devloop-dev/devloop/internal/ui"
)

// liveStatus feeds the live status view: service rows from the loop's
// state, forward rows from the forwarder, ingress URLs from the last apply.
type liveStatus struct {
	live *ui.Live // nil when output is not a terminal

	mu       gosync.Mutex
	view     ui.StatusView
	forwards map[string]ui.ForwardRow
	pods     map[string]status.Service // by service name, from the cluster
}

func newLiveStatus(live *ui.Live, s *session) *liveStatus {
	return &liveStatus{live: live, forwards: map[string]ui.ForwardRow{}, pods: map[string]status.Service{},
		view: ui.StatusView{Project: s.cfg.Name, Cluster: s.cfg.Cluster.Name}}
}

// fromState copies the loop's view of the services (called on the loop goroutine).
func (l *liveStatus) fromState(st *engine.State, ingress []string) {
	if l == nil || l.live == nil {
		return
	}
	var rows []ui.ServiceRow
	for _, name := range st.Order {
		ss := st.Services[name]
		row := ui.ServiceRow{Name: name, Phase: string(ss.Phase), Since: ss.PhaseSince, Error: ss.LastError}
		switch {
		case ss.Deployed != nil:
			row.Image = ss.Deployed.Ref
		case ss.Built != nil:
			row.Image = ss.Built.Ref
		}
		rows = append(rows, row)
	}
	l.mu.Lock()
	l.view.Services = rows
	l.view.Ingress = ingress
	l.mu.Unlock()
	l.push()
}

func (l *liveStatus) forward(st portfwd.Status) {
	if l == nil || l.live == nil {
		return
	}
	url := fmt.Sprintf("http://%s:%d/", st.Address, st.LocalPort)
	l.mu.Lock()
	l.forwards[url] = ui.ForwardRow{URL: url, Target: fmt.Sprintf("%s:%d", st.Resource, st.Port), State: st.State, Pod: st.Pod}
	l.mu.Unlock()
	l.push()
}

// watchPods refreshes pods ready/desired and restarts from the cluster
// every 2 s until ctx ends (the loop itself does not track pods).
func (l *liveStatus) watchPods(ctx context.Context, s *session) {
	if l == nil || l.live == nil {
		return
	}
	t := time.NewTicker(2 * time.Second)
	defer t.Stop()
	for {
		if objs, err := kube.Render(s.cfg); err == nil {
			rep, _ := status.Collect(ctx, s.kc.Core, s.cfg, objs)
			l.mu.Lock()
			for _, svc := range rep.Services {
				l.pods[svc.Name] = svc
			}
			l.mu.Unlock()
			l.push()
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (l *liveStatus) push() {
	l.mu.Lock()
	v := l.view
	v.Services = append([]ui.ServiceRow(nil), l.view.Services...)
	for i, row := range v.Services {
		if p, ok := l.pods[row.Name]; ok {
			v.Services[i].Pods = fmt.Sprintf("%d/%d", p.Ready, p.Desired)
			v.Services[i].Restarts = p.Restarts
		}
	}
	v.Forwards = nil
	for _, f := range l.forwards {
		v.Forwards = append(v.Forwards, f)
	}
	sort.Slice(v.Forwards, func(i, j int) bool { return v.Forwards[i].URL < v.Forwards[j].URL })
	l.mu.Unlock()
	l.live.Set(v)
}
