package cluster

import (
	"errors"
	"net"
	"strconv"
	"testing"
)

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return port
}

func TestCheckPortsFree(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	busyPort := busy.Addr().(*net.TCPAddr).Port
	free := freePort(t)

	if err := checkPortsFree("127.0.0.1", []hostPort{{Port: free, Purpose: "ingress http", Setting: "cluster.ingress.httpPort"}}); err != nil {
		t.Fatalf("free port reported busy: %v", err)
	}

	err = checkPortsFree("127.0.0.1", []hostPort{
		{Port: free, Purpose: "ingress http", Setting: "cluster.ingress.httpPort"},
		{Port: busyPort, Purpose: "ingress https", Setting: "cluster.ingress.httpsPort"},
	})
	var pe *PortInUseError
	if !errors.As(err, &pe) {
		t.Fatalf("err = %v, want *PortInUseError", err)
	}
	if pe.Port != busyPort {
		t.Errorf("Port = %d, want %d", pe.Port, busyPort)
	}
	want := "host port " + strconv.Itoa(busyPort) + " (ingress https) is already in use: set cluster.ingress.httpsPort in devloop.yaml"
	if err.Error() != want {
		t.Errorf("error = %q, want %q", err.Error(), want)
	}
}
