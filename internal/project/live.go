package project

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/devloop-dev/devloop/internal/engine"
	"github.com/devloop-dev/devloop/internal/kube"
	"github.com/devloop-dev/devloop/internal/portfwd"
	"github.com/devloop-dev/devloop/internal/redact"
	"github.com/devloop-dev/devloop/internal/ui"
)

// LiveView shows the status table (ui.Live); Up feeds it.
type LiveView interface {
	Set(ui.StatusView)
}

// liveFeed feeds the live view: service rows from the loop's state, pods
// ready/desired and restarts from the shared pod informer (woken by its
// changes, never polling), forward rows from the forwarder, ingress URLs
// from the last deploy.
type liveFeed struct {
	view LiveView // nil: no live view, every method is a no-op

	mu       sync.Mutex
	status   ui.StatusView
	forwards map[string]ui.ForwardRow
	pods     map[string][3]int // service → ready, desired, restarts
	trouble  map[string]string // service → what is wrong with its pods after the rollout
	secrets  *redact.Set       // masked in every row (the table is drawn straight to the terminal)
}

func newLiveFeed(view LiveView, project, clusterName string) *liveFeed {
	return &liveFeed{view: view, forwards: map[string]ui.ForwardRow{}, pods: map[string][3]int{}, trouble: map[string]string{},
		status: ui.StatusView{Project: project, Cluster: clusterName}}
}

// fromState copies the loop's view of the services (on the loop goroutine).
func (l *liveFeed) fromState(st *engine.State, ingress []string) {
	if l.view == nil {
		return
	}
	var rows []ui.ServiceRow
	for _, name := range st.Order {
		ss := st.Services[name]
		row := ui.ServiceRow{Name: name, Phase: string(ss.Phase), Since: ss.PhaseSince, Error: ss.LastError}
		if w := st.WaitingFor(name); len(w) > 0 && ss.Phase == engine.PhaseWaiting {
			row.Phase = "waiting for " + strings.Join(w, ", ")
			if b := st.Blocked(name); b != "" && row.Error == "" {
				row.Error = b + " failed: fix it and save"
			}
		}
		switch {
		case ss.Deployed != nil:
			row.Image = ss.Deployed.Ref()
		case ss.Built != nil:
			row.Image = ss.Built.Ref()
		}
		if ss.LiveUpdates > 0 {
			row.Image += fmt.Sprintf(" +%d live (image lags)", ss.LiveUpdates)
		}
		rows = append(rows, row)
	}
	l.mu.Lock()
	l.status.Services = rows
	l.status.Ingress = ingress
	l.mu.Unlock()
	l.push()
}

// problems shows, per service, what is wrong with its pods after the
// rollout (podMonitor); a service absent from byService has no problem.
func (l *liveFeed) problems(byService map[string][]string) {
	if l.view == nil {
		return
	}
	l.mu.Lock()
	l.trouble = map[string]string{}
	for svc, texts := range byService {
		l.trouble[svc] = strings.Join(texts, "\n")
	}
	l.mu.Unlock()
	l.push()
}

func (l *liveFeed) forward(st portfwd.Status) {
	if l.view == nil {
		return
	}
	url := kube.HTTPURL(st.Address, st.LocalPort)
	l.mu.Lock()
	l.forwards[url] = ui.ForwardRow{URL: url, Target: fmt.Sprintf("%s:%d", st.Resource, st.Port), State: st.State, Pod: st.Pod}
	l.mu.Unlock()
	l.push()
}

// watchPods recounts pods per service on every change the shared informers
// see, until ctx ends. manifests returns the current service → workload
// mapping (the last deploy's).
func (l *liveFeed) watchPods(ctx context.Context, inf *kube.Informers, namespace string, manifests func() *kube.Manifests) {
	if l.view == nil {
		return
	}
	wake, cancel := inf.Subscribe()
	defer cancel()
	lister := inf.Factory().Core().V1().Pods().Lister().Pods(namespace)
	for {
		pods, _ := lister.List(labels.Everything())
		counts := countPods(manifests(), pods)
		l.mu.Lock()
		l.pods = counts
		l.mu.Unlock()
		l.push()
		select {
		case <-ctx.Done():
			return
		case <-wake:
		}
	}
}

// countPods returns, per service, its ready pods, the pods its
// long-running workloads ask for (Jobs and CronJobs keep no ready pods),
// and the restarts of its pods' containers. A pod that runs several
// services' images counts for each.
func countPods(m *kube.Manifests, pods []*corev1.Pod) map[string][3]int {
	out := map[string][3]int{}
	for svc, ws := range m.Services {
		c := out[svc]
		for _, w := range ws {
			switch w.Kind {
			case "Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Pod":
				c[1] += m.Replicas(w)
			}
		}
		out[svc] = c
	}
	for _, p := range pods {
		if p.DeletionTimestamp != nil {
			continue
		}
		restarts := 0
		for _, st := range append(append([]corev1.ContainerStatus(nil), p.Status.InitContainerStatuses...), p.Status.ContainerStatuses...) {
			restarts += int(st.RestartCount)
		}
		for svc := range m.Services {
			if len(m.ContainersOf(svc, p)) == 0 {
				continue
			}
			c := out[svc]
			if podReady(p) {
				c[0]++
			}
			c[2] += restarts
			out[svc] = c
		}
	}
	return out
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func (l *liveFeed) push() {
	l.mu.Lock()
	v := l.status
	v.Services = append([]ui.ServiceRow(nil), l.status.Services...)
	for i, row := range v.Services {
		if c, ok := l.pods[row.Name]; ok {
			v.Services[i].Pods = fmt.Sprintf("%d/%d", c[0], c[1])
			v.Services[i].Restarts = c[2]
		}
		if t := l.trouble[row.Name]; t != "" && row.Error == "" {
			v.Services[i].Error = t
		}
		v.Services[i].Error = l.secrets.String(v.Services[i].Error)
	}
	v.Forwards = nil
	for _, f := range l.forwards {
		v.Forwards = append(v.Forwards, f)
	}
	sort.Slice(v.Forwards, func(i, j int) bool { return v.Forwards[i].URL < v.Forwards[j].URL })
	l.mu.Unlock()
	l.view.Set(v)
}
