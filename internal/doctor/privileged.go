package doctor

import (
	"bytes"
	"strconv"
	"strings"
)

const (
	// capSysResource is the capability that some VMs and sandboxes drop from
	// the bounding set.
	capSysResource = 24
	// firstEngineWithBoundedPrivileged is the first Docker major version
	// whose --privileged asks only for the capabilities the environment has
	// (moby#42933, Docker 23.0). Older engines ask runc for every capability
	// the kernel knows, and runc fails ("apply caps: operation not
	// permitted") where the bounding set lacks one.
	firstEngineWithBoundedPrivileged = 23
)

// checkPrivilegedContainers reports whether kind's `docker run --privileged`
// can work on this host and engine (server is the engine's version, "" when
// unknown). Without CAP_SYS_RESOURCE in the bounding set, Docker < 23 needs
// devloop's shim (e2e/images/shim) first in PATH, and Docker >= 23 needs it
// gone: the shim's --cap-drop=SYS_RESOURCE of a capability the host lacks is
// refused there ("invalid CapDrop"). ok is false when there is nothing to say
// (no /proc: not Linux, Docker runs in a VM).
func checkPrivilegedContainers(env Env, server string) (Result, bool) {
	docker, lookErr := env.LookPath("docker")
	if lookErr != nil {
		return Result{Level: Fail, Check: checkPrivileged, Message: "no docker command in PATH; kind runs it to create the cluster",
			Fix: "install the Docker CLI (the docker-ce-cli or docker.io package) and put it in PATH"}, true
	}
	status, err := env.ReadFile("/proc/self/status")
	if err != nil {
		return Result{}, false
	}
	capBnd, found := parseCapBnd(status)
	if !found {
		return Result{}, false
	}
	if capBnd&(1<<capSysResource) != 0 {
		return Result{Level: OK, Check: checkPrivileged, Message: "kind can run its privileged node containers"}, true
	}
	shim := isShim(env, docker)
	major, known := engineMajor(server)
	switch {
	case !known && shim:
		return Result{Level: OK, Check: checkPrivileged,
			Message: "this host lacks CAP_SYS_RESOURCE; " + docker + " rewrites --privileged for kind (right for Docker < 23 only)"}, true
	case !known:
		return Result{Level: Warn, Check: checkPrivileged,
			Message: "this host lacks CAP_SYS_RESOURCE and the Docker engine's version is unknown: Docker 23 and later run kind's --privileged node containers here, older engines cannot",
			Fix:     "start Docker and run devloop doctor again; with Docker < 23 put e2e/images/shim first in PATH"}, true
	case major >= firstEngineWithBoundedPrivileged && shim:
		return Result{Level: Fail, Check: checkPrivileged,
			Message: "the docker first in PATH is " + docker + ", devloop's --privileged shim, which Docker " + server +
				" refuses (\"invalid CapDrop\": it drops CAP_SYS_RESOURCE, which this host lacks)",
			Fix: "take e2e/images/shim out of PATH: Docker " + server + " runs --privileged containers on this host by itself"}, true
	case major >= firstEngineWithBoundedPrivileged:
		return Result{Level: OK, Check: checkPrivileged,
			Message: "kind can run its privileged node containers (Docker " + server + " grants the capabilities this host has; CAP_SYS_RESOURCE is not one)"}, true
	case shim:
		return Result{Level: OK, Check: checkPrivileged,
			Message: "Docker " + server + " cannot run --privileged containers on this host (no CAP_SYS_RESOURCE); " + docker + " rewrites them for kind"}, true
	}
	return Result{Level: Fail, Check: checkPrivileged,
		Message: "Docker " + server + " cannot run --privileged containers on this host (no CAP_SYS_RESOURCE), and kind needs them for its node",
		Fix:     "upgrade to Docker 23 or later, or put e2e/images/shim first in PATH (see README: hosts without CAP_SYS_RESOURCE)"}, true
}

// engineMajor is the major version of a Docker engine version string such
// as "28.5.2", "20.10.24+dfsg1" or "v29.0.0-rc.1"; known is false when
// server does not start with a number.
func engineMajor(server string) (major int, known bool) {
	s := strings.TrimPrefix(strings.TrimSpace(server), "v")
	end := 0
	for end < len(s) && end < 9 && s[end] >= '0' && s[end] <= '9' {
		end++
	}
	if end == 0 || (end < len(s) && s[end] != '.' && s[end] != '+' && s[end] != '-') {
		return 0, false
	}
	n, err := strconv.Atoi(s[:end])
	return n, err == nil
}

// parseCapBnd finds the CapBnd line of /proc/<pid>/status.
func parseCapBnd(status []byte) (uint64, bool) {
	for _, line := range strings.Split(string(status), "\n") {
		rest, ok := strings.CutPrefix(line, "CapBnd:")
		if !ok {
			continue
		}
		v, err := strconv.ParseUint(strings.TrimSpace(rest), 16, 64)
		return v, err == nil
	}
	return 0, false
}

// isShim reports whether path is a script that rewrites --privileged.
func isShim(env Env, path string) bool {
	data, err := env.ReadFile(path)
	if err != nil {
		return false
	}
	return bytes.HasPrefix(data, []byte("#!")) && bytes.Contains(data, []byte("privileged"))
}
