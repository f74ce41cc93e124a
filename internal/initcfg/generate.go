package initcfg

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/devloop-dev/devloop/internal/config"
	"github.com/devloop-dev/devloop/internal/kube"
)

// FileName is the file Write creates.
const FileName = "devloop.yaml"

// FirstLocalPort is the first local port Generate hands out to a forward.
const FirstLocalPort = 18080

// ErrNothingFound is returned (wrapped, with what was looked for) when the
// directory has neither a Dockerfile nor a Kubernetes manifest.
var ErrNothingFound = errors.New("no Dockerfile and no Kubernetes manifest found")

// ErrExists is returned by Write when devloop.yaml exists and Force is false.
var ErrExists = errors.New(FileName + " already exists (use --force to overwrite)")

// Options tune Generate and Write.
type Options struct {
	// PortFree reports whether 127.0.0.1:port is free to listen on.
	// Default: ProbePort.
	PortFree func(port int) bool
	// Images tells which base images the local Docker engine has; nil: the
	// engine is not asked (init still names the base images).
	Images ImageChecker
	// Force lets Write replace an existing devloop.yaml.
	Force bool
}

// ProbePort reports whether 127.0.0.1:port can be listened on right now.
func ProbePort(port int) bool {
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		return false
	}
	_ = l.Close()
	return true
}

// Summary describes what Generate found and wrote.
type Summary struct {
	// Name is the project name.
	Name     string
	Services []ServiceSummary
	// Manifests are the manifest entries, relative to the project directory.
	Manifests []string
	// Skipped are manifest entries left out, each with the reason.
	Skipped []string
	// Forwards are "127.0.0.1:<local> -> <resource>:<port>" lines.
	Forwards []string
	// Namespace is the namespace set in the file ("" for the default).
	Namespace string
	// Alternatives are the manifest entries left out on purpose: other
	// environments of the same bases, shared environments, variants.
	Alternatives []Alternative
	// Charts are the Helm chart directories, relative to the project.
	Charts []string
	// ThirdParty are the images the included manifests run that no
	// Dockerfile builds (databases, caches): left alone.
	ThirdParty []string
	// EngineError is set when the Docker engine could not be asked about
	// base images.
	EngineError string
}

// ServiceSummary is one generated service.
type ServiceSummary struct {
	Name, Image string
	// Dockerfile is relative to the project directory.
	Dockerfile string
	// Workloads are the workloads running its image ("deployment/hello"); empty if none.
	Workloads []string
	// PreBuild is the inferred preBuild command ("" when none was inferred).
	PreBuild string
	// PreBuildFrom are the Dockerfile lines (1-based) of the COPY/ADD
	// instructions PreBuild was inferred from.
	PreBuildFrom []int
	// HostBuilt are the sources the Dockerfile copies that look built on the
	// host but that no command was inferred for ("bin/", "out/app").
	HostBuilt []string
	// NoGoMod is set when PreBuild runs go build but no go.mod is in the
	// build context or above it.
	NoGoMod bool
	// BaseImages are the images the build needs from a registry.
	BaseImages []ImageStatus
	// DockerfileError is BuildKit's parse error for the Dockerfile ("" when it parses).
	DockerfileError string
}

// Lines renders the summary for a terminal.
func (s Summary) Lines() []string {
	var out []string
	out = append(out, fmt.Sprintf("project %s: %s, %s, %s", s.Name,
		count(len(s.Services), "service", "services"), count(len(s.Manifests), "manifest entry", "manifest entries"),
		count(len(s.Forwards), "port-forward", "port-forwards")))
	for _, sv := range s.Services {
		runs := "no manifest uses it yet"
		if len(sv.Workloads) > 0 {
			runs = "runs in " + strings.Join(sv.Workloads, ", ")
		}
		out = append(out, fmt.Sprintf("  service %s: image %s from %s, %s", sv.Name, sv.Image, sv.Dockerfile, runs))
		if sv.PreBuild != "" {
			lines := "line"
			if len(sv.PreBuildFrom) > 1 {
				lines = "lines"
			}
			out = append(out, fmt.Sprintf("  pre-build %s (inferred from %s %s %s, check it): %s", sv.Name, sv.Dockerfile,
				lines, joinInts(sv.PreBuildFrom), sv.PreBuild))
		}
		if sv.NoGoMod {
			out = append(out, fmt.Sprintf("  pre-build %s: no go.mod in the build context or above it, and go build needs one (go mod init <module path>)", sv.Name))
		}
		if sv.DockerfileError != "" {
			out = append(out, fmt.Sprintf("  service %s: BuildKit cannot parse %s: %s (the build will fail until it is fixed)", sv.Name, sv.Dockerfile, sv.DockerfileError))
		}
		if len(sv.BaseImages) > 0 {
			out = append(out, fmt.Sprintf("  base images %s: %s", sv.Name, describeImages(sv.BaseImages)))
			if m := missingImages(sv.BaseImages); len(m) > 0 {
				out = append(out, fmt.Sprintf("  base images %s: the build pulls %s, which needs registry access (docker pull %s, or build and tag it locally)",
					sv.Name, strings.Join(m, ", "), strings.Join(m, " && docker pull ")))
			}
		}
		if len(sv.HostBuilt) > 0 {
			out = append(out, fmt.Sprintf("  pre-build %s: no command inferred for %s, which %s copies from the host: add it to preBuild in %s",
				sv.Name, strings.Join(sv.HostBuilt, ", "), sv.Dockerfile, FileName))
		}
	}
	for _, m := range s.Manifests {
		out = append(out, "  manifests: "+m)
	}
	for _, a := range s.Alternatives {
		out = append(out, fmt.Sprintf("  left out: %s (%s: %s)", a.Entry, a.Reason, a.Detail))
	}
	for _, m := range s.Skipped {
		out = append(out, "  skipped: "+m)
	}
	for _, c := range s.Charts {
		out = append(out, fmt.Sprintf("  helm chart: %s (devloop does not deploy Helm charts yet: not included)", c))
	}
	if len(s.ThirdParty) > 0 {
		out = append(out, "  third-party images, left alone: "+strings.Join(s.ThirdParty, ", "))
	}
	if s.EngineError != "" {
		out = append(out, "  base images: could not ask the local Docker engine which it has: "+s.EngineError)
	}
	if s.Namespace != "" {
		out = append(out, "  namespace: "+s.Namespace+" (where the included manifests put their workloads)")
	}
	for _, f := range s.Forwards {
		out = append(out, "  forward: "+f)
	}
	return out
}

func joinInts(ns []int) string {
	s := make([]string, len(ns))
	for i, n := range ns {
		s[i] = strconv.Itoa(n)
	}
	return strings.Join(s, ", ")
}

func count(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

// service is one service being generated.
type service struct {
	name, image   string // image "" means the default (the name)
	df            dockerfile
	dfShown       string // the Dockerfile, relative to the project directory
	context       string // relative, slash-separated
	dockerfileRel string // relative to the build context; "" when the default
	workloads     []string
	preBuild      *preBuildPlan // nil when the Dockerfile copies nothing built on the host
	forwards      []config.PortForward
	forwardNotes  []string // one comment per forward
	names         []string // what the image may be called: built program names, module, directory
	repo          string   // the image repository the manifests use for it ("" when none)
	baseImages    []ImageStatus
	dfErr         string // BuildKit's parse error
}

// Generate inspects dir and returns the text of a starting devloop.yaml for
// it and a summary. It reads files only; ports are probed with opts.PortFree.
func Generate(dir string, opts Options) ([]byte, Summary, error) {
	portFree := opts.PortFree
	if portFree == nil {
		portFree = ProbePort
	}
	root, err := filepath.Abs(dir)
	if err != nil {
		return nil, Summary{}, fmt.Errorf("resolving %s: %w", dir, err)
	}
	if fi, err := os.Stat(root); err != nil {
		return nil, Summary{}, fmt.Errorf("reading project directory: %w", err)
	} else if !fi.IsDir() {
		return nil, Summary{}, fmt.Errorf("%s is not a directory", dir)
	}
	found, err := scan(root)
	if err != nil {
		return nil, Summary{}, fmt.Errorf("searching %s: %w", dir, err)
	}
	dfs, mdirs := found.dockerfiles, found.mdirs
	if len(dfs) == 0 && len(mdirs) == 0 {
		return nil, Summary{}, fmt.Errorf("%w under %s: devloop init looks for Dockerfile, Dockerfile.* and *.Dockerfile files, "+
			"and for .yaml/.yml files with top-level apiVersion: and kind: (in k8s/, kube/, kubernetes/, manifests/ or deploy/ first), "+
			"skipping .git, node_modules, vendor, bin, hidden directories and Helm charts", ErrNothingFound, dir)
	}
	sum := Summary{Name: sanitize(filepath.Base(root))}
	for _, c := range found.charts {
		sum.Charts = append(sum.Charts, rel(root, c))
	}

	sel := selectManifests(root, mdirs)
	for _, m := range sel.entries {
		sum.Manifests = append(sum.Manifests, rel(root, m))
	}
	sum.Skipped, sum.Alternatives = sel.skipped, sel.alternatives

	services := nameServices(root, dfs)
	local := FirstLocalPort
	nextPort := func() int {
		for !portFree(local) {
			local++
		}
		local++
		return local - 1
	}
	ctx := context.Background()
	known := map[string]bool{}
	for _, s := range services {
		data, err := os.ReadFile(s.df.path)
		if err != nil {
			return nil, Summary{}, fmt.Errorf("reading %s: %w", s.dfShown, err)
		}
		if ast, err := parseDockerfile(data); err != nil {
			s.dfErr = err.Error()
		} else {
			s.names = builtNames(ast.instrs)
		}
		if m := goModule(root, s.df.dir); m != "" && m != "module" {
			s.names = append(s.names, strings.ToLower(moduleName(m)))
		}
		s.names = append(s.names, s.name)
		if s.dfErr == "" {
			bases, _ := BaseImages(data, nil)
			st, engineErr := checkImages(ctx, opts.Images, bases, known)
			if engineErr != nil && sum.EngineError == "" {
				sum.EngineError = strings.Join(strings.Fields(engineErr.Error()), " ")
				opts.Images = nil // unreachable: do not wait for it again
			}
			s.baseImages = st
		}
	}
	ns, thirdParty := matchImages(services, sel.objs, nextPort)
	sum.ThirdParty = thirdParty
	if ns != "default" {
		sum.Namespace = ns
	}
	for _, s := range services {
		s.preBuild = inferPreBuild(root, s.df)
		img := s.image
		if img == "" {
			img = s.name
		}
		ss := ServiceSummary{Name: s.name, Image: img, Dockerfile: s.dfShown, Workloads: s.workloads, BaseImages: s.baseImages, DockerfileError: s.dfErr}
		if pb := s.preBuild; pb != nil {
			ss.PreBuild, ss.HostBuilt, ss.NoGoMod = pb.run, pb.unknown, pb.noGoMod
			for _, cs := range pb.from {
				ss.PreBuildFrom = append(ss.PreBuildFrom, cs.line)
			}
		}
		sum.Services = append(sum.Services, ss)
		for _, f := range s.forwards {
			res := f.Resource
			if res == "" {
				res = "service/" + s.name
			}
			sum.Forwards = append(sum.Forwards, fmt.Sprintf("127.0.0.1:%d -> %s:%d", f.Local, res, f.Port))
		}
	}
	return render(sum, services), sum, nil
}

// moduleName is the last element of a Go module path that names the
// program: "github.com/org/shop/v2" is "shop".
func moduleName(module string) string {
	parts := strings.Split(module, "/")
	last := parts[len(parts)-1]
	if len(parts) > 1 && len(last) > 1 && last[0] == 'v' && strings.Trim(last[1:], "0123456789") == "" {
		last = parts[len(parts)-2]
	}
	return last
}

// rel returns p relative to root, slash-separated ("." for root itself).
func rel(root, p string) string {
	r, err := filepath.Rel(root, p)
	if err != nil {
		return filepath.ToSlash(p)
	}
	return filepath.ToSlash(r)
}

// nameServices names one service per Dockerfile after its directory,
// deduplicating with the Dockerfile's variant or a number.
func nameServices(root string, dfs []dockerfile) []*service {
	taken := map[string]bool{}
	var out []*service
	for _, df := range dfs {
		base := sanitize(filepath.Base(df.dir))
		name := base
		if taken[name] && df.variant != "" {
			name = sanitize(base + "-" + df.variant)
		}
		for i := 2; taken[name]; i++ {
			name = fmt.Sprintf("%s-%d", base, i)
		}
		taken[name] = true
		s := &service{name: name, df: df, dfShown: rel(root, df.path), context: rel(root, df.dir)}
		if df.variant != "" {
			s.dockerfileRel = filepath.Base(df.path) // relative to the context
		}
		out = append(out, s)
	}
	return out
}

// repoOf strips the tag and digest from an image reference.
func repoOf(image string) string {
	if i := strings.Index(image, "@"); i >= 0 {
		image = image[:i]
	}
	if i := strings.LastIndex(image, ":"); i >= 0 && !strings.Contains(image[i:], "/") {
		image = image[:i]
	}
	return image
}

// container is the part of a pod template container init reads.
type container struct {
	image string
	ports []int
}

func podSpec(o *unstructured.Unstructured) (labels map[string]string, containers []container) {
	var tmpl map[string]any
	switch o.GetKind() {
	case "Pod":
		tmpl = o.Object
	case "CronJob":
		tmpl, _, _ = unstructured.NestedMap(o.Object, "spec", "jobTemplate", "spec", "template")
	default:
		tmpl, _, _ = unstructured.NestedMap(o.Object, "spec", "template")
	}
	labels, _, _ = unstructured.NestedStringMap(tmpl, "metadata", "labels")
	for _, field := range []string{"containers", "initContainers"} {
		list, _, _ := unstructured.NestedSlice(tmpl, "spec", field)
		for _, c := range list {
			cm, ok := c.(map[string]any)
			if !ok {
				continue
			}
			img, _ := cm["image"].(string)
			ct := container{image: img}
			ports, _, _ := unstructured.NestedSlice(cm, "ports")
			for _, p := range ports {
				if pm, ok := p.(map[string]any); ok {
					if n, ok, _ := unstructured.NestedInt64(pm, "containerPort"); ok {
						ct.ports = append(ct.ports, int(n))
					}
				}
			}
			containers = append(containers, ct)
		}
	}
	return labels, containers
}

// repoName is the last path element of an image's repository, lower case
// ("ghcr.io/org/shop-api:1.2" is "shop-api").
func repoName(image string) string {
	return strings.ToLower(path.Base(repoOf(image)))
}

// workloadInfo is a workload of the included manifests and what it runs.
type workloadInfo struct {
	w          kube.Workload
	labels     map[string]string
	containers []container
	owner      *service // the service whose image it runs (nil: none)
	ownerPorts []int    // the container ports of that image
}

// matchImages matches each service to the image repository the manifests
// use for it, finds the workloads running each, and adds the port-forwards:
// one per Service that selects a workload running a built image, and one per
// such workload no Service selects (to its first container port). It
// returns the namespace the forwards are in and the images no service builds.
func matchImages(services []*service, objs []*unstructured.Unstructured, nextPort func() int) (string, []string) {
	byKey := map[string]*unstructured.Unstructured{}
	var svcObjs []*unstructured.Unstructured
	for _, o := range objs {
		byKey[kube.Workload{Kind: o.GetKind(), Namespace: o.GetNamespace(), Name: o.GetName()}.Key()] = o
		if o.GetKind() == "Service" && o.GroupVersionKind().Group == "" {
			svcObjs = append(svcObjs, o)
		}
	}
	var wls []*workloadInfo
	for _, w := range kube.WorkloadsOf(objs) {
		labels, containers := podSpec(byKey[w.Key()])
		wls = append(wls, &workloadInfo{w: w, labels: labels, containers: containers})
	}
	// Each service claims the first repository named like it, by the most
	// telling name first; a repository goes to one service only.
	claimed := map[string]*service{}
	for _, s := range services {
		for _, name := range s.names {
			for _, wl := range wls {
				for _, c := range wl.containers {
					r := repoOf(c.image)
					if c.image == "" || claimed[r] != nil {
						continue
					}
					if repoName(c.image) == name || kube.SameRepo(c.image, s.name) {
						claimed[r], s.repo = s, r
						if !kube.SameRepo(c.image, s.name) {
							s.image = r
						}
						break
					}
				}
				if s.repo != "" {
					break
				}
			}
			if s.repo != "" {
				break
			}
		}
	}
	var thirdParty []string
	seenThird := map[string]bool{}
	for _, wl := range wls {
		for _, c := range wl.containers {
			if c.image == "" {
				continue
			}
			if s := claimed[repoOf(c.image)]; s != nil {
				if wl.owner == nil {
					wl.owner, wl.ownerPorts = s, c.ports
					s.workloads = append(s.workloads, wl.w.String())
				}
			} else if !seenThird[c.image] {
				seenThird[c.image] = true
				thirdParty = append(thirdParty, c.image)
			}
		}
	}
	// The forwards' namespace: the first one's (devloop forwards in one).
	ns := ""
	inNS := func(n string) bool {
		if ns == "" {
			ns = n
		}
		return n == ns
	}
	selected := map[*workloadInfo]bool{}
	for _, svc := range svcObjs {
		sel, _, _ := unstructured.NestedStringMap(svc.Object, "spec", "selector")
		if len(sel) == 0 {
			continue
		}
		var target *workloadInfo
		for _, wl := range wls {
			if wl.owner != nil && wl.w.Namespace == svc.GetNamespace() && selects(sel, wl.labels) {
				selected[wl] = true
				if target == nil {
					target = wl
				}
			}
		}
		if target == nil {
			continue
		}
		port := firstServicePort(svc)
		if port == 0 || !inNS(svc.GetNamespace()) {
			continue
		}
		addForward(target.owner, "service/"+svc.GetName(), port, "to "+target.w.String())
	}
	for _, wl := range wls {
		if wl.owner == nil || selected[wl] || len(wl.ownerPorts) == 0 {
			continue
		}
		switch wl.w.Kind {
		case "Deployment", "StatefulSet", "Pod":
			if inNS(wl.w.Namespace) {
				addForward(wl.owner, strings.ToLower(wl.w.Kind)+"/"+wl.w.Name, wl.ownerPorts[0], "to "+wl.w.String()+" (no Service selects it)")
			}
		}
	}
	// Local ports in the order of the services, then of their forwards.
	for _, s := range services {
		for i := range s.forwards {
			s.forwards[i].Local = nextPort()
		}
	}
	if ns == "" {
		ns = "default"
	}
	return ns, thirdParty
}

// addForward adds a forward to s; matchImages gives it its local port.
func addForward(s *service, res string, port int, note string) {
	pf := config.PortForward{Port: port}
	if res != "service/"+s.name {
		pf.Resource = res
	}
	s.forwards = append(s.forwards, pf)
	s.forwardNotes = append(s.forwardNotes, note)
}

// firstServicePort returns a Service's first TCP port (0 when it has none).
func firstServicePort(svc *unstructured.Unstructured) int {
	ports, _, _ := unstructured.NestedSlice(svc.Object, "spec", "ports")
	for _, p := range ports {
		pm, ok := p.(map[string]any)
		if !ok {
			continue
		}
		if proto, _ := pm["protocol"].(string); proto != "" && proto != "TCP" {
			continue
		}
		if n, ok, _ := unstructured.NestedInt64(pm, "port"); ok {
			return int(n)
		}
	}
	return 0
}

func selects(sel, labels map[string]string) bool {
	for k, v := range sel {
		if labels[k] != v {
			return false
		}
	}
	return true
}
