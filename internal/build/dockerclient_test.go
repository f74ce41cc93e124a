package build

import (
	"context"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/moby/moby/client"

	"github.com/devloop-dev/devloop/internal/dockerhost"
)

// fakeEngine serves /_ping and /version on a unix socket and records the paths asked.
type fakeEngine struct {
	mu    sync.Mutex
	paths []string
}

func (f *fakeEngine) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.paths = append(f.paths, r.URL.Path)
	f.mu.Unlock()
	w.Header().Set("API-Version", "1.51")
	w.Header().Set("Builder-Version", "2")
	switch {
	case strings.HasSuffix(r.URL.Path, "/_ping"):
		w.Write([]byte("OK"))
	case strings.HasSuffix(r.URL.Path, "/version"):
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"Version":"28.5.2","ApiVersion":"1.51","MinAPIVersion":"1.24","Os":"linux","Arch":"amd64"}`))
	default:
		http.NotFound(w, r)
	}
}

func serveUnix(t *testing.T, h http.Handler) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "docker.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return sock
}

// TestNewDockerClientFollowsDockerContext: with the current context of a
// temporary docker config pointing at another socket, devloop's client
// talks to that socket, and hands kind the same context.
func TestNewDockerClientFollowsDockerContext(t *testing.T) {
	eng := &fakeEngine{}
	sock := serveUnix(t, eng)
	cfg := t.TempDir()
	meta := filepath.Join(cfg, "contexts", "meta", dockerhost.ContextDir("other"), "meta.json")
	os.MkdirAll(filepath.Dir(meta), 0o755)
	os.WriteFile(meta, []byte(`{"Name":"other","Metadata":{},"Endpoints":{"docker":{"Host":"unix://`+sock+`","SkipTLSVerify":false}}}`), 0o644)
	os.WriteFile(filepath.Join(cfg, "config.json"), []byte(`{"currentContext":"other"}`), 0o644)

	getenv := func(k string) string {
		if k == "DOCKER_CONFIG" {
			return cfg
		}
		return ""
	}
	c, ep, err := NewDockerClientEndpoint(context.Background(), getenv)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if ep.Context != "other" || strings.Join(ep.Env(), ",") != "DOCKER_CONTEXT=other" {
		t.Errorf("endpoint = %+v, env %v", ep, ep.Env())
	}
	v, err := c.ServerVersion(context.Background(), client.ServerVersionOptions{})
	if err != nil || v.Version != "28.5.2" {
		t.Fatalf("version = %+v, %v", v, err)
	}
	eng.mu.Lock()
	defer eng.mu.Unlock()
	if len(eng.paths) < 2 || !strings.HasSuffix(eng.paths[0], "/_ping") {
		t.Errorf("fake engine saw %v", eng.paths)
	}
}

func TestNewDockerClientUnreachableNamesTheContext(t *testing.T) {
	cfg := t.TempDir()
	meta := filepath.Join(cfg, "contexts", "meta", dockerhost.ContextDir("gone"), "meta.json")
	os.MkdirAll(filepath.Dir(meta), 0o755)
	os.WriteFile(meta, []byte(`{"Name":"gone","Endpoints":{"docker":{"Host":"unix://`+cfg+`/missing.sock"}}}`), 0o644)
	_, _, err := NewDockerClientEndpoint(context.Background(), func(k string) string {
		return map[string]string{"DOCKER_CONFIG": cfg, "DOCKER_CONTEXT": "gone"}[k]
	})
	if err == nil || !strings.Contains(err.Error(), "missing.sock (docker context gone, from DOCKER_CONTEXT)") {
		t.Fatalf("err = %v", err)
	}
}
