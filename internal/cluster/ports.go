package cluster

import (
	"fmt"
	"net"
	"strconv"
)

// hostPort is a host port devloop needs, with what it is for and where the
// user configures it (for the error message).
type hostPort struct {
	Port    int
	Purpose string // e.g. "ingress http"
	Setting string // e.g. "cluster.ingress.httpPort"
}

// PortInUseError says a host port a new cluster needs is taken.
type PortInUseError struct {
	Address string
	Port    int
	Purpose string
	Setting string
	Err     error
}

// Error implements error.
func (e *PortInUseError) Error() string {
	return fmt.Sprintf("host port %d (%s) is already in use: set %s in devloop.yaml", e.Port, e.Purpose, e.Setting)
}

// Unwrap returns the listen error.
func (e *PortInUseError) Unwrap() error { return e.Err }

// checkPortsFree tries to listen on address:port for each port and fails
// with a *PortInUseError naming the first one that is taken.
func checkPortsFree(address string, ports []hostPort) error {
	for _, p := range ports {
		l, err := net.Listen("tcp", net.JoinHostPort(address, strconv.Itoa(p.Port)))
		if err != nil {
			return &PortInUseError{Address: address, Port: p.Port, Purpose: p.Purpose, Setting: p.Setting, Err: err}
		}
		if err := l.Close(); err != nil {
			return fmt.Errorf("closing probe listener on port %d: %w", p.Port, err)
		}
	}
	return nil
}
