package kube

import (
	"fmt"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
)

// Clients bundles the Kubernetes clients devloop uses for one cluster.
type Clients struct {
	Config  *rest.Config
	Core    kubernetes.Interface
	Dynamic dynamic.Interface
	// Mapper is a deferred discovery mapper over a memory cache; it
	// implements meta.ResettableRESTMapper so newly created CRDs can be found.
	Mapper meta.RESTMapper
}

// NewClients builds the typed and dynamic clients and a discovery-backed
// RESTMapper for cfg. It makes no request.
func NewClients(cfg *rest.Config) (*Clients, error) {
	core, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("creating kubernetes client: %w", err)
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("creating dynamic client: %w", err)
	}
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("creating discovery client: %w", err)
	}
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(dc))
	return &Clients{Config: cfg, Core: core, Dynamic: dyn, Mapper: mapper}, nil
}

// restMapping maps gvk with m; on a no-match error it resets m once (when m
// is resettable) and retries, so kinds from freshly applied CRDs resolve.
func restMapping(m meta.RESTMapper, gvk schema.GroupVersionKind) (*meta.RESTMapping, error) {
	mapping, err := m.RESTMapping(gvk.GroupKind(), gvk.Version)
	if err != nil && meta.IsNoMatchError(err) {
		if r, ok := m.(meta.ResettableRESTMapper); ok {
			r.Reset()
			mapping, err = m.RESTMapping(gvk.GroupKind(), gvk.Version)
		}
	}
	if err != nil {
		if meta.IsNoMatchError(err) {
			return nil, fmt.Errorf("the cluster does not know kind %s in %s (is its CustomResourceDefinition installed?)", gvk.Kind, gvk.GroupVersion())
		}
		return nil, fmt.Errorf("looking up resource for %s: %w", gvk, err)
	}
	return mapping, nil
}
