package dockerhost

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// dockerConfig writes a docker config dir with the given current context
// and contexts (name -> docker endpoint host).
func dockerConfig(t *testing.T, current string, contexts map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	if current != "" {
		write(t, filepath.Join(dir, "config.json"), `{"auths":{},"currentContext":"`+current+`"}`)
	}
	for name, host := range contexts {
		write(t, filepath.Join(dir, "contexts", "meta", ContextDir(name), "meta.json"),
			`{"Name":"`+name+`","Metadata":{"Description":"test"},"Endpoints":{"docker":{"Host":"`+host+`","SkipTLSVerify":false}}}`)
	}
	return dir
}

func write(t *testing.T, p, s string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestResolve(t *testing.T) {
	cfg := dockerConfig(t, "colima", map[string]string{
		"colima":   "unix:///home/u/.colima/default/docker.sock",
		"orbstack": "unix:///home/u/.orbstack/run/docker.sock",
		"remote":   "ssh://me@box",
	})
	empty := t.TempDir()
	tests := []struct {
		name        string
		env         map[string]string
		wantHost    string
		wantContext string
		wantSource  string
		wantEnv     string
		wantErr     string
	}{
		{name: "DOCKER_HOST wins over everything", env: map[string]string{"DOCKER_HOST": "tcp://1.2.3.4:2375", "DOCKER_CONTEXT": "orbstack", "DOCKER_CONFIG": cfg},
			wantHost: "tcp://1.2.3.4:2375", wantSource: "DOCKER_HOST", wantEnv: "DOCKER_HOST=tcp://1.2.3.4:2375"},
		{name: "DOCKER_CONTEXT over the current context", env: map[string]string{"DOCKER_CONTEXT": "orbstack", "DOCKER_CONFIG": cfg},
			wantHost: "unix:///home/u/.orbstack/run/docker.sock", wantContext: "orbstack", wantSource: "from DOCKER_CONTEXT", wantEnv: "DOCKER_CONTEXT=orbstack"},
		{name: "current context of DOCKER_CONFIG", env: map[string]string{"DOCKER_CONFIG": cfg},
			wantHost: "unix:///home/u/.colima/default/docker.sock", wantContext: "colima", wantSource: "current docker context in " + cfg},
		{name: "HOME without a .docker dir", env: map[string]string{"HOME": empty},
			wantHost: "", wantSource: "the default socket"},
		{name: "DOCKER_CONTEXT=default", env: map[string]string{"DOCKER_CONTEXT": "default", "DOCKER_CONFIG": cfg},
			wantSource: "the default socket"},
		{name: "no config at all", env: map[string]string{"DOCKER_CONFIG": empty}, wantSource: "the default socket"},
		{name: "unknown context", env: map[string]string{"DOCKER_CONTEXT": "nope", "DOCKER_CONFIG": cfg},
			wantErr: `docker context "nope" (from DOCKER_CONTEXT) does not exist`},
		{name: "ssh context", env: map[string]string{"DOCKER_CONTEXT": "remote", "DOCKER_CONFIG": cfg},
			wantErr: "reached over ssh (ssh://me@box)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ep, err := Resolve(env(tt.env))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if ep.Host != tt.wantHost || ep.Context != tt.wantContext || !strings.Contains(ep.Source, tt.wantSource) {
				t.Errorf("endpoint = %+v", ep)
			}
			if tt.wantEnv != "" && strings.Join(ep.Env(), " ") != tt.wantEnv {
				t.Errorf("env = %v, want %s", ep.Env(), tt.wantEnv)
			}
		})
	}
}

func TestResolveHomeDockerDir(t *testing.T) {
	home := t.TempDir()
	cfg := dockerConfig(t, "desktop", map[string]string{"desktop": "unix:///home/u/.docker/desktop/docker.sock"})
	if err := os.Rename(cfg, filepath.Join(home, ".docker")); err != nil {
		t.Fatal(err)
	}
	ep, err := Resolve(env(map[string]string{"HOME": home}))
	if err != nil || ep.Host != "unix:///home/u/.docker/desktop/docker.sock" || ep.Context != "desktop" {
		t.Fatalf("endpoint = %+v, %v", ep, err)
	}
}

func TestResolveBadFiles(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "config.json"), "{not json")
	if _, err := Resolve(env(map[string]string{"DOCKER_CONFIG": dir})); err == nil || !strings.Contains(err.Error(), "config.json") {
		t.Errorf("bad config.json: err = %v", err)
	}
	write(t, filepath.Join(dir, "contexts", "meta", ContextDir("x"), "meta.json"), `{"Endpoints":{}}`)
	if _, err := Resolve(env(map[string]string{"DOCKER_CONFIG": dir, "DOCKER_CONTEXT": "x"})); err == nil || !strings.Contains(err.Error(), "no docker endpoint") {
		t.Errorf("no endpoint: err = %v", err)
	}
}

func TestContextTLS(t *testing.T) {
	cfg := dockerConfig(t, "secure", map[string]string{"secure": "tcp://10.0.0.1:2376"})
	tls := filepath.Join(cfg, "contexts", "tls", ContextDir("secure"), "docker")
	write(t, filepath.Join(tls, "ca.pem"), "x")
	ep, err := Resolve(env(map[string]string{"DOCKER_CONFIG": cfg}))
	if err != nil || ep.TLSDir != tls {
		t.Fatalf("endpoint = %+v, %v", ep, err)
	}
}

func FuzzParseMeta(f *testing.F) {
	f.Add([]byte(`{"Name":"a","Endpoints":{"docker":{"Host":"unix:///x.sock"}}}`))
	f.Add([]byte(`{"Endpoints":{"docker":{"Host":"ssh://h"}}}`))
	f.Add([]byte(`{"Endpoints":{"docker":{"Host":"tcp://[::1"}}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		ep, err := parseMeta(data, "a")
		if err == nil && (ep.Host == "" || ep.Context != "a") {
			t.Fatalf("accepted %q as %+v", data, ep)
		}
	})
}
