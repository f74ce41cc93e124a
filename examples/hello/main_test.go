package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestMux(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "index.html"), []byte("<p>static</p>"), 0o644); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(newMux("pod-1", dir))
	defer srv.Close()
	for _, tc := range []struct {
		path   string
		status int
		body   string
	}{
		{"/", 200, message + " (pod pod-1)\n"},
		{"/healthz", 200, "ok\n"},
		{"/static/index.html", 200, "<p>static</p>"},
		{"/nope", 404, ""},
	} {
		resp, err := http.Get(srv.URL + tc.path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.status || (tc.body != "" && string(b) != tc.body) {
			t.Errorf("GET %s = %d %q, want %d %q", tc.path, resp.StatusCode, b, tc.status, tc.body)
		}
	}
	if !strings.HasPrefix(message, "hello from devloop") {
		t.Errorf("message = %q", message)
	}
}
