package cluster

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// apiProbeTimeout bounds the API server readiness probe of Usable: a
// paused node still accepts TCP connections and never answers.
const apiProbeTimeout = 5 * time.Second

// BrokenError says that an existing kind cluster cannot be talked to, why,
// and what the user can do: delete it, or repair it.
type BrokenError struct {
	// Name is the kind cluster name.
	Name string
	// Reason is what is wrong ("its node container devloop-control-plane is paused").
	Reason string
	// Repair is the command that may bring it back ("docker unpause devloop-control-plane").
	Repair string
	// Err is the underlying error, if any.
	Err error
	// NodeDown: a node container is gone, stopped or paused (rather than a
	// running node whose API server does not answer).
	NodeDown bool
}

// Error implements error: the whole advice, for `devloop down` (without
// --cluster) and every command that needs the cluster.
func (e *BrokenError) Error() string {
	return fmt.Sprintf("kind cluster %q cannot be reached: %s. Repair it with `%s` and run the command again, "+
		"or delete the whole cluster (everything in it goes) with `devloop down --cluster`", e.Name, e.Reason, e.Repair)
}

// Unwrap returns the underlying error.
func (e *BrokenError) Unwrap() error { return e.Err }

// NotCleaned renders what a cluster deletion could not do inside the
// cluster because it was broken (for `devloop down --cluster`).
func (e *BrokenError) NotCleaned() string {
	return fmt.Sprintf("did not remove what devloop deployed inside kind cluster %q (%s); deleting the cluster removes it all anyway", e.Name, e.Reason)
}

// probeAPI asks the API server for /readyz.
func probeAPI(ctx context.Context, rc *rest.Config) error {
	rc = rest.CopyConfig(rc)
	rc.Timeout = apiProbeTimeout
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, apiProbeTimeout)
	defer cancel()
	return cs.Discovery().RESTClient().Get().AbsPath("/readyz").Do(ctx).Error()
}

// Usable returns a client config for existing cluster name after checking
// that it can be talked to: its node containers run and are not paused, kind
// can read its kubeconfig (docker exec into the node) and its API server
// answers /readyz within a few seconds. When it cannot, the error is a
// *BrokenError that says what to do.
func (m *Manager) Usable(ctx context.Context, name string) (*rest.Config, error) {
	nodes, err := m.NodeNames(name)
	if err != nil {
		return nil, err
	}
	for _, n := range nodes {
		ci, err := m.docker.Container(ctx, n)
		if err != nil {
			return nil, fmt.Errorf("inspecting node %s of kind cluster %q: %w", n, name, err)
		}
		switch {
		case !ci.Exists:
			return nil, &BrokenError{Name: name, Reason: "its node container " + n + " is gone", Repair: "devloop down --cluster", NodeDown: true}
		case ci.Paused:
			return nil, &BrokenError{Name: name, Reason: "its node container " + n + " is paused", Repair: "docker unpause " + n, NodeDown: true}
		case !ci.Running:
			return nil, &BrokenError{Name: name, Reason: "its node container " + n + " is stopped", Repair: "docker start " + n, NodeDown: true}
		}
	}
	kc, err := m.provider.KubeConfig(name)
	if err != nil {
		return nil, &BrokenError{Name: name, Reason: "kind cannot read its kubeconfig from the node (" + oneLine(withCommandOutput(err)) + ")",
			Repair: "docker restart " + firstOr(nodes, name+"-control-plane"), Err: err}
	}
	rc, err := restConfigFor(kc, name)
	if err != nil {
		return nil, err
	}
	probe := m.apiProbe
	if probe == nil {
		probe = probeAPI
	}
	if err := probe(ctx, rc); err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, &BrokenError{Name: name, Reason: "its API server at " + rc.Host + " does not answer (" + oneLine(err) + ")",
			Repair: "docker restart " + firstOr(nodes, name+"-control-plane"), Err: err}
	}
	return rc, nil
}

// Down deletes cluster name, first running cleanup (removing what devloop
// deployed) when the cluster can be talked to. A broken cluster, or a
// cleanup that fails, does not stop the deletion: what was not cleaned
// inside it is written to the Manager's output before the deletion starts
// and returned as notCleaned (a *BrokenError, or cleanup's error); err is
// only the deletion's.
func (m *Manager) Down(ctx context.Context, name string, cleanup func(ctx context.Context, rc *rest.Config) error) (notCleaned, err error) {
	rc, uerr := m.Usable(ctx, name)
	var broken *BrokenError
	switch {
	case errors.As(uerr, &broken):
		notCleaned = broken
	case uerr != nil:
		if ctx.Err() != nil {
			return nil, fmt.Errorf("deleting kind cluster %q: %w", name, ctx.Err())
		}
		notCleaned = uerr
	case cleanup != nil:
		if cerr := cleanup(ctx, rc); cerr != nil {
			if ctx.Err() != nil {
				return nil, fmt.Errorf("deleting kind cluster %q: %w", name, ctx.Err())
			}
			notCleaned = fmt.Errorf("removing what devloop deployed in kind cluster %q failed (deleting the cluster removes it all anyway): %w", name, cerr)
		}
	}
	if broken != nil {
		m.logger.Warn(broken.NotCleaned())
	} else if notCleaned != nil {
		m.logger.Warn(notCleaned.Error())
	}
	if err := m.Delete(ctx, name); err != nil {
		return notCleaned, err
	}
	removed, err := m.removeRegistry(ctx, name)
	if len(removed) > 0 {
		m.logger.V(0).Infof("Removed the registry's %s", strings.Join(removed, " and "))
	}
	return notCleaned, err
}

// unpauseNodes unpauses the paused node containers of cluster name, so that
// `docker rm -f` can remove them on every engine; it returns the ones it
// unpaused.
func (m *Manager) unpauseNodes(ctx context.Context, name string) []string {
	var out []string
	m.eachNode(ctx, name, func(n string, ci ContainerInfo) {
		if ci.Paused && m.docker.Unpause(ctx, n) == nil {
			out = append(out, n)
		}
	})
	return out
}

// eachNode calls f with each node container of cluster name that the engine
// can inspect (best effort: a node it cannot list or inspect is skipped).
func (m *Manager) eachNode(ctx context.Context, name string, f func(node string, ci ContainerInfo)) {
	nodes, err := m.provider.ListNodes(name)
	if err != nil {
		return
	}
	for _, n := range nodes {
		if ci, err := m.docker.Container(ctx, n); err == nil {
			f(n, ci)
		}
	}
}

func oneLine(err error) string {
	return strings.Join(strings.Fields(err.Error()), " ")
}

func firstOr(items []string, def string) string {
	if len(items) > 0 {
		return items[0]
	}
	return def
}
