package cluster

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/devloop-dev/devloop/internal/config"
)

func kubeconfigWith(servers map[string]string) func() (*clientcmdapi.Config, error) {
	return func() (*clientcmdapi.Config, error) {
		kc := clientcmdapi.NewConfig()
		for name, server := range servers {
			kc.Clusters[name] = &clientcmdapi.Cluster{Server: server}
			kc.AuthInfos[name] = &clientcmdapi.AuthInfo{Token: "t"}
			kc.Contexts[name] = &clientcmdapi.Context{Cluster: name, AuthInfo: name}
		}
		kc.CurrentContext = "current"
		return kc, nil
	}
}

func TestExistingReachesOnlyTheNamedContext(t *testing.T) {
	var readyz int
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/readyz" {
			readyz++
			_, _ = w.Write([]byte("ok"))
			return
		}
		http.NotFound(w, r)
	}))
	defer api.Close()
	current := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Errorf("the current-context's server was asked %s", r.URL.Path)
	}))
	defer current.Close()
	e := &Existing{Load: kubeconfigWith(map[string]string{"team-dev": api.URL, "current": current.URL})}

	info, err := e.Ensure(context.Background(), config.Cluster{Context: "team-dev", Name: "devloop"})
	if err != nil {
		t.Fatal(err)
	}
	if info.Created || info.RESTConfig.Host != api.URL || info.Context != "team-dev" || readyz != 1 {
		t.Errorf("info %+v, readyz %d", info, readyz)
	}
	if ok, err := e.Exists("team-dev"); !ok || err != nil {
		t.Errorf("Exists = %v, %v", ok, err)
	}
	if ok, err := e.Exists("nope"); ok || err != nil {
		t.Errorf("Exists(nope) = %v, %v", ok, err)
	}
}

func TestExistingRefusals(t *testing.T) {
	e := &Existing{Load: kubeconfigWith(map[string]string{"b-dev": "https://127.0.0.1:1", "a-dev": "https://127.0.0.1:1"})}
	_, err := e.Ensure(context.Background(), config.Cluster{Context: "missing"})
	var nc *NoContextError
	if !errors.As(err, &nc) || !strings.Contains(err.Error(), `context "missing" is not in your kubeconfig`) ||
		!strings.Contains(err.Error(), "it has: a-dev, b-dev") {
		t.Errorf("missing context: %v", err)
	}
	_, err = e.Usable(context.Background(), "a-dev")
	var ue *UnreachableError
	if !errors.As(err, &ue) || !strings.Contains(err.Error(), "does not answer") {
		t.Errorf("unreachable: %v", err)
	}
	if err := e.Delete(context.Background(), "a-dev"); err == nil || !strings.Contains(err.Error(), "never deletes") {
		t.Errorf("Delete: %v", err)
	}
	if _, err := e.Down(context.Background(), "a-dev", nil); err == nil {
		t.Error("Down did not refuse")
	}
	if owned, _ := e.Owned("a-dev"); owned {
		t.Error("an existing cluster is never owned")
	}
}
