package dockerhost

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/docker/docker-credential-helpers/client"
	"github.com/docker/docker-credential-helpers/credentials"
	"github.com/moby/moby/api/types/registry"
)

// Credentials finds what `docker login` stored for registry host (host or
// host:port, the key the docker CLI uses): a credential helper named for
// the host in config.json's "credHelpers", else its "credsStore", else the
// "auths" entry itself. ok is false when nothing is stored (a registry that
// needs no login, such as devloop's own on 127.0.0.1).
//
// run runs the credential helper docker-credential-<name> (the helper
// protocol, through docker-credential-helpers' client); nil: the real one.
func Credentials(getenv func(string) string, host string, run func(helper string) client.ProgramFunc) (auth registry.AuthConfig, ok bool, err error) {
	if run == nil {
		run = func(helper string) client.ProgramFunc {
			return client.NewShellProgramFunc("docker-credential-" + helper)
		}
	}
	path := filepath.Join(ConfigDir(getenv), "config.json")
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return auth, false, nil
	}
	if err != nil {
		return auth, false, fmt.Errorf("reading %s: %w", path, err)
	}
	var cfg struct {
		Auths       map[string]registry.AuthConfig `json:"auths"`
		CredHelpers map[string]string              `json:"credHelpers"`
		CredsStore  string                         `json:"credsStore"`
	}
	if err := json.Unmarshal(data, &cfg); err != nil {
		return auth, false, fmt.Errorf("reading %s: %w", path, err)
	}
	helper := cfg.CredHelpers[host]
	if helper == "" {
		helper = cfg.CredsStore
	}
	if helper != "" {
		c, err := client.Get(run(helper), host)
		switch {
		case credentials.IsErrCredentialsNotFound(err):
			// The store has none: the docker CLI falls back to auths too.
		case err != nil:
			return auth, false, fmt.Errorf("credential helper docker-credential-%s for %s: %w", helper, host, err)
		case c.Username == "<token>":
			return registry.AuthConfig{IdentityToken: c.Secret, ServerAddress: host}, true, nil
		default:
			return registry.AuthConfig{Username: c.Username, Password: c.Secret, ServerAddress: host}, true, nil
		}
	}
	for _, key := range []string{host, "https://" + host, "http://" + host} {
		a, found := cfg.Auths[key]
		if !found {
			continue
		}
		if a.Auth != "" {
			raw, err := base64.StdEncoding.DecodeString(a.Auth)
			if err != nil {
				return auth, false, fmt.Errorf("%s: the auth of %s is not base64: %w", path, key, err)
			}
			user, pass, found := strings.Cut(string(raw), ":")
			if !found {
				return auth, false, fmt.Errorf("%s: the auth of %s is not user:password", path, key)
			}
			a.Username, a.Password, a.Auth = user, pass, ""
		}
		if a.Username == "" && a.IdentityToken == "" && a.RegistryToken == "" {
			continue // an empty entry (credentials live in a store)
		}
		a.ServerAddress = host
		return a, true, nil
	}
	return auth, false, nil
}

// AuthHeader is Credentials encoded for the Engine API's X-Registry-Auth
// header (an image push): "{}" when nothing is stored, as the docker CLI
// sends.
func AuthHeader(getenv func(string) string, host string) (string, error) {
	auth, ok, err := Credentials(getenv, host, nil)
	if err != nil {
		return "", err
	}
	if !ok {
		return base64.URLEncoding.EncodeToString([]byte("{}")), nil
	}
	b, err := json.Marshal(auth)
	if err != nil {
		return "", err
	}
	return base64.URLEncoding.EncodeToString(b), nil
}

// RegistryHost is the part of a registry address the docker CLI keys
// credentials by: "registry.example.com:5000" of
// "registry.example.com:5000/team".
func RegistryHost(address string) string {
	host, _, _ := strings.Cut(address, "/")
	return host
}
