// Command loadbench times devloop's image loader against `kind load
// docker-image` on a real kind cluster: a first load and a load after a
// one-layer change, for FROM scratch images of several sizes.
//
// Usage (on hosts where `docker run --privileged` fails, put the docker shim
// first in PATH so kind's `docker exec --privileged` works):
//
//	go build -o /tmp/kind sigs.k8s.io/kind
//	PATH=/work/shared/offline-kind/shim:$PATH go run ./cmd/loadbench -cluster bx-bench -kind /tmp/kind
//
// Without a cluster, -local-containerd starts a throwaway containerd on this
// host (root needed) as the only "node"; the baseline is then kind's own
// sequence run through kind's library (docker save -o to a temp file,
// nodeutils.LoadImageArchive), without the `docker exec` transport.
//
// With -registry localhost:<port> (a cluster devloop made with
// cluster.registry, whose nodes pull from it), a third tool is timed:
// devloop's push delivery (imageload.Pusher) followed by a `crictl pull` of
// the pushed reference in every node at once, which is what the kubelet
// does when the pod starts.
//
// Every image is FROM scratch with four layers of random bytes (40/30/20/10%
// of the size); the "one-layer change" rewrites only the top layer's file.
// Each tool loads its own images (fresh random content), so neither benefits
// from the other's work. Images are removed from Docker and the nodes at the end.
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/moby/moby/client"
	"golang.org/x/sync/errgroup"
	"sigs.k8s.io/kind/pkg/cluster/nodes"
	"sigs.k8s.io/kind/pkg/cluster/nodeutils"

	"github.com/devloop-dev/devloop/internal/build"
	dlcluster "github.com/devloop-dev/devloop/internal/cluster"
	"github.com/devloop-dev/devloop/internal/config"
	"github.com/devloop-dev/devloop/internal/imageload"
	"github.com/devloop-dev/devloop/internal/imageload/localnode"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "loadbench:", err)
		os.Exit(1)
	}
}

type measurement struct {
	sizeMB            int
	tool              string
	first, afterOne   []time.Duration
	firstB, afterOneB int64
	format            string // devloop: the docker save layout its fast path read
	err               string // the tool failed: its error
}

func run() error {
	clusterName := flag.String("cluster", "", "name of an existing kind cluster")
	local := flag.Bool("local-containerd", false, "instead of a cluster, load into a throwaway containerd on this host; the baseline is kind's own sequence (docker save to a temp file, then nodeutils.LoadImageArchive)")
	kindBin := flag.String("kind", "kind", "kind binary for the baseline")
	sizes := flag.String("sizes", "20,100,500", "image sizes in MB, comma separated")
	runs := flag.Int("runs", 3, "repetitions per measurement (the median is reported)")
	eachRun := flag.Bool("cleanup-each-run", false, "remove each run's images (Docker and nodes) and the unused build cache after the run, so 500 MB runs fit a small disk")
	registryHost := flag.String("registry", "", "also time push+pull through this registry (localhost:<port>, the cluster's cluster.registry)")
	relay := flag.Bool("relay", true, "also time devloop's loader with the image relay (the engine pushes to devloop, which streams into the nodes): what `devloop up` uses; \"devloop imageload\" is the loader reading docker save")
	useCLI := flag.Bool("docker-build", true, "build with the docker CLI (BuildKit on Docker 23+, with its default provenance attestation on the containerd image store), as users' images are built; false: devloop's builder")
	flag.Parse()
	if (*clusterName == "") == !*local {
		return fmt.Errorf("give exactly one of -cluster or -local-containerd")
	}
	ctx := context.Background()
	dc, err := build.NewDockerClient(ctx)
	if err != nil {
		return err
	}
	defer dc.Close()
	// devloop reaches the nodes through the Engine API, as `devloop up` does.
	var lister imageload.NodeLister = dlcluster.EngineNodes{API: dc}
	if *local {
		ctrd, err := localnode.Start(ctx)
		if err != nil {
			return err
		}
		defer ctrd.Stop()
		lister = staticNodes{&localnode.Node{Name: "local-containerd", Address: ctrd.Address}}
	}
	nodeList, err := lister.ListInternalNodes(*clusterName)
	if err != nil || len(nodeList) == 0 {
		return fmt.Errorf("cluster %q: nodes %d, %v", *clusterName, len(nodeList), err)
	}
	builder := build.NewBuilder(dc)
	loader := imageload.NewLoader(dc, lister)
	relayLoader := imageload.NewLoader(dc, lister, imageload.WithRelay(dc, ""))
	var pusher *imageload.Pusher
	tools := []string{"kind load docker-image", "devloop imageload"}
	if *relay {
		tools = append(tools, "devloop relay")
	}
	if *registryHost != "" {
		pusher = imageload.NewPusher(dc, *registryHost, false)
		tools = append(tools, "devloop push+pull")
	}

	var refs []string
	cleanup := func() {
		for _, r := range refs {
			dc.ImageRemove(context.Background(), r, client.ImageRemoveOptions{Force: true, PruneChildren: true})
			for _, n := range nodeList {
				n.Command("crictl", "rmi", r).Run()
			}
		}
		refs = nil
	}
	defer cleanup()

	var results []measurement
	for _, s := range strings.Split(*sizes, ",") {
		mb, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil {
			return fmt.Errorf("bad size %q", s)
		}
		for _, tool := range tools {
			m := measurement{sizeMB: mb, tool: tool}
			for i := 0; i < *runs; i++ {
				dir, err := os.MkdirTemp("", "loadbench-")
				if err != nil {
					return err
				}
				svc := config.Service{
					Name:  "bench",
					Image: fmt.Sprintf("loadbench-%dmb-%s", mb, strings.Join(strings.Fields(tool)[:2], "-")),
					Build: config.Build{Context: dir},
				}
				build := func(n int) (string, error) {
					if !*useCLI {
						img, err := builder.Build(ctx, svc, io.Discard)
						return img.Ref(), err
					}
					ref := fmt.Sprintf("%s:%d-%d-%d", svc.Image, os.Getpid(), i, n)
					if out, err := exec.CommandContext(ctx, "docker", "build", "-q", "-t", ref, dir).CombinedOutput(); err != nil {
						return "", fmt.Errorf("docker build: %v\n%s", err, out)
					}
					return ref, nil
				}
				if err := writeLayers(dir, mb, -1); err != nil {
					return err
				}
				ref1, err := build(1)
				if err != nil {
					return err
				}
				refs = append(refs, ref1)
				if pusher != nil {
					if r, err := imageload.RegistryRef(*registryHost, ref1); err == nil {
						refs = append(refs, r)
					}
				}
				if err := writeLayers(dir, mb, 3); err != nil {
					return err
				}
				ref2, err := build(2)
				if err != nil {
					return err
				}
				refs = append(refs, ref2)
				if pusher != nil {
					if r, err := imageload.RegistryRef(*registryHost, ref2); err == nil {
						refs = append(refs, r)
					}
				}
				os.RemoveAll(dir)

				l := loader
				if tool == "devloop relay" {
					l = relayLoader
				}
				d1, b1, f1, err := load(ctx, tool, *kindBin, *clusterName, nodeList, *local, l, pusher, ref1)
				if err != nil {
					m.err = firstLine(err.Error())
					fmt.Fprintf(os.Stderr, "%4d MB %-24s run %d: %v\n", mb, tool, i+1, err)
					continue
				}
				d2, b2, _, err := load(ctx, tool, *kindBin, *clusterName, nodeList, *local, l, pusher, ref2)
				if err != nil {
					m.err = firstLine(err.Error())
					fmt.Fprintf(os.Stderr, "%4d MB %-24s run %d: %v\n", mb, tool, i+1, err)
					continue
				}
				m.first, m.afterOne = append(m.first, d1), append(m.afterOne, d2)
				m.firstB, m.afterOneB, m.format = b1, b2, f1
				fmt.Fprintf(os.Stderr, "%4d MB %-24s run %d: first %v, after one-layer change %v\n", mb, tool, i+1, d1.Round(time.Millisecond), d2.Round(time.Millisecond))
				if *eachRun {
					cleanup()
					exec.Command("docker", "builder", "prune", "-f").Run()
				}
			}
			results = append(results, m)
		}
	}

	w := bufio.NewWriter(os.Stdout)
	defer w.Flush()
	fmt.Fprintf(w, "| image | nodes | tool | first load | after one-layer change | bytes sent (devloop: first / change) |\n|---|---|---|---|---|---|\n")
	for _, m := range results {
		bytes := "whole archive"
		switch m.tool {
		case "devloop imageload", "devloop relay":
			bytes = fmt.Sprintf("%.1f MB / %.1f MB (%s)", float64(m.firstB)/1e6, float64(m.afterOneB)/1e6, m.format)
		case "devloop push+pull":
			bytes = fmt.Sprintf("layers pushed: %d / %d", m.firstB, m.afterOneB)
		}
		if m.err != "" {
			bytes = fmt.Sprintf("%d of %d runs failed: %s", *runs-len(m.first), *runs, m.err)
		}
		fmt.Fprintf(w, "| %d MB | %d | %s | %s | %s | %s |\n", m.sizeMB, len(nodeList), m.tool, median(m.first), median(m.afterOne), bytes)
	}
	return nil
}

// load loads ref with one tool and returns the wall time, (devloop) bytes and
// the layout of docker save devloop's fast path read.
func load(ctx context.Context, tool, kindBin, clusterName string, nodeList []nodes.Node, local bool, l *imageload.Loader, p *imageload.Pusher, ref string) (time.Duration, int64, string, error) {
	start := time.Now()
	if tool == "devloop push+pull" {
		res, err := p.Push(ctx, ref, nil)
		if err != nil {
			return 0, 0, "", err
		}
		// Every node pulls at once, as kubelets do when the pods start.
		var g errgroup.Group
		for _, n := range nodeList {
			g.Go(func() error {
				var out strings.Builder
				cmd := n.Command("crictl", "pull", res.Pushed)
				cmd.SetStdout(&out)
				cmd.SetStderr(&out)
				if err := cmd.Run(); err != nil {
					return fmt.Errorf("node %s: crictl pull %s: %v: %s", n, res.Pushed, err, out.String())
				}
				return nil
			})
		}
		if err := g.Wait(); err != nil {
			return 0, 0, "", err
		}
		return time.Since(start), int64(res.Push.LayersPushed), "", nil
	}
	if tool == "kind load docker-image" && local {
		err := kindSequence(ref, nodeList)
		return time.Since(start), 0, "", err
	}
	if tool == "kind load docker-image" {
		out, err := exec.CommandContext(ctx, kindBin, "load", "docker-image", "--name", clusterName, ref).CombinedOutput()
		if err != nil {
			return 0, 0, "", fmt.Errorf("kind load %s: %v: %s", ref, err, lastError(string(out)))
		}
		return time.Since(start), 0, "", nil
	}
	res, err := l.Load(ctx, clusterName, ref, os.Stderr)
	if err != nil {
		return 0, 0, "", err
	}
	var b int64
	format := "fallback: whole image"
	for _, n := range res.Nodes {
		b += n.Bytes
		if n.Fast {
			format = n.Format
		}
	}
	return time.Since(start), b, format, nil
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return s
}

// lastError picks ctr's message out of kind's output (its last "ctr:" line).
func lastError(out string) string {
	msg := ""
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, "ctr:") || strings.HasPrefix(l, "ERROR:") {
			msg = strings.TrimSpace(l)
		}
	}
	if msg == "" {
		return firstLine(out)
	}
	return msg
}

// kindSequence does what `kind load docker-image` does (v0.33.0,
// pkg/cmd/kind/load/docker-image): skip nodes whose image ID matches, else
// `docker save -o` to a temp file and import it into each node with
// nodeutils.LoadImageArchive.
func kindSequence(ref string, nodeList []nodes.Node) error {
	out, err := exec.Command("docker", "image", "inspect", "-f", "{{ .Id }}", ref).Output()
	if err != nil {
		return fmt.Errorf("docker image inspect %s: %w", ref, err)
	}
	id := strings.TrimSpace(string(out))
	var need []nodes.Node
	for _, n := range nodeList {
		if got, err := nodeutils.ImageID(n, ref); err != nil || got != id {
			need = append(need, n)
		}
	}
	if len(need) == 0 {
		return nil
	}
	dir, err := os.MkdirTemp("", "images-tar")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	tarPath := filepath.Join(dir, "images.tar")
	if out, err := exec.Command("docker", "save", "-o", tarPath, ref).CombinedOutput(); err != nil {
		return fmt.Errorf("docker save: %v: %s", err, out)
	}
	for _, n := range need {
		f, err := os.Open(tarPath)
		if err != nil {
			return err
		}
		err = nodeutils.LoadImageArchive(n, f)
		f.Close()
		if err != nil {
			return err
		}
	}
	return nil
}

type staticNodes []nodes.Node

func (s staticNodes) ListInternalNodes(string) ([]nodes.Node, error) { return s, nil }

// writeLayers writes layer0..3.bin (40/30/20/10% of mb) and a Dockerfile
// copying them in order. only >= 0 rewrites just that layer's file.
func writeLayers(dir string, mb, only int) error {
	shares := []int{40, 30, 20, 10}
	var df strings.Builder
	df.WriteString("FROM scratch\n")
	rng := rand.NewChaCha8([32]byte(randomSeed()))
	for i, share := range shares {
		name := fmt.Sprintf("layer%d.bin", i)
		fmt.Fprintf(&df, "COPY %s /%s\n", name, name)
		if only >= 0 && i != only {
			continue
		}
		f, err := os.Create(filepath.Join(dir, name))
		if err != nil {
			return err
		}
		if _, err := io.CopyN(f, rng, int64(mb)*int64(share)*(1<<20)/100); err != nil {
			f.Close()
			return err
		}
		if err := f.Close(); err != nil {
			return err
		}
	}
	return os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte(df.String()), 0o644)
}

func randomSeed() []byte {
	b := make([]byte, 32)
	for i := range b {
		b[i] = byte(rand.Uint32())
	}
	return b
}

func median(ds []time.Duration) string {
	if len(ds) == 0 {
		return "-"
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2].Round(10 * time.Millisecond).String()
}
