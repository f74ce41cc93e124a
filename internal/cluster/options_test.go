package cluster

import (
	"context"
	"time"

	"k8s.io/client-go/rest"
)

// Options only tests need: the seams of a Manager.

// withProvider replaces the kind provider (tests use a fake).
func withProvider(p Provider) Option { return func(m *Manager) { m.provider = p } }

// withDocker replaces the docker CLI queries (tests use a fake).
func withDocker(d Docker) Option { return func(m *Manager) { m.docker = d } }

// withKubeconfigPath makes Manager export contexts to (and remove them from)
// this file instead of $KUBECONFIG / ~/.kube/config.
func withKubeconfigPath(path string) Option { return func(m *Manager) { m.kubeconfigPath = path } }

// withCgroupV1Detector replaces the host cgroup v1 detection (default HostCgroupV1).
func withCgroupV1Detector(f func() (bool, error)) Option { return func(m *Manager) { m.cgroupV1 = f } }

// withReadyTimeout sets how long Create waits for the control plane to be
// Ready (default 3 minutes).
func withReadyTimeout(d time.Duration) Option { return func(m *Manager) { m.readyTimeout = d } }

// withMarks keeps the created-by-devloop records in dir.
func withMarks(dir string) Option { return func(m *Manager) { m.marks = Marks{dir: dir} } }

// withAPIProbe replaces the API server readiness probe of Usable.
func withAPIProbe(f func(ctx context.Context, rc *rest.Config) error) Option {
	return func(m *Manager) { m.apiProbe = f }
}

// withNodesReady replaces the new cluster's control-plane readiness check.
func withNodesReady(f func(ctx context.Context, name, kubeconfigPath string) (bool, error)) Option {
	return func(m *Manager) { m.nodesReady = f }
}

// withRegistryDocker replaces the registry's docker commands (tests use a fake).
func withRegistryDocker(d RegistryDocker) Option { return func(m *Manager) { m.registry = d } }

// withRegistryProbe replaces the registry's readiness probe.
func withRegistryProbe(f func(ctx context.Context, url string) error) Option {
	return func(m *Manager) { m.registryProbe = f }
}
