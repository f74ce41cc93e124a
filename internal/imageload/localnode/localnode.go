// Package localnode provides a kind nodes.Node backed by a containerd running
// on this host (a throwaway one started by Start), for tests and benchmarks of
// image loading without a kind cluster: `ctr` is pointed at its socket,
// `crictl inspecti` is emulated with ctr, and `containerd config dump`
// reports the overlayfs snapshotter.
package localnode

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/distribution/reference"
	"sigs.k8s.io/kind/pkg/cluster/nodes"
	kexec "sigs.k8s.io/kind/pkg/exec"
)

// Node runs a kind node's commands against a local containerd.
type Node struct {
	Name    string
	Address string // containerd socket
}

var _ nodes.Node = (*Node)(nil)

// String implements nodes.Node.
func (n *Node) String() string { return n.Name }

// Role implements nodes.Node.
func (n *Node) Role() (string, error) { return "control-plane", nil }

// IP implements nodes.Node.
func (n *Node) IP() (string, string, error) { return "127.0.0.1", "", nil }

// SerialLogs implements nodes.Node.
func (n *Node) SerialLogs(io.Writer) error { return nil }

// Command implements nodes.Node.
func (n *Node) Command(name string, args ...string) kexec.Cmd {
	return n.CommandContext(context.Background(), name, args...)
}

// CommandContext implements nodes.Node.
func (n *Node) CommandContext(ctx context.Context, name string, args ...string) kexec.Cmd {
	return &cmd{ctx: ctx, n: n, args: append([]string{name}, args...)}
}

type cmd struct {
	ctx            context.Context
	n              *Node
	args           []string
	stdin          io.Reader
	stdout, stderr io.Writer
}

func (c *cmd) SetEnv(...string) kexec.Cmd      { return c }
func (c *cmd) SetStdin(r io.Reader) kexec.Cmd  { c.stdin = r; return c }
func (c *cmd) SetStdout(w io.Writer) kexec.Cmd { c.stdout = w; return c }
func (c *cmd) SetStderr(w io.Writer) kexec.Cmd { c.stderr = w; return c }

func (c *cmd) ctr(stdin io.Reader, stdout, stderr io.Writer, args ...string) error {
	x := exec.CommandContext(c.ctx, "ctr", append([]string{"--address", c.n.Address}, args...)...)
	x.Stdin, x.Stdout, x.Stderr = stdin, stdout, stderr
	var msg bytes.Buffer
	if stderr == nil { // say what ctr said, as a kind node's command error does
		x.Stderr = &msg
	}
	if err := x.Run(); err != nil {
		if m := strings.TrimSpace(msg.String()); m != "" {
			return fmt.Errorf("%w: %s", err, m)
		}
		return err
	}
	return nil
}

func (c *cmd) Run() error {
	a := c.args
	switch {
	case a[0] == "ctr":
		return c.ctr(c.stdin, c.stdout, c.stderr, a[1:]...)
	case strings.Join(a, " ") == "containerd config dump":
		_, err := io.WriteString(orDiscard(c.stdout), "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".containerd]\n  snapshotter = \"overlayfs\"\n")
		return err
	case len(a) >= 3 && a[0] == "sh" && a[1] == "-c":
		// A script run inside the node: run it here; ctr reads its
		// --address from CONTAINERD_ADDRESS.
		x := exec.CommandContext(c.ctx, "sh", a[1:]...)
		x.Env = append(os.Environ(), "CONTAINERD_ADDRESS="+c.n.Address)
		x.Stdin, x.Stdout, x.Stderr = c.stdin, c.stdout, c.stderr
		return x.Run()
	case len(a) == 3 && a[0] == "crictl" && a[1] == "inspecti":
		named, err := reference.ParseNormalizedNamed(a[2])
		if err != nil {
			return err
		}
		var ls bytes.Buffer
		if err := c.ctr(nil, &ls, io.Discard, "-n", "k8s.io", "images", "ls", "name=="+reference.TagNameOnly(named).String()); err != nil {
			return err
		}
		lines := strings.Split(strings.TrimSpace(ls.String()), "\n")
		if len(lines) < 2 {
			return fmt.Errorf("image %s not found", a[2])
		}
		var mb bytes.Buffer
		if err := c.ctr(nil, &mb, io.Discard, "-n", "k8s.io", "content", "get", strings.Fields(lines[1])[2]); err != nil {
			return err
		}
		var m struct{ Config struct{ Digest string } }
		if err := json.Unmarshal(mb.Bytes(), &m); err != nil {
			return err
		}
		return json.NewEncoder(orDiscard(c.stdout)).Encode(map[string]any{"status": map[string]any{"id": m.Config.Digest}})
	case len(a) == 3 && a[0] == "crictl" && a[1] == "rmi":
		named, err := reference.ParseNormalizedNamed(a[2])
		if err != nil {
			return err
		}
		return c.ctr(nil, io.Discard, io.Discard, "-n", "k8s.io", "images", "rm", reference.TagNameOnly(named).String())
	}
	return fmt.Errorf("localnode: unsupported command %v", a)
}

func orDiscard(w io.Writer) io.Writer {
	if w == nil {
		return io.Discard
	}
	return w
}

// Containerd is a throwaway containerd started by Start.
type Containerd struct {
	Address string
	dir     string
	cmd     *exec.Cmd
	log     bytes.Buffer
}

// Start runs containerd (CRI plugin disabled) with its root, state and socket
// in a new temporary directory, and waits until it answers.
func Start(ctx context.Context) (*Containerd, error) {
	if _, err := exec.LookPath("containerd"); err != nil {
		return nil, fmt.Errorf("containerd not installed: %w", err)
	}
	if _, err := exec.LookPath("ctr"); err != nil {
		return nil, fmt.Errorf("ctr not installed: %w", err)
	}
	dir, err := os.MkdirTemp("", "devloop-ctrd-")
	if err != nil {
		return nil, err
	}
	c := &Containerd{Address: filepath.Join(dir, "c.sock"), dir: dir}
	cfg := fmt.Sprintf("version = 2\nroot = %q\nstate = %q\ndisabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n[grpc]\n  address = %q\n[ttrpc]\n  address = %q\n",
		filepath.Join(dir, "root"), filepath.Join(dir, "state"), c.Address, c.Address+".ttrpc")
	if err := os.WriteFile(filepath.Join(dir, "config.toml"), []byte(cfg), 0o644); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	c.cmd = exec.Command("containerd", "--config", filepath.Join(dir, "config.toml"))
	c.cmd.Stdout, c.cmd.Stderr = &c.log, &c.log
	if err := c.cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("starting containerd: %w", err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		if exec.CommandContext(ctx, "ctr", "--address", c.Address, "version").Run() == nil {
			return c, nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			c.Stop()
			return nil, errors.New("containerd did not come up")
		}
		time.Sleep(100 * time.Millisecond) // polling an external daemon
	}
}

// Stop kills containerd and removes its directory.
func (c *Containerd) Stop() {
	c.cmd.Process.Kill()
	c.cmd.Wait()
	exec.Command("umount", "-R", filepath.Join(c.dir, "root")).Run()
	os.RemoveAll(c.dir)
}
