package cluster

import (
	"os"
	"path/filepath"
	"testing"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// writeUserKubeconfig writes a kubeconfig with one unrelated context "work"
// that is current.
func writeUserKubeconfig(t *testing.T) string {
	t.Helper()
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["work"] = &clientcmdapi.Cluster{Server: "https://work.example:6443"}
	cfg.AuthInfos["work"] = &clientcmdapi.AuthInfo{Token: "t"}
	cfg.Contexts["work"] = &clientcmdapi.Context{Cluster: "work", AuthInfo: "work"}
	cfg.CurrentContext = "work"
	path := filepath.Join(t.TempDir(), "config")
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestExportContextKeepsCurrentContext(t *testing.T) {
	path := writeUserKubeconfig(t)

	wrote, err := exportContext(path, fakeKindKubeconfig("cx-a", "https://127.0.0.1:40000"), "cx-a")
	if err != nil {
		t.Fatal(err)
	}
	if !wrote {
		t.Error("first export wrote nothing")
	}
	got, err := clientcmd.LoadFromFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if got.CurrentContext != "work" {
		t.Errorf("current-context = %q, want it unchanged (work)", got.CurrentContext)
	}
	c, ok := got.Contexts["kind-cx-a"]
	if !ok {
		t.Fatalf("context kind-cx-a missing; contexts: %v", got.Contexts)
	}
	if cl := got.Clusters[c.Cluster]; cl == nil || cl.Server != "https://127.0.0.1:40000" {
		t.Errorf("cluster = %+v", cl)
	}
	if _, ok := got.Contexts["work"]; !ok {
		t.Error("unrelated context work was dropped")
	}

	before, _ := os.ReadFile(path)
	wrote, err = exportContext(path, fakeKindKubeconfig("cx-a", "https://127.0.0.1:40000"), "cx-a")
	if err != nil {
		t.Fatal(err)
	}
	after, _ := os.ReadFile(path)
	if wrote || string(before) != string(after) {
		t.Error("second export of an identical context rewrote the kubeconfig")
	}

	// A recreated cluster (new port) updates the entry, still keeping current-context.
	wrote, err = exportContext(path, fakeKindKubeconfig("cx-a", "https://127.0.0.1:40001"), "cx-a")
	if err != nil {
		t.Fatal(err)
	}
	got, _ = clientcmd.LoadFromFile(path)
	if !wrote || got.Clusters["kind-cx-a"].Server != "https://127.0.0.1:40001" || got.CurrentContext != "work" {
		t.Errorf("stale entry not updated: wrote=%v server=%q current=%q", wrote, got.Clusters["kind-cx-a"].Server, got.CurrentContext)
	}
}

func TestExportContextCreatesMissingFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "config")
	if _, err := exportContext(path, fakeKindKubeconfig("cx-b", "https://127.0.0.1:40000"), "cx-b"); err != nil {
		t.Fatal(err)
	}
	got, err := clientcmd.LoadFromFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := got.Contexts["kind-cx-b"]; !ok {
		t.Errorf("context missing: %v", got.Contexts)
	}
	if got.CurrentContext != "" {
		t.Errorf("current-context = %q, want none set", got.CurrentContext)
	}
}

func TestRESTConfigUsesKindContextOnly(t *testing.T) {
	// kind's kubeconfig with an extra context made current: devloop must
	// still use kind-cx-a.
	cfg, err := clientcmd.Load(fakeKindKubeconfig("cx-a", "https://127.0.0.1:40000"))
	if err != nil {
		t.Fatal(err)
	}
	cfg.Clusters["other"] = &clientcmdapi.Cluster{Server: "https://other:6443"}
	cfg.Contexts["other"] = &clientcmdapi.Context{Cluster: "other", AuthInfo: "kind-cx-a"}
	cfg.CurrentContext = "other"
	b, err := clientcmd.Write(*cfg)
	if err != nil {
		t.Fatal(err)
	}
	rc, err := restConfigFor(b, "cx-a")
	if err != nil {
		t.Fatal(err)
	}
	if rc.Host != "https://127.0.0.1:40000" {
		t.Errorf("Host = %q, want the kind-cx-a server", rc.Host)
	}
	if _, err := restConfigFor(b, "nope"); err == nil {
		t.Error("missing context: want error")
	}
}
