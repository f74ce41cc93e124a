package cluster

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/rest"
)

func TestUsableBroken(t *testing.T) {
	for _, tc := range []struct {
		name   string
		break_ func(f *fixture)
		reason string
		repair string
	}{
		{"paused", func(f *fixture) {
			f.docker.containers["cx-b-control-plane"] = ContainerInfo{Exists: true, Running: true, Paused: true, KindCluster: "cx-b"}
		}, "its node container cx-b-control-plane is paused", "docker unpause cx-b-control-plane"},
		{"stopped", func(f *fixture) {
			f.docker.containers["cx-b-control-plane"] = ContainerInfo{Exists: true, KindCluster: "cx-b"}
		}, "its node container cx-b-control-plane is stopped", "docker start cx-b-control-plane"},
		{"docker exec fails", func(f *fixture) {
			f.prov.kubeconfigErr = errors.New("command \"docker exec --privileged cx-b-control-plane cat /etc/kubernetes/admin.conf\" failed with error: exit status 1")
		}, "kind cannot read its kubeconfig from the node", "docker restart cx-b-control-plane"},
		{"api server down", func(f *fixture) {
			f.apiErr = errors.New("Get \"https://127.0.0.1:40000/readyz\": dial tcp 127.0.0.1:40000: connect: connection refused")
		}, "its API server at https://127.0.0.1:40000 does not answer (Get", "docker restart cx-b-control-plane"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, "cx-b")
			tc.break_(f)
			_, err := f.m.Usable(context.Background(), "cx-b")
			var be *BrokenError
			if !errors.As(err, &be) {
				t.Fatalf("err = %v, want a *BrokenError", err)
			}
			if !strings.HasPrefix(be.Reason, tc.reason) || be.Repair != tc.repair {
				t.Errorf("reason %q, repair %q", be.Reason, be.Repair)
			}
			msg := err.Error()
			for _, want := range []string{`kind cluster "cx-b" cannot be reached: ` + tc.reason, "`" + tc.repair + "`", "`devloop down --cluster`"} {
				if !strings.Contains(msg, want) {
					t.Errorf("message lacks %q:\n%s", want, msg)
				}
			}
			// RESTConfig (what every command opening the cluster calls) says the same.
			if _, err := f.m.RESTConfig("cx-b"); !errors.As(err, &be) {
				t.Errorf("RESTConfig err = %v", err)
			}
			// Down deletes it anyway and says what it did not clean.
			ran := false
			notCleaned, err := f.m.Down(context.Background(), "cx-b", func(context.Context, *rest.Config) error { ran = true; return nil })
			if err != nil {
				t.Fatal(err)
			}
			if ran || !errors.As(notCleaned, &be) || !strings.Contains(be.NotCleaned(), "did not remove what devloop deployed inside kind cluster \"cx-b\" ("+tc.reason) {
				t.Errorf("cleanup ran %v, notCleaned %v", ran, notCleaned)
			}
			if ok, _ := f.m.Exists("cx-b"); ok {
				t.Error("the broken cluster still exists")
			}
			if !strings.Contains(f.log.String(), "WARNING: did not remove what devloop deployed inside kind cluster \"cx-b\"") {
				t.Errorf("not said in the output:\n%s", f.log.String())
			}
		})
	}
}

func TestDownHealthyRunsCleanup(t *testing.T) {
	f := newFixture(t, "cx-h")
	var got *rest.Config
	notCleaned, err := f.m.Down(context.Background(), "cx-h", func(_ context.Context, rc *rest.Config) error { got = rc; return nil })
	if err != nil || notCleaned != nil {
		t.Fatalf("Down = %v, %v", notCleaned, err)
	}
	if got == nil || got.Host != f.prov.server {
		t.Errorf("cleanup got %+v", got)
	}
	if ok, _ := f.m.Exists("cx-h"); ok {
		t.Error("not deleted")
	}
	// A failing cleanup does not keep the cluster.
	f = newFixture(t, "cx-h")
	notCleaned, err = f.m.Down(context.Background(), "cx-h", func(context.Context, *rest.Config) error {
		return errors.New("the server is currently unable to handle the request")
	})
	if err != nil || notCleaned == nil || !strings.Contains(notCleaned.Error(), "unable to handle") {
		t.Fatalf("Down = %v, %v", notCleaned, err)
	}
	if ok, _ := f.m.Exists("cx-h"); ok {
		t.Error("not deleted after a failing cleanup")
	}
}

// TestDeleteUnpausesWhenRemoveFails: an engine that refuses to remove a
// paused container gets it unpaused, then the deletion is retried.
func TestDeleteUnpausesWhenRemoveFails(t *testing.T) {
	f := newFixture(t, "cx-p")
	f.docker.containers["cx-p-control-plane"] = ContainerInfo{Exists: true, Running: true, Paused: true, KindCluster: "cx-p"}
	f.prov.deleteErr = func(string) error {
		if f.docker.containers["cx-p-control-plane"].Paused {
			return errors.New("failed to delete nodes: You cannot remove a paused container")
		}
		return nil
	}
	if err := f.m.Delete(context.Background(), "cx-p"); err != nil {
		t.Fatal(err)
	}
	if strings.Join(f.docker.unpaused, ",") != "cx-p-control-plane" {
		t.Errorf("unpaused %v", f.docker.unpaused)
	}
	if ok, _ := f.m.Exists("cx-p"); ok {
		t.Error("not deleted")
	}
}

// A node the engine fails to remove at first (Docker 28: "did not receive
// an exit event") is removed on a later try; one that never goes fails
// Delete with the engine's words, after five tries.
func TestDeleteRetriesATransientRemoveFailure(t *testing.T) {
	f := newFixture(t, "cx-r", "cx-s")
	f.m.deleteRetry = time.Millisecond
	tries := map[string]int{}
	f.prov.deleteErr = func(name string) error {
		tries[name]++
		if name == "cx-s" || tries[name] == 1 {
			return errors.New(`failed to delete nodes: could not kill container: tried to kill container, but did not receive an exit event`)
		}
		return nil
	}
	if err := f.m.Delete(context.Background(), "cx-r"); err != nil {
		t.Fatal(err)
	}
	if ok, _ := f.m.Exists("cx-r"); ok || tries["cx-r"] != 2 {
		t.Errorf("exists %v after %d tries", ok, tries["cx-r"])
	}
	err := f.m.Delete(context.Background(), "cx-s")
	if err == nil || !strings.Contains(err.Error(), "did not receive an exit event") || tries["cx-s"] != 5 {
		t.Errorf("err = %v after %d tries", err, tries["cx-s"])
	}
}

// A node whose removal never ends because a cgroup inside it is frozen (a
// container creation cut off mid-way) is thawed, then removed; the frozen
// cgroups of other containers are left alone.
func TestDeleteThawsFrozenCgroupsOfTheNode(t *testing.T) {
	f := newFixture(t, "cx-f")
	f.m.deleteRetry = time.Millisecond
	root := t.TempDir()
	f.m.cgroupRoot = root
	const id = "0123abcd"
	f.docker.containers["cx-f-control-plane"] = ContainerInfo{Exists: true, Running: true, KindCluster: "cx-f", ID: id}
	v1 := filepath.Join(root, "freezer", "docker", id, "kubelet.slice", "pod", "cri-containerd-x.scope")
	other := filepath.Join(root, "freezer", "docker", "fedcba98", "frozen")
	v2 := filepath.Join(root, "system.slice", "docker-"+id+".scope", "kubelet.slice", "y")
	for _, d := range []string{v1, other, v2} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for path, content := range map[string]string{
		filepath.Join(v1, "freezer.state"):    "FROZEN\n",
		filepath.Join(other, "freezer.state"): "FROZEN\n",
		filepath.Join(v2, "cgroup.freeze"):    "1\n",
	} {
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	f.prov.deleteErr = func(string) error {
		if b, _ := os.ReadFile(filepath.Join(v1, "freezer.state")); strings.TrimSpace(string(b)) != "THAWED" {
			return errors.New("failed to delete nodes: could not kill container: tried to kill container, but did not receive an exit event")
		}
		return nil
	}
	if err := f.m.Delete(context.Background(), "cx-f"); err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]string{
		filepath.Join(v1, "freezer.state"):    "THAWED",
		filepath.Join(v2, "cgroup.freeze"):    "0",
		filepath.Join(other, "freezer.state"): "FROZEN",
	} {
		if b, _ := os.ReadFile(path); strings.TrimSpace(string(b)) != want {
			t.Errorf("%s = %q, want %s", path, b, want)
		}
	}
	if !strings.Contains(f.log.String(), "Thawed 2 frozen cgroup(s)") {
		t.Errorf("log:\n%s", f.log.String())
	}
}

func TestEnsurePausedNode(t *testing.T) {
	f := newFixture(t, "cx-q")
	f.docker.containers["cx-q-control-plane"] = ContainerInfo{Exists: true, Running: true, Paused: true, KindCluster: "cx-q"}
	_, err := f.m.Ensure(context.Background(), testSpec(t, "cx-q"))
	if err == nil || !strings.Contains(err.Error(), "docker unpause cx-q-control-plane") {
		t.Fatalf("err = %v", err)
	}
}
