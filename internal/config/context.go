package config

import (
	"fmt"
	"os"
	"os/user"
	"strings"
	"unicode"

	"github.com/distribution/reference"
)

// EnvAllowContext is the environment variable that allows a kubeconfig
// context whose name looks like production (ProductionWord), as the
// --allow-context flag does. Comma-separated names.
const EnvAllowContext = "DEVLOOP_ALLOW_CONTEXT"

// currentUser is the developer's user name, for the default namespace on an
// existing cluster: $USER, else the operating system's account name.
var currentUser = func() string {
	if u := os.Getenv("USER"); u != "" {
		return u
	}
	if u, err := user.Current(); err == nil {
		return u.Username
	}
	return ""
}

// ContextNamespace is the default namespace on an existing cluster:
// "<project>-<user>", the user lower-cased and made a DNS label (other
// characters become "-"), cut to 63 characters. Empty when user has nothing
// usable.
func ContextNamespace(project, user string) string {
	var b strings.Builder
	dash := false
	for _, r := range strings.ToLower(user) {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
			dash = false
		} else if !dash && b.Len() > 0 {
			b.WriteByte('-')
			dash = true
		}
	}
	u := strings.Trim(b.String(), "-")
	if u == "" || project == "" {
		return ""
	}
	ns := project + "-" + u
	if len(ns) > 63 {
		ns = strings.TrimRight(ns[:63], "-")
	}
	return ns
}

// ParseRegistryAddress checks a registry address as cluster.registry.address
// takes it, host[:port][/path-prefix] ("registry.dev.example.com/team",
// "localhost:5001"), and returns it without a trailing slash. The host must
// be one (a dot or a port in it, or localhost): "team/images" would be a
// path on Docker Hub.
func ParseRegistryAddress(s string) (string, error) {
	s = strings.TrimSuffix(strings.TrimSpace(s), "/")
	switch {
	case s == "":
		return "", fmt.Errorf("empty: expected host[:port][/path], e.g. localhost:5001 or registry.dev.example.com/team")
	case strings.Contains(s, "://"):
		return "", fmt.Errorf("%q has a scheme: write the address without it (host[:port][/path], e.g. localhost:5001)", s)
	case strings.ContainsAny(s, "@"):
		return "", fmt.Errorf("%q has a digest: the address is a registry and an optional path, images are pushed below it", s)
	}
	// The address is a repository prefix: with one more path component it
	// must be a canonical repository name whose domain is the address's host.
	named, err := reference.ParseNamed(s + "/x")
	if err != nil {
		if _, nerr := reference.ParseNormalizedNamed(s + "/x"); nerr == nil {
			return "", fmt.Errorf("%q has no registry host: expected host[:port][/path] (a host has a dot or a port, or is localhost), e.g. localhost:5001 or registry.dev.example.com/team", s)
		}
		return "", fmt.Errorf("%q is not a registry address host[:port][/path]: %v", s, err)
	}
	if _, tagged := named.(reference.Tagged); tagged {
		return "", fmt.Errorf("%q has a tag: the address is a registry and an optional path, images are pushed below it", s)
	}
	if named.Name() != s+"/x" {
		return "", fmt.Errorf("%q is not a registry address host[:port][/path]", s)
	}
	return s, nil
}

// ProductionWord returns the word of a kubeconfig context's name that makes
// it look like production ("prod", "production", "prd" or "live", as a word:
// between characters that are not letters or digits, case-insensitive), or
// "" when there is none. "gke_acme-prod_eu" → "prod"; "products" → "".
func ProductionWord(name string) string {
	words := strings.FieldsFunc(strings.ToLower(name), func(r rune) bool {
		return !unicode.IsLetter(r) && !unicode.IsDigit(r)
	})
	for _, w := range words {
		switch w {
		case "prod", "production", "prd", "live":
			return w
		}
	}
	return ""
}

// UseContext points cfg at the existing cluster of kubeconfig context name
// (`--context`), as cluster.context does in the file: the namespace, the
// charts' namespaces and the delivery are defaulted again for it unless the
// file sets them, and the combination is checked. An empty name changes
// nothing.
func (cfg *Config) UseContext(name string) error {
	if name == "" {
		return nil
	}
	cfg.Cluster.Context = name
	applyContextDefaults(cfg)
	var errs ErrorList
	for _, p := range contextProblems(cfg) {
		errs = append(errs, &Error{File: cfg.Path, Path: p.path, Msg: "with --context " + name + ": " + p.msg})
	}
	if len(errs) > 0 {
		return errs
	}
	return nil
}

// applyContextDefaults defaults what an existing cluster changes: the
// namespace is the developer's own, images are pushed, and devloop installs
// no ingress controller.
func applyContextDefaults(cfg *Config) {
	c := &cfg.Cluster
	if c.Context == "" {
		return
	}
	if !cfg.keys["namespace"] {
		cfg.Namespace = ContextNamespace(cfg.Name, currentUser())
		for i := range cfg.Charts {
			if !cfg.keys[fmt.Sprintf("charts[%d].namespace", i)] {
				cfg.Charts[i].Namespace = cfg.Namespace
			}
		}
	}
	if !cfg.keys["cluster.delivery"] {
		c.Delivery = DeliveryPush
	}
	if !cfg.keys["cluster.ingress.enabled"] {
		f := false
		c.Ingress.Enabled = &f
	}
}

type keyProblem struct{ path, msg string }

// contextProblems are the settings that make no sense with cluster.context.
func contextProblems(cfg *Config) []keyProblem {
	c := cfg.Cluster
	if c.Context == "" {
		if c.Registry.Address != "" && c.Registry.Enabled {
			return []keyProblem{{"cluster.registry.address", "an address names the registry of an existing cluster (cluster.context); " +
				"the local registry (enabled) runs beside devloop's kind cluster: keep one of the two"}}
		}
		return nil
	}
	var out []keyProblem
	if strings.TrimSpace(c.Context) == "" {
		out = append(out, keyProblem{"cluster.context", "blank: name a context of your kubeconfig"})
	}
	if c.Registry.Address == "" {
		out = append(out, keyProblem{"cluster.registry.address", "required with cluster.context: a registry the cluster pulls from " +
			"(e.g. registry.dev.example.com/team or localhost:5001), which devloop pushes the images to. " +
			"devloop never loads images into a cluster it did not create, and refuses one it cannot deliver to: it looks like production"})
	}
	for _, k := range []string{"enabled", "port", "image"} {
		if cfg.keys["cluster.registry."+k] {
			out = append(out, keyProblem{"cluster.registry." + k, "the local registry container runs only beside devloop's own kind cluster; " +
				"with cluster.context, name the registry the cluster pulls from in cluster.registry.address instead"})
		}
	}
	if cfg.keys["cluster.delivery"] && c.Delivery != DeliveryPush {
		out = append(out, keyProblem{"cluster.delivery", fmt.Sprintf("%q loads into kind nodes: images reach an existing cluster by push only (remove it)", c.Delivery)})
	}
	if cfg.keys["cluster.workers"] {
		out = append(out, keyProblem{"cluster.workers", "devloop does not create an existing cluster's nodes (remove it)"})
	}
	if cfg.keys["cluster.ingress.enabled"] && c.Ingress.IsEnabled() {
		out = append(out, keyProblem{"cluster.ingress.enabled", "devloop installs no ingress controller in an existing cluster: its own, if any, serves the Ingresses (remove it)"})
	}
	if cfg.Namespace == "" {
		out = append(out, keyProblem{"namespace", fmt.Sprintf("cannot tell your user name for the default namespace %s-<user> ($USER is empty): set namespace", cfg.Name)})
	}
	return out
}
