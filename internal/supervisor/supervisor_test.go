package supervisor

import (
	"archive/tar"
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The test binary doubles as the supervisor (DEVLOOP_TEST_SUPERVISE=socket)
// and as the supervised program (DEVLOOP_TEST_APP=mode), so the tests run
// the real thing as separate processes: signals, exit codes and stdio.
func TestMain(m *testing.M) {
	if sock := os.Getenv("DEVLOOP_TEST_SUPERVISE"); sock != "" {
		os.Unsetenv("DEVLOOP_TEST_SUPERVISE") // the program it runs is the app
		os.Exit(Supervise(sock, os.Args[1:], os.Stderr))
	}
	if mode := os.Getenv("DEVLOOP_TEST_APP"); mode != "" {
		os.Exit(app(mode))
	}
	os.Exit(m.Run())
}

// app is the supervised program: it prints the file DEVLOOP_TEST_FILE (its
// "version"), then behaves as mode says.
func app(mode string) int {
	version := ""
	if f := os.Getenv("DEVLOOP_TEST_FILE"); f != "" {
		b, _ := os.ReadFile(f)
		version = strings.TrimSpace(string(b))
	}
	if version == "crash" {
		fmt.Fprintln(os.Stderr, "panic: bad config")
		return 2
	}
	switch mode {
	case "exit3":
		fmt.Println("to stdout")
		fmt.Fprintln(os.Stderr, "to stderr")
		return 3
	case "serve":
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, syscall.SIGTERM, syscall.SIGUSR1)
		fmt.Printf("serving %s pid %d\n", version, os.Getpid())
		for s := range sig {
			if s == syscall.SIGUSR1 {
				fmt.Println("got usr1")
				continue
			}
			fmt.Println("got term")
			return 0
		}
	}
	return 9
}

type lines struct {
	ch   chan string
	done chan struct{} // closed when the supervisor has exited
}

func (l *lines) wait(t *testing.T, want string) string {
	t.Helper()
	timeout := time.After(20 * time.Second)
	for {
		select {
		case s, ok := <-l.ch:
			if !ok {
				t.Fatalf("output ended before %q", want)
			}
			if strings.Contains(s, want) {
				return s
			}
		case <-timeout:
			t.Fatalf("no line with %q", want)
		}
	}
}

// supervise starts the test binary as a supervisor of the test binary as app.
func supervise(t *testing.T, mode string, env ...string) (*exec.Cmd, *lines, string) {
	t.Helper()
	sock := fmt.Sprintf("@devloop-supervisor-test/%s/%d", t.Name(), time.Now().UnixNano())
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(self, self)
	cmd.Env = append(os.Environ(), append(env, "DEVLOOP_TEST_SUPERVISE="+sock, "DEVLOOP_TEST_APP="+mode)...)
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	l := &lines{ch: make(chan string, 100), done: make(chan struct{})}
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			l.ch <- sc.Text()
		}
		close(l.ch)
	}()
	go func() { _ = cmd.Wait(); pw.Close(); close(l.done) }()
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	return cmd, l, sock
}

func exitOf(t *testing.T, cmd *exec.Cmd, l *lines) int {
	t.Helper()
	select {
	case <-l.done:
	case <-time.After(20 * time.Second):
		t.Fatal("the supervisor did not exit")
	}
	return cmd.ProcessState.ExitCode()
}

func TestExitCodeAndOutputPassThrough(t *testing.T) {
	cmd, l, _ := supervise(t, "exit3")
	l.wait(t, "to stdout")
	l.wait(t, "to stderr")
	if code := exitOf(t, cmd, l); code != 3 {
		t.Fatalf("exit code %d, want the program's 3", code)
	}
}

func TestSignalsPassThrough(t *testing.T) {
	cmd, l, _ := supervise(t, "serve")
	l.wait(t, "serving")
	if err := cmd.Process.Signal(syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	l.wait(t, "got usr1")
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	l.wait(t, "got term")
	if code := exitOf(t, cmd, l); code != 0 {
		t.Fatalf("exit code %d, want 0", code)
	}
}

func tarOf(t *testing.T, files map[string]string) *bytes.Buffer {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for name, body := range files {
		if err := tw.WriteHeader(&tar.Header{Name: strings.TrimPrefix(name, "/"), Mode: 0o755, Size: int64(len(body)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte(body))
	}
	tw.Close()
	return &buf
}

func TestRestartInstallsFilesAndRestartsTheProgram(t *testing.T) {
	file := filepath.Join(t.TempDir(), "version")
	if err := os.WriteFile(file, []byte("v1"), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd, l, sock := supervise(t, "serve", "DEVLOOP_TEST_FILE="+file)
	first := l.wait(t, "serving v1")

	res, err := Restart(sock, tarOf(t, map[string]string{file: "v2"}))
	if err != nil {
		t.Fatal(err)
	}
	pid := res.Pid
	if back, ok := ParseRestarted(res.String()); !ok || back.Pid != pid || back.Stop != res.Stop.Truncate(time.Microsecond) {
		t.Fatalf("ParseRestarted(%q) = %+v, %v", res, back, ok)
	}
	l.wait(t, "got term") // the old program was stopped with SIGTERM
	second := l.wait(t, "serving v2")
	if !strings.HasSuffix(second, fmt.Sprintf("pid %d", pid)) || first == second {
		t.Fatalf("restart said pid %d; the program said %q then %q", pid, first, second)
	}
	select {
	case <-l.done:
		t.Fatal("the supervisor exited on a restart")
	default:
	}

	// A program that crashes on start after a restart ends the container
	// with its exit code, like a crash without the supervisor.
	if _, err := Restart(sock, tarOf(t, map[string]string{file: "crash"})); err != nil {
		t.Fatal(err)
	}
	l.wait(t, "panic: bad config")
	if code := exitOf(t, cmd, l); code != 2 {
		t.Fatalf("exit code %d, want the crashed program's 2", code)
	}
}

func TestRestartWithoutSupervisorSaysSo(t *testing.T) {
	_, err := Restart("@devloop-supervisor-test/nobody", tarOf(t, nil))
	if err == nil || !strings.Contains(err.Error(), "no supervisor answers") {
		t.Fatalf("err = %v", err)
	}
}

func TestUnknownProgramExits127(t *testing.T) {
	if code := Supervise("@devloop-supervisor-test/none", []string{"/no/such/program"}, io.Discard); code != 127 {
		t.Fatalf("exit code %d, want 127", code)
	}
}

func TestInstallRewritesInPlace(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "bin", "app")
	if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(target, []byte("old"), 0o700); err != nil {
		t.Fatal(err)
	}
	before, _ := os.Stat(target)
	if err := Install(tarOf(t, map[string]string{"bin/app": "new", "new/file": "x"}), dir); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(target)
	after, _ := os.Stat(target)
	if string(b) != "new" || !os.SameFile(before, after) {
		t.Fatalf("got %q (same inode %v)", b, os.SameFile(before, after))
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "new", "file")); string(b) != "x" {
		t.Fatalf("new file: %q", b)
	}
	if err := Install(strings.NewReader("not a tar"), dir); err == nil || errors.Is(err, io.EOF) {
		t.Fatalf("a broken stream: err = %v", err)
	}
}
