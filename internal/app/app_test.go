package app

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
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

func TestStatusWithoutClusterUsesBundledExample(t *testing.T) {
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	t.Setenv("HOME", t.TempDir())
	out, _, err := run(t, t.TempDir(), "status", "-o", "json", "--no-color")
	if err != nil {
		t.Skipf("needs docker for the cluster lookup: %v", err)
	}
	if !strings.Contains(out, `"project": "hello"`) {
		t.Fatalf("status of the bundled example:\n%s", out)
	}
}
