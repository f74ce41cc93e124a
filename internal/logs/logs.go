// Package logs tails the logs of every container of a set of pods into one
// writer, one prefixed line at a time.
//
// Tails are keyed by container ID, so a restarted container gets a new tail
// that starts at its beginning while the old tail reads the old stream to
// its end (the crash). A stream that breaks while its container still runs
// is resumed from the last timestamp seen, skipping exactly the lines
// already printed: nothing is lost and nothing is printed twice.
package logs

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/utils/clock"

	"github.com/devloop-dev/devloop/internal/termsafe"
)

// LogStreamer opens a container's log stream. It is the seam tests replace
// (the fake clientset's GetLogs only ever returns "fake logs").
type LogStreamer interface {
	Stream(ctx context.Context, namespace, pod string, opts *corev1.PodLogOptions) (io.ReadCloser, error)
}

type clientStreamer struct{ cs kubernetes.Interface }

// NewClientStreamer returns a LogStreamer that calls the pods/log API.
func NewClientStreamer(cs kubernetes.Interface) LogStreamer { return clientStreamer{cs} }

func (s clientStreamer) Stream(ctx context.Context, ns, pod string, opts *corev1.PodLogOptions) (io.ReadCloser, error) {
	return s.cs.CoreV1().Pods(ns).GetLogs(pod, opts).Stream(ctx)
}

// Tail states reported in TailStatus.State.
const (
	StateAttached = "attached"
	StateDetached = "detached"
	StateEnded    = "ended"
)

// TailStatus reports a tail's transitions.
type TailStatus struct {
	Pod, Container, ContainerID string
	// State is "attached" (streaming), "detached" (reconnecting) or "ended".
	State string
}

// Options configure a Manager.
type Options struct {
	// Namespace to follow pods in.
	Namespace string
	// Selector picks the pods to follow, e.g. devloop.dev/project=hello.
	// Default: everything.
	Selector labels.Selector
	// Filter, if set, further picks pods the selector matched (e.g. one
	// service's pods, which share the project label with the others).
	Filter func(*corev1.Pod) bool
	// ServiceOf names a pod for display. Default: its
	// app.kubernetes.io/name or app label, else its name.
	ServiceOf func(*corev1.Pod) string
	// Color prefixes lines with a stable per-container ANSI color.
	Color bool
	// Since limits output to lines newer than this (0: from each
	// container's start).
	Since time.Duration
	// Follow keeps streaming and follows new pods and restarts; without
	// it Run prints what is there and returns.
	Follow bool
	// Clock drives backoff and silence detection. Default: real clock.
	Clock clock.Clock
	// OnChange is called (serially) on every tail transition.
	OnChange func(TailStatus)
	// Streamer opens log streams. Default: the pods/log API through cs.
	Streamer LogStreamer
	// Informers is the session's shared informer factory (kube.Informers:
	// the namespace, the project label); with Follow, new pods and
	// restarts are seen through its pod informer. Required with Follow.
	Informers informers.SharedInformerFactory
	// MaxLineBytes splits longer lines. Default 16 KiB.
	MaxLineBytes int
	// SilenceTimeout re-checks a stream of a running container that has
	// been silent this long. Default 30s.
	SilenceTimeout time.Duration
}

// Retries back off from backoffMin to backoffMax. The cap is low on
// purpose: the API server is a local kind node, and while it is down (or
// restarting) a retry costs one refused connection, so a tail retries every
// second and is back within about a second of the API server answering
// (issue 16's fault scenarios; 5 s let it come back up to 5 s late).
const (
	backoffMin = 100 * time.Millisecond
	backoffMax = time.Second
)

// Manager tails the logs of the selected pods.
type Manager struct {
	cs    kubernetes.Interface
	out   io.Writer
	opts  Options
	clock clock.Clock

	outMu    sync.Mutex // one line per Write, never interleaved
	notifyMu sync.Mutex

	mu    sync.Mutex
	pods  map[string]*podState // by UID
	since *metav1.Time
	wg    sync.WaitGroup
	ctx   context.Context
}

type podState struct {
	seen map[string]bool // container IDs that have (had) a tail
}

// New returns a Manager writing to out.
func New(cs kubernetes.Interface, out io.Writer, opts Options) *Manager {
	if opts.Clock == nil {
		opts.Clock = clock.RealClock{}
	}
	if opts.Streamer == nil {
		opts.Streamer = NewClientStreamer(cs)
	}
	if opts.Selector == nil {
		opts.Selector = labels.Everything()
	}
	if opts.ServiceOf == nil {
		opts.ServiceOf = defaultServiceOf
	}
	if opts.MaxLineBytes < 64 {
		opts.MaxLineBytes = 16 << 10
	}
	if opts.SilenceTimeout <= 0 {
		opts.SilenceTimeout = 30 * time.Second
	}
	return &Manager{cs: cs, out: out, opts: opts, clock: opts.Clock, pods: map[string]*podState{}}
}

func defaultServiceOf(p *corev1.Pod) string {
	for _, k := range []string{"app.kubernetes.io/name", "app"} {
		if v := p.Labels[k]; v != "" {
			return v
		}
	}
	return p.Name
}

// Run tails until ctx ends (Follow) or until every current container's log
// has been printed (no Follow). It waits for all its tails to stop.
func (m *Manager) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	m.mu.Lock()
	m.ctx = ctx
	if m.opts.Since > 0 {
		t := metav1.NewTime(m.clock.Now().Add(-m.opts.Since))
		m.since = &t
	}
	m.mu.Unlock()
	defer m.wg.Wait()

	if !m.opts.Follow {
		list, err := m.cs.CoreV1().Pods(m.opts.Namespace).List(ctx, metav1.ListOptions{LabelSelector: m.opts.Selector.String()})
		if err != nil {
			return fmt.Errorf("listing pods in %s: %w", m.opts.Namespace, err)
		}
		for i := range list.Items {
			m.podUpdated(&list.Items[i])
		}
		return nil
	}

	if m.opts.Informers == nil {
		return errors.New("logs: following needs the session's informers")
	}
	inf := m.opts.Informers.Core().V1().Pods().Informer()
	reg, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { m.podUpdated(asPod(obj)) },
		UpdateFunc: func(_, obj any) { m.podUpdated(asPod(obj)) },
		DeleteFunc: func(obj any) { m.podDeleted(asPod(obj)) },
	})
	if err != nil {
		return fmt.Errorf("watching pods in %s: %w", m.opts.Namespace, err)
	}
	m.opts.Informers.Start(ctx.Done())
	<-ctx.Done()
	// The factory is shared and outlives the tails: stop listening only.
	_ = inf.RemoveEventHandler(reg)
	return nil
}

// Recheck reads the selected pods from the API server once and tails every
// container not seen yet, as if the informer had delivered them. After the
// cluster was unreachable the informer can lag by up to 30 s (client-go's
// relist backoff), while a restarted node runs new containers at once: the
// session calls Recheck when the cluster answers again. It does nothing
// before Run or without Follow.
func (m *Manager) Recheck(ctx context.Context) error {
	m.mu.Lock()
	running := m.ctx != nil && m.ctx.Err() == nil
	m.mu.Unlock()
	if !running || !m.opts.Follow {
		return nil
	}
	list, err := m.cs.CoreV1().Pods(m.opts.Namespace).List(ctx, metav1.ListOptions{LabelSelector: m.opts.Selector.String()})
	if err != nil {
		return fmt.Errorf("listing pods in %s: %w", m.opts.Namespace, err)
	}
	for i := range list.Items {
		m.podUpdated(&list.Items[i])
	}
	return nil
}

func asPod(obj any) *corev1.Pod {
	if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = d.Obj
	}
	p, _ := obj.(*corev1.Pod)
	return p
}

// podUpdated starts a tail for every container ID not seen before.
func (m *Manager) podUpdated(p *corev1.Pod) {
	if p == nil || (m.opts.Filter != nil && !m.opts.Filter(p)) {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.ctx.Err() != nil {
		return
	}
	ps := m.pods[string(p.UID)]
	if ps == nil {
		ps = &podState{seen: map[string]bool{}}
		m.pods[string(p.UID)] = ps
	}
	statuses := append(append([]corev1.ContainerStatus(nil), p.Status.InitContainerStatuses...), p.Status.ContainerStatuses...)
	live := map[string]bool{}
	for _, cs := range statuses {
		if lt := cs.LastTerminationState.Terminated; lt != nil && lt.ContainerID != "" {
			live[lt.ContainerID] = true
		}
		id := cs.ContainerID
		if id == "" { // waiting: tailed once it starts
			continue
		}
		live[id] = true
		if ps.seen[id] {
			continue
		}
		ps.seen[id] = true
		t := m.newTail(p, cs.Name, id)
		m.wg.Add(1)
		go func() {
			defer m.wg.Done()
			t.run(m.ctx)
		}()
	}
	// Forget IDs that can no longer come back, so memory stays bounded
	// however often a container restarts.
	for id := range ps.seen {
		if !live[id] {
			delete(ps.seen, id)
		}
	}
}

// podDeleted forgets a pod; its tails end by themselves when their
// streams end.
func (m *Manager) podDeleted(p *corev1.Pod) {
	if p == nil {
		return
	}
	m.mu.Lock()
	delete(m.pods, string(p.UID))
	m.mu.Unlock()
}

func (m *Manager) notify(s TailStatus) {
	if m.opts.OnChange == nil {
		return
	}
	m.notifyMu.Lock()
	defer m.notifyMu.Unlock()
	m.opts.OnChange(s)
}

// writeLine writes one prefixed line with a single Write. The app's text is
// sanitised (see termsafe.Sanitize); devloop's prefix keeps its colour.
func (m *Manager) writeLine(prefix string, text []byte) {
	text = termsafe.Sanitize(text)
	buf := make([]byte, 0, len(prefix)+len(text)+4)
	buf = append(buf, prefix...)
	buf = append(buf, " | "...)
	buf = append(buf, text...)
	buf = append(buf, '\n')
	m.outMu.Lock()
	defer m.outMu.Unlock()
	_, _ = m.out.Write(buf)
}

// colors are ANSI foreground codes readable on dark and light terminals.
var colors = [...]int{31, 32, 33, 34, 35, 36, 91, 92, 93, 94, 95, 96}

// Prefix returns the display prefix for a container of pod:
// "<svc>/<pod-suffix>/<container>", colored when color is set.
func Prefix(svc, pod, container string, color bool) string {
	var p string
	switch {
	case svc == pod || svc == "":
		p = pod + "/" + container
	default:
		suffix := pod
		if i := strings.LastIndexByte(pod, '-'); i >= 0 && i < len(pod)-1 {
			suffix = pod[i+1:]
		}
		p = svc + "/" + suffix + "/" + container
	}
	if !color {
		return p
	}
	return fmt.Sprintf("\x1b[%dm%s\x1b[0m", colorOf(pod+"/"+container), p)
}

// colorOf picks a stable color for key.
func colorOf(key string) int {
	h := fnv.New32a()
	h.Write([]byte(key))
	return colors[h.Sum32()%uint32(len(colors))]
}
