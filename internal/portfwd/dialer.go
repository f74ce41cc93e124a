package portfwd

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/portforward"
	"k8s.io/client-go/transport/spdy"
	streamhttp "k8s.io/streaming/pkg/httpstream"
)

// Dialer opens one streaming connection (a tunnel) to a pod's port-forward
// subresource. Many local connections share one tunnel, each as an
// error+data stream pair. It is the seam tests replace.
type Dialer interface {
	Dial(ctx context.Context, namespace, pod string) (streamhttp.Connection, error)
}

// dialTimeout bounds one tunnel dial; the client-go dialers take no context.
const dialTimeout = 15 * time.Second

// clientDialer dials through the API server the way kubectl port-forward
// does: SPDY over WebSocket first, falling back to plain SPDY.
type clientDialer struct {
	cfg *rest.Config
	cs  kubernetes.Interface
}

// NewClientDialer returns the Dialer used against a real API server.
func NewClientDialer(cfg *rest.Config, cs kubernetes.Interface) Dialer {
	return &clientDialer{cfg: cfg, cs: cs}
}

func (d *clientDialer) Dial(ctx context.Context, namespace, pod string) (streamhttp.Connection, error) {
	u := d.cs.CoreV1().RESTClient().Post().Resource("pods").Namespace(namespace).Name(pod).SubResource("portforward").URL()
	// The SPDY round tripper remembers the one connection it upgraded, so
	// it must be built per dial.
	tr, up, err := spdy.RoundTripperFor(d.cfg)
	if err != nil {
		return nil, fmt.Errorf("building SPDY transport for pod %s/%s: %w", namespace, pod, err)
	}
	var dialer streamhttp.Dialer = spdy.NewDialerForStreaming(up, &http.Client{Transport: tr}, http.MethodPost, u)
	if !strings.EqualFold(os.Getenv("KUBECTL_PORT_FORWARD_WEBSOCKETS"), "false") {
		ws, err := portforward.NewSPDYOverWebsocketDialerForStreaming(u, d.cfg)
		if err != nil {
			return nil, fmt.Errorf("building websocket dialer for pod %s/%s: %w", namespace, pod, err)
		}
		dialer = portforward.NewFallbackDialerForStreaming(ws, dialer, func(err error) bool {
			return streamhttp.IsUpgradeFailure(err) || streamhttp.IsHTTPSProxyError(err)
		})
	}

	ch := make(chan dialResult, 1)
	go func() {
		c, p, err := dialer.Dial(portforward.PortForwardProtocolV1Name)
		ch <- dialResult{c, p, err}
	}()
	timer := time.NewTimer(dialTimeout)
	defer timer.Stop()
	select {
	case r := <-ch:
		if r.err != nil {
			return nil, fmt.Errorf("dialing port-forward to pod %s/%s: %w", namespace, pod, r.err)
		}
		if r.proto != portforward.PortForwardProtocolV1Name {
			r.conn.Close()
			return nil, fmt.Errorf("dialing port-forward to pod %s/%s: server negotiated protocol %q, want %q", namespace, pod, r.proto, portforward.PortForwardProtocolV1Name)
		}
		return r.conn, nil
	case <-ctx.Done():
		go closeLate(ch)
		return nil, fmt.Errorf("dialing port-forward to pod %s/%s: %w", namespace, pod, ctx.Err())
	case <-timer.C:
		go closeLate(ch)
		return nil, fmt.Errorf("dialing port-forward to pod %s/%s: timed out after %s", namespace, pod, dialTimeout)
	}
}

type dialResult struct {
	conn  streamhttp.Connection
	proto string
	err   error
}

// closeLate closes a connection whose dial finished after its caller gave up.
func closeLate(ch <-chan dialResult) {
	if r := <-ch; r.conn != nil {
		r.conn.Close()
	}
}

// tunnel is one streaming connection to one pod.
type tunnel struct {
	key  string // namespace/pod
	pod  string
	conn streamhttp.Connection

	mu        sync.Mutex
	requestID int
	active    int
	retired   bool
	closed    bool
}

func (t *tunnel) nextRequestID() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	id := t.requestID
	t.requestID++
	return id
}

// close closes the streaming connection once.
func (t *tunnel) close() {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return
	}
	t.closed = true
	t.mu.Unlock()
	t.conn.Close()
}

// forwardConn carries one local connection to port over the tunnel, as a
// pair of streams (error + data), like client-go's handleConnection. It
// returns once both directions are done. A non-nil error means the tunnel
// itself misbehaved (the caller should stop using it).
func forwardConn(local net.Conn, t *tunnel, port int) error {
	requestID := t.nextRequestID()
	headers := http.Header{}
	headers.Set(corev1.StreamType, corev1.StreamTypeError)
	headers.Set(corev1.PortHeader, strconv.Itoa(port))
	headers.Set(corev1.PortForwardRequestIDHeader, strconv.Itoa(requestID))
	errorStream, err := t.conn.CreateStream(headers)
	if err != nil {
		return fmt.Errorf("creating error stream to pod %s port %d: %w", t.pod, port, err)
	}
	// We never write to the error stream.
	errorStream.Close()
	defer t.conn.RemoveStreams(errorStream)

	type readAllResult struct {
		msg []byte
		err error
	}
	errorCh := make(chan readAllResult, 1)
	go func() {
		msg, err := io.ReadAll(errorStream)
		errorCh <- readAllResult{msg, err}
	}()

	headers.Set(corev1.StreamType, corev1.StreamTypeData)
	dataStream, err := t.conn.CreateStream(headers)
	if err != nil {
		errorStream.Reset()
		<-errorCh
		return fmt.Errorf("creating data stream to pod %s port %d: %w", t.pod, port, err)
	}
	defer t.conn.RemoveStreams(dataStream)

	remoteDone := make(chan struct{})
	localDone := make(chan struct{})
	localErr := make(chan struct{})
	go func() {
		// Remote → local.
		_, _ = io.Copy(local, dataStream)
		close(remoteDone)
	}()
	go func() {
		// Local → remote; closing tells the pod we are done sending.
		defer close(localDone)
		defer dataStream.Close()
		if _, err := io.Copy(dataStream, local); err != nil {
			close(localErr)
		}
	}()

	// Wait for the remote side to finish, a local error (the client went
	// away), or the tunnel to die. A clean local half-close keeps waiting
	// for the answer.
	select {
	case <-remoteDone:
	case <-localErr:
	case <-t.conn.CloseChan():
	}
	// Reset before waiting for the error stream, as client-go does, so
	// unsent data cannot block it; then unblock the local copy.
	_ = dataStream.Reset()
	local.Close()
	<-remoteDone
	<-localDone

	r := <-errorCh
	switch {
	case r.err != nil:
		return fmt.Errorf("reading error stream from pod %s port %d: %w", t.pod, port, r.err)
	case len(r.msg) > 0:
		return &portError{pod: t.pod, port: port, msg: strings.TrimSpace(string(r.msg))}
	}
	return nil
}

// portError is what the pod's side said about one forwarded connection
// (its port refused it, typically: the app is not listening, or restarts).
// It is that connection's failure, not the tunnel's.
type portError struct {
	pod  string
	port int
	msg  string
}

func (e *portError) Error() string {
	return fmt.Sprintf("forwarding to pod %s port %d: %s", e.pod, e.port, e.msg)
}
