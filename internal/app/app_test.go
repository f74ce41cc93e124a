package app

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/client-go/rest"

	"github.com/devloop-dev/devloop/internal/cluster"
	"github.com/devloop-dev/devloop/internal/config"
	"github.com/devloop-dev/devloop/internal/project"
)

func run(t *testing.T, dir string, args ...string) (string, string, error) {
	t.Helper()
	if dir != "" {
		t.Chdir(dir)
	}
	var out, errOut bytes.Buffer
	err := Run(context.Background(), Streams{In: strings.NewReader(""), Out: &out, ErrOut: &errOut}, args)
	return out.String(), errOut.String(), err
}

func TestHelpListsCommands(t *testing.T) {
	out, _, err := run(t, "", "--help")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []string{"up", "down", "build", "status", "logs", "doctor", "version"} {
		if !strings.Contains(out, "\n  "+c+" ") {
			t.Errorf("--help does not list %q:\n%s", c, out)
		}
	}
}

func TestMissingConfigIsOneClearError(t *testing.T) {
	_, errOut, err := run(t, t.TempDir(), "up", "-f", "nonexistent.yaml")
	if err == nil {
		t.Fatal("want an error")
	}
	want := "devloop: error: config file nonexistent.yaml does not exist\n  what to do: "
	if !strings.HasPrefix(errOut, want) || strings.Count(errOut, "error:") != 1 {
		t.Fatalf("stderr = %q", errOut)
	}
}

func TestBadConfigListsEveryProblemWithPositions(t *testing.T) {
	dir := t.TempDir()
	cfg := "name: x\nservices:\n  - name: a\n    buid: {}\n    portForwards:\n      - {local: 70000, port: 80}\n"
	if err := os.WriteFile(filepath.Join(dir, "devloop.yaml"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	_, errOut, err := run(t, dir, "up")
	if err == nil {
		t.Fatal("want an error")
	}
	for _, want := range []string{
		`devloop.yaml:4:5: services[0].buid: unknown key; did you mean "build"?`,
		`devloop.yaml:6:17: services[0].portForwards[0].local: port 70000 is out of range (1-65535)`,
	} {
		if !strings.Contains(errOut, want) {
			t.Errorf("stderr lacks %q:\n%s", want, errOut)
		}
	}
	if strings.Contains(errOut, "goroutine") || strings.Contains(errOut, "panic") {
		t.Fatalf("stack trace in a user error:\n%s", errOut)
	}
}

func TestUnknownCommandAndBadFlag(t *testing.T) {
	if _, errOut, err := run(t, "", "upp"); err == nil || !strings.Contains(errOut, `unknown command "upp"`) {
		t.Fatalf("err=%v stderr=%q", err, errOut)
	}
	if _, errOut, err := run(t, "", "status", "-o", "yaml"); err == nil || !strings.Contains(errOut, "--output must be table or json") {
		t.Fatalf("err=%v stderr=%q", err, errOut)
	}
}

// noClusters is a machine without any kind cluster (and no Docker engine).
type noClusters struct{}

func (noClusters) Ensure(context.Context, config.Cluster) (*cluster.Info, error) {
	return nil, errors.New("no engine in this test")
}
func (noClusters) Exists(string) (bool, error)                              { return false, nil }
func (noClusters) RESTConfig(string) (*rest.Config, error)                  { return nil, errors.New("no cluster") }
func (noClusters) Delete(context.Context, string) error                     { return errors.New("no cluster") }
func (noClusters) Owned(string) (bool, error)                               { return false, nil }
func (noClusters) RemoveRegistry(context.Context, string) ([]string, error) { return nil, nil }
func (noClusters) Usable(context.Context, string) (*rest.Config, error) {
	return nil, errors.New("no cluster")
}
func (noClusters) Down(context.Context, string, func(context.Context, *rest.Config) error) (error, error) {
	return nil, errors.New("no cluster")
}
func (noClusters) InstallAddons(context.Context, *project.Conn, config.Cluster, func(context.Context, string) error) error {
	return errors.New("no cluster")
}

func withoutClusters(t *testing.T) {
	t.Helper()
	prev := newDeps
	newDeps = func(io.Writer, int) *project.Deps {
		return &project.Deps{Clusters: noClusters{}, Engine: func(context.Context) (*project.Engine, error) {
			return nil, errors.New("no Docker engine in this test")
		}}
	}
	t.Cleanup(func() { newDeps = prev })
}

func TestStatusWithoutClusterUsesBundledExample(t *testing.T) {
	withoutClusters(t)
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	t.Setenv("HOME", t.TempDir())
	out, _, err := run(t, t.TempDir(), "status", "-o", "json", "--no-color")
	if err != nil {
		t.Fatalf("status of the bundled example without a cluster: %v", err)
	}
	if !strings.Contains(out, `"project": "hello"`) {
		t.Fatalf("status of the bundled example:\n%s", out)
	}
}

func TestDownAndLogsWithoutCluster(t *testing.T) {
	withoutClusters(t)
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	t.Setenv("HOME", t.TempDir())
	out, _, err := run(t, t.TempDir(), "down", "--no-color")
	if err != nil || !strings.Contains(out, `cluster "devloop" does not exist: nothing to remove`) {
		t.Fatalf("down without a cluster: %v\n%s", err, out)
	}
	_, errOut, err := run(t, "", "logs", "--no-color")
	if err == nil || !strings.Contains(errOut, `cluster "devloop" does not exist`) || !strings.Contains(errOut, "what to do: run devloop up first") {
		t.Fatalf("logs without a cluster: %v\n%s", err, errOut)
	}
	_, errOut, err = run(t, "", "logs", "nope")
	if err == nil || !strings.Contains(errOut, `no service "nope"`) {
		t.Fatalf("logs of an unknown service: %v\n%s", err, errOut)
	}
	_, errOut, err = run(t, "", "build")
	if err == nil || !strings.Contains(errOut, "no Docker engine") {
		t.Fatalf("build without an engine: %v\n%s", err, errOut)
	}
}
