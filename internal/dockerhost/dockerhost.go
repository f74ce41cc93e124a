// Package dockerhost finds the Docker engine the docker CLI would talk to:
// DOCKER_HOST, else DOCKER_CONTEXT, else the current context of the docker
// config ($DOCKER_CONFIG or ~/.docker), else the default socket. Users of
// colima, OrbStack, Rancher Desktop and Docker Desktop depend on contexts.
//
// It reads the CLI's files itself (config.json's "currentContext" and
// contexts/meta/<sha256(name)>/meta.json) instead of importing docker/cli,
// whose module would pull the whole CLI into devloop for two JSON files.
package dockerhost

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/moby/moby/client"
)

// DefaultContext is the docker CLI's name for "DOCKER_HOST or the default socket".
const DefaultContext = "default"

// Endpoint is a resolved Docker engine.
type Endpoint struct {
	// Host is the engine address, e.g. "unix:///var/run/docker.sock". Empty
	// for the default context without DOCKER_HOST: the client's default.
	Host string
	// Context is the docker context the endpoint comes from; "" for the
	// environment (DOCKER_HOST) or the default.
	Context string
	// Source says where the endpoint was found, for messages.
	Source string
	// TLSDir holds the context's ca.pem, cert.pem and key.pem, when it has TLS material.
	TLSDir string
	// SkipTLSVerify is the context's "SkipTLSVerify".
	SkipTLSVerify bool
}

// String is the host and where it came from.
func (e Endpoint) String() string {
	h := e.Host
	if h == "" {
		h = client.DefaultDockerHost
	}
	return h + " (" + e.Source + ")"
}

// Resolve finds the endpoint as the docker CLI does, reading variables with getenv.
func Resolve(getenv func(string) string) (Endpoint, error) {
	if h := getenv("DOCKER_HOST"); h != "" {
		return Endpoint{Host: h, Source: "DOCKER_HOST"}, nil
	}
	dir := ConfigDir(getenv)
	name, source := getenv("DOCKER_CONTEXT"), "DOCKER_CONTEXT"
	if name == "" {
		cur, err := currentContext(dir)
		if err != nil {
			return Endpoint{}, err
		}
		name, source = cur, "the current docker context in "+filepath.Join(dir, "config.json")
	}
	if name == "" || name == DefaultContext {
		return Endpoint{Source: "the default socket"}, nil
	}
	return contextEndpoint(dir, name, source)
}

// ConfigDir is the docker CLI's config directory: $DOCKER_CONFIG, else ~/.docker.
func ConfigDir(getenv func(string) string) string {
	if d := getenv("DOCKER_CONFIG"); d != "" {
		return d
	}
	home := getenv("HOME")
	if home == "" {
		home, _ = os.UserHomeDir()
	}
	return filepath.Join(home, ".docker")
}

func currentContext(dir string) (string, error) {
	data, err := os.ReadFile(filepath.Join(dir, "config.json"))
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("reading the docker config: %w", err)
	}
	var cfg struct {
		CurrentContext string `json:"currentContext"`
	}
	if err := json.Unmarshal(data, &cfg); err != nil {
		return "", fmt.Errorf("reading the docker config %s: %w", filepath.Join(dir, "config.json"), err)
	}
	return cfg.CurrentContext, nil
}

// contextMeta is the part of a context's meta.json devloop uses.
type contextMeta struct {
	Name      string `json:"Name"`
	Endpoints map[string]struct {
		Host          string `json:"Host"`
		SkipTLSVerify bool   `json:"SkipTLSVerify"`
	} `json:"Endpoints"`
}

// ContextDir is the hashed directory name the docker CLI stores a context under.
func ContextDir(name string) string {
	sum := sha256.Sum256([]byte(name))
	return hex.EncodeToString(sum[:])
}

func contextEndpoint(dir, name, source string) (Endpoint, error) {
	path := filepath.Join(dir, "contexts", "meta", ContextDir(name), "meta.json")
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return Endpoint{}, fmt.Errorf("docker context %q (from %s) does not exist (no %s): "+
			"list contexts with `docker context ls` and pick one with `docker context use NAME`", name, source, path)
	}
	if err != nil {
		return Endpoint{}, fmt.Errorf("reading docker context %q: %w", name, err)
	}
	ep, err := parseMeta(data, name)
	if err != nil {
		return Endpoint{}, fmt.Errorf("reading docker context %q (%s): %w", name, path, err)
	}
	ep.Source = "docker context " + name + ", from " + source
	tls := filepath.Join(dir, "contexts", "tls", ContextDir(name), "docker")
	if _, err := os.Stat(filepath.Join(tls, "ca.pem")); err == nil {
		ep.TLSDir = tls
	} else if _, err := os.Stat(filepath.Join(tls, "cert.pem")); err == nil {
		ep.TLSDir = tls
	}
	return ep, nil
}

// parseMeta reads a context's meta.json.
func parseMeta(data []byte, name string) (Endpoint, error) {
	var m contextMeta
	if err := json.Unmarshal(data, &m); err != nil {
		return Endpoint{}, err
	}
	d, ok := m.Endpoints["docker"]
	if !ok || d.Host == "" {
		return Endpoint{}, errors.New("it has no docker endpoint")
	}
	if strings.HasPrefix(d.Host, "ssh://") {
		return Endpoint{}, fmt.Errorf("its engine is reached over ssh (%s), which devloop does not speak: "+
			"forward the engine's socket (e.g. `ssh -nNT -L /tmp/docker.sock:/var/run/docker.sock HOST`) and set DOCKER_HOST=unix:///tmp/docker.sock", d.Host)
	}
	if _, err := client.ParseHostURL(d.Host); err != nil {
		return Endpoint{}, fmt.Errorf("invalid docker endpoint %q: %w", d.Host, err)
	}
	return Endpoint{Host: d.Host, Context: name, SkipTLSVerify: d.SkipTLSVerify}, nil
}

// ClientOptions configure a moby client for the endpoint. The environment
// case keeps client.FromEnv (DOCKER_HOST, DOCKER_TLS_VERIFY, DOCKER_CERT_PATH,
// DOCKER_API_VERSION).
func (e Endpoint) ClientOptions() []client.Opt {
	if e.Context == "" {
		return []client.Opt{client.FromEnv}
	}
	opts := []client.Opt{client.WithHost(e.Host), client.WithAPIVersionFromEnv()}
	if e.TLSDir != "" {
		opt := func(f string) string {
			p := filepath.Join(e.TLSDir, f)
			if _, err := os.Stat(p); err != nil {
				return ""
			}
			return p
		}
		ca := opt("ca.pem")
		if e.SkipTLSVerify {
			ca = ""
		}
		opts = append(opts, client.WithTLSClientConfig(ca, opt("cert.pem"), opt("key.pem")))
	}
	return opts
}

// Env is the environment a docker CLI child (kind's provider shells out to
// `docker`) needs to reach this same engine: DOCKER_CONTEXT for a context
// (it carries the TLS material too), DOCKER_HOST otherwise, nothing for the
// default. Setting these is harmless when they match what the CLI would
// resolve anyway, and makes it explicit when devloop's resolution is the one
// that counts.
func (e Endpoint) Env() []string {
	switch {
	case e.Context != "":
		return []string{"DOCKER_CONTEXT=" + e.Context}
	case e.Host != "":
		return []string{"DOCKER_HOST=" + e.Host}
	}
	return nil
}
