package portfwd

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	streamhttp "k8s.io/streaming/pkg/httpstream"
)

// echoServer stands in for a pod's container port: it answers each line
// with "<pod>: <line>".
type echoServer struct {
	pod string
	ln  net.Listener
	wg  sync.WaitGroup
}

func newEchoServer(t *testing.T, pod string) *echoServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &echoServer{pod: pod, ln: ln}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				defer c.Close()
				sc := bufio.NewScanner(c)
				for sc.Scan() {
					fmt.Fprintf(c, "%s: %s\n", pod, sc.Text())
				}
			}()
		}
	}()
	t.Cleanup(func() { ln.Close(); s.wg.Wait() })
	return s
}

// fakeDialer opens fake tunnels whose data streams go to the echo server
// registered for the pod.
type fakeDialer struct {
	mu      sync.Mutex
	servers map[string]string // pod → echo address
	fail    map[string]error  // pod → dial error
	refuse  map[string]bool   // pod → its port refuses connections (the app is restarting)
	dials   []string
	ports   []int // container port of each data stream, in order
	conns   []*fakeConn
}

func newFakeDialer() *fakeDialer {
	return &fakeDialer{servers: map[string]string{}, fail: map[string]error{}, refuse: map[string]bool{}}
}

func (d *fakeDialer) serve(t *testing.T, pod string) {
	s := newEchoServer(t, pod)
	d.mu.Lock()
	d.servers[pod] = s.ln.Addr().String()
	d.mu.Unlock()
}

func (d *fakeDialer) Dial(ctx context.Context, ns, pod string) (streamhttp.Connection, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.dials = append(d.dials, pod)
	if err := d.fail[pod]; err != nil {
		return nil, err
	}
	addr, ok := d.servers[pod]
	if !ok {
		return nil, fmt.Errorf("no such pod %s", pod)
	}
	c := &fakeConn{d: d, pod: pod, addr: addr, closeCh: make(chan bool), pairs: map[string]chan struct{}{}, refused: map[string]bool{}}
	d.conns = append(d.conns, c)
	return c, nil
}

func (d *fakeDialer) dialCount() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.dials)
}

type fakeConn struct {
	d         *fakeDialer
	pod       string
	addr      string
	refused   map[string]bool // requestID → its data stream was refused
	closeOnce sync.Once
	closeCh   chan bool
	mu        sync.Mutex
	pairs     map[string]chan struct{} // requestID → closed when the data stream ends
	streams   []*fakeStream
}

func (c *fakeConn) pair(id string) chan struct{} {
	ch := c.pairs[id]
	if ch == nil {
		ch = make(chan struct{})
		c.pairs[id] = ch
	}
	return ch
}

func (c *fakeConn) CreateStream(h http.Header) (streamhttp.Stream, error) {
	select {
	case <-c.closeCh:
		return nil, errors.New("connection closed")
	default:
	}
	id := h.Get(corev1.PortForwardRequestIDHeader)
	port, err := strconv.Atoi(h.Get(corev1.PortHeader))
	if id == "" || err != nil {
		return nil, fmt.Errorf("bad headers %v", h)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	s := &fakeStream{c: c, h: h.Clone(), done: c.pair(id), id: id}
	switch h.Get(corev1.StreamType) {
	case corev1.StreamTypeError:
	case corev1.StreamTypeData:
		c.d.mu.Lock()
		refuse := c.d.refuse[c.pod]
		c.d.mu.Unlock()
		if refuse {
			// As the kubelet does: the data stream ends at once and the
			// error stream says why.
			c.refused[id] = true
			s.refusedData = true
			close(s.done)
			c.streams = append(c.streams, s)
			return s, nil
		}
		nc, err := net.Dial("tcp", c.addr)
		if err != nil {
			return nil, err
		}
		s.data = nc.(*net.TCPConn)
		c.d.mu.Lock()
		c.d.ports = append(c.d.ports, port)
		c.d.mu.Unlock()
	default:
		return nil, fmt.Errorf("bad stream type %q", h.Get(corev1.StreamType))
	}
	c.streams = append(c.streams, s)
	return s, nil
}

func (c *fakeConn) Close() error {
	c.closeOnce.Do(func() {
		close(c.closeCh)
		c.mu.Lock()
		streams := c.streams
		c.mu.Unlock()
		for _, s := range streams {
			s.Reset()
		}
	})
	return nil
}

func (c *fakeConn) CloseChan() <-chan bool             { return c.closeCh }
func (c *fakeConn) SetIdleTimeout(time.Duration)       {}
func (c *fakeConn) RemoveStreams(...streamhttp.Stream) {}

// fakeStream is a data stream (a TCP connection to the echo server) or an
// error stream (EOF once its data stream ends).
type fakeStream struct {
	c           *fakeConn
	h           http.Header
	id          string
	data        *net.TCPConn
	refusedData bool // a data stream the pod's port refused
	said        bool // an error stream has said why its data stream was refused
	done        chan struct{}
	resetOnce   sync.Once
}

func (s *fakeStream) Read(p []byte) (int, error) {
	if s.data != nil {
		return s.data.Read(p)
	}
	if s.refusedData {
		return 0, io.EOF
	}
	select {
	case <-s.done:
	case <-s.c.closeCh:
	}
	s.c.mu.Lock()
	refused := s.c.refused[s.id]
	s.c.mu.Unlock()
	if refused && !s.said {
		s.said = true
		return copy(p, "an error occurred forwarding 8080 -> 8080: dial tcp4 127.0.0.1:8080: connect: connection refused"), nil
	}
	return 0, io.EOF
}

func (s *fakeStream) Write(p []byte) (int, error) {
	if s.data != nil {
		return s.data.Write(p)
	}
	if s.refusedData {
		return len(p), nil
	}
	return 0, errors.New("write to error stream")
}

func (s *fakeStream) Close() error {
	if s.data != nil {
		return s.data.CloseWrite()
	}
	return nil
}

func (s *fakeStream) Reset() error {
	s.resetOnce.Do(func() {
		if s.data != nil {
			s.data.Close()
			close(s.done)
		}
	})
	return nil
}

func (s *fakeStream) Headers() http.Header { return s.h }
func (s *fakeStream) Identifier() uint32   { return 0 }
