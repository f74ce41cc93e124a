package helm

import (
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"helm.sh/helm/v4/pkg/action"
	"helm.sh/helm/v4/pkg/chart/common"
	kubefake "helm.sh/helm/v4/pkg/kube/fake"
	rcommon "helm.sh/helm/v4/pkg/release/common"
	release "helm.sh/helm/v4/pkg/release/v1"
	"helm.sh/helm/v4/pkg/storage"
	"helm.sh/helm/v4/pkg/storage/driver"
)

// memClient is a Client on Helm's in-memory release storage and its
// printing (no-op) kube client: the SDK's own actions, no cluster.
func memClient(labels map[string]string) (*Client, *driver.Memory) {
	mem := driver.NewMemory()
	return &Client{labels: labels, config: func(ns string) (*action.Configuration, error) {
		cfg := newConfiguration()
		mem.SetNamespace(ns)
		cfg.Releases = storage.Init(mem)
		cfg.KubeClient = &kubefake.PrintingKubeClient{Out: io.Discard}
		cfg.Capabilities = common.DefaultCapabilities.Copy()
		return cfg, nil
	}}, mem
}

func TestClientInstallUpgradeUnchangedUninstall(t *testing.T) {
	c, _ := memClient(map[string]string{"devloop.dev/project": "p"})
	ctx := context.Background()
	dir := webChart(t)
	s := spec(dir)
	load := func() *Chart {
		ch, err := Load(s, Repositories{})
		if err != nil {
			t.Fatal(err)
		}
		return ch
	}
	res, err := c.Deploy(ctx, load(), nil, time.Second)
	if err != nil || !res.Installed || res.Revision != 1 {
		t.Fatalf("first deploy = %+v, %v; want installed revision 1", res, err)
	}
	if res, err = c.Deploy(ctx, load(), nil, time.Second); err != nil || !res.Unchanged || res.Revision != 1 {
		t.Fatalf("same chart again = %+v, %v; want unchanged revision 1", res, err)
	}
	s.Set = map[string]string{"message": "changed"}
	if res, err = c.Deploy(ctx, load(), nil, time.Second); err != nil || res.Unchanged || res.Installed || res.Revision != 2 {
		t.Fatalf("values change = %+v, %v; want upgraded revision 2", res, err)
	}
	h, err := c.History("dev", "shop")
	if err != nil {
		t.Fatal(err)
	}
	if len(h) != 2 || h[0].Status != "superseded" || h[1].Status != "deployed" || !strings.Contains(h[1].Manifest, "changed") {
		t.Fatalf("history = %+v", h)
	}
	if err := c.Rollback("dev", "shop", 1, time.Second); err != nil {
		t.Fatal(err)
	}
	if h, _ = c.History("dev", "shop"); len(h) != 3 || h[2].Status != "deployed" || strings.Contains(h[2].Manifest, "changed") {
		t.Fatalf("history after rollback = %+v", h)
	}
	// devloop's next deploy (values still "changed") upgrades over the rollback.
	if res, err = c.Deploy(ctx, load(), nil, time.Second); err != nil || res.Revision != 4 {
		t.Fatalf("deploy after rollback = %+v, %v", res, err)
	}
	rels, err := c.Releases()
	if err != nil || len(rels) != 1 || rels[0] != (Deployed{Name: "shop", Namespace: "dev"}) {
		t.Fatalf("releases = %+v, %v", rels, err)
	}
	other, _ := memClient(map[string]string{"devloop.dev/project": "q"})
	if rels, _ := other.Releases(); len(rels) != 0 {
		t.Errorf("another project lists %v", rels)
	}
	hooks, err := c.Uninstall("dev", "shop", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if len(hooks) != 1 || !strings.Contains(hooks[0], "name: shop-migrate") {
		t.Errorf("uninstall returned the hooks %q, want the release's migrate Job", hooks)
	}
	if hooks, err := c.Uninstall("dev", "shop", time.Second); err != nil || len(hooks) != 0 {
		t.Errorf("uninstalling a gone release: %q, %v", hooks, err)
	}
	if res, err = c.Deploy(ctx, load(), nil, time.Second); err != nil || !res.Installed {
		t.Fatalf("deploy after uninstall = %+v, %v; want a new install", res, err)
	}
}

// An interrupted upgrade (a revision left pending) does not block the next one.
func TestClientSettlesPendingRevision(t *testing.T) {
	c, _ := memClient(nil)
	ctx := context.Background()
	ch, err := Load(spec(webChart(t)), Repositories{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Deploy(ctx, ch, nil, time.Second); err != nil {
		t.Fatal(err)
	}
	cfg, _ := c.configuration("dev")
	last, err := cfg.Releases.Last("shop")
	if err != nil {
		t.Fatal(err)
	}
	rel, _ := v1(last)
	rel.SetStatus(rcommon.StatusPendingUpgrade, "interrupted")
	if err := cfg.Releases.Update(rel); err != nil {
		t.Fatal(err)
	}
	res, err := c.Deploy(ctx, ch, nil, time.Second)
	if err != nil || res.Revision != 2 {
		t.Fatalf("deploy over a pending revision = %+v, %v", res, err)
	}
}

func TestSameReleaseValuesAsStored(t *testing.T) {
	r := &Rendered{Manifest: "m"}
	for _, tt := range []struct {
		stored, now map[string]any
		same        bool
	}{
		{nil, map[string]any{}, true},
		{map[string]any{"n": float64(12345678901)}, map[string]any{"n": int64(12345678901)}, true},
		{map[string]any{"a": map[string]any{"b": "c"}}, map[string]any{"a": map[string]any{"b": "c"}}, true},
		{map[string]any{"n": float64(1)}, map[string]any{"n": int64(2)}, false},
		{nil, map[string]any{"x": "y"}, false},
	} {
		last := &release.Release{Manifest: "m", Config: tt.stored}
		if got := sameRelease(last, r, tt.now); got != tt.same {
			t.Errorf("sameRelease(%v, %v) = %v", tt.stored, tt.now, got)
		}
	}
}
