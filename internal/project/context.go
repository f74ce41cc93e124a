package project

import (
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/devloop-dev/devloop/internal/config"
)

// ContextOptions point a command at an existing cluster (`--context`) and
// carry the person's allowance of a context that looks like production
// (`--allow-context`; DEVLOOP_ALLOW_CONTEXT too).
type ContextOptions struct {
	// Context is the kubeconfig context to use instead of cluster.context.
	Context string
	// Allow names contexts that may be used although their name looks like
	// production.
	Allow []string
}

// ProductionContextError refuses a context whose name looks like production.
type ProductionContextError struct{ Context, Word string }

func (e *ProductionContextError) Error() string {
	return fmt.Sprintf("context %q looks like production (its name has the word %q): devloop refuses it unless you allow it yourself, "+
		"with --allow-context %s or %s=%s (devloop.yaml alone cannot: a repository is shared, the allowance is yours)",
		e.Context, e.Word, e.Context, config.EnvAllowContext, e.Context)
}

// useContext applies o to cfg and checks, before anything is touched, that
// an existing cluster may be used: a context named by devloop.yaml or the
// command line only (never the current-context), present in the kubeconfig,
// and not looking like production unless allowed on the command line or in
// the environment. Without a context it does nothing: the kind flow.
func useContext(cfg *config.Config, deps *Deps, o ContextOptions) error {
	if err := cfg.UseContext(o.Context); err != nil {
		return err
	}
	name := cfg.Cluster.Context
	if name == "" {
		return nil
	}
	if w := config.ProductionWord(name); w != "" && !allowed(name, o.Allow, os.Getenv(config.EnvAllowContext)) {
		return &ProductionContextError{Context: name, Word: w}
	}
	clusters, _ := deps.clusters(cfg)
	// Reading the kubeconfig only: the context must be there.
	_, err := clusters.RESTConfig(name)
	return err
}

func allowed(name string, flags []string, env string) bool {
	if slices.Contains(flags, name) {
		return true
	}
	for _, n := range strings.Split(env, ",") {
		if strings.TrimSpace(n) == name {
			return true
		}
	}
	return false
}
