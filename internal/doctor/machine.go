package doctor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/devloop-dev/devloop/internal/config"

	"github.com/devloop-dev/devloop/internal/dockerhost"
)

// Env is what Machine needs from the machine, as replaceable functions so
// tests need no real Docker, /proc or ports. DefaultEnv fills it for real.
// Every field must be set.
type Env struct {
	// DockerVersion asks the Docker engine for its server and API versions.
	DockerVersion func(ctx context.Context) (server string, api string, err error)
	// ReadFile returns a file's contents (/proc/sys/fs/inotify/*,
	// /proc/self/status, the docker executable). DefaultEnv reads at most
	// 1 MiB, enough for those files and for scripts.
	ReadFile func(path string) ([]byte, error)
	// FreeBytes returns the bytes available to unprivileged users on the
	// filesystem holding path.
	FreeBytes func(path string) (uint64, error)
	// PortFree returns an error if nothing can listen on addr ("host:port").
	PortFree func(addr string) error
	// Getenv returns an environment variable.
	Getenv func(key string) string
	// Writable returns an error if path (a file or a directory) cannot be
	// written to; fs.ErrNotExist when it does not exist.
	Writable func(path string) error
	// LookPath finds an executable in PATH, like exec.LookPath.
	LookPath func(file string) (string, error)
	// ClusterRunning reports whether the kind cluster name is running.
	ClusterRunning func(name string) (bool, error)
	// RelayReachable is nil when the engine reaches the image relay on this
	// machine's 127.0.0.1 (imageload.ProbeRelay), ErrNotProbed when it
	// cannot be asked. Optional: nil skips the check.
	RelayReachable func(ctx context.Context) error
}

// ErrNotProbed: a probe could not be run at all; its check is left out.
var ErrNotProbed = errors.New("not probed")

// maxReadFile bounds DefaultEnv's ReadFile: the docker executable may be a
// large binary, and only scripts are of interest.
const maxReadFile = 1 << 20

// DefaultEnv returns an Env that uses the real machine, with the given
// Docker and kind probes (which live with their clients elsewhere).
func DefaultEnv(dockerVersion func(ctx context.Context) (string, string, error), clusterRunning func(string) (bool, error)) Env {
	return Env{
		DockerVersion:  dockerVersion,
		ReadFile:       readFileHead,
		FreeBytes:      freeBytes,
		PortFree:       portFree,
		Getenv:         os.Getenv,
		Writable:       writable,
		LookPath:       exec.LookPath,
		ClusterRunning: clusterRunning,
	}
}

func readFileHead(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, maxReadFile))
}

func portFree(addr string) error {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	return l.Close()
}

// writable opens a file for writing without truncating it, or creates and
// removes a temporary file in a directory.
func writable(path string) error {
	st, err := os.Stat(path)
	if err != nil {
		return err
	}
	if !st.IsDir() {
		f, err := os.OpenFile(path, os.O_WRONLY, 0)
		if err != nil {
			return err
		}
		return f.Close()
	}
	f, err := os.CreateTemp(path, ".devloop-doctor-*")
	if err != nil {
		return err
	}
	name := f.Name()
	f.Close()
	return os.Remove(name)
}

// Check names used by Machine.
const (
	checkDocker     = "docker"
	checkDisk       = "disk space"
	checkInotify    = "file watches"
	checkPrivileged = "privileged"
	checkCluster    = "cluster"
	checkKubeconfig = "kubeconfig"
	checkRelay      = "image relay"
)

// Thresholds of the machine checks.
const (
	gib             = 1 << 30
	diskWarnBytes   = 10 * gib
	diskFailBytes   = 2 * gib
	minUserWatches  = 65536
	minUserInstance = 256
)

// Machine checks what devloop needs from this machine: a reachable Docker
// engine, disk space, inotify limits, privileged containers for kind, free
// host ports for cfg's ingress and port-forwards, and a writable kubeconfig.
func Machine(ctx context.Context, env Env, cfg *config.Config) []Result {
	var out []Result
	docker, server := checkDockerEngine(ctx, env)
	out = append(out, docker)
	out = append(out, checkDiskSpace(env))
	out = append(out, checkInotifyLimits(env)...)
	if r, ok := checkPrivilegedContainers(env, server); ok {
		out = append(out, r)
	}
	if server != "" && !cfg.Cluster.Existing() && env.RelayReachable != nil {
		// kind nodes get their images through the loader (the addons' always).
		if r, ok := checkImageRelay(ctx, env); ok {
			out = append(out, r)
		}
	}
	running := false
	if !cfg.Cluster.Existing() {
		// An existing cluster is not kind's: ExistingCluster checks it.
		var cr Result
		running, cr = checkClusterState(env, cfg)
		out = append(out, cr)
	}
	out = append(out, checkPorts(env, cfg, running)...)
	out = append(out, checkKubeconfigWritable(env))
	return out
}

// checkImageRelay: an engine that cannot reach 127.0.0.1 of this machine
// (a daemon in a VM, rootless, remote) still loads images, through docker
// save: on the classic image store that is the whole image each time.
func checkImageRelay(ctx context.Context, env Env) (Result, bool) {
	err := env.RelayReachable(ctx)
	switch {
	case errors.Is(err, ErrNotProbed):
		return Result{}, false
	case err == nil:
		return Result{Level: OK, Check: checkRelay, Message: "the engine reaches devloop on 127.0.0.1: an image load sends only the layers a node lacks"}, true
	}
	return Result{Level: Warn, Check: checkRelay,
		Message: "the engine cannot reach devloop on this machine's 127.0.0.1 (" + err.Error() + "): a Docker daemon in a VM, rootless or on another host; " +
			"images load through docker save instead, on the classic image store the whole image each time",
		Fix: "nothing is needed for devloop to work; for faster loads of large images, cluster.registry.enabled: true " +
			"(the engine pushes to a registry container of its own, and the nodes pull from it)"}, true
}

// checkDockerEngine also returns the engine's version ("" when it cannot be reached).
func checkDockerEngine(ctx context.Context, env Env) (Result, string) {
	server, api, err := env.DockerVersion(ctx)
	if err != nil {
		msg := "cannot reach the Docker engine: " + err.Error()
		fix := "start Docker: sudo systemctl start docker (or dockerd &)"
		// The engine devloop (and the docker CLI, and kind) would talk to.
		if ep, rerr := dockerhost.Resolve(env.Getenv); rerr == nil {
			msg += " (engine: " + ep.String() + ")"
			if ep.Source != "the default socket" {
				fix += ", or point DOCKER_HOST / DOCKER_CONTEXT (docker context use) at a running engine"
			}
		}
		return Result{Level: Fail, Check: checkDocker, Message: msg, Fix: fix}, ""
	}
	msg := fmt.Sprintf("Docker %s (API %s)", server, api)
	if ep, rerr := dockerhost.Resolve(env.Getenv); rerr == nil && ep.Source != "the default socket" {
		msg += " at " + ep.String()
	}
	return Result{Level: OK, Check: checkDocker, Message: msg}, server
}

func checkDiskSpace(env Env) Result {
	path := "/var/lib/docker"
	free, err := env.FreeBytes(path)
	if err != nil {
		path = "/"
		free, err = env.FreeBytes(path)
	}
	if err != nil {
		return Result{Level: Warn, Check: checkDisk, Message: "cannot tell how much disk is free: " + err.Error(),
			Fix: "make sure Docker's disk has at least 10 GiB free (df -h /var/lib/docker)"}
	}
	msg := fmt.Sprintf("%s free under %s", humanBytes(free), path)
	const fix = "free space: docker system prune (removes stopped containers, unused images and build cache)"
	switch {
	case free < diskFailBytes:
		return Result{Level: Fail, Check: checkDisk, Message: msg + "; images and the kind node will not fit", Fix: fix}
	case free < diskWarnBytes:
		return Result{Level: Warn, Check: checkDisk, Message: msg + "; builds may run out of space", Fix: fix}
	}
	return Result{Level: OK, Check: checkDisk, Message: msg}
}

func humanBytes(n uint64) string {
	switch {
	case n >= gib:
		return fmt.Sprintf("%.1f GiB", float64(n)/gib)
	case n >= 1<<20:
		return fmt.Sprintf("%.0f MiB", float64(n)/(1<<20))
	}
	return fmt.Sprintf("%d bytes", n)
}

// checkInotifyLimits returns nothing where /proc/sys/fs/inotify does not
// exist (not Linux).
func checkInotifyLimits(env Env) []Result {
	limits := []struct {
		name, why string
		min, fix  int
	}{
		{"max_user_watches", "watching a large project may silently miss changes", minUserWatches, 524288},
		{"max_user_instances", "kind nodes and file watching may fail with \"too many open files\"", minUserInstance, 512},
	}
	var out []Result
	var okParts []string
	for _, l := range limits {
		path := "/proc/sys/fs/inotify/" + l.name
		data, err := env.ReadFile(path)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			out = append(out, Result{Level: Warn, Check: checkInotify, Message: fmt.Sprintf("cannot read %s: %v", path, err),
				Fix: "check it with: sysctl fs.inotify." + l.name})
			continue
		}
		v, err := strconv.Atoi(strings.TrimSpace(string(data)))
		if err != nil {
			out = append(out, Result{Level: Warn, Check: checkInotify, Message: fmt.Sprintf("cannot parse %s: %q", path, strings.TrimSpace(string(data))),
				Fix: "check it with: sysctl fs.inotify." + l.name})
			continue
		}
		if v < l.min {
			out = append(out, Result{Level: Warn, Check: checkInotify,
				Message: fmt.Sprintf("fs.inotify.%s is %d (want at least %d): %s", l.name, v, l.min, l.why),
				Fix:     fmt.Sprintf("sudo sysctl fs.inotify.%s=%d (add it to /etc/sysctl.d/ to keep it after a reboot)", l.name, l.fix)})
			continue
		}
		okParts = append(okParts, fmt.Sprintf("%s=%d", l.name, v))
	}
	if len(out) == 0 {
		return []Result{{Level: OK, Check: checkInotify, Message: "inotify " + strings.Join(okParts, ", ")}}
	}
	return out
}

func checkClusterState(env Env, cfg *config.Config) (running bool, r Result) {
	name := cfg.Cluster.Name
	running, err := env.ClusterRunning(name)
	switch {
	case err != nil:
		return false, Result{Level: Warn, Check: checkCluster, Message: fmt.Sprintf("cannot tell whether kind cluster %q is running: %v", name, err),
			Fix: "check Docker is running, then: kind get clusters"}
	case running:
		return true, Result{Level: OK, Check: checkCluster, Message: fmt.Sprintf("kind cluster %q is running (context kind-%s)", name, name)}
	}
	return false, Result{Level: OK, Check: checkCluster, Message: fmt.Sprintf("kind cluster %q is not running; devloop up will create it", name)}
}

func checkPorts(env Env, cfg *config.Config, clusterRunning bool) []Result {
	var out []Result
	in := cfg.Cluster.Ingress
	if in.IsEnabled() {
		for _, p := range []struct {
			port           int
			purpose, field string
		}{
			{in.HTTPPort, "ingress http", "cluster.ingress.httpPort"},
			{in.HTTPSPort, "ingress https", "cluster.ingress.httpsPort"},
		} {
			addr := net.JoinHostPort(orLocalhost(in.ListenAddress), strconv.Itoa(p.port))
			check := "port " + strconv.Itoa(p.port)
			err := env.PortFree(addr)
			switch {
			case err == nil:
				out = append(out, Result{Level: OK, Check: check, Message: addr + " is free (" + p.purpose + ")"})
			case clusterRunning:
				out = append(out, Result{Level: OK, Check: check, Message: addr + " is in use by the cluster (" + p.purpose + ")"})
			default:
				out = append(out, Result{Level: Fail, Check: check,
					Message: fmt.Sprintf("%s (%s) is already in use, so the cluster cannot be created", addr, p.purpose),
					Fix:     fmt.Sprintf("stop what listens there (see: ss -ltnp 'sport = :%d') or set %s in devloop.yaml", p.port, p.field)})
			}
		}
	}
	for _, svc := range cfg.Services {
		for _, pf := range svc.PortForwards {
			addr := net.JoinHostPort(orLocalhost(pf.Address), strconv.Itoa(pf.Local))
			check := "port " + strconv.Itoa(pf.Local)
			target := fmt.Sprintf("%s:%d", pf.Resource, pf.Port)
			if err := env.PortFree(addr); err != nil {
				out = append(out, Result{Level: Warn, Check: check,
					Message: fmt.Sprintf("%s (forward to %s) is in use; fine if devloop up is running, otherwise the forward will fail", addr, target),
					Fix:     fmt.Sprintf("stop what listens there (see: ss -ltnp 'sport = :%d') or change portForwards[].local of service %s", pf.Local, svc.Name)})
				continue
			}
			out = append(out, Result{Level: OK, Check: check, Message: fmt.Sprintf("%s is free (forward to %s)", addr, target)})
		}
	}
	return out
}

func orLocalhost(addr string) string {
	if addr == "" {
		return config.DefaultListenAddress
	}
	return addr
}

// kubeconfigPath is where devloop writes the cluster's context: the first
// entry of $KUBECONFIG, else ~/.kube/config.
func kubeconfigPath(env Env) string {
	if kc := env.Getenv("KUBECONFIG"); kc != "" {
		for _, p := range filepath.SplitList(kc) {
			if p != "" {
				return p
			}
		}
	}
	return filepath.Join(env.Getenv("HOME"), ".kube", "config")
}

func checkKubeconfigWritable(env Env) Result {
	path := kubeconfigPath(env)
	fix := "make it writable (sudo chown $USER " + path + ") or point KUBECONFIG at a file you can write"
	err := env.Writable(path)
	if err == nil {
		return Result{Level: OK, Check: checkKubeconfig, Message: path + " is writable"}
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return Result{Level: Fail, Check: checkKubeconfig, Message: fmt.Sprintf("cannot write %s: %v", path, err), Fix: fix}
	}
	// The file will be created: its nearest existing directory must be writable.
	for dir := filepath.Dir(path); ; dir = filepath.Dir(dir) {
		err := env.Writable(dir)
		if err == nil {
			return Result{Level: OK, Check: checkKubeconfig, Message: path + " does not exist yet; devloop up will create it"}
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return Result{Level: Fail, Check: checkKubeconfig, Message: fmt.Sprintf("%s does not exist and cannot be created: %v", path, err),
				Fix: "make " + dir + " writable or point KUBECONFIG at a file you can write"}
		}
		if parent := filepath.Dir(dir); parent == dir {
			return Result{Level: Fail, Check: checkKubeconfig, Message: path + " does not exist and no parent directory does either", Fix: fix}
		}
	}
}
