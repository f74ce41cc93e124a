package livesync

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/devloop-dev/devloop/internal/config"
)

func TestRuleFilesAndRestart(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "bin", "hello")
	if err := os.MkdirAll(filepath.Join(dir, "bin", "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(bin, []byte("new binary"), 0o755)
	os.WriteFile(filepath.Join(dir, "bin", "sub", "x"), []byte("x"), 0o644)

	files, err := RuleFiles(config.SyncRule{Src: bin, Dest: "/hello", Restart: true})
	if err != nil || !reflect.DeepEqual(files, []FileCopy{{Local: bin, Dest: "/hello"}}) {
		t.Fatalf("file rule: %+v, %v", files, err)
	}
	all, err := RuleFiles(config.SyncRule{Src: filepath.Join(dir, "bin"), Dest: "/app/"})
	if err != nil || len(all) != 2 || all[0].Dest != "/app/hello" || all[1].Dest != "/app/sub/x" {
		t.Fatalf("dir rule: %+v, %v", all, err)
	}
	if _, err := RuleFiles(config.SyncRule{Src: filepath.Join(dir, "missing"), Dest: "/x"}); err == nil {
		t.Fatal("a missing source: no error")
	}

	ex := &fakeExecer{}
	target := Target{Namespace: "ns", Pod: "pod", Container: "app"}
	ex.handler = func(cmd []string, stdout, stderr io.Writer) error {
		fmt.Fprintln(stdout, "restarted pid 7 read=1000us stop=2000us write=3000us start=4000us")
		return nil
	}
	res, err := Restart(context.Background(), ex, target, files)
	if err != nil || res.Pid != 7 || res.Write != 3*time.Millisecond {
		t.Fatal(res, err)
	}
	if len(ex.calls) != 1 || !reflect.DeepEqual(ex.calls[0].cmd, []string{"/.devloop/supervisor", "--devloop-restart"}) {
		t.Fatalf("calls %+v", ex.calls)
	}
	if got := readTar(t, ex.calls[0].stdin); len(got) != 1 || got[0].name != "hello" || got[0].content != "new binary" || got[0].mode != 0o755 {
		t.Fatalf("tar %+v", got)
	}

	// No supervisor in the container: the runtime cannot find it, or it is
	// there but the entrypoint is not it.
	for _, fail := range []struct{ err, out string }{
		{`exec: "/.devloop/supervisor": stat /.devloop/supervisor: no such file or directory`, ""},
		{"command terminated with exit code 1", "devloop-supervisor: no supervisor answers in this container (dial unix: connection refused)"},
	} {
		ex := &fakeExecer{handler: func(cmd []string, stdout, stderr io.Writer) error {
			fmt.Fprint(stderr, fail.out)
			return errors.New(fail.err)
		}}
		if _, err := Restart(context.Background(), ex, target, files); !errors.Is(err, ErrNoSupervisor) {
			t.Errorf("%q: err = %v, want ErrNoSupervisor", fail.err, err)
		}
	}
	ex = &fakeExecer{handler: func(cmd []string, stdout, stderr io.Writer) error {
		fmt.Fprint(stderr, "devloop-supervisor: installing the new files: permission denied")
		return errors.New("command terminated with exit code 1")
	}}
	if _, err := Restart(context.Background(), ex, target, files); err == nil || errors.Is(err, ErrNoSupervisor) || !strings.Contains(err.Error(), "permission denied") {
		t.Errorf("a failed install: %v", err)
	}
}
