package cluster

import (
	"bytes"
	"fmt"
	"reflect"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// ContextName is the kubeconfig context kind uses for cluster name.
func ContextName(name string) string { return "kind-" + name }

// restConfigFor builds a rest.Config for context kind-<name> of kind's
// kubeconfig, whatever that kubeconfig's current-context says.
func restConfigFor(kubeconfig []byte, name string) (*rest.Config, error) {
	cfg, err := clientcmd.Load(kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("parsing kind's kubeconfig for cluster %q: %w", name, err)
	}
	ctxName := ContextName(name)
	if _, ok := cfg.Contexts[ctxName]; !ok {
		return nil, fmt.Errorf("kind's kubeconfig for cluster %q has no context %q", name, ctxName)
	}
	rc, err := contextConfig(cfg, ctxName)
	if err != nil {
		return nil, fmt.Errorf("building client config for context %q: %w", ctxName, err)
	}
	return rc, nil
}

// contextConfig is the client config of context ctxName in kc, with
// devloop's rate limits: it watches, applies and streams a lot on one
// cluster, and the client-go defaults (5 QPS) would throttle it.
func contextConfig(kc *clientcmdapi.Config, ctxName string) (*rest.Config, error) {
	rc, err := clientcmd.NewNonInteractiveClientConfig(*kc, ctxName, &clientcmd.ConfigOverrides{}, nil).ClientConfig()
	if err != nil {
		return nil, err
	}
	rc.QPS = 50
	rc.Burst = 100
	return rc, nil
}

// exportContext makes sure the user's kubeconfig (explicitPath, or
// $KUBECONFIG / ~/.kube/config by kubectl's rules when empty) has the cluster,
// user and context kind-<name> from kind's kubeconfig, so `kubectl --context
// kind-<name>` works. It never changes current-context (kind's own export
// sets it to the kind cluster). It reports whether it wrote anything.
func exportContext(explicitPath string, kindKubeconfig []byte, name string) (bool, error) {
	kindCfg, err := clientcmd.Load(kindKubeconfig)
	if err != nil {
		return false, fmt.Errorf("parsing kind's kubeconfig for cluster %q: %w", name, err)
	}
	key := ContextName(name)
	kctx, ok := kindCfg.Contexts[key]
	if !ok {
		return false, fmt.Errorf("kind's kubeconfig for cluster %q has no context %q", name, key)
	}
	kcluster, ok := kindCfg.Clusters[kctx.Cluster]
	if !ok {
		return false, fmt.Errorf("kind's kubeconfig for cluster %q has no cluster %q", name, kctx.Cluster)
	}
	kuser, ok := kindCfg.AuthInfos[kctx.AuthInfo]
	if !ok {
		return false, fmt.Errorf("kind's kubeconfig for cluster %q has no user %q", name, kctx.AuthInfo)
	}

	po := clientcmd.NewDefaultPathOptions()
	if explicitPath != "" {
		po.LoadingRules.ExplicitPath = explicitPath
	}
	current, err := po.GetStartingConfig()
	if err != nil {
		return false, fmt.Errorf("reading kubeconfig: %w", err)
	}
	if sameEntry(current, key, kctx, kcluster, kuser) {
		return false, nil
	}
	updated := current.DeepCopy()
	updated.Clusters[kctx.Cluster] = stripLocation(kcluster.DeepCopy())
	updated.AuthInfos[kctx.AuthInfo] = stripAuthLocation(kuser.DeepCopy())
	c := kctx.DeepCopy()
	c.LocationOfOrigin = ""
	updated.Contexts[key] = c
	// Keep the user's current-context exactly as it was.
	updated.CurrentContext = current.CurrentContext
	if err := clientcmd.ModifyConfig(po, *updated, false); err != nil {
		return false, fmt.Errorf("writing context %q to kubeconfig %s: %w", key, po.GetDefaultFilename(), err)
	}
	return true, nil
}

// sameEntry reports whether cfg already has context key with the same
// cluster endpoint/CA and user credentials as kind's kubeconfig.
func sameEntry(cfg *clientcmdapi.Config, key string, kctx *clientcmdapi.Context, kcluster *clientcmdapi.Cluster, kuser *clientcmdapi.AuthInfo) bool {
	c, ok := cfg.Contexts[key]
	if !ok || c.Cluster != kctx.Cluster || c.AuthInfo != kctx.AuthInfo {
		return false
	}
	cl, ok := cfg.Clusters[c.Cluster]
	if !ok || cl.Server != kcluster.Server || !bytes.Equal(cl.CertificateAuthorityData, kcluster.CertificateAuthorityData) {
		return false
	}
	u, ok := cfg.AuthInfos[c.AuthInfo]
	if !ok {
		return false
	}
	return bytes.Equal(u.ClientCertificateData, kuser.ClientCertificateData) &&
		bytes.Equal(u.ClientKeyData, kuser.ClientKeyData) &&
		reflect.DeepEqual(u.Token, kuser.Token)
}

func stripLocation(c *clientcmdapi.Cluster) *clientcmdapi.Cluster {
	c.LocationOfOrigin = ""
	return c
}

func stripAuthLocation(a *clientcmdapi.AuthInfo) *clientcmdapi.AuthInfo {
	a.LocationOfOrigin = ""
	return a
}
