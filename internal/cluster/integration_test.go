package cluster

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/devloop-dev/devloop/internal/config"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/kind/pkg/cluster/nodeutils"
)

// TestIntegrationCluster creates a real kind cluster, adopts it, installs the
// addons and deletes it. It runs only when DEVLOOP_IT_NODE_IMAGE names a
// local kind node image (e.g. devloop.local/kind-node:v1.37.2 from
// e2e/setup.sh) and PATH has the docker shim where --privileged fails.
// DEVLOOP_IT_TRAEFIK_IMAGE optionally names the local Traefik image.
func TestIntegrationCluster(t *testing.T) {
	nodeImage := os.Getenv("DEVLOOP_IT_NODE_IMAGE")
	if nodeImage == "" || testing.Short() {
		t.Skip("set DEVLOOP_IT_NODE_IMAGE to run against a real kind cluster")
	}
	name := fmt.Sprintf("cx-it-%d", time.Now().UnixNano()%100000)
	kubeconfig := writeUserKubeconfig(t)
	var log bytes.Buffer
	m := NewManager(&log, withKubeconfigPath(kubeconfig), withMarks(filepath.Join(t.TempDir(), "marks")))
	spec := config.Cluster{Name: name, NodeImage: nodeImage,
		Ingress: config.Ingress{HTTPPort: freePort(t), HTTPSPort: freePort(t), Image: os.Getenv("DEVLOOP_IT_TRAEFIK_IMAGE")}}
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	t.Cleanup(func() {
		if err := m.Delete(context.Background(), name); err != nil {
			t.Errorf("cleanup: %v", err)
		}
		t.Logf("kind output:\n%s", log.String())
	})

	start := time.Now()
	info, err := m.Ensure(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("created in %s: nodes %v", time.Since(start), info.Nodes)
	if !info.Created {
		t.Error("Created = false")
	}
	again, err := m.Ensure(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	if again.Created || again.RESTConfig.Host != info.RESTConfig.Host {
		t.Errorf("second Ensure did not adopt: %+v", again)
	}

	cs, err := kubernetes.NewForConfig(info.RESTConfig)
	if err != nil {
		t.Fatal(err)
	}
	dyn, err := dynamic.NewForConfig(info.RESTConfig)
	if err != nil {
		t.Fatal(err)
	}
	load := func(ctx context.Context, ref string) error {
		kp, ok := m.Provider().(*KindProvider)
		if !ok {
			return fmt.Errorf("not a kind provider")
		}
		nodes, err := kp.Kind.ListNodes(name)
		if err != nil {
			return err
		}
		for _, n := range nodes {
			var tar bytes.Buffer
			cmd := exec.CommandContext(ctx, "docker", "save", ref)
			cmd.Stdout = &tar
			if err := cmd.Run(); err != nil {
				return fmt.Errorf("docker save %s: %w", ref, err)
			}
			if err := nodeutils.LoadImageArchive(n, &tar); err != nil {
				return err
			}
		}
		return nil
	}
	start = time.Now()
	for i := 0; i < 2; i++ { // the second run must be a no-op that succeeds
		if err := InstallAddons(ctx, cs, dyn, spec, load, AddonOptions{Timeout: 3 * time.Minute}); err != nil {
			t.Fatalf("InstallAddons run %d: %v", i+1, err)
		}
	}
	t.Logf("addons ready in %s", time.Since(start))

	// Traefik answers on the host port through the node's hostPort (404: no routes yet).
	url := fmt.Sprintf("http://127.0.0.1:%d/", spec.Ingress.HTTPPort)
	var lastErr error
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(500 * time.Millisecond) {
		resp, err := http.Get(url)
		if err != nil {
			lastErr = err
			continue
		}
		resp.Body.Close()
		if resp.StatusCode == http.StatusNotFound {
			return
		}
		lastErr = fmt.Errorf("status %s", resp.Status)
	}
	t.Errorf("ingress at %s not answering 404: %v", url, lastErr)
}
