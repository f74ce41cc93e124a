package debugserver

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
)

func TestCheckAddr(t *testing.T) {
	tests := []struct {
		addr string
		want string // empty: accepted
	}{
		{"127.0.0.1:6060", ""},
		{"127.1.2.3:6060", ""},
		{"[::1]:6060", ""},
		{"localhost:0", ""},
		{":6060", "no host means every network interface, and profiles are served on loopback only: use 127.0.0.1:6060"},
		{"0.0.0.0:6060", "0.0.0.0 is not a loopback address"},
		{"[::]:6060", ":: is not a loopback address"},
		{"192.168.1.5:6060", "192.168.1.5 is not a loopback address"},
		{"example.com:6060", `host "example.com" is not a loopback IP address or localhost`},
		{"6060", "not host:port"},
		{"127.0.0.1:http", `port "http" is not a number`},
	}
	for _, tc := range tests {
		t.Run(tc.addr, func(t *testing.T) {
			err := CheckAddr(tc.addr)
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("refused: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestServesOwnMuxOnLoopback: the profiles are served, and nothing
// registered on http.DefaultServeMux is.
func TestServesOwnMuxOnLoopback(t *testing.T) {
	http.HandleFunc("/debugserver-test-secret", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "secret") })
	s, err := Listen("localhost:0")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	host, _, _ := net.SplitHostPort(s.Addr())
	if host != "127.0.0.1" {
		t.Errorf("listening on %s, want 127.0.0.1", s.Addr())
	}
	base := "http://" + s.Addr()
	if code, body := get(t, base+"/debug/pprof/goroutine?debug=1"); code != 200 || !strings.Contains(body, "goroutine profile:") {
		t.Errorf("goroutine profile: %d %.200s", code, body)
	}
	if code, body := get(t, base+"/debug/pprof/cmdline"); code != 200 || body == "" {
		t.Errorf("cmdline: %d %q", code, body)
	}
	if code, body := get(t, base+"/debugserver-test-secret"); code != 404 {
		t.Errorf("a DefaultServeMux handler is served: %d %q", code, body)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := http.Get(base + "/debug/pprof/"); err == nil {
		t.Error("still serving after Close")
	}
}

func TestStart(t *testing.T) {
	var out bytes.Buffer
	start("", &out)()
	if out.Len() != 0 {
		t.Errorf("unset address printed %q", out.String())
	}
	start(":6060", &out)()
	if want := "devloop: no profiles served: DEVLOOP_PPROF_ADDR=:6060 refused: no host means every network interface"; !strings.HasPrefix(out.String(), want) {
		t.Errorf("got %q, want %q...", out.String(), want)
	}
	out.Reset()
	stop := start("127.0.0.1:0", &out)
	stop()
	if out.Len() != 0 {
		t.Errorf("loopback address printed %q", out.String())
	}
}
