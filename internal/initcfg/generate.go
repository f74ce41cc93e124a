package initcfg

import (
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
		if len(sv.HostBuilt) > 0 {
			out = append(out, fmt.Sprintf("  pre-build %s: no command inferred for %s, which %s copies from the host: add it to preBuild in %s",
				sv.Name, strings.Join(sv.HostBuilt, ", "), sv.Dockerfile, FileName))
		}
	}
	for _, m := range s.Manifests {
		out = append(out, "  manifests: "+m)
	}
	for _, m := range s.Skipped {
		out = append(out, "  skipped: "+m)
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
	dfs, mdirs, err := scan(root)
	if err != nil {
		return nil, Summary{}, fmt.Errorf("searching %s: %w", dir, err)
	}
	if len(dfs) == 0 && len(mdirs) == 0 {
		return nil, Summary{}, fmt.Errorf("%w under %s: devloop init looks for Dockerfile, Dockerfile.* and *.Dockerfile files, "+
			"and for .yaml/.yml files with top-level apiVersion: and kind: (in k8s/, kube/, kubernetes/, manifests/ or deploy/ first), "+
			"skipping .git, node_modules, vendor, bin and hidden directories", ErrNothingFound, dir)
	}
	sum := Summary{Name: sanitize(filepath.Base(root))}

	// Manifests: keep each directory that renders on its own and together
	// with those kept before it (an overlay duplicating its base is dropped).
	var manifests []string
	var objs []*unstructured.Unstructured
	for _, md := range mdirs {
		entries := md.entries(root)
		if _, err := kube.Render(&config.Config{Dir: root, Manifests: entries, Namespace: "default"}); err != nil {
			sum.Skipped = append(sum.Skipped, fmt.Sprintf("%s: %v", rel(root, md.dir), err))
			continue
		}
		all, err := kube.Render(&config.Config{Dir: root, Manifests: append(append([]string(nil), manifests...), entries...), Namespace: "default"})
		if err != nil {
			sum.Skipped = append(sum.Skipped, fmt.Sprintf("%s: %v", rel(root, md.dir), err))
			continue
		}
		manifests = append(manifests, entries...)
		objs = all
	}
	for _, m := range manifests {
		sum.Manifests = append(sum.Manifests, rel(root, m))
	}

	services := nameServices(root, dfs)
	local := FirstLocalPort
	nextPort := func() int {
		for !portFree(local) {
			local++
		}
		local++
		return local - 1
	}
	for _, s := range services {
		matchWorkloads(s, objs, nextPort)
		s.preBuild = inferPreBuild(root, s.df)
		img := s.image
		if img == "" {
			img = s.name
		}
		ss := ServiceSummary{Name: s.name, Image: img, Dockerfile: s.dfShown, Workloads: s.workloads}
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
	return render(sum.Name, services, sum.Manifests), sum, nil
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

// matches reports whether a container image is the service's image.
func matches(image, name string) bool {
	return kube.SameRepo(image, name) || path.Base(repoOf(image)) == name
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

// matchWorkloads finds the workloads running s's image and a forward to each.
func matchWorkloads(s *service, objs []*unstructured.Unstructured, nextPort func() int) {
	byKey := map[string]*unstructured.Unstructured{}
	var services []*unstructured.Unstructured
	for _, o := range objs {
		byKey[kube.Workload{Kind: o.GetKind(), Namespace: o.GetNamespace(), Name: o.GetName()}.Key()] = o
		if o.GetKind() == "Service" && o.GroupVersionKind().Group == "" {
			services = append(services, o)
		}
	}
	forwarded := map[string]bool{}
	for _, w := range kube.WorkloadsOf(objs) {
		o := byKey[w.Key()]
		labels, containers := podSpec(o)
		var hit *container
		for i, c := range containers {
			if c.image != "" && matches(c.image, s.name) {
				hit = &containers[i]
				break
			}
		}
		if hit == nil {
			continue
		}
		if s.image == "" && !kube.SameRepo(hit.image, s.name) {
			s.image = repoOf(hit.image)
		}
		s.workloads = append(s.workloads, w.String())

		res, port := "", 0
		if svc := selectingService(services, w.Namespace, labels); svc != nil {
			ports, _, _ := unstructured.NestedSlice(svc.Object, "spec", "ports")
			if len(ports) > 0 {
				if pm, ok := ports[0].(map[string]any); ok {
					if n, ok, _ := unstructured.NestedInt64(pm, "port"); ok {
						res, port = "service/"+svc.GetName(), int(n)
					}
				}
			}
		}
		if res == "" && len(hit.ports) > 0 {
			switch w.Kind {
			case "Deployment", "StatefulSet", "Pod":
				res, port = strings.ToLower(w.Kind)+"/"+w.Name, hit.ports[0]
			}
		}
		if res == "" || forwarded[res] {
			continue
		}
		forwarded[res] = true
		pf := config.PortForward{Local: nextPort(), Port: port}
		if res != "service/"+s.name {
			pf.Resource = res
		}
		s.forwards = append(s.forwards, pf)
		s.forwardNotes = append(s.forwardNotes, "to "+w.String())
	}
}

// selectingService returns the first Service in ns whose selector selects labels.
func selectingService(services []*unstructured.Unstructured, ns string, labels map[string]string) *unstructured.Unstructured {
	for _, svc := range services {
		if svc.GetNamespace() != ns {
			continue
		}
		sel, _, _ := unstructured.NestedStringMap(svc.Object, "spec", "selector")
		if len(sel) == 0 {
			continue
		}
		ok := true
		for k, v := range sel {
			if labels[k] != v {
				ok = false
				break
			}
		}
		if ok {
			return svc
		}
	}
	return nil
}
