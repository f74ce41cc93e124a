//go:build !linux

package cluster

// HostCgroupV1 reports false off Linux: Docker runs in a VM there, whose
// kernel is cgroup v2 on every current Docker Desktop / colima release.
func HostCgroupV1() (bool, error) { return false, nil }
