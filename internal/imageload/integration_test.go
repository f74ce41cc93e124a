package imageload

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"github.com/devloop-dev/devloop/internal/build"
	"github.com/devloop-dev/devloop/internal/config"
)

// ctrdNode runs a node's commands against a private containerd on this host:
// ctr gets --address, `crictl inspecti` is emulated with ctr, and
// `containerd config dump` reports the overlayfs snapshotter.
func ctrdNode(name, sock string) *funcNode {
	ctr := func(ctx context.Context, stdin io.Reader, stdout, stderr io.Writer, args ...string) error {
		c := exec.CommandContext(ctx, "ctr", append([]string{"--address", sock}, args...)...)
		c.Stdin, c.Stdout, c.Stderr = stdin, stdout, stderr
		return c.Run()
	}
	return &funcNode{name: name, run: func(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
		switch {
		case args[0] == "ctr":
			return ctr(ctx, stdin, stdout, stderr, args[1:]...)
		case strings.Join(args, " ") == "containerd config dump":
			_, err := io.WriteString(stdout, "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".containerd]\n  snapshotter = \"overlayfs\"\n")
			return err
		case args[0] == "crictl" && args[1] == "inspecti":
			var ls bytes.Buffer
			if err := ctr(ctx, nil, &ls, io.Discard, "-n", "k8s.io", "images", "ls", "name=="+normalize(args[2])); err != nil {
				return err
			}
			lines := strings.Split(strings.TrimSpace(ls.String()), "\n")
			if len(lines) < 2 {
				return fmt.Errorf("image %s not found", args[2])
			}
			manifest := strings.Fields(lines[1])[2]
			var mb bytes.Buffer
			if err := ctr(ctx, nil, &mb, io.Discard, "-n", "k8s.io", "content", "get", manifest); err != nil {
				return err
			}
			var m struct{ Config struct{ Digest string } }
			if err := json.Unmarshal(mb.Bytes(), &m); err != nil {
				return err
			}
			return json.NewEncoder(stdout).Encode(map[string]any{"status": map[string]any{"id": m.Config.Digest}})
		}
		return fmt.Errorf("unexpected command %v", args)
	}}
}

// startContainerd runs a throwaway containerd (the one kind nodes run) in a
// temp dir, or skips.
func startContainerd(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("containerd"); err != nil {
		t.Skip("containerd not installed")
	}
	if _, err := exec.LookPath("ctr"); err != nil {
		t.Skip("ctr not installed")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root to run containerd")
	}
	dir, err := os.MkdirTemp("", "devloop-ctrd-")
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "c.sock")
	cfg := fmt.Sprintf("version = 2\nroot = %q\nstate = %q\ndisabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n[grpc]\n  address = %q\n[ttrpc]\n  address = %q\n",
		filepath.Join(dir, "root"), filepath.Join(dir, "state"), sock, sock+".ttrpc")
	if err := os.WriteFile(filepath.Join(dir, "config.toml"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	var log bytes.Buffer
	cmd := exec.Command("containerd", "--config", filepath.Join(dir, "config.toml"))
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Skipf("starting containerd: %v", err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		exec.Command("umount", "-R", filepath.Join(dir, "root")).Run()
		os.RemoveAll(dir)
	})
	deadline := time.Now().Add(20 * time.Second)
	for {
		if exec.Command("ctr", "--address", sock, "version").Run() == nil {
			return sock
		}
		if time.Now().After(deadline) {
			t.Skipf("containerd did not come up: %s", log.String())
		}
		time.Sleep(100 * time.Millisecond) // polling an external daemon, not synchronising goroutines
	}
}

// TestIntegrationFastLoadRealContainerd builds two FROM scratch images that
// differ in their top layer with the real Docker engine and loads them into a
// real containerd 1.6 through the fast path, checking that the second load
// sends one layer and that containerd can unpack both images.
func TestIntegrationFastLoadRealContainerd(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test (-short)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	dc, err := build.NewDockerClient(ctx)
	if err != nil {
		t.Skipf("Docker unreachable: %v", err)
	}
	defer dc.Close()
	sock := startContainerd(t)

	dir := t.TempDir()
	write := func(name string, size int) {
		b := make([]byte, size)
		rand.Read(b)
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("base.bin", 3<<20)
	write("top.bin", 1<<20)
	os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte("FROM scratch\nCOPY base.bin /base.bin\nCOPY top.bin /top.bin\n"), 0o644)
	b := build.NewBuilder(dc)
	svc := config.Service{Name: "lt", Image: "devloop-loadtest", Build: config.Build{Context: dir}}
	img1, err := b.Build(ctx, svc, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		dc.ImageRemove(context.Background(), img1.ID, client.ImageRemoveOptions{Force: true, PruneChildren: true})
	})
	write("top.bin", 1<<20)
	img2, err := b.Build(ctx, svc, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		dc.ImageRemove(context.Background(), img2.ID, client.ImageRemoveOptions{Force: true, PruneChildren: true})
	})

	node := ctrdNode("ctrd-node", sock)
	l := NewLoader(dc, fakeLister{node})
	var out bytes.Buffer
	r1, err := l.Load(ctx, "x", img1.Ref(), &out)
	if err != nil {
		t.Fatalf("first load: %v\n%s", err, out.String())
	}
	r2, err := l.Load(ctx, "x", img2.Ref(), &out)
	if err != nil {
		t.Fatalf("second load: %v\n%s", err, out.String())
	}
	r3, err := l.Load(ctx, "x", img2.Ref(), &out)
	if err != nil {
		t.Fatalf("third load: %v\n%s", err, out.String())
	}
	t.Logf("first %+v\nsecond %+v\nthird %+v\nnotes: %s", r1.Nodes[0], r2.Nodes[0], r3.Nodes[0], out.String())
	if n := r1.Nodes[0]; !n.Fast || n.LayersSent != 2 || n.Bytes < 4<<20 {
		t.Errorf("first load = %+v", n)
	}
	if n := r2.Nodes[0]; !n.Fast || n.LayersSent != 1 || n.LayersSkipped != 1 || n.Bytes > 2<<20 {
		t.Errorf("second load = %+v", n)
	}
	if n := r3.Nodes[0]; !n.Skipped {
		t.Errorf("third load = %+v", n)
	}
	// Both images are unpacked (usable by a container) in the node.
	for _, img := range []build.Image{img1, img2} {
		var o bytes.Buffer
		c := exec.CommandContext(ctx, "ctr", "--address", sock, "-n", "k8s.io", "images", "check", "name=="+normalize(img.Ref()))
		c.Stdout, c.Stderr = &o, &o
		if err := c.Run(); err != nil || !strings.Contains(o.String(), "complete") {
			t.Errorf("ctr images check %s: %v\n%s", img.Ref(), err, o.String())
		}
	}
}
