package config

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/netip"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"

	"github.com/distribution/reference"
	"github.com/moby/patternmatcher"
	"k8s.io/apimachinery/pkg/util/validation"
)

// portForwardKinds are the resource kinds a port-forward may target.
var portForwardKinds = []string{"service", "deployment", "statefulset", "pod"}

// kindClusterName is kind's own rule for cluster names.
var kindClusterName = regexp.MustCompile(`^[a-z0-9.-]+$`)

// secretID is what BuildKit accepts as a secret id in practice (docker
// build --secret id=...): no commas, equals signs or spaces.
var secretID = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

// envName is a portable environment variable name.
var envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

var kubeVersion = regexp.MustCompile(`^v\d+\.\d+\.\d+$`)

// kustomizationFiles are the file names that make a directory a kustomization.
var kustomizationFiles = []string{"kustomization.yaml", "kustomization.yml", "Kustomization"}

// validator checks a decoded, defaulted Config, reporting into the decoder
// so problems carry the position of the value they are about.
type validator struct {
	*decoder
	cfg *Config
	// locals maps a host port to the key path that first claimed it.
	locals map[int]string
}

// parentPath drops the last segment of a key path.
func parentPath(p string) string {
	i := strings.LastIndexAny(p, ".[")
	if i < 0 {
		return ""
	}
	return p[:i]
}

// errorf reports a problem at path, positioned at its value or, for
// defaulted or missing values, at its nearest ancestor present in the file.
// Paths that already failed to decode are skipped.
func (v *validator) errorf(keyPath, format string, args ...any) {
	for i, a := range args {
		if s, ok := a.(string); ok {
			args[i] = shown(s)
		}
	}
	for p := keyPath; ; p = parentPath(p) {
		if v.bad[p] {
			return
		}
		if p == "" {
			break
		}
	}
	p := keyPath
	for {
		if at, ok := v.pos[p]; ok {
			v.errorAt(at, keyPath, format, args...)
			return
		}
		if p == "" {
			v.errorAt(pos{}, keyPath, format, args...)
			return
		}
		p = parentPath(p)
	}
}

// shown formats a value from the file in a message cut to a sane length:
// %q quotes at most maxQuoted bytes of it, %s shows at most maxShown.
type shown string

func (s shown) Format(f fmt.State, verb rune) {
	if verb == 'q' {
		_, _ = io.WriteString(f, quote(string(s)))
		return
	}
	_, _ = io.WriteString(f, clip(string(s), maxShown))
}

// set reports whether keyPath was given in the file.
func (v *validator) set(keyPath string) bool {
	_, ok := v.pos[keyPath]
	return ok
}

func (v *validator) validate() {
	cfg := v.cfg
	v.locals = map[int]string{}
	if cfg.Name == "" {
		v.errorf("name", `required: the project name, a DNS-1123 label such as "hello"`)
	} else {
		v.dnsLabel("name", cfg.Name)
	}
	if cfg.Namespace != "" {
		v.dnsLabel("namespace", cfg.Namespace)
	}
	v.validateCluster()
	if len(cfg.Services) == 0 && len(cfg.Manifests) == 0 && len(cfg.Charts) == 0 && !v.bad["services"] && !v.bad["manifests"] && !v.bad["charts"] {
		v.errorf("", `nothing to do: expected at least one of "services", "manifests" or "charts"`)
	}
	names := map[string]string{}
	repos := map[string]string{}
	for i := range cfg.Services {
		v.validateService(fmt.Sprintf("services[%d]", i), &cfg.Services[i], names, repos)
	}
	v.validateDependsOn(names)
	for i, m := range cfg.Manifests {
		v.validateManifest(fmt.Sprintf("manifests[%d]", i), m)
	}
	releases := map[string]string{}
	for i := range cfg.Charts {
		v.validateChart(fmt.Sprintf("charts[%d]", i), &cfg.Charts[i], releases)
	}
}

func (v *validator) dnsLabel(keyPath, s string) {
	if msgs := validation.IsDNS1123Label(s); len(msgs) > 0 {
		v.errorf(keyPath, "invalid name %q: %s", s, strings.Join(msgs, "; "))
	}
}

func (v *validator) validateCluster() {
	c := v.cfg.Cluster
	if !kindClusterName.MatchString(c.Name) {
		v.errorf("cluster.name", "invalid kind cluster name %q: must match %s", c.Name, kindClusterName)
	}
	if c.NodeImage != "" {
		v.imageRef("cluster.nodeImage", c.NodeImage)
	}
	if c.KubernetesVersion != "" && !kubeVersion.MatchString(c.KubernetesVersion) {
		v.errorf("cluster.kubernetesVersion", `invalid Kubernetes version %q: expected the form "v1.37.2"`, c.KubernetesVersion)
	}
	if c.Workers < 0 || c.Workers > MaxWorkers {
		v.errorf("cluster.workers", "%d worker nodes: must be between 0 and %d", c.Workers, MaxWorkers)
	}
	switch c.Delivery {
	case DeliveryStream:
	case DeliveryPush:
		if !c.Registry.Enabled && c.Context == "" {
			v.errorf("cluster.delivery", "delivery %q needs the registry: set cluster.registry.enabled: true, or delivery: %s", c.Delivery, DeliveryStream)
		}
	default:
		v.errorf("cluster.delivery", "unknown delivery %q: expected %q (stream each image into every node) or %q (push to cluster.registry; the nodes pull)", c.Delivery, DeliveryStream, DeliveryPush)
	}
	if c.Registry.Address != "" {
		if _, err := ParseRegistryAddress(c.Registry.Address); err != nil {
			v.errorf("cluster.registry.address", "%v", err)
		}
	}
	for _, p := range contextProblems(v.cfg) {
		v.errorf(p.path, "%s", p.msg)
	}
	if r := c.Registry; r.Enabled && c.Context == "" {
		if r.Image != "" {
			v.imageRef("cluster.registry.image", r.Image)
		}
		if v.port("cluster.registry.port", r.Port) {
			v.claim("cluster.registry.port", r.Port)
		}
	}
	in := c.Ingress
	if in.Image != "" {
		v.imageRef("cluster.ingress.image", in.Image)
	}
	if _, err := netip.ParseAddr(in.ListenAddress); err != nil {
		v.errorf("cluster.ingress.listenAddress", "%q is not an IP address (e.g. 127.0.0.1 or 0.0.0.0)", in.ListenAddress)
	}
	if !in.IsEnabled() {
		return
	}
	if v.port("cluster.ingress.httpPort", in.HTTPPort) {
		v.claim("cluster.ingress.httpPort", in.HTTPPort)
	}
	if v.port("cluster.ingress.httpsPort", in.HTTPSPort) {
		v.claim("cluster.ingress.httpsPort", in.HTTPSPort)
	}
}

// port checks a port number is in range and reports whether it is.
func (v *validator) port(keyPath string, p int) bool {
	if p < 1 || p > 65535 {
		v.errorf(keyPath, "port %d is out of range (1-65535)", p)
		return false
	}
	return true
}

// claim records that keyPath binds host port p, reporting an earlier claim.
func (v *validator) claim(keyPath string, p int) {
	if first, ok := v.locals[p]; ok {
		v.errorf(keyPath, "host port %d is already used by %s", p, first)
		return
	}
	v.locals[p] = keyPath
}

// imageRef checks s is a valid image reference (tags allowed).
func (v *validator) imageRef(keyPath, s string) {
	if _, err := reference.ParseNormalizedNamed(s); err != nil {
		v.errorf(keyPath, "invalid image reference %q: %v", s, err)
	}
}

func (v *validator) validateService(p string, s *Service, names, repos map[string]string) {
	dup := false
	switch {
	case s.Name == "":
		v.errorf(p+".name", `required: the service name, a DNS-1123 label such as "hello"`)
	case names[s.Name] != "":
		v.errorf(p+".name", "duplicate service name %q (also %s)", s.Name, names[s.Name])
		dup = true
	default:
		names[s.Name] = p
		v.dnsLabel(p+".name", s.Name)
	}
	if s.Image != "" && !dup {
		v.validateImage(p+".image", s.Image, repos)
	}
	v.validateBuild(p+".build", &s.Build)
	for i, w := range s.Watch {
		wp := fmt.Sprintf("%s.watch[%d]", p, i)
		if v.inProject(wp, w, "watched path", s.Build.Context) {
			v.existing(wp, w, "watched path")
		}
	}
	for i, pat := range s.Ignore {
		if strings.TrimSpace(pat) == "" {
			v.errorf(fmt.Sprintf("%s.ignore[%d]", p, i), "empty pattern")
		} else if _, err := patternmatcher.New([]string{pat}); err != nil {
			v.errorf(fmt.Sprintf("%s.ignore[%d]", p, i), "invalid pattern %q: %v", pat, err)
		}
	}
	for i, r := range s.Sync {
		rp := fmt.Sprintf("%s.sync[%d]", p, i)
		if r.Src == "" {
			v.errorf(rp+".src", "required: the local file or directory to sync")
		} else if v.inProject(rp+".src", r.Src, "sync source", s.Build.Context) && !(r.Restart && s.Build.PreBuild != nil) {
			// A restart rule's source is what the preBuild writes: it may
			// not exist before the first build.
			v.existing(rp+".src", r.Src, "sync source")
		}
		switch {
		case r.Dest == "":
			v.errorf(rp+".dest", "required: the absolute container path to copy into")
		case !path.IsAbs(r.Dest):
			v.errorf(rp+".dest", "%q is not an absolute container path (it must start with /)", r.Dest)
		}
	}
	for i, pf := range s.PortForwards {
		v.validatePortForward(fmt.Sprintf("%s.portForwards[%d]", p, i), pf)
	}
}

func (v *validator) validateImage(keyPath, image string, repos map[string]string) {
	named, err := reference.ParseNormalizedNamed(image)
	if err != nil {
		v.errorf(keyPath, "invalid image repository %q: %v", image, err)
		return
	}
	_, tagged := named.(reference.Tagged)
	_, digested := named.(reference.Digested)
	if tagged || digested {
		v.errorf(keyPath, "image %q has a tag or digest: give only the repository (%q); devloop tags every build itself", image, reference.FamiliarName(named))
		return
	}
	repo := named.Name()
	svc := parentPath(keyPath)
	if other, ok := repos[repo]; ok {
		v.errorf(keyPath, "image repository %q is also built by %s; each service needs its own", image, other)
		return
	}
	repos[repo] = svc
}

func (v *validator) validateBuild(p string, b *Build) {
	ctxOK := false
	switch fi, err := os.Stat(b.Context); {
	case v.hugeContext(p+".context", b.Context):
	case err != nil:
		v.errorf(p+".context", "build context %s: %s", b.Context, statProblem(err))
	case !fi.IsDir():
		v.errorf(p+".context", "build context %s is not a directory", b.Context)
	default:
		ctxOK = true
	}
	if ctxOK || v.set(p+".dockerfile") {
		switch fi, err := os.Stat(b.Dockerfile); {
		case !v.inProject(p+".dockerfile", b.Dockerfile, "Dockerfile", b.Context):
		case err != nil:
			v.errorf(p+".dockerfile", "Dockerfile %s: %s", b.Dockerfile, statProblem(err))
		case fi.IsDir():
			v.errorf(p+".dockerfile", "Dockerfile %s is a directory", b.Dockerfile)
		}
	}
	if b.PreBuild != nil {
		if strings.TrimSpace(b.PreBuild.Run) == "" {
			v.errorf(p+".preBuild.run", "required: the host command to run (with sh -c)")
		}
		if (ctxOK || v.set(p+".preBuild.dir")) && v.inProject(p+".preBuild.dir", b.PreBuild.Dir, "preBuild directory", b.Context) {
			v.dir(p+".preBuild.dir", b.PreBuild.Dir, "preBuild directory")
		}
	}
	ids := map[string]string{}
	for i, s := range b.Secrets {
		v.validateSecret(fmt.Sprintf("%s.secrets[%d]", p, i), s, ids)
	}
}

func (v *validator) validateSecret(p string, s Secret, ids map[string]string) {
	switch {
	case s.ID == "":
		v.errorf(p+".id", "required: the id the Dockerfile names in RUN --mount=type=secret,id=<id>")
	case !secretID.MatchString(s.ID):
		v.errorf(p+".id", "invalid secret id %q: use letters, digits, '.', '_' and '-'", s.ID)
	case ids[s.ID] != "":
		v.errorf(p+".id", "duplicate secret id %q (also %s)", s.ID, ids[s.ID])
	default:
		ids[s.ID] = p
	}
	switch {
	case s.Src == "" && s.Env == "":
		v.errorf(p, `needs one of "src" (a host file) or "env" (an environment variable name)`)
	case s.Src != "" && s.Env != "":
		v.errorf(p+".env", `give either "src" or "env", not both`)
	case s.Env != "":
		if !envName.MatchString(s.Env) {
			v.errorf(p+".env", "invalid environment variable name %q", s.Env)
		}
	default:
		switch fi, err := os.Stat(s.Src); {
		case err != nil:
			v.errorf(p+".src", "secret file %s: %s", s.Src, statProblem(err))
		case fi.IsDir():
			v.errorf(p+".src", "secret file %s is a directory", s.Src)
		case fi.Size() > maxSecretSize:
			v.errorf(p+".src", "secret file %s is %d bytes; BuildKit accepts at most %d", s.Src, fi.Size(), maxSecretSize)
		}
	}
}

// maxSecretSize is BuildKit's limit on a secret (secretsprovider.MaxSecretSize).
const maxSecretSize = 500 * 1024

func statProblem(err error) string {
	if errors.Is(err, fs.ErrNotExist) {
		return "does not exist"
	}
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error() // the path is in the message already
	}
	return err.Error()
}

// within reports whether p is dir or lies below it (both absolute, clean).
// The test is on the names only: a symbolic link is not followed.
func within(dir, p string) bool {
	rel, err := filepath.Rel(dir, p)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator))
}

// inProject checks that a path given in the file (keyPath) lies in the
// project directory (the directory of devloop.yaml) or in the service's
// build context, which may name a parent directory (a monorepo's root).
// Paths devloop fills in itself are not checked. It reports whether p may
// be used.
func (v *validator) inProject(keyPath, p, what, context string) bool {
	if !v.set(keyPath) || p == "" || within(v.cfg.Dir, p) || (context != "" && within(context, p)) {
		return true
	}
	where := "the project directory " + clip(v.cfg.Dir, maxPath)
	if context != "" && context != v.cfg.Dir {
		where += " and the build context " + clip(context, maxPath)
	}
	v.errorf(keyPath, "%s %s is outside %s: devloop reads, watches and syncs only the project's files; "+
		"to use files of a parent directory (a monorepo), set build.context to that directory, or move devloop.yaml up",
		what, clip(p, maxPath), where)
	return false
}

// inAnyContext reports whether p lies in the project directory or in a
// service's build context.
func (v *validator) inAnyContext(p string) bool {
	if within(v.cfg.Dir, p) {
		return true
	}
	for _, s := range v.cfg.Services {
		if s.Build.Context != "" && within(s.Build.Context, p) {
			return true
		}
	}
	return false
}

// hugeContext reports (and says why) a build context outside the project
// directory that is the file system root or contains the home directory:
// devloop would send all of it, secrets included, to the Docker daemon.
func (v *validator) hugeContext(keyPath, ctx string) bool {
	if !v.set(keyPath) || within(v.cfg.Dir, ctx) {
		return false
	}
	home, err := os.UserHomeDir()
	what := ""
	switch {
	case ctx == filepath.Dir(ctx):
		what = "is the root of the file system"
	case err == nil && filepath.IsAbs(home) && within(ctx, filepath.Clean(home)):
		what = "contains your home directory " + clip(home, maxPath)
	default:
		return false
	}
	v.errorf(keyPath, "build context %s %s: devloop would send all of it (secrets included) to the Docker daemon; "+
		"set build.context to the directory that holds what the Dockerfile copies", clip(ctx, maxPath), what)
	return true
}

// existing checks a path is non-empty and exists.
func (v *validator) existing(keyPath, p, what string) {
	if p == "" {
		v.errorf(keyPath, "empty path")
		return
	}
	if _, err := os.Stat(p); err != nil {
		v.errorf(keyPath, "%s %s: %s", what, p, statProblem(err))
	}
}

// dir checks a path exists and is a directory.
func (v *validator) dir(keyPath, p, what string) {
	switch fi, err := os.Stat(p); {
	case err != nil:
		v.errorf(keyPath, "%s %s: %s", what, p, statProblem(err))
	case !fi.IsDir():
		v.errorf(keyPath, "%s %s is not a directory", what, p)
	}
}

func (v *validator) validatePortForward(p string, pf PortForward) {
	if pf.Local == 0 && !v.set(p+".local") {
		v.errorf(p+".local", "required: the local port to listen on")
	} else if v.port(p+".local", pf.Local) {
		v.claim(p+".local", pf.Local)
	}
	if pf.Port == 0 && !v.set(p+".port") {
		v.errorf(p+".port", "required: the remote port (a Service port, or a container port)")
	} else {
		v.port(p+".port", pf.Port)
	}
	if pf.Resource != "" {
		kind, name, ok := strings.Cut(pf.Resource, "/")
		switch {
		case !ok || name == "":
			v.errorf(p+".resource", `%q: expected "<kind>/<name>", e.g. "service/hello"`, pf.Resource)
		case !slices.Contains(portForwardKinds, kind):
			v.errorf(p+".resource", "unknown resource kind %q%s", kind, kindHint(kind))
		default:
			if msgs := validation.IsDNS1123Subdomain(name); len(msgs) > 0 {
				v.errorf(p+".resource", "invalid %s name %q: %s", kind, name, strings.Join(msgs, "; "))
			}
		}
	}
	if _, err := netip.ParseAddr(pf.Address); err != nil {
		v.errorf(p+".address", "%q is not an IP address (e.g. 127.0.0.1)", pf.Address)
	}
}

func kindHint(kind string) string {
	aliases := map[string]string{"svc": "service", "services": "service", "deploy": "deployment",
		"deployments": "deployment", "sts": "statefulset", "statefulsets": "statefulset", "po": "pod", "pods": "pod"}
	if k, ok := aliases[strings.ToLower(kind)]; ok {
		return fmt.Sprintf("; did you mean %q?", k)
	}
	return suggest(kind, portForwardKinds)
}

func (v *validator) validateManifest(keyPath, m string) {
	if m == "" {
		v.errorf(keyPath, "empty path")
		return
	}
	if !v.inAnyContext(m) {
		v.errorf(keyPath, "manifest %s is outside the project directory %s and every build context: devloop reads only the project's files; "+
			"move devloop.yaml up to a directory that contains it, or set a service's build.context to such a directory (the root of a monorepo, for instance)",
			clip(m, maxPath), clip(v.cfg.Dir, maxPath))
		return
	}
	if strings.ContainsAny(m, "*?[") {
		matches, err := filepath.Glob(m)
		switch {
		case err != nil:
			v.errorf(keyPath, "invalid glob %s: %v", m, err)
		case len(matches) == 0:
			v.errorf(keyPath, "glob %s matches no files", m)
		}
		return
	}
	fi, err := os.Stat(m)
	if err != nil {
		v.errorf(keyPath, "manifest %s: %s", m, statProblem(err))
		return
	}
	if !fi.IsDir() {
		return
	}
	for _, k := range kustomizationFiles {
		if _, err := os.Stat(filepath.Join(m, k)); err == nil {
			return
		}
	}
	v.errorf(keyPath, "directory %s has no kustomization.yaml, kustomization.yml or Kustomization; to apply every file in it use a glob such as %q", m, filepath.Join(m, "*.yaml"))
}

func (v *validator) validateChart(keyPath string, c *Chart, releases map[string]string) {
	if c.Chart == "" {
		if !v.set(keyPath + ".chart") {
			v.errorf(keyPath, "chart: required: a chart directory or a packaged chart (.tgz) of the project")
		} else {
			v.errorf(keyPath+".chart", "empty path")
		}
		return
	}
	switch {
	case !v.inAnyContext(c.Chart):
		v.errorf(keyPath+".chart", "chart %s is outside the project directory %s and every build context: devloop reads only the project's files",
			clip(c.Chart, maxPath), clip(v.cfg.Dir, maxPath))
	default:
		fi, err := os.Stat(c.Chart)
		switch {
		case err != nil:
			v.errorf(keyPath+".chart", "chart %s: %s", c.Chart, statProblem(err))
		case fi.IsDir():
			if _, err := os.Stat(filepath.Join(c.Chart, "Chart.yaml")); err != nil {
				v.errorf(keyPath+".chart", "chart %s has no Chart.yaml: a chart directory holds Chart.yaml, values.yaml and templates/", c.Chart)
			}
		case !strings.HasSuffix(c.Chart, ".tgz") && !strings.HasSuffix(c.Chart, ".tar.gz"):
			v.errorf(keyPath+".chart", "chart %s is a file but not a packaged chart (.tgz): name the chart's directory or its .tgz", c.Chart)
		}
	}
	if msgs := validation.IsDNS1123Subdomain(c.Release); len(msgs) > 0 || len(c.Release) > 53 {
		if len(c.Release) > 53 {
			msgs = append(msgs, "must be no more than 53 characters (Helm's limit)")
		}
		at := keyPath + ".release"
		if !v.set(at) {
			at = keyPath + ".chart"
			msgs = append(msgs, "set charts[].release to name the release")
		}
		v.errorf(at, "invalid release name %q: %s", c.Release, strings.Join(msgs, "; "))
	}
	if c.Namespace != "" {
		v.dnsLabel(keyPath+".namespace", c.Namespace)
	}
	id := c.Namespace + "/" + c.Release
	if prev, dup := releases[id]; dup {
		v.errorf(keyPath+".release", "release %s in namespace %s is also made by %s: give each chart its own release name", c.Release, c.Namespace, prev)
	} else {
		releases[id] = keyPath
	}
	for j, f := range c.Values {
		at := fmt.Sprintf("%s.values[%d]", keyPath, j)
		if f == "" {
			v.errorf(at, "empty path")
			continue
		}
		if fi, err := os.Stat(f); err != nil {
			v.errorf(at, "values file %s: %s", f, statProblem(err))
		} else if fi.IsDir() {
			v.errorf(at, "values file %s is a directory", f)
		}
	}
	keys := make([]string, 0, len(c.Set))
	for k := range c.Set {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if err := SetValue(map[string]any{}, k, c.Set[k]); err != nil {
			v.errorf(keyPath+".set."+k, "%v", err)
		}
	}
}
