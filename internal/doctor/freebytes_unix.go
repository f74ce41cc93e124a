//go:build linux || darwin

package doctor

import "syscall"

// freeBytes returns the space available to unprivileged users on the
// filesystem holding path.
func freeBytes(path string) (uint64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(path, &st); err != nil {
		return 0, err
	}
	return uint64(st.Bavail) * uint64(st.Bsize), nil
}
