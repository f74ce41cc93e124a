package livesync

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// TestKubeExecerRequest checks the exec request the executer sends (path and
// query) and that a refused upgrade surfaces as an error after falling back.
func TestKubeExecerRequest(t *testing.T) {
	var mu sync.Mutex
	var reqs []*http.Request
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		reqs = append(reqs, r)
		mu.Unlock()
		http.Error(w, "no upgrades here", http.StatusForbidden)
	}))
	defer srv.Close()

	cfg := &rest.Config{Host: srv.URL}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ex := NewKubeExecer(cfg, cs)
	err = ex.Exec(t.Context(), "ns1", "pod1", "app", []string{"tar", "-xmf", "-"}, strings.NewReader(""), nil, nil)
	if err == nil {
		t.Fatal("want an error from a server that refuses the upgrade")
	}
	mu.Lock()
	defer mu.Unlock()
	if len(reqs) == 0 {
		t.Fatal("no request reached the server")
	}
	for _, r := range reqs {
		if r.URL.Path != "/api/v1/namespaces/ns1/pods/pod1/exec" {
			t.Errorf("path = %s", r.URL.Path)
		}
		q := r.URL.Query()
		if q.Get("container") != "app" || strings.Join(q["command"], " ") != "tar -xmf -" || q.Get("stdin") != "true" || q.Get("stdout") != "true" {
			t.Errorf("query = %v", q)
		}
	}
	// WebSocket first (GET), then SPDY (POST) after the refused upgrade,
	// as kubectl does.
	var methods []string
	for _, r := range reqs {
		methods = append(methods, r.Method)
	}
	if strings.Join(methods, ",") != "GET,POST" {
		t.Errorf("methods = %v, want [GET POST] (WebSocket, then SPDY fallback)", methods)
	}
}
