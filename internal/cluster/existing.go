package cluster

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/devloop-dev/devloop/internal/config"
)

// Existing is a cluster devloop did not create (cluster.context), reached
// only through a context of the user's kubeconfig, as kubectl finds it
// ($KUBECONFIG, else ~/.kube/config). It never creates or deletes a
// cluster, runs no kind call and touches no node: its methods read the
// kubeconfig and ask the API server.
type Existing struct {
	// Load reads the kubeconfig (kubectl's loading rules by default).
	Load func() (*clientcmdapi.Config, error)
}

// NewExisting returns Existing on the user's kubeconfig.
func NewExisting() *Existing {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	return &Existing{Load: rules.Load}
}

// NoContextError is a context the kubeconfig does not have.
type NoContextError struct {
	Context string
	// Known are the contexts it has.
	Known []string
}

func (e *NoContextError) Error() string {
	known := "it has none"
	if len(e.Known) > 0 {
		known = "it has: " + strings.Join(e.Known, ", ")
	}
	return fmt.Sprintf("context %q is not in your kubeconfig ($KUBECONFIG or ~/.kube/config; %s): name one of those in cluster.context or --context", e.Context, known)
}

// UnreachableError is an existing cluster whose API server does not answer.
type UnreachableError struct {
	Context, Server string
	Err             error
}

func (e *UnreachableError) Error() string {
	return fmt.Sprintf("the cluster of context %q (API server %s) does not answer: %v. Check your network or VPN, and that `kubectl --context %s get ns` works",
		e.Context, e.Server, oneLine(e.Err), e.Context)
}

func (e *UnreachableError) Unwrap() error { return e.Err }

// RefusedError is what devloop does not do to an existing cluster.
type RefusedError struct{ Context, What string }

func (e *RefusedError) Error() string {
	return fmt.Sprintf("context %q is an existing cluster devloop did not create: devloop never %s it. `devloop down` (without --cluster) removes what devloop deployed in its namespace", e.Context, e.What)
}

// RESTConfig is a client config for context name, whatever the kubeconfig's
// current-context is; a *NoContextError when the kubeconfig lacks it.
func (e *Existing) RESTConfig(name string) (*rest.Config, error) {
	kc, err := e.Load()
	if err != nil {
		return nil, fmt.Errorf("reading your kubeconfig: %w", err)
	}
	if _, ok := kc.Contexts[name]; !ok {
		known := make([]string, 0, len(kc.Contexts))
		for k := range kc.Contexts {
			known = append(known, k)
		}
		sort.Strings(known)
		return nil, &NoContextError{Context: name, Known: known}
	}
	rc, err := contextConfig(kc, name)
	if err != nil {
		return nil, fmt.Errorf("building the client config of context %q: %w", name, err)
	}
	return rc, nil
}

// Exists reports whether the kubeconfig has context name.
func (e *Existing) Exists(name string) (bool, error) {
	_, err := e.RESTConfig(name)
	var missing *NoContextError
	if errors.As(err, &missing) {
		return false, nil
	}
	return err == nil, err
}

// Ensure reaches the cluster of spec.Context: it creates nothing.
func (e *Existing) Ensure(ctx context.Context, spec config.Cluster) (*Info, error) {
	rc, err := e.Usable(ctx, spec.Context)
	if err != nil {
		return nil, err
	}
	return &Info{Name: spec.Context, Context: spec.Context, RESTConfig: rc}, nil
}

// Usable returns the client config of context name once its API server
// answers /readyz (an *UnreachableError when not).
func (e *Existing) Usable(ctx context.Context, name string) (*rest.Config, error) {
	rc, err := e.RESTConfig(name)
	if err != nil {
		return nil, err
	}
	if err := probeAPI(ctx, rc); err != nil {
		return nil, &UnreachableError{Context: name, Server: rc.Host, Err: err}
	}
	return rc, nil
}

// Delete refuses: devloop never deletes an existing cluster.
func (e *Existing) Delete(_ context.Context, name string) error {
	return &RefusedError{Context: name, What: "deletes"}
}

// Down refuses, as Delete.
func (e *Existing) Down(_ context.Context, name string, _ func(context.Context, *rest.Config) error) (error, error) {
	return nil, &RefusedError{Context: name, What: "deletes"}
}

// RemoveRegistry does nothing: devloop runs no registry for an existing cluster.
func (e *Existing) RemoveRegistry(context.Context, string) ([]string, error) { return nil, nil }

// Owned is false: devloop never made an existing cluster.
func (e *Existing) Owned(string) (bool, error) { return false, nil }
