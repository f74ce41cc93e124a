package app

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/devloop-dev/devloop/internal/project"
)

func TestPrintError(t *testing.T) {
	var b strings.Builder
	printError(&b, withHint(errors.New("port 8080 is in use"), "free it"), 0)
	if got, want := b.String(), "devloop: error: port 8080 is in use\n  what to do: free it\n"; got != want {
		t.Errorf("one-line error with a hint:\n got %q\nwant %q", got, want)
	}
	b.Reset()
	printError(&b, errors.New("a.yaml:1:1: x\na.yaml:2:1: y"), 0)
	if got, want := b.String(), "devloop: error:\n  a.yaml:1:1: x\n  a.yaml:2:1: y\n"; got != want {
		t.Errorf("multi-line error:\n got %q\nwant %q", got, want)
	}
	b.Reset()
	printError(&b, fmt.Errorf("wrapped: %w", errors.New("cause")), 1)
	if !strings.Contains(b.String(), "(detail: ") {
		t.Errorf("-v does not print the error's detail: %q", b.String())
	}
}

func TestVersion(t *testing.T) {
	out, _, err := run(t, "", "version")
	if err != nil || !strings.HasPrefix(out, "devloop dev (go") {
		t.Fatalf("version = %q, %v", out, err)
	}
}

// adoptedCluster is a machine with a kind cluster devloop did not create.
type adoptedCluster struct{ noClusters }

func (adoptedCluster) Exists(string) (bool, error) { return true, nil }

func TestDownClusterOfAnAdoptedClusterSaysHowToForce(t *testing.T) {
	prev := newDeps
	newDeps = func(io.Writer, int) *project.Deps { return &project.Deps{Clusters: adoptedCluster{}} }
	t.Cleanup(func() { newDeps = prev })
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	t.Setenv("HOME", t.TempDir())
	_, errOut, err := run(t, t.TempDir(), "down", "--cluster", "--no-color")
	if err == nil || !strings.Contains(errOut, "was not created by devloop") || !strings.Contains(errOut, "devloop down --cluster --force") {
		t.Fatalf("down --cluster of an adopted cluster: %v\n%s", err, errOut)
	}
}

func TestBundledExampleIsAnnounced(t *testing.T) {
	withoutClusters(t)
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	t.Setenv("HOME", t.TempDir())
	out, _, err := run(t, t.TempDir(), "down", "--no-color")
	if err != nil || !strings.Contains(out, "no devloop.yaml here: running the bundled example from") {
		t.Fatalf("down without devloop.yaml: %v\n%s", err, out)
	}
}

// --context reaches the library entry of every command that talks to a
// cluster (here the bundled example, which names no registry address, is
// refused for it before anything is touched).
func TestContextFlagOnEveryClusterCommand(t *testing.T) {
	withoutClusters(t)
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	t.Setenv("HOME", t.TempDir())
	dir := t.TempDir()
	for _, args := range [][]string{{"up", "--once"}, {"down"}, {"status"}, {"logs"}, {"doctor"}} {
		out, errOut, err := run(t, dir, append(args, "--context", "team-dev", "--allow-context", "team-dev", "--no-color")...)
		if err == nil || !strings.Contains(out+errOut, "cluster.registry.address: with --context team-dev: required") {
			t.Errorf("%v --context team-dev: %v\n%s%s", args, err, out, errOut)
		}
	}
}
