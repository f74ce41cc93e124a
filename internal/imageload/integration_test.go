package imageload

import (
	"bytes"
	"context"
	"crypto/rand"
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
	"github.com/devloop-dev/devloop/internal/imageload/localnode"
)

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
		if os.Getenv("DEVLOOP_REQUIRE_DOCKER") == "1" {
			t.Fatalf("DEVLOOP_REQUIRE_DOCKER=1 but Docker is unreachable: %v", err)
		}
		t.Skipf("Docker unreachable: %v", err)
	}
	defer dc.Close()
	if os.Geteuid() != 0 {
		t.Skip("needs root to run containerd")
	}
	ctrd, err := localnode.Start(ctx)
	if err != nil {
		t.Skipf("no local containerd: %v", err)
	}
	t.Cleanup(ctrd.Stop)
	sock := ctrd.Address

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

	node := &localnode.Node{Name: "ctrd-node", Address: sock}
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

// TestIntegrationBuildKitAttestations builds, with the docker CLI (BuildKit,
// which adds a provenance attestation on the containerd image store), two
// images that differ in their top layer, and loads them into a real
// containerd through the fast path: no fallback, one layer the second time,
// the image already there the third, and the images unpacked. On the
// classic store the save is Docker 25+'s OCI layout without attestations.
func TestIntegrationBuildKitAttestations(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test (-short)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	dc, err := build.NewDockerClient(ctx)
	if err != nil {
		if os.Getenv("DEVLOOP_REQUIRE_DOCKER") == "1" {
			t.Fatalf("DEVLOOP_REQUIRE_DOCKER=1 but Docker is unreachable: %v", err)
		}
		t.Skipf("Docker unreachable: %v", err)
	}
	defer dc.Close()
	if err := exec.CommandContext(ctx, "docker", "buildx", "version").Run(); err != nil {
		t.Skipf("no docker buildx: %v", err)
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root to run containerd")
	}
	ctrd, err := localnode.Start(ctx)
	if err != nil {
		t.Skipf("no local containerd: %v", err)
	}
	t.Cleanup(ctrd.Stop)

	dir := t.TempDir()
	write := func(name string, size int) {
		b := make([]byte, size)
		rand.Read(b)
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte("FROM scratch\nCOPY base.bin /base.bin\nCOPY top.bin /top.bin\n"), 0o644)
	write("base.bin", 3<<20)
	var refs []string
	for i := range 2 {
		write("top.bin", 1<<20)
		ref := fmt.Sprintf("devloop-loadtest-bk:%d-%d", os.Getpid(), i)
		if out, err := exec.CommandContext(ctx, "docker", "build", "-q", "-t", ref, dir).CombinedOutput(); err != nil {
			t.Fatalf("docker build: %v\n%s", err, out)
		}
		refs = append(refs, ref)
		t.Cleanup(func() { exec.Command("docker", "image", "rm", "-f", ref).Run() })
	}
	node := &localnode.Node{Name: "ctrd-node", Address: ctrd.Address}
	var out bytes.Buffer
	var res []NodeResult
	for _, ref := range []string{refs[0], refs[1], refs[1]} {
		r, err := NewLoader(dc, fakeLister{node}).Load(ctx, "x", ref, &out)
		if err != nil {
			t.Fatalf("load %s: %v\n%s", ref, err, out.String())
		}
		res = append(res, r.Nodes[0])
	}
	t.Logf("first %+v\nsecond %+v\nthird %+v", res[0], res[1], res[2])
	if out.Len() > 0 {
		t.Errorf("notes (a fallback?): %s", out.String())
	}
	if n := res[0]; !n.Fast || n.Format != FormatOCI || n.LayersSent != 2 {
		t.Errorf("first load = %+v", n)
	}
	if n := res[1]; !n.Fast || n.LayersSent != 1 || n.LayersSkipped != 1 || n.Bytes > 2<<20 {
		t.Errorf("second load = %+v", n)
	}
	if n := res[2]; !n.Skipped {
		t.Errorf("third load = %+v", n)
	}
	for _, ref := range refs {
		var o bytes.Buffer
		c := exec.CommandContext(ctx, "ctr", "--address", ctrd.Address, "-n", "k8s.io", "images", "check", "name=="+normalize(ref))
		c.Stdout, c.Stderr = &o, &o
		if err := c.Run(); err != nil || !strings.Contains(o.String(), "complete") {
			t.Errorf("ctr images check %s: %v\n%s", ref, err, o.String())
		}
	}
}
