package doctor

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"syscall"
	"testing"

	"github.com/devloop-dev/devloop/internal/config"
)

const shimScript = "#!/bin/bash\n# docker shim\nif [ \"$a\" = --privileged ]; then :; fi\n"

// fakeMachine describes a machine; env turns it into an Env.
type fakeMachine struct {
	dockerErr  error
	version    string            // the engine's version; "" → 20.10.24
	files      map[string]string // ReadFile contents; missing → fs.ErrNotExist
	free       map[string]uint64 // FreeBytes per path; missing → error
	busy       map[string]bool   // addresses PortFree refuses
	vars       map[string]string
	writable   map[string]error // Writable result per path; missing → fs.ErrNotExist
	paths      map[string]string
	running    bool
	runningErr error
	relayErr   error // RelayReachable's answer
	noRelay    bool  // RelayReachable unset
}

func (m fakeMachine) env() Env {
	return Env{
		DockerVersion: func(context.Context) (string, string, error) {
			if m.dockerErr != nil {
				return "", "", m.dockerErr
			}
			if m.version != "" {
				return m.version, "1.51", nil
			}
			return "20.10.24", "1.41", nil
		},
		ReadFile: func(p string) ([]byte, error) {
			if s, ok := m.files[p]; ok {
				return []byte(s), nil
			}
			return nil, fmt.Errorf("open %s: %w", p, fs.ErrNotExist)
		},
		FreeBytes: func(p string) (uint64, error) {
			if n, ok := m.free[p]; ok {
				return n, nil
			}
			return 0, fmt.Errorf("statfs %s: %w", p, fs.ErrNotExist)
		},
		PortFree: func(addr string) error {
			if m.busy[addr] {
				return fmt.Errorf("listen tcp %s: %w", addr, syscall.EADDRINUSE)
			}
			return nil
		},
		Getenv: func(k string) string { return m.vars[k] },
		Writable: func(p string) error {
			if err, ok := m.writable[p]; ok {
				return err
			}
			return fmt.Errorf("stat %s: %w", p, fs.ErrNotExist)
		},
		LookPath: func(f string) (string, error) {
			if p, ok := m.paths[f]; ok {
				return p, nil
			}
			return "", fmt.Errorf("exec: %q: executable file not found in $PATH", f)
		},
		ClusterRunning: func(string) (bool, error) { return m.running, m.runningErr },
		RelayReachable: func(context.Context) error {
			if m.noRelay {
				panic("RelayReachable called")
			}
			return m.relayErr
		},
	}
}

// healthy is a machine on which every check passes.
func healthy() fakeMachine {
	return fakeMachine{
		files: map[string]string{
			"/proc/sys/fs/inotify/max_user_watches":   "524288\n",
			"/proc/sys/fs/inotify/max_user_instances": "512\n",
			"/proc/self/status":                       "Name:\tdevloop\nCapBnd:\t000001ffffffffff\n",
			"/usr/bin/docker":                         "\x7fELF...",
		},
		free:     map[string]uint64{"/var/lib/docker": 50 * gib},
		busy:     map[string]bool{},
		vars:     map[string]string{"HOME": "/home/dev"},
		writable: map[string]error{"/home/dev/.kube/config": nil},
		paths:    map[string]string{"docker": "/usr/bin/docker"},
	}
}

func testConfig() *config.Config {
	return &config.Config{
		Name:      "hello",
		Namespace: "default",
		Cluster: config.Cluster{Name: "devloop", Ingress: config.Ingress{
			HTTPPort: 8080, HTTPSPort: 8443, ListenAddress: "127.0.0.1",
		}},
		Services: []config.Service{{
			Name: "hello", Image: "hello",
			PortForwards: []config.PortForward{{Local: 18080, Port: 80, Resource: "service/hello", Address: "127.0.0.1"}},
		}},
	}
}

// byCheck returns the results of check (in order).
func byCheck(rs []Result, check string) []Result {
	var out []Result
	for _, r := range rs {
		if r.Check == check {
			out = append(out, r)
		}
	}
	return out
}

func TestMachineHealthy(t *testing.T) {
	rs := Machine(context.Background(), healthy().env(), testConfig())
	for _, r := range rs {
		if r.Level != OK {
			t.Errorf("want all OK, got %s %s: %s (fix: %s)", r.Level, r.Check, r.Message, r.Fix)
		}
	}
	wantChecks := []string{checkDocker, checkDisk, checkInotify, checkPrivileged, checkRelay, checkCluster, "port 8080", "port 8443", "port 18080", checkKubeconfig}
	var got []string
	for _, r := range rs {
		got = append(got, r.Check)
	}
	if strings.Join(got, ",") != strings.Join(wantChecks, ",") {
		t.Errorf("checks = %v, want %v", got, wantChecks)
	}
	if d := byCheck(rs, checkDocker); len(d) != 1 || d[0].Message != "Docker 20.10.24 (API 1.41)" {
		t.Errorf("docker result = %+v", d)
	}
}

func TestMachineChecks(t *testing.T) {
	type want struct {
		check   string
		level   Level
		message string // substring
		fix     string // substring
	}
	tests := []struct {
		name   string
		modify func(m *fakeMachine, cfg *config.Config)
		want   []want   // results of these checks, in order, replace the healthy ones
		absent []string // checks that must not appear
	}{
		{
			name: "docker unreachable",
			modify: func(m *fakeMachine, _ *config.Config) {
				m.dockerErr = errors.New("dial unix /var/run/docker.sock: connect: no such file or directory")
			},
			want: []want{{checkDocker, Fail, "cannot reach the Docker engine: dial unix", "sudo systemctl start docker (or dockerd &)"}},
		},
		{
			name: "docker unreachable names DOCKER_HOST",
			modify: func(m *fakeMachine, _ *config.Config) {
				m.dockerErr = errors.New("connection refused")
				m.vars["DOCKER_HOST"] = "tcp://10.0.0.1:2375"
			},
			want: []want{{checkDocker, Fail, "(engine: tcp://10.0.0.1:2375 (DOCKER_HOST))", "start Docker"}},
		},
		{
			name: "docker unreachable: the relay is not asked",
			modify: func(m *fakeMachine, _ *config.Config) {
				m.dockerErr = errors.New("connection refused")
				m.noRelay = true
			},
			want:   []want{{checkDocker, Fail, "cannot reach the Docker engine", "start Docker"}},
			absent: []string{checkRelay},
		},
		{
			name: "the engine cannot reach the relay (a daemon in a VM)",
			modify: func(m *fakeMachine, _ *config.Config) {
				m.relayErr = errors.New(`Get "http://127.0.0.1:41234/v2/": dial tcp 127.0.0.1:41234: connect: connection refused`)
			},
			want: []want{{checkRelay, Warn, "cannot reach devloop on this machine's 127.0.0.1 (Get \"http://127.0.0.1:41234/v2/\": dial tcp", "cluster.registry.enabled: true"}},
		},
		{
			name:   "the relay could not be asked: no result",
			modify: func(m *fakeMachine, _ *config.Config) { m.relayErr = fmt.Errorf("wrapped: %w", ErrNotProbed) },
			absent: []string{checkRelay},
		},
		{
			name:   "an existing cluster: not kind, no relay",
			modify: func(m *fakeMachine, cfg *config.Config) { m.noRelay = true; cfg.Cluster.Context = "team-dev" },
			absent: []string{checkRelay},
		},
		{
			name:   "disk low",
			modify: func(m *fakeMachine, _ *config.Config) { m.free["/var/lib/docker"] = 5 * gib },
			want:   []want{{checkDisk, Warn, "5.0 GiB free under /var/lib/docker", "docker system prune"}},
		},
		{
			name:   "disk nearly full",
			modify: func(m *fakeMachine, _ *config.Config) { m.free["/var/lib/docker"] = 1 * gib },
			want:   []want{{checkDisk, Fail, "1.0 GiB free under /var/lib/docker", "docker system prune"}},
		},
		{
			name: "disk falls back to / without /var/lib/docker",
			modify: func(m *fakeMachine, _ *config.Config) {
				delete(m.free, "/var/lib/docker")
				m.free["/"] = 100 * gib
			},
			want: []want{{checkDisk, OK, "100.0 GiB free under /", ""}},
		},
		{
			name:   "disk unknown",
			modify: func(m *fakeMachine, _ *config.Config) { delete(m.free, "/var/lib/docker") },
			want:   []want{{checkDisk, Warn, "cannot tell how much disk is free", "10 GiB"}},
		},
		{
			name:   "few inotify watches",
			modify: func(m *fakeMachine, _ *config.Config) { m.files["/proc/sys/fs/inotify/max_user_watches"] = "8192\n" },
			want:   []want{{checkInotify, Warn, "fs.inotify.max_user_watches is 8192", "sudo sysctl fs.inotify.max_user_watches=524288"}},
		},
		{
			name: "few inotify instances and watches",
			modify: func(m *fakeMachine, _ *config.Config) {
				m.files["/proc/sys/fs/inotify/max_user_watches"] = "8192"
				m.files["/proc/sys/fs/inotify/max_user_instances"] = "128"
			},
			want: []want{
				{checkInotify, Warn, "max_user_watches is 8192", "max_user_watches=524288"},
				{checkInotify, Warn, "max_user_instances is 128", "sudo sysctl fs.inotify.max_user_instances=512"},
			},
		},
		{
			name: "no inotify in /proc: not Linux, no result",
			modify: func(m *fakeMachine, _ *config.Config) {
				delete(m.files, "/proc/sys/fs/inotify/max_user_watches")
			},
			absent: []string{checkInotify},
		},
		{
			name:   "no CAP_SYS_RESOURCE and the real docker first",
			modify: func(m *fakeMachine, _ *config.Config) { m.files["/proc/self/status"] = "CapBnd:\t000001fffeffffff\n" },
			want:   []want{{checkPrivileged, Fail, "cannot run --privileged containers", "put e2e/images/shim first in PATH"}},
		},
		{
			name: "no CAP_SYS_RESOURCE but the shim first",
			modify: func(m *fakeMachine, _ *config.Config) {
				m.files["/proc/self/status"] = "CapBnd:\t000001fffeffffff\n"
				m.paths["docker"] = "/src/devloop/e2e/images/shim/docker"
				m.files["/src/devloop/e2e/images/shim/docker"] = shimScript
			},
			want: []want{{checkPrivileged, OK, "/src/devloop/e2e/images/shim/docker rewrites them", ""}},
		},
		{
			name: "a docker script that is not the shim",
			modify: func(m *fakeMachine, _ *config.Config) {
				m.files["/proc/self/status"] = "CapBnd:\t000001fffeffffff\n"
				m.files["/usr/bin/docker"] = "#!/bin/sh\nexec podman \"$@\"\n"
			},
			want: []want{{checkPrivileged, Fail, "no CAP_SYS_RESOURCE", "shim"}},
		},
		{
			name:   "no docker CLI",
			modify: func(m *fakeMachine, _ *config.Config) { delete(m.paths, "docker") },
			want:   []want{{checkPrivileged, Fail, "no docker command in PATH", "install the Docker CLI"}},
		},
		{
			name:   "no /proc/self/status: no result",
			modify: func(m *fakeMachine, _ *config.Config) { delete(m.files, "/proc/self/status") },
			absent: []string{checkPrivileged},
		},
		{
			name:   "ingress port taken",
			modify: func(m *fakeMachine, _ *config.Config) { m.busy["127.0.0.1:8080"] = true },
			want:   []want{{"port 8080", Fail, "127.0.0.1:8080 (ingress http) is already in use", "cluster.ingress.httpPort"}},
		},
		{
			name: "ingress ports held by the running cluster",
			modify: func(m *fakeMachine, _ *config.Config) {
				m.busy["127.0.0.1:8080"], m.busy["127.0.0.1:8443"] = true, true
				m.running = true
			},
			want: []want{
				{checkCluster, OK, `kind cluster "devloop" is running`, ""},
				{"port 8080", OK, "in use by the cluster", ""},
				{"port 8443", OK, "in use by the cluster", ""},
			},
		},
		{
			name:   "cluster state unknown",
			modify: func(m *fakeMachine, _ *config.Config) { m.runningErr = errors.New("docker: not reachable") },
			want:   []want{{checkCluster, Warn, "cannot tell whether kind cluster \"devloop\" is running", "kind get clusters"}},
		},
		{
			name:   "ingress disabled: its ports are not checked",
			modify: func(_ *fakeMachine, cfg *config.Config) { f := false; cfg.Cluster.Ingress.Enabled = &f },
			want:   []want{{"port 18080", OK, "127.0.0.1:18080 is free (forward to service/hello:80)", ""}},
			absent: []string{"port 8080", "port 8443"},
		},
		{
			name:   "forward port taken",
			modify: func(m *fakeMachine, _ *config.Config) { m.busy["127.0.0.1:18080"] = true },
			want:   []want{{"port 18080", Warn, "(forward to service/hello:80) is in use; fine if devloop up is running", "portForwards[].local of service hello"}},
		},
		{
			name: "kubeconfig from KUBECONFIG's first entry",
			modify: func(m *fakeMachine, _ *config.Config) {
				m.vars["KUBECONFIG"] = "/etc/kube/admin.conf:/home/dev/.kube/config"
				m.writable["/etc/kube/admin.conf"] = fmt.Errorf("open /etc/kube/admin.conf: %w", fs.ErrPermission)
			},
			want: []want{{checkKubeconfig, Fail, "cannot write /etc/kube/admin.conf", "KUBECONFIG"}},
		},
		{
			name: "kubeconfig missing, directory writable",
			modify: func(m *fakeMachine, _ *config.Config) {
				delete(m.writable, "/home/dev/.kube/config")
				m.writable["/home/dev"] = nil
			},
			want: []want{{checkKubeconfig, OK, "does not exist yet; devloop up will create it", ""}},
		},
		{
			name: "kubeconfig missing, directory read-only",
			modify: func(m *fakeMachine, _ *config.Config) {
				delete(m.writable, "/home/dev/.kube/config")
				m.writable["/home/dev/.kube"] = fmt.Errorf("open: %w", fs.ErrPermission)
			},
			want: []want{{checkKubeconfig, Fail, "cannot be created", "make /home/dev/.kube writable"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, cfg := healthy(), testConfig()
			tt.modify(&m, cfg)
			rs := Machine(context.Background(), m.env(), cfg)
			for _, a := range tt.absent {
				if got := byCheck(rs, a); len(got) != 0 {
					t.Errorf("check %q should not run, got %+v", a, got)
				}
			}
			checks := map[string]bool{}
			for _, w := range tt.want {
				checks[w.check] = true
			}
			var got []Result
			for _, r := range rs {
				if checks[r.Check] {
					got = append(got, r)
				} else if r.Level != OK {
					t.Errorf("unexpected %s %s: %s", r.Level, r.Check, r.Message)
				}
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got %d results for %v, want %d: %+v", len(got), checks, len(tt.want), got)
			}
			for i, w := range tt.want {
				g := got[i]
				if g.Level != w.level || !strings.Contains(g.Message, w.message) || !strings.Contains(g.Fix, w.fix) {
					t.Errorf("result %d = %s %q (fix %q), want %s containing %q (fix containing %q)", i, g.Level, g.Message, g.Fix, w.level, w.message, w.fix)
				}
				if w.level != OK && g.Fix == "" {
					t.Errorf("result %d: %s without a fix", i, g.Level)
				}
			}
		})
	}
}

func TestParseCapBnd(t *testing.T) {
	tests := []struct {
		in    string
		want  uint64
		found bool
	}{
		{"Name:\tx\nCapBnd:\t000001fffeffffff\nCapAmb:\t0\n", 0x1fffeffffff, true},
		{"CapBnd:\tzz\n", 0, false},
		{"Name:\tx\n", 0, false},
	}
	for _, tt := range tests {
		got, found := parseCapBnd([]byte(tt.in))
		if got != tt.want || found != tt.found {
			t.Errorf("parseCapBnd(%q) = %x, %v; want %x, %v", tt.in, got, found, tt.want, tt.found)
		}
	}
}

func TestDefaultEnvSeams(t *testing.T) {
	dir := t.TempDir()
	env := DefaultEnv(nil, nil)
	if err := env.Writable(dir); err != nil {
		t.Errorf("Writable(temp dir) = %v", err)
	}
	if err := env.Writable(dir + "/missing"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Writable(missing) = %v, want ErrNotExist", err)
	}
	if n, err := env.FreeBytes(dir); err != nil || n == 0 {
		t.Errorf("FreeBytes(temp dir) = %d, %v", n, err)
	}
}
