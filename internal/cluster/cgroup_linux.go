package cluster

import (
	"fmt"
	"syscall"
)

// cgroup2SuperMagic is CGROUP2_SUPER_MAGIC from linux/magic.h.
const cgroup2SuperMagic = 0x63677270

// HostCgroupV1 reports whether this host runs cgroup v1 (legacy or hybrid):
// true unless /sys/fs/cgroup is a cgroup2 filesystem.
func HostCgroupV1() (bool, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs("/sys/fs/cgroup", &st); err != nil {
		return false, fmt.Errorf("detecting the cgroup version of /sys/fs/cgroup: %w", err)
	}
	return int64(st.Type) != cgroup2SuperMagic, nil
}
