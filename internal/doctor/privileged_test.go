package doctor

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
)

// noSysResource is a /proc/self/status whose bounding set lacks CAP_SYS_RESOURCE (bit 24), as on the VMs
// where Docker 20.10's --privileged fails.
const noSysResource = "Name:\tdevloop\nCapBnd:\t000001fffeffffff\n"

func TestPrivilegedByEngine(t *testing.T) {
	const shimPath = "/src/devloop/e2e/images/shim/docker"
	withShim := func(m *fakeMachine) {
		m.paths["docker"] = shimPath
		m.files[shimPath] = shimScript
	}
	tests := []struct {
		name      string
		version   string
		dockerErr error
		capBnd    string
		shim      bool
		level     Level
		message   string // substring
		fix       string // substring; "" → no fix expected
	}{
		{name: "Docker 28 without CAP_SYS_RESOURCE: fine as it is", version: "28.5.2+dfsg4", capBnd: noSysResource,
			level: OK, message: "Docker 28.5.2+dfsg4 grants the capabilities this host has"},
		{name: "Docker 28 with the shim first: the shim breaks it", version: "28.5.2+dfsg4", capBnd: noSysResource, shim: true,
			level: Fail, message: "devloop's --privileged shim, which Docker 28.5.2+dfsg4 refuses", fix: "take e2e/images/shim out of PATH"},
		{name: "Docker 23.0.0 is the first that bounds --privileged", version: "23.0.0", capBnd: noSysResource,
			level: OK, message: "kind can run its privileged node containers"},
		{name: "Docker 29 (v-prefixed, rc)", version: "v29.0.0-rc.1", capBnd: noSysResource,
			level: OK, message: "grants the capabilities this host has"},
		{name: "Docker 20.10 without CAP_SYS_RESOURCE: needs the shim", version: "20.10.24+dfsg1", capBnd: noSysResource,
			level: Fail, message: "Docker 20.10.24+dfsg1 cannot run --privileged containers on this host", fix: "put e2e/images/shim first in PATH"},
		{name: "Docker 20.10 with the shim first", version: "20.10.24+dfsg1", capBnd: noSysResource, shim: true,
			level: OK, message: shimPath + " rewrites them for kind"},
		{name: "Docker 22.06 (still asks for every capability)", version: "22.06.0-beta.0", capBnd: noSysResource,
			level: Fail, message: "cannot run --privileged containers", fix: "shim"},
		{name: "engine unreachable: cannot tell", dockerErr: errors.New("connection refused"), capBnd: noSysResource,
			level: Warn, message: "version is unknown", fix: "run devloop doctor again"},
		{name: "engine unreachable, shim first", dockerErr: errors.New("connection refused"), capBnd: noSysResource, shim: true,
			level: OK, message: "rewrites --privileged for kind (right for Docker < 23 only)"},
		{name: "unparsable version: cannot tell", version: "podman", capBnd: noSysResource,
			level: Warn, message: "version is unknown"},
		{name: "full bounding set, Docker 20.10", version: "20.10.24", capBnd: "CapBnd:\t000001ffffffffff\n",
			level: OK, message: "kind can run its privileged node containers"},
		{name: "full bounding set, Docker 28 with the shim", version: "28.5.2", capBnd: "CapBnd:\t000001ffffffffff\n", shim: true,
			level: OK, message: "kind can run its privileged node containers"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := healthy()
			m.version, m.dockerErr = tt.version, tt.dockerErr
			m.files["/proc/self/status"] = tt.capBnd
			if tt.shim {
				withShim(&m)
			}
			got := byCheck(Machine(context.Background(), m.env(), testConfig()), checkPrivileged)
			if len(got) != 1 {
				t.Fatalf("%d %q results, want 1: %+v", len(got), checkPrivileged, got)
			}
			r := got[0]
			if r.Level != tt.level || !strings.Contains(r.Message, tt.message) {
				t.Errorf("got %s %q, want %s containing %q", r.Level, r.Message, tt.level, tt.message)
			}
			if tt.fix != "" && !strings.Contains(r.Fix, tt.fix) {
				t.Errorf("fix %q, want it to contain %q", r.Fix, tt.fix)
			}
			if r.Level == OK && r.Fix != "" {
				t.Errorf("OK result with a fix: %q", r.Fix)
			}
		})
	}
}

func TestEngineMajor(t *testing.T) {
	tests := []struct {
		in    string
		major int
		known bool
	}{
		{"28.5.2", 28, true},
		{"28.5.2+dfsg4", 28, true},
		{"20.10.24+dfsg1", 20, true},
		{"v29.0.0-rc.1", 29, true},
		{" 23.0.0\n", 23, true},
		{"29", 29, true},
		{"", 0, false},
		{"podman", 0, false},
		{"28x.1", 0, false},
		{"v", 0, false},
		{"1234567890.1", 0, false},
	}
	for _, tt := range tests {
		major, known := engineMajor(tt.in)
		if major != tt.major || known != tt.known {
			t.Errorf("engineMajor(%q) = %d, %v; want %d, %v", tt.in, major, known, tt.major, tt.known)
		}
	}
}

func FuzzEngineMajor(f *testing.F) {
	for _, s := range []string{"28.5.2+dfsg4", "20.10.24", "v29.0.0-rc.1", "", "x", "99999999999999999999"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		major, known := engineMajor(s)
		if !known && major != 0 {
			t.Fatalf("engineMajor(%q) = %d, unknown", s, major)
		}
		if known && (major < 0 || !strings.Contains(s, strconv.Itoa(major))) {
			t.Fatalf("engineMajor(%q) = %d, not a number in it", s, major)
		}
	})
}
