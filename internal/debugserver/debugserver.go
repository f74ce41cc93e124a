// Package debugserver serves Go's profiling endpoints (/debug/pprof/) for
// leak and performance measurements, when DEVLOOP_PPROF_ADDR asks for it.
//
// It listens on loopback addresses only (the profiles show command lines,
// memory and goroutine stacks: nothing to offer a network) and serves its
// own mux, never http.DefaultServeMux, so no handler another package
// registers there is exposed with it.
package debugserver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/pprof"
	"net/netip"
	"os"
	"strconv"
	"time"
)

// EnvAddr is the environment variable naming the address to serve on,
// e.g. 127.0.0.1:6060.
const EnvAddr = "DEVLOOP_PPROF_ADDR"

// Server is a running profiling server.
type Server struct {
	ln   net.Listener
	srv  *http.Server
	done chan struct{}
}

// CheckAddr checks that addr is host:port with a loopback host: an IP
// address such as 127.0.0.1 or ::1, or "localhost". An empty host (":6060")
// or 0.0.0.0 would serve every network the machine is on.
func CheckAddr(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("not host:port (e.g. 127.0.0.1:6060): %v", err)
	}
	if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
		return fmt.Errorf("port %q is not a number from 0 to 65535", port)
	}
	if host == "localhost" {
		return nil
	}
	ip, err := netip.ParseAddr(host)
	switch {
	case host == "":
		return fmt.Errorf("no host means every network interface, and profiles are served on loopback only: use 127.0.0.1:%s", port)
	case err != nil:
		return fmt.Errorf("host %q is not a loopback IP address or localhost: use 127.0.0.1:%s", host, port)
	case !ip.IsLoopback():
		return fmt.Errorf("%s is not a loopback address, and profiles are served on loopback only: use 127.0.0.1:%s", host, port)
	}
	return nil
}

// Listen starts serving the profiling endpoints on addr, which must pass
// CheckAddr.
func Listen(addr string) (*Server, error) {
	if err := CheckAddr(addr); err != nil {
		return nil, fmt.Errorf("%s=%s refused: %w", EnvAddr, addr, err)
	}
	if host, port, _ := net.SplitHostPort(addr); host == "localhost" {
		addr = net.JoinHostPort("127.0.0.1", port) // never what a resolver says localhost is
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	s := &Server{ln: ln, srv: &http.Server{Handler: Handler(), ReadHeaderTimeout: 10 * time.Second}, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		_ = s.srv.Serve(ln)
	}()
	return s, nil
}

// Handler is the profiling endpoints under /debug/pprof/ on a mux of their own.
func Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}

// Addr is the address the server listens on (with the port chosen, if
// addr asked for port 0).
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Close stops the server and waits for it to end.
func (s *Server) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := s.srv.Shutdown(ctx)
	if errors.Is(err, context.DeadlineExceeded) {
		err = s.srv.Close()
	}
	<-s.done
	return err
}

// StartFromEnv serves the profiling endpoints when DEVLOOP_PPROF_ADDR is set,
// until the returned stop is called. An address it refuses (not loopback)
// or cannot listen on is reported on errOut, and nothing is served.
func StartFromEnv(errOut io.Writer) (stop func()) {
	return start(os.Getenv(EnvAddr), errOut)
}

func start(addr string, errOut io.Writer) (stop func()) {
	if addr == "" {
		return func() {}
	}
	s, err := Listen(addr)
	if err != nil {
		fmt.Fprintf(errOut, "devloop: no profiles served: %v\n", err)
		return func() {}
	}
	return func() { _ = s.Close() }
}
