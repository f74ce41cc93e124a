package dockerhost

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/docker/docker-credential-helpers/client"
	"github.com/moby/moby/api/types/registry"
)

// helperProgram answers the credential-helper protocol's "get" from a map
// of server → {"Username", "Secret"}, as docker-credential-<name> does.
type helperProgram struct {
	creds map[string][2]string
	args  []string
	in    string
}

func (h *helperProgram) Input(r io.Reader) {
	b, _ := io.ReadAll(r)
	h.in = strings.TrimSpace(string(b))
}
func (h *helperProgram) Output() ([]byte, error) {
	if len(h.args) != 1 || h.args[0] != "get" {
		return []byte("unsupported"), os.ErrInvalid
	}
	c, ok := h.creds[h.in]
	if !ok {
		return []byte("credentials not found in native keychain"), os.ErrNotExist
	}
	return json.Marshal(map[string]string{"ServerURL": h.in, "Username": c[0], "Secret": c[1]})
}

func writeConfig(t *testing.T, cfg string) func(string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return func(k string) string {
		if k == "DOCKER_CONFIG" {
			return dir
		}
		return ""
	}
}

// What `docker login` stored is found the way the docker CLI finds it: the
// host's credential helper, else the credentials store, else auths.
func TestCredentials(t *testing.T) {
	basic := base64.StdEncoding.EncodeToString([]byte("dev:s3cret"))
	getenv := writeConfig(t, `{
  "auths": {
    "plain.example.com": {"auth": "`+basic+`"},
    "https://tokened.example.com": {"identitytoken": "tok"},
    "stored.example.com": {}
  },
  "credHelpers": {"gcr.example.com": "gcloud"},
  "credsStore": "desktop"
}`)
	var used []string
	run := func(helper string) client.ProgramFunc {
		return func(args ...string) client.Program {
			used = append(used, helper)
			return &helperProgram{args: args, creds: map[string][2]string{
				"gcr.example.com":    {"oauth2accesstoken", "ya29"},
				"stored.example.com": {"<token>", "refresh"},
			}}
		}
	}
	tests := []struct {
		host string
		want registry.AuthConfig
		ok   bool
	}{
		{"gcr.example.com", registry.AuthConfig{Username: "oauth2accesstoken", Password: "ya29", ServerAddress: "gcr.example.com"}, true},
		{"stored.example.com", registry.AuthConfig{IdentityToken: "refresh", ServerAddress: "stored.example.com"}, true},
		{"plain.example.com", registry.AuthConfig{Username: "dev", Password: "s3cret", ServerAddress: "plain.example.com"}, true},
		{"tokened.example.com", registry.AuthConfig{IdentityToken: "tok", ServerAddress: "tokened.example.com"}, true},
		{"localhost:5001", registry.AuthConfig{}, false},
	}
	for _, tt := range tests {
		used = nil
		got, ok, err := Credentials(getenv, tt.host, run)
		if err != nil || ok != tt.ok || got != tt.want {
			t.Errorf("%s: %+v, %v, %v; want %+v, %v", tt.host, got, ok, err, tt.want, tt.ok)
		}
		if tt.host == "gcr.example.com" && (len(used) != 1 || used[0] != "gcloud") {
			t.Errorf("%s asked helpers %v, want gcloud (credHelpers wins over credsStore)", tt.host, used)
		}
	}
}

// No config, or nothing stored: the header is the empty object the docker
// CLI sends; a stored login is sent as the engine expects it.
func TestAuthHeader(t *testing.T) {
	none := func(k string) string {
		if k == "DOCKER_CONFIG" {
			return t.TempDir()
		}
		return ""
	}
	if h, err := AuthHeader(none, "localhost:5001"); err != nil || h != base64.URLEncoding.EncodeToString([]byte("{}")) {
		t.Errorf("no config: %q, %v", h, err)
	}
	getenv := writeConfig(t, `{"auths": {"r.example.com:5000": {"auth": "`+base64.StdEncoding.EncodeToString([]byte("u:p"))+`"}}}`)
	h, err := AuthHeader(getenv, RegistryHost("r.example.com:5000/team"))
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := base64.URLEncoding.DecodeString(h)
	var got registry.AuthConfig
	if err := json.Unmarshal(raw, &got); err != nil || got.Username != "u" || got.Password != "p" || got.ServerAddress != "r.example.com:5000" {
		t.Errorf("header %s: %+v, %v", raw, got, err)
	}
	bad := writeConfig(t, `{"auths": {"r": {"auth": "bm9jb2xvbg=="}}}`)
	if _, err := AuthHeader(bad, "r"); err == nil || !strings.Contains(err.Error(), "user:password") || bytes.Contains([]byte(err.Error()), []byte("nocolon")) {
		t.Errorf("a malformed auth: %v", err)
	}
}
