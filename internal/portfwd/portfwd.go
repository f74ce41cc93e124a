// Package portfwd keeps local ports forwarded to the current pods behind
// Kubernetes resources.
//
// Each forward owns its local listener for the whole session: the local
// port never changes. Every accepted connection is carried to the pod that
// is current at that moment (Ready, not terminating, newest first), over one
// shared streaming tunnel per pod, so forwards survive pod restarts and
// rollouts without the user noticing more than a dropped connection.
package portfwd

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/utils/clock"
)

// Spec is one wanted forward.
type Spec struct {
	// Name is for display, e.g. the service name.
	Name string
	// Address is the local bind address (config defaults it to 127.0.0.1).
	Address string
	// LocalPort is the local port to listen on.
	LocalPort int
	// Namespace of Resource (the namespace of the shared informer factory).
	Namespace string
	// Resource is "service/x", "deployment/x", "statefulset/x" or "pod/x".
	Resource string
	// Port is the Service port when Resource is a service (mapped through
	// the Service's targetPort to the pod's container port), otherwise the
	// container port.
	Port int
}

// addr is the listen address of s.
func (s Spec) addr() string {
	return net.JoinHostPort(s.Address, strconv.Itoa(s.LocalPort))
}

// Forward states reported in Status.State.
const (
	StateUp      = "up"
	StateWaiting = "waiting"
	StateError   = "error"
)

// Status is the observable state of one forward.
type Status struct {
	Spec
	// State is "up" (listening, a ready pod exists), "waiting" (listening,
	// no ready pod) or "error" (cannot listen, or the last tunnel dial failed).
	State string
	// Pod is the pod new connections currently go to, if any.
	Pod string
	// Err explains State "error" (and sometimes "waiting").
	Err string
	// Note, with State "up", says the pod is used although it is not Ready
	// as a whole (the container serving the port is).
	Note string
}

// Options configure a Manager. The zero value is usable.
type Options struct {
	// Clock drives waits and backoff. Default: the real clock.
	Clock clock.Clock
	// Logf receives one-line diagnostics. Default: discard.
	Logf func(format string, args ...any)
	// OnChange is called (serially) whenever a forward's Status changes.
	OnChange func(Status)
	// Dialer opens tunnels to pods. Default: SPDY/WebSocket through the API server.
	Dialer Dialer
	// ReadyWait is how long a connection waits for a ready pod. Default 5s.
	ReadyWait time.Duration
}

const (
	backoffMin = 100 * time.Millisecond
	// backoffMax is low on purpose: the API server is a local kind node; a
	// dial while it is down costs one refused connection, and the first
	// connection after it answers again must not wait out a long backoff.
	backoffMax = time.Second
)

// Manager owns a set of forwards. It is safe for concurrent use.
type Manager struct {
	cs       kubernetes.Interface
	clock    clock.Clock
	logf     func(string, ...any)
	onChange func(Status)
	dialer   Dialer
	wait     time.Duration
	procRoot string

	reconcileMu sync.Mutex // serialises Reconcile
	notifyMu    sync.Mutex // serialises OnChange calls

	mu       sync.Mutex
	closed   bool
	done     chan struct{}
	ctx      context.Context // ends at Close; for tunnels dialed ahead of connections
	cancel   context.CancelFunc
	changed  chan struct{} // closed and replaced whenever the caches change
	forwards map[string]*forward
	factory  informers.SharedInformerFactory
	kinds    map[string]bool          // informers taken from factory
	tunnels  map[string]*tunnel       // by pod key
	dialing  map[string]chan struct{} // pod key → closed when a dial ends
	wg       sync.WaitGroup
}

type forward struct {
	spec     Spec
	ln       net.Listener
	bindErr  string
	dialErr  string
	backoff  time.Duration
	nextDial time.Time
	conns    map[net.Conn]struct{}
	status   Status
	reported bool
	connErrs connErrs
}

// connErrs keeps one forward's failed connections from flooding the
// output: while connections fail the same way (an app restarting answers
// every request with "connection refused" until it listens again), the
// first is said and the rest counted, and the count is said in one line
// when a connection gets through again, the failure changes, or
// connErrRepeat has passed.
type connErrs struct {
	last  string    // the message said last
	at    time.Time // when it was said
	count int       // connections since that failed the same way, not said
}

// connErrRepeat is how long a repeated connection error stays quiet.
const connErrRepeat = 30 * time.Second

// connDone records how a forwarded connection ended and says what is
// worth saying.
func (m *Manager) connDone(fw *forward, spec Spec, err error) {
	now := m.clock.Now()
	m.mu.Lock()
	e := &fw.connErrs
	var say []string
	pending := func() {
		if e.count > 0 {
			say = append(say, fmt.Sprintf("forward %s %s: %d more connection(s) failed the same way", spec.Name, spec.addr(), e.count))
		}
	}
	switch {
	case err == nil:
		pending()
		if len(say) > 0 {
			say[0] += "; it serves again"
		}
		*e = connErrs{}
	case err.Error() == e.last && now.Sub(e.at) < connErrRepeat:
		e.count++
	default:
		pending()
		msg := err.Error()
		say = append(say, fmt.Sprintf("forward %s %s: %s", spec.Name, spec.addr(), msg))
		*e = connErrs{last: msg, at: now}
	}
	m.mu.Unlock()
	for _, line := range say {
		m.logf("%s", line)
	}
}

// New returns a Manager. cfg and cs reach the cluster; cfg is only used by
// the default Dialer. factory is the session's shared informer factory
// (kube.Informers: the project's namespace, its label); the Manager takes
// the pod, Service, Deployment and StatefulSet informers it needs from it,
// and its owner shuts it down.
func New(cfg *rest.Config, cs kubernetes.Interface, factory informers.SharedInformerFactory, opts Options) *Manager {
	m := &Manager{
		cs:       cs,
		clock:    opts.Clock,
		logf:     opts.Logf,
		onChange: opts.OnChange,
		dialer:   opts.Dialer,
		wait:     opts.ReadyWait,
		procRoot: "/proc",
		done:     make(chan struct{}),
		changed:  make(chan struct{}),
		forwards: map[string]*forward{},
		factory:  factory,
		kinds:    map[string]bool{},
		tunnels:  map[string]*tunnel{},
		dialing:  map[string]chan struct{}{},
	}
	m.ctx, m.cancel = context.WithCancel(context.Background())
	if m.clock == nil {
		m.clock = clock.RealClock{}
	}
	if m.logf == nil {
		m.logf = func(string, ...any) {}
	}
	if m.dialer == nil {
		m.dialer = NewClientDialer(cfg, cs)
	}
	if m.wait <= 0 {
		m.wait = 5 * time.Second
	}
	return m
}

// normalize names an unnamed spec after its resource. Address and
// Namespace come defaulted from the config.
func normalize(s Spec) Spec {
	if s.Name == "" {
		s.Name = s.Resource
	}
	return s
}

// Reconcile makes the set of forwards equal to specs: it opens a listener
// for each new spec (kept for the whole session), closes removed ones and
// retargets changed ones in place. A spec whose port cannot be bound is
// kept in state "error", reported in the returned error, and retried on the
// next Reconcile.
func (m *Manager) Reconcile(ctx context.Context, specs []Spec) error {
	m.reconcileMu.Lock()
	defer m.reconcileMu.Unlock()

	var errs []error
	want := map[string]Spec{}
	for _, s := range specs {
		s = normalize(s)
		if s.LocalPort < 1 || s.LocalPort > 65535 {
			errs = append(errs, fmt.Errorf("forward %s: local port %d out of range 1-65535", s.Name, s.LocalPort))
			continue
		}
		if _, _, err := splitResource(s.Resource); err != nil {
			errs = append(errs, fmt.Errorf("forward %s: %w", s.Name, err))
			continue
		}
		if _, dup := want[s.addr()]; dup {
			errs = append(errs, fmt.Errorf("forward %s: %s is wanted twice", s.Name, s.addr()))
			continue
		}
		want[s.addr()] = s
	}

	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return errors.New("port-forward manager is closed")
	}
	var drop []*forward
	for key, fw := range m.forwards {
		if _, ok := want[key]; !ok {
			delete(m.forwards, key)
			drop = append(drop, fw)
		}
	}
	m.mu.Unlock()
	for _, fw := range drop {
		m.stopForward(fw)
	}

	if err := m.ensureCaches(ctx, want); err != nil {
		errs = append(errs, err)
	}

	for key, s := range want {
		m.mu.Lock()
		fw := m.forwards[key]
		if fw == nil {
			fw = &forward{conns: map[net.Conn]struct{}{}}
			m.forwards[key] = fw
		}
		fw.spec = s
		needBind := fw.ln == nil
		m.mu.Unlock()
		if !needBind {
			continue
		}
		ln, err := m.listen(s)
		m.mu.Lock()
		if m.closed {
			m.mu.Unlock()
			if ln != nil {
				ln.Close()
			}
			return errors.New("port-forward manager is closed")
		}
		if err != nil {
			fw.bindErr = err.Error()
			errs = append(errs, fmt.Errorf("forward %s: %w", s.Name, err))
		} else {
			fw.ln, fw.bindErr = ln, ""
			m.wg.Add(1)
			go m.acceptLoop(fw, ln)
		}
		m.mu.Unlock()
	}
	m.refresh()
	return errors.Join(errs...)
}

// listen binds s's address; a port in use names its holder when /proc tells.
func (m *Manager) listen(s Spec) (net.Listener, error) {
	ln, err := net.Listen("tcp", s.addr())
	if err == nil {
		return ln, nil
	}
	if errors.Is(err, syscall.EADDRINUSE) {
		if who := portHolder(m.procRoot, s.LocalPort); who != "" {
			return nil, fmt.Errorf("%s is already in use by %s", s.addr(), who)
		}
		return nil, fmt.Errorf("%s is already in use", s.addr())
	}
	return nil, fmt.Errorf("listening on %s: %w", s.addr(), err)
}

// ensureCaches takes from the shared factory the informers the specs need
// (pods always), starts them and waits for them to sync.
func (m *Manager) ensureCaches(ctx context.Context, want map[string]Spec) error {
	m.mu.Lock()
	need := []string{"pod"}
	for _, s := range want {
		kind, _, _ := splitResource(s.Resource)
		need = append(need, kind)
	}
	for _, kind := range need {
		if m.kinds[kind] {
			continue
		}
		m.kinds[kind] = true
		switch kind {
		case "pod":
			m.addHandler(m.factory.Core().V1().Pods().Informer(), true)
		case "service":
			m.addHandler(m.factory.Core().V1().Services().Informer(), false)
		case "deployment":
			m.addHandler(m.factory.Apps().V1().Deployments().Informer(), false)
		case "statefulset":
			m.addHandler(m.factory.Apps().V1().StatefulSets().Informer(), false)
		}
	}
	m.factory.Start(m.done)
	m.mu.Unlock()
	for typ, ok := range m.factory.WaitForCacheSync(ctx.Done()) {
		if !ok {
			return fmt.Errorf("waiting for %v cache to sync: %w", typ, context.Cause(ctx))
		}
	}
	return nil
}

func (m *Manager) addHandler(inf cache.SharedIndexInformer, pods bool) {
	on := func(obj any, deleted bool) {
		if pods {
			m.podChanged(obj, deleted)
		}
		m.signal()
		m.refresh()
	}
	_, _ = inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { on(obj, false) },
		UpdateFunc: func(_, obj any) { on(obj, false) },
		DeleteFunc: func(obj any) { on(obj, true) },
	})
}

// signal wakes connections waiting for a pod.
func (m *Manager) signal() {
	m.mu.Lock()
	close(m.changed)
	m.changed = make(chan struct{})
	m.mu.Unlock()
}

func podKey(p *corev1.Pod) string {
	return p.Namespace + "/" + p.Name + "/" + string(p.UID)
}

// podChanged retires the tunnel of a pod that went away or unready: no new
// connections use it, and it closes when its last connection ends (at once
// if the pod is gone).
func (m *Manager) podChanged(obj any, deleted bool) {
	if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = d.Obj
	}
	p, ok := obj.(*corev1.Pod)
	if !ok {
		return
	}
	if !deleted && usable(p) {
		return
	}
	key := podKey(p)
	m.mu.Lock()
	t := m.tunnels[key]
	if t == nil {
		m.mu.Unlock()
		return
	}
	delete(m.tunnels, key)
	t.mu.Lock()
	t.retired = true
	idle := t.active == 0
	t.mu.Unlock()
	m.mu.Unlock()
	if deleted || idle {
		t.close()
	}
}

// refresh recomputes every forward's Status and reports changes.
func (m *Manager) refresh() {
	m.notifyMu.Lock()
	defer m.notifyMu.Unlock()
	var changes []Status
	type warmup struct {
		fw  *forward
		pod *corev1.Pod
	}
	var warm []warmup
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return
	}
	for _, fw := range m.forwards {
		st := Status{Spec: fw.spec}
		switch {
		case fw.bindErr != "":
			st.State, st.Err = StateError, fw.bindErr
		default:
			tgt, err := m.resolveLocked(fw.spec)
			switch {
			case err != nil:
				st.State, st.Err = StateError, err.Error()
			case tgt.pod == nil:
				st.State, st.Err = StateWaiting, "no ready pod for "+fw.spec.Resource
			case fw.dialErr != "":
				st.State, st.Pod, st.Err = StateError, tgt.pod.Name, fw.dialErr
			default:
				st.State, st.Pod, st.Note = StateUp, tgt.pod.Name, tgt.note
				if key := podKey(tgt.pod); m.tunnels[key] == nil && m.dialing[key] == nil {
					warm = append(warm, warmup{fw, tgt.pod})
				}
			}
		}
		if !fw.reported || st != fw.status {
			fw.status, fw.reported = st, true
			changes = append(changes, st)
		}
	}
	// Dial the tunnel to a forward's pod as soon as it is the one to use, so
	// the first connection after a restart or rollout does not wait for the
	// handshake. Dial errors back off as for connections.
	for _, w := range warm {
		m.wg.Add(1)
		go func() {
			defer m.wg.Done()
			if t, err := m.tunnelFor(m.ctx, w.fw, w.pod, nil); err == nil {
				m.release(t, nil)
			}
		}()
	}
	m.mu.Unlock()
	if m.onChange != nil {
		for _, st := range changes {
			m.onChange(st)
		}
	}
}

// resolveLocked resolves spec against the caches. m.mu is held.
func (m *Manager) resolveLocked(spec Spec) (target, error) {
	if !m.kinds["pod"] {
		return target{}, nil
	}
	return resolve(m.factory, spec)
}

// Status returns the state of every forward, in no particular order.
func (m *Manager) Status() []Status {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]Status, 0, len(m.forwards))
	for _, fw := range m.forwards {
		out = append(out, fw.status)
	}
	return out
}

func (m *Manager) acceptLoop(fw *forward, ln net.Listener) {
	defer m.wg.Done()
	for {
		c, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// E.g. EMFILE: back off briefly rather than spin.
			m.logf("forward %s %s: accept: %v", fw.spec.Name, ln.Addr(), err)
			select {
			case <-m.clock.After(backoffMin):
			case <-m.done:
				return
			}
			continue
		}
		m.mu.Lock()
		if m.closed || m.forwards[fw.spec.addr()] != fw {
			m.mu.Unlock()
			c.Close()
			continue
		}
		fw.conns[c] = struct{}{}
		m.wg.Add(1)
		m.mu.Unlock()
		go m.handleConn(fw, c)
	}
}

// handleConn carries one local connection to the current pod.
func (m *Manager) handleConn(fw *forward, c net.Conn) {
	defer m.wg.Done()
	defer func() {
		c.Close()
		m.mu.Lock()
		delete(fw.conns, c)
		m.mu.Unlock()
	}()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-m.done:
			cancel()
		case <-ctx.Done():
		}
	}()

	timer := m.clock.NewTimer(m.wait)
	defer timer.Stop()
	for {
		m.mu.Lock()
		spec := fw.spec
		m.mu.Unlock()
		tgt, err := m.waitTarget(ctx, spec, timer.C())
		if err != nil {
			m.logf("forward %s %s: %v", spec.Name, spec.addr(), err)
			return
		}
		if tgt.pod == nil {
			if ctx.Err() == nil {
				m.logf("forward %s %s: no ready pod for %s", spec.Name, spec.addr(), spec.Resource)
			}
			return
		}
		t, err := m.tunnelFor(ctx, fw, tgt.pod, timer.C())
		if err != nil {
			if ctx.Err() == nil {
				m.logf("forward %s %s: %v", spec.Name, spec.addr(), err)
			}
			if errors.Is(err, errGaveUp) || ctx.Err() != nil {
				return
			}
			continue // re-resolve: the pod may have changed
		}
		err = forwardConn(c, t, tgt.port)
		m.release(t, err)
		m.connDone(fw, spec, err)
		return
	}
}

// waitTarget resolves spec, waiting for cache changes until a pod is ready
// or expired fires (then it returns a nil pod).
func (m *Manager) waitTarget(ctx context.Context, spec Spec, expired <-chan time.Time) (target, error) {
	for {
		m.mu.Lock()
		ch := m.changed
		tgt, err := m.resolveLocked(spec)
		m.mu.Unlock()
		if err != nil || tgt.pod != nil {
			return tgt, err
		}
		select {
		case <-ch:
		case <-expired:
			return target{}, nil
		case <-ctx.Done():
			return target{}, nil
		}
	}
}

var errGaveUp = errors.New("gave up waiting for a tunnel")

// tunnelFor returns an open tunnel to pod (with one more active user),
// dialing one if needed. Only one dial per pod runs at a time; failures
// back off exponentially per forward.
func (m *Manager) tunnelFor(ctx context.Context, fw *forward, pod *corev1.Pod, expired <-chan time.Time) (*tunnel, error) {
	key := podKey(pod)
	for {
		m.mu.Lock()
		if m.closed {
			m.mu.Unlock()
			return nil, errGaveUp
		}
		if t := m.tunnels[key]; t != nil {
			t.mu.Lock()
			t.active++
			t.mu.Unlock()
			m.mu.Unlock()
			return t, nil
		}
		if ch := m.dialing[key]; ch != nil {
			m.mu.Unlock()
			select {
			case <-ch:
				continue
			case <-expired:
				return nil, fmt.Errorf("%w: tunnel to pod %s still dialing", errGaveUp, pod.Name)
			case <-ctx.Done():
				return nil, errGaveUp
			}
		}
		wait := fw.nextDial.Sub(m.clock.Now())
		dialDone := make(chan struct{})
		m.dialing[key] = dialDone
		m.mu.Unlock()

		t, err := m.dial(ctx, fw, pod, wait, expired)
		m.mu.Lock()
		delete(m.dialing, key)
		close(dialDone)
		if err == nil {
			m.tunnels[key] = t
			m.wg.Add(1)
			go m.watchTunnel(t)
		}
		m.mu.Unlock()
		m.refresh()
		return t, err
	}
}

// dial waits out the forward's backoff, then dials.
func (m *Manager) dial(ctx context.Context, fw *forward, pod *corev1.Pod, wait time.Duration, expired <-chan time.Time) (*tunnel, error) {
	if wait > 0 {
		select {
		case <-m.clock.After(wait):
		case <-expired:
			return nil, fmt.Errorf("%w: backing off after failed dials to pod %s", errGaveUp, pod.Name)
		case <-ctx.Done():
			return nil, errGaveUp
		}
	}
	conn, err := m.dialer.Dial(ctx, pod.Namespace, pod.Name)
	m.mu.Lock()
	defer m.mu.Unlock()
	if err != nil {
		if fw.backoff == 0 {
			fw.backoff = backoffMin
		} else {
			fw.backoff = min(fw.backoff*2, backoffMax)
		}
		fw.nextDial = m.clock.Now().Add(fw.backoff)
		fw.dialErr = err.Error()
		return nil, fmt.Errorf("opening tunnel to pod %s (retry in %s): %w", pod.Name, fw.backoff, err)
	}
	fw.backoff, fw.nextDial, fw.dialErr = 0, time.Time{}, ""
	if m.closed {
		conn.Close()
		return nil, errGaveUp
	}
	return &tunnel{key: podKey(pod), pod: pod.Name, conn: conn, active: 1}, nil
}

// watchTunnel forgets a tunnel when its connection closes.
func (m *Manager) watchTunnel(t *tunnel) {
	defer m.wg.Done()
	select {
	case <-t.conn.CloseChan():
		t.mu.Lock()
		ours := t.closed // devloop closed it (retired, or after an error said already)
		t.mu.Unlock()
		if !ours {
			m.logf("tunnel to pod %s closed", t.pod)
		}
	case <-m.done:
	}
	m.mu.Lock()
	if m.tunnels[t.key] == t {
		delete(m.tunnels, t.key)
	}
	m.mu.Unlock()
	t.close()
}

// release ends one connection's use of t. A tunnel-level error closes it
// (as kubectl does) so the next connection dials afresh; the pod refusing
// one connection (a *portError) leaves the tunnel to the next.
func (m *Manager) release(t *tunnel, err error) {
	var pe *portError
	t.mu.Lock()
	t.active--
	closeIt := err != nil && !errors.As(err, &pe) || (t.retired && t.active == 0)
	t.mu.Unlock()
	if closeIt {
		m.mu.Lock()
		if m.tunnels[t.key] == t {
			delete(m.tunnels, t.key)
		}
		m.mu.Unlock()
		t.close()
	}
}

// stopForward closes a removed forward's listener and connections.
func (m *Manager) stopForward(fw *forward) {
	m.mu.Lock()
	ln := fw.ln
	fw.ln = nil
	conns := make([]net.Conn, 0, len(fw.conns))
	for c := range fw.conns {
		conns = append(conns, c)
	}
	m.mu.Unlock()
	if ln != nil {
		ln.Close()
	}
	for _, c := range conns {
		c.Close()
	}
}

// Close stops every forward and tunnel (and the informers it started from
// the shared factory), and waits for all of the Manager's goroutines to end.
func (m *Manager) Close() {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return
	}
	m.closed = true
	close(m.done)
	m.cancel()
	fws := make([]*forward, 0, len(m.forwards))
	for _, fw := range m.forwards {
		fws = append(fws, fw)
	}
	tunnels := make([]*tunnel, 0, len(m.tunnels))
	for _, t := range m.tunnels {
		tunnels = append(tunnels, t)
	}
	m.mu.Unlock()

	for _, fw := range fws {
		m.stopForward(fw)
	}
	for _, t := range tunnels {
		t.close()
	}
	m.wg.Wait()
}
