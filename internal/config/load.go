package config

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"unicode/utf16"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"
)

// EnvNodeImage is the environment variable that overrides cluster.nodeImage.
const EnvNodeImage = "DEVLOOP_NODE_IMAGE"

// Load reads, decodes, defaults and validates the config file at path.
// It does not consult the environment (but for the user name in the default
// namespace on an existing cluster); call ApplyEnv afterwards for that.
// An invalid file yields an ErrorList describing every problem.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading config: %w", err)
	}
	return Parse(path, data)
}

// Parse decodes, defaults and validates data as the contents of the config
// file at path. Relative paths in the file are resolved against path's
// directory (made absolute); the file system is consulted to validate
// them. Errors mention path exactly as given. An invalid file yields an
// ErrorList describing every problem.
func Parse(path string, data []byte) (*Config, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("resolving config path %s: %w", path, err)
	}
	d := newDecoder(path)
	root, errs := parseDocument(path, data)
	if errs != nil {
		return nil, errs
	}
	cfg := &Config{}
	d.decode(root, reflect.ValueOf(cfg).Elem(), "")
	if d.overBudget {
		// What was decoded is a fragment: validating it would only add noise.
		return nil, d.finish()
	}
	cfg.Path = abs
	cfg.Dir = filepath.Dir(abs)
	cfg.keys = make(map[string]bool, len(d.pos))
	for k := range d.pos {
		cfg.keys[k] = true
	}
	setDefaults(cfg)
	v := &validator{decoder: d, cfg: cfg}
	v.validate()
	if len(d.errs) > 0 {
		return nil, d.finish()
	}
	return cfg, nil
}

// parseDocument parses data as exactly one YAML document whose root is a
// mapping, and returns that mapping node.
func parseDocument(file string, data []byte) (*yaml.Node, ErrorList) {
	// The YAML parser reports an encoding problem without its position:
	// find it first.
	data, e := encodingError(file, data)
	if e != nil {
		return nil, ErrorList{e}
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, ErrorList{{File: file, Msg: `the file is empty; expected a mapping with at least "name" and "services" or "manifests"`}}
		}
		return nil, ErrorList{syntaxError(file, data, err)}
	}
	var extra yaml.Node
	switch err := dec.Decode(&extra); {
	case errors.Is(err, io.EOF):
	case err != nil:
		return nil, ErrorList{syntaxError(file, data, err)}
	default:
		return nil, ErrorList{{File: file, Line: extra.Line, Column: extra.Column, Msg: "expected one YAML document, found a second one"}}
	}
	root := doc.Content[0]
	if r := resolve(root); r.Kind != yaml.MappingNode {
		return nil, ErrorList{{File: file, Line: root.Line, Column: root.Column, Msg: "expected a mapping at the top level, got " + describe(r)}}
	}
	return root, nil
}

// encodingError reports the first character of data that YAML does not
// accept (invalid UTF-8, or a control character YAML forbids), at its line
// and column, or nil. It returns data as UTF-8: a UTF-16 file (with its
// byte order mark) is converted.
func encodingError(file string, data []byte) ([]byte, *Error) {
	if bytes.HasPrefix(data, []byte{0xfe, 0xff}) || bytes.HasPrefix(data, []byte{0xff, 0xfe}) {
		var err *Error
		if data, err = fromUTF16(file, data); err != nil {
			return nil, err
		}
	}
	for i := 0; i < len(data); {
		r, size := utf8.DecodeRune(data[i:])
		var msg string
		switch {
		case r == utf8.RuneError && size <= 1:
			msg = fmt.Sprintf("byte 0x%02x is not valid UTF-8; devloop.yaml must be UTF-8 text (was it saved in another encoding?)", data[i])
		case !yamlPrintable(r):
			msg = fmt.Sprintf("character %U is not allowed in YAML (a control character); remove it or, in a quoted string, write it as an escape", r)
		}
		if msg != "" {
			line, col := lineCol(data[:i])
			return nil, &Error{File: file, Line: line, Column: col, Msg: "invalid YAML: " + msg}
		}
		i += size
	}
	return data, nil
}

// fromUTF16 converts UTF-16 data, which starts with its byte order mark, to
// UTF-8, without the mark.
func fromUTF16(file string, data []byte) ([]byte, *Error) {
	order := binary.ByteOrder(binary.BigEndian)
	if data[0] == 0xff {
		order = binary.LittleEndian
	}
	units := make([]uint16, len(data)/2)
	for i := range units {
		units[i] = order.Uint16(data[2*i:])
	}
	out := make([]byte, 0, len(data))
	for i := 1; i < len(units); i++ {
		r := rune(units[i])
		if utf16.IsSurrogate(r) {
			if i+1 < len(units) {
				r = utf16.DecodeRune(r, rune(units[i+1]))
			} else {
				r = utf8.RuneError
			}
			if r == utf8.RuneError {
				line, col := lineCol(out)
				return nil, &Error{File: file, Line: line, Column: col, Msg: "invalid YAML: a UTF-16 surrogate is not paired; the file is not valid UTF-16 text"}
			}
			i++
		}
		out = utf8.AppendRune(out, r)
	}
	if len(data)%2 != 0 {
		line, col := lineCol(out)
		return nil, &Error{File: file, Line: line, Column: col, Msg: "invalid YAML: the file ends in half a UTF-16 character"}
	}
	return out, nil
}

// yamlPrintable reports whether YAML 1.1 (as go.yaml.in/yaml/v3 reads it)
// accepts r in a stream.
func yamlPrintable(r rune) bool {
	switch {
	case r == '\t' || r == '\n' || r == '\r' || r == 0x85:
		return true
	case r < 0x20 || r == 0x7f:
		return false
	case r < 0x7f:
		return true
	case r < 0xa0:
		return false
	case r <= 0xd7ff:
		return true
	case r >= 0xe000 && r <= 0xfffd:
		return true
	case r >= 0x10000 && r <= 0x10ffff:
		return true
	}
	return false
}

// ApplyEnv applies environment overrides to a loaded config:
// DEVLOOP_NODE_IMAGE, when set and non-empty, replaces cluster.nodeImage;
// DEVLOOP_REGISTRY_IMAGE replaces cluster.registry.image.
func ApplyEnv(cfg *Config, getenv func(string) string) {
	if img := getenv(EnvNodeImage); img != "" {
		cfg.Cluster.NodeImage = img
	}
	if img := getenv(EnvRegistryImage); img != "" {
		cfg.Cluster.Registry.Image = img
	}
}

// EnvRegistryImage is the environment variable that overrides cluster.registry.image.
const EnvRegistryImage = "DEVLOOP_REGISTRY_IMAGE"

// Default values applied by Load and Parse.
const (
	DefaultNamespace     = "default"
	DefaultClusterName   = "devloop"
	DefaultHTTPPort      = 8080
	DefaultHTTPSPort     = 8443
	DefaultListenAddress = "127.0.0.1"
	// DefaultIngressImage is the pinned Traefik v3 ingress controller image.
	// The e2e harness builds exactly this name offline (e2e/images/VERSIONS).
	DefaultIngressImage = "docker.io/traefik:v3.6.12"
	// DefaultRegistryPort is the host port of the local registry (127.0.0.1).
	DefaultRegistryPort = 5001
	// DefaultRegistryImage is the CNCF registry (distribution/distribution
	// v3). The e2e harness builds devloop.local/registry:3.1.2 offline and
	// sets DEVLOOP_REGISTRY_IMAGE to it.
	DefaultRegistryImage = "docker.io/library/registry:3"
	// MaxWorkers bounds cluster.workers.
	MaxWorkers = 9
)

// abs resolves p against dir unless it is already absolute, and cleans it.
func abs(dir, p string) string {
	if p == "" {
		return ""
	}
	if filepath.IsAbs(p) {
		return filepath.Clean(p)
	}
	return filepath.Join(dir, p)
}

// expandHome replaces a leading "~/" (or a lone "~") with the home directory,
// as a shell would; without a home directory p is returned unchanged.
func expandHome(p string) string {
	if p != "~" && !strings.HasPrefix(p, "~/") {
		return p
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return p
	}
	return filepath.Join(home, p[1:])
}

// WithDefaults returns c with every empty setting defaulted.
func (c Cluster) WithDefaults() Cluster {
	if c.Name == "" {
		c.Name = DefaultClusterName
	}
	in := &c.Ingress
	if in.Enabled == nil {
		t := true
		in.Enabled = &t
	}
	if in.HTTPPort == 0 {
		in.HTTPPort = DefaultHTTPPort
	}
	if in.HTTPSPort == 0 {
		in.HTTPSPort = DefaultHTTPSPort
	}
	if in.ListenAddress == "" {
		in.ListenAddress = DefaultListenAddress
	}
	if in.Image == "" {
		in.Image = DefaultIngressImage
	}
	if c.Registry.Port == 0 {
		c.Registry.Port = DefaultRegistryPort
	}
	if c.Registry.Image == "" {
		c.Registry.Image = DefaultRegistryImage
	}
	if c.Delivery == "" {
		// Push is the faster of the two with a registry (BENCHMARKS.md,
		// "Registry and multi-node"), and the only one to an existing cluster.
		c.Delivery = DeliveryStream
		if c.Registry.Enabled || c.Context != "" {
			c.Delivery = DeliveryPush
		}
	}
	return c
}

// setDefaults fills in defaults and makes every path absolute. Empty
// required values stay empty for validation to report.
func setDefaults(cfg *Config) {
	if cfg.Namespace == "" && cfg.Cluster.Context == "" {
		cfg.Namespace = DefaultNamespace
	}
	cfg.Cluster = cfg.Cluster.WithDefaults()
	for i := range cfg.Services {
		s := &cfg.Services[i]
		if s.Image == "" {
			s.Image = s.Name
		}
		b := &s.Build
		if b.Context == "" {
			b.Context = cfg.Dir
		} else {
			b.Context = abs(cfg.Dir, b.Context)
		}
		// Like docker compose and skaffold, a relative Dockerfile is
		// relative to the build context.
		if b.Dockerfile == "" {
			b.Dockerfile = filepath.Join(b.Context, "Dockerfile")
		} else {
			b.Dockerfile = abs(b.Context, b.Dockerfile)
		}
		if b.PreBuild != nil {
			if b.PreBuild.Dir == "" {
				b.PreBuild.Dir = b.Context
			} else {
				b.PreBuild.Dir = abs(cfg.Dir, b.PreBuild.Dir)
			}
		}
		for j := range b.Secrets {
			b.Secrets[j].Src = abs(cfg.Dir, expandHome(b.Secrets[j].Src))
		}
		if len(s.Watch) == 0 {
			s.Watch = []string{b.Context}
		} else {
			for j := range s.Watch {
				s.Watch[j] = abs(cfg.Dir, s.Watch[j])
			}
		}
		for j := range s.Sync {
			s.Sync[j].Src = abs(cfg.Dir, s.Sync[j].Src)
		}
		for j := range s.PortForwards {
			pf := &s.PortForwards[j]
			if pf.Resource == "" && s.Name != "" {
				pf.Resource = "service/" + s.Name
			}
			if pf.Address == "" {
				pf.Address = DefaultListenAddress
			}
		}
	}
	for i := range cfg.Manifests {
		cfg.Manifests[i] = abs(cfg.Dir, cfg.Manifests[i])
	}
	for i := range cfg.Charts {
		c := &cfg.Charts[i]
		if c.Chart != "" {
			c.Chart = abs(cfg.Dir, c.Chart)
			if c.Release == "" {
				c.Release = DefaultRelease(c.Chart)
			}
		}
		if c.Namespace == "" {
			c.Namespace = cfg.Namespace
		}
		for j := range c.Values {
			c.Values[j] = abs(cfg.Dir, c.Values[j])
		}
	}
	applyContextDefaults(cfg)
}

// DefaultRelease is the release name of a chart whose release is not set:
// the chart directory's name, or a packaged chart's file name without
// ".tgz" and its "-<version>" suffix (mychart-0.1.0.tgz → mychart).
func DefaultRelease(chart string) string {
	base := filepath.Base(chart)
	if strings.HasSuffix(base, ".tgz") || strings.HasSuffix(base, ".tar.gz") {
		base = strings.TrimSuffix(strings.TrimSuffix(base, ".tgz"), ".tar.gz")
		if i := strings.LastIndex(base, "-"); i > 0 && i+1 < len(base) && base[i+1] >= '0' && base[i+1] <= '9' {
			base = base[:i]
		}
	}
	return strings.ToLower(base)
}
