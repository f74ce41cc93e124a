package portfwd

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// portHolder describes who listens on a local TCP port, as far as /proc
// tells (Linux only; other processes' fds need the same user or root).
// It returns "" when it cannot tell.
func portHolder(procRoot string, port int) string {
	inodes := map[string]bool{}
	for _, f := range []string{"net/tcp", "net/tcp6"} {
		listeningInodes(filepath.Join(procRoot, f), port, inodes)
	}
	if len(inodes) == 0 {
		return ""
	}
	entries, err := os.ReadDir(procRoot)
	if err != nil {
		return ""
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		fdDir := filepath.Join(procRoot, e.Name(), "fd")
		fds, err := os.ReadDir(fdDir)
		if err != nil {
			continue
		}
		for _, fd := range fds {
			link, err := os.Readlink(filepath.Join(fdDir, fd.Name()))
			if err != nil || !strings.HasPrefix(link, "socket:[") {
				continue
			}
			if inodes[strings.TrimSuffix(strings.TrimPrefix(link, "socket:["), "]")] {
				comm, _ := os.ReadFile(filepath.Join(procRoot, e.Name(), "comm"))
				if name := strings.TrimSpace(string(comm)); name != "" {
					return fmt.Sprintf("pid %d (%s)", pid, name)
				}
				return fmt.Sprintf("pid %d", pid)
			}
		}
	}
	return ""
}

// listeningInodes adds to out the socket inodes in a /proc/net/tcp{,6}
// table that listen on port.
func listeningInodes(path string, port int, out map[string]bool) {
	f, err := os.Open(path)
	if err != nil {
		return
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Scan() // header
	for sc.Scan() {
		// sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode
		fields := strings.Fields(sc.Text())
		if len(fields) < 10 || fields[3] != "0A" { // 0A = LISTEN
			continue
		}
		_, hexPort, ok := strings.Cut(fields[1], ":")
		if !ok {
			continue
		}
		p, err := strconv.ParseUint(hexPort, 16, 16)
		if err != nil || int(p) != port {
			continue
		}
		out[fields[9]] = true
	}
}
