package localnode

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fakeCtr puts a `ctr` shell script first on PATH. It appends its arguments
// (one invocation per line) to the returned log file, answers `images ls`
// with lsOut and `content get` with getOut, and fails with exit code 3 for
// `images rm` when rmFails is set.
func fakeCtr(t *testing.T, lsOut, getOut string, rmFails bool) (log string) {
	t.Helper()
	dir := t.TempDir()
	log = filepath.Join(dir, "calls")
	rm := "exit 0"
	if rmFails {
		rm = "echo rm failed >&2; exit 3"
	}
	script := `#!/bin/sh
echo "$*" >> ` + log + `
for a in "$@"; do
  case "$a" in
    ls) cat <<'LS'
` + lsOut + `
LS
        exit 0;;
    get) cat <<'GET'
` + getOut + `
GET
        exit 0;;
    rm) ` + rm + `;;
    stdin) cat; exit 0;;
  esac
done
exit 0
`
	if err := os.WriteFile(filepath.Join(dir, "ctr"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir+string(os.PathListSeparator)+os.Getenv("PATH"))
	return log
}

func calls(t *testing.T, log string) []string {
	t.Helper()
	b, err := os.ReadFile(log)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimSpace(string(b)), "\n")
}

func TestNodeIdentity(t *testing.T) {
	n := &Node{Name: "local", Address: "/x.sock"}
	if n.String() != "local" {
		t.Errorf("String() = %q", n.String())
	}
	if r, err := n.Role(); r != "control-plane" || err != nil {
		t.Errorf("Role() = %q, %v", r, err)
	}
	if v4, v6, err := n.IP(); v4 != "127.0.0.1" || v6 != "" || err != nil {
		t.Errorf("IP() = %q, %q, %v", v4, v6, err)
	}
}

func TestContainerdConfigDumpReportsOverlayfs(t *testing.T) {
	var out bytes.Buffer
	n := &Node{Address: "/x.sock"}
	if err := n.Command("containerd", "config", "dump").SetStdout(&out).Run(); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), `snapshotter = "overlayfs"`) {
		t.Errorf("config dump = %q", out.String())
	}
	// Without a stdout it must not panic.
	if err := n.Command("containerd", "config", "dump").Run(); err != nil {
		t.Fatal(err)
	}
}

func TestCtrGetsAddressAndStdio(t *testing.T) {
	log := fakeCtr(t, "", "", false)
	n := &Node{Address: "/run/c.sock"}
	var out bytes.Buffer
	err := n.CommandContext(context.Background(), "ctr", "-n", "k8s.io", "images", "import", "stdin").
		SetStdin(strings.NewReader("image-bytes")).SetStdout(&out).Run()
	if err != nil {
		t.Fatal(err)
	}
	if got := calls(t, log); len(got) != 1 || got[0] != "--address /run/c.sock -n k8s.io images import stdin" {
		t.Errorf("ctr called with %q", got)
	}
	if out.String() != "image-bytes" {
		t.Errorf("stdin not passed through: stdout = %q", out.String())
	}
}

func TestShScriptSeesContainerdAddress(t *testing.T) {
	n := &Node{Address: "/run/c.sock"}
	var out bytes.Buffer
	if err := n.Command("sh", "-c", `printf %s "$CONTAINERD_ADDRESS"`).SetStdout(&out).Run(); err != nil {
		t.Fatal(err)
	}
	if out.String() != "/run/c.sock" {
		t.Errorf("CONTAINERD_ADDRESS = %q", out.String())
	}
	if err := n.Command("sh", "-c", "exit 4").Run(); err == nil {
		t.Error("failing script reported success")
	}
}

func TestCrictlInspectiEmulation(t *testing.T) {
	ls := "REF                          TYPE                                       DIGEST        SIZE\n" +
		"docker.io/library/app:latest application/vnd.oci.image.manifest.v1+json sha256:mmm 1.0 KiB"
	log := fakeCtr(t, ls, `{"config":{"digest":"sha256:cfg"}}`, false)
	n := &Node{Address: "/run/c.sock"}
	var out bytes.Buffer
	if err := n.Command("crictl", "inspecti", "app").SetStdout(&out).Run(); err != nil {
		t.Fatal(err)
	}
	var got struct{ Status struct{ ID string } }
	if err := json.Unmarshal(out.Bytes(), &got); err != nil {
		t.Fatalf("output %q: %v", out.String(), err)
	}
	if got.Status.ID != "sha256:cfg" {
		t.Errorf("status.id = %q, want the config digest", got.Status.ID)
	}
	want := []string{
		"--address /run/c.sock -n k8s.io images ls name==docker.io/library/app:latest",
		"--address /run/c.sock -n k8s.io content get sha256:mmm",
	}
	if c := calls(t, log); strings.Join(c, "|") != strings.Join(want, "|") {
		t.Errorf("ctr calls:\n got %q\nwant %q", c, want)
	}
}

func TestCrictlInspectiErrors(t *testing.T) {
	n := &Node{Address: "/run/c.sock"}
	t.Run("bad reference", func(t *testing.T) {
		fakeCtr(t, "", "", false)
		if err := n.Command("crictl", "inspecti", "UPPER/Case").Run(); err == nil {
			t.Error("invalid reference accepted")
		}
	})
	t.Run("not found", func(t *testing.T) {
		fakeCtr(t, "REF TYPE DIGEST", "", false)
		err := n.Command("crictl", "inspecti", "app:v1").Run()
		if err == nil || !strings.Contains(err.Error(), "not found") {
			t.Errorf("err = %v, want not found", err)
		}
	})
	t.Run("bad manifest", func(t *testing.T) {
		fakeCtr(t, "REF TYPE DIGEST\nx t sha256:m", "not json", false)
		if err := n.Command("crictl", "inspecti", "app:v1").Run(); err == nil {
			t.Error("unparsable manifest accepted")
		}
	})
}

func TestCrictlRmi(t *testing.T) {
	log := fakeCtr(t, "", "", false)
	n := &Node{Address: "/s"}
	if err := n.Command("crictl", "rmi", "example.com/team/app:v2").Run(); err != nil {
		t.Fatal(err)
	}
	if c := calls(t, log); len(c) != 1 || c[0] != "--address /s -n k8s.io images rm example.com/team/app:v2" {
		t.Errorf("ctr calls %q", c)
	}
	fakeCtr(t, "", "", true)
	if err := n.Command("crictl", "rmi", "app").Run(); err == nil {
		t.Error("failing ctr images rm reported success")
	}
}

func TestUnsupportedCommand(t *testing.T) {
	err := (&Node{}).Command("kubectl", "get", "pods").Run()
	if err == nil || !strings.Contains(err.Error(), "unsupported") {
		t.Errorf("err = %v", err)
	}
}

func TestStartWithoutContainerd(t *testing.T) {
	empty := t.TempDir()
	t.Setenv("PATH", empty)
	_, err := Start(context.Background())
	if err == nil || !strings.Contains(err.Error(), "containerd not installed") {
		t.Errorf("err = %v, want containerd not installed", err)
	}
	// containerd present but no ctr.
	if err := os.WriteFile(filepath.Join(empty, "containerd"), []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	_, err = Start(context.Background())
	if err == nil || !strings.Contains(err.Error(), "ctr not installed") {
		t.Errorf("err = %v, want ctr not installed", err)
	}
}
