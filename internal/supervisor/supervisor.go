// Package supervisor is the tiny static process supervisor devloop adds to
// the dev images of services whose sync rules restart the process
// (restart: true). It is also the client devloop execs in the container to
// restart it. It imports only the standard library: the binary
// (cmd/devloop-supervisor) is built with CGO_ENABLED=0 and works on a FROM
// scratch image, with no shell and no libc.
//
// As the container's entrypoint, `supervisor PROGRAM ARGS...` runs the
// program with the container's stdin, stdout, stderr and environment,
// forwards every signal it gets to it (SIGTERM from the kubelet included),
// reaps orphans (it is PID 1), and exits with the program's exit code (128+N
// when a signal N killed it), so logs, probes and exit codes are what they
// would be without it.
//
// `supervisor --devloop-restart` (what devloop execs) reads a tar stream of
// new files on stdin, asks the supervisor of its container (over an abstract
// unix socket named after the container's mount namespace, so two supervised
// containers of one pod never answer for each other) to stop the program,
// writes the files (in place: a running binary cannot be opened for writing),
// and asks for the program to be started again. It prints "restarted pid N".
package supervisor

import (
	"archive/tar"
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Path is where devloop's layer puts the supervisor in an image.
const Path = "/.devloop/supervisor"

// RestartArg is the argument that makes the binary the restart client.
const RestartArg = "--devloop-restart"

// StopGrace is how long a stop waits after SIGTERM before SIGKILL.
var StopGrace = 5 * time.Second

// Main runs the supervisor or the restart client and returns the exit code.
func Main(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) >= 2 && args[1] == RestartArg {
		res, err := Restart(SocketName(), stdin)
		if err != nil {
			fmt.Fprintf(stderr, "devloop-supervisor: %v\n", err)
			return 1
		}
		fmt.Fprintln(stdout, res)
		return 0
	}
	if len(args) < 2 {
		fmt.Fprintln(stderr, "devloop-supervisor: usage: supervisor PROGRAM [ARGS...] | supervisor "+RestartArg+" < files.tar")
		return 2
	}
	return Supervise(SocketName(), args[1:], stderr)
}

// SocketName is the abstract unix socket of this container's supervisor:
// the mount namespace tells containers of one pod apart (they share the
// network namespace, which is where abstract sockets live); a process
// exec'd into a container joins its mount namespace.
func SocketName() string {
	ns, err := os.Readlink("/proc/self/ns/mnt")
	if err != nil {
		ns = "default"
	}
	return "@devloop-supervisor/" + ns
}

// forwarded are the signals passed on to the program. SIGCHLD is the
// supervisor's own; SIGURG is the Go runtime's preemption signal; SIGPIPE
// concerns the supervisor's own writes.
var forwarded = []os.Signal{
	syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP, syscall.SIGQUIT,
	syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGWINCH, syscall.SIGALRM,
	syscall.SIGCONT, syscall.SIGTSTP, syscall.SIGTTIN, syscall.SIGTTOU,
}

// request is one command from a restart client.
type request struct {
	op    string // "stop" or "start"
	reply chan string
}

// Supervise runs argv until it exits on its own, and returns its exit code.
// A restart client on socket can stop it and start it again.
func Supervise(socket string, argv []string, stderr io.Writer) int {
	sigc := make(chan os.Signal, 32)
	signal.Notify(sigc, append([]os.Signal{syscall.SIGCHLD}, forwarded...)...)
	reqs := make(chan request)
	if ln, err := net.Listen("unix", socket); err != nil {
		fmt.Fprintf(stderr, "devloop-supervisor: restarts unavailable: %v\n", err)
	} else {
		defer ln.Close()
		go serve(ln, reqs)
	}

	pid, err := start(argv)
	if err != nil {
		fmt.Fprintf(stderr, "devloop-supervisor: %v\n", err)
		return 127
	}
	var (
		stopping bool          // a client asked to stop: the exit is expected
		stopped  chan<- string // the stop's reply, once the program is gone
		kill     <-chan time.Time
	)
	for {
		select {
		case s := <-sigc:
			if s != syscall.SIGCHLD {
				if pid > 0 {
					_ = syscall.Kill(pid, s.(syscall.Signal))
				} else if s == syscall.SIGTERM || s == syscall.SIGINT {
					// Told to end between a stop and a start: end.
					return 128 + int(s.(syscall.Signal))
				}
				continue
			}
			for {
				var ws syscall.WaitStatus
				got, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
				if got <= 0 || err != nil {
					break
				}
				if got != pid {
					continue // an orphan: reaped, as PID 1 must
				}
				pid, kill = 0, nil
				if !stopping {
					return exitCode(ws)
				}
				if stopped != nil {
					stopped <- "stopped"
					stopped = nil
				}
			}
		case <-kill:
			if pid > 0 {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
			kill = nil
		case r := <-reqs:
			switch r.op {
			case "stop":
				stopping = true
				if pid == 0 {
					r.reply <- "stopped"
					continue
				}
				stopped = r.reply
				_ = syscall.Kill(pid, syscall.SIGTERM)
				kill = time.After(StopGrace)
			case "start":
				if !stopping {
					r.reply <- "error: not stopped"
					continue
				}
				if pid != 0 {
					r.reply <- "error: still stopping"
					continue
				}
				stopping = false
				p, err := start(argv)
				if err != nil {
					// The new program cannot run: the container fails, as it
					// would have if the image held it.
					r.reply <- "error: " + err.Error()
					fmt.Fprintf(stderr, "devloop-supervisor: %v\n", err)
					return 127
				}
				pid = p
				r.reply <- "started " + strconv.Itoa(pid)
			}
		}
	}
}

// start runs argv with the supervisor's stdio and environment.
func start(argv []string) (int, error) {
	path, err := exec.LookPath(argv[0])
	if err != nil {
		return 0, fmt.Errorf("starting %s: %w", argv[0], err)
	}
	p, err := os.StartProcess(path, argv, &os.ProcAttr{
		Env:   os.Environ(),
		Files: []*os.File{os.Stdin, os.Stdout, os.Stderr},
	})
	if err != nil {
		return 0, fmt.Errorf("starting %s: %w", argv[0], err)
	}
	pid := p.Pid
	_ = p.Release() // reaped by Wait4 above, never by os.Process
	return pid, nil
}

func exitCode(ws syscall.WaitStatus) int {
	if ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ws.ExitStatus()
}

// serve answers restart clients: each connection sends "stop" then
// "start"; a connection that ends after a stop starts the program again, so
// a client that dies never leaves the container without its program.
func serve(ln net.Listener, reqs chan<- request) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			r := bufio.NewReader(c)
			stopped := false
			for {
				line, err := r.ReadString('\n')
				op := strings.TrimSpace(line)
				if err != nil {
					if stopped {
						ask(reqs, "start")
					}
					return
				}
				reply := ask(reqs, op)
				if op == "stop" && reply == "stopped" {
					stopped = true
				}
				if op == "start" {
					stopped = false
				}
				if _, err := io.WriteString(c, reply+"\n"); err != nil {
					return
				}
			}
		}()
	}
}

func ask(reqs chan<- request, op string) string {
	if op != "stop" && op != "start" {
		return "error: unknown request " + strconv.Quote(op)
	}
	r := request{op: op, reply: make(chan string, 1)}
	reqs <- r
	return <-r.reply
}

// Restarted is what a restart did, and how long each step took.
type Restarted struct {
	Pid int
	// Read: receiving the files; Stop: the old program ending; Write:
	// writing the files; Start: starting the new program.
	Read, Stop, Write, Start time.Duration
}

// String is the restart client's one line of output (ParseRestarted reads it).
func (r Restarted) String() string {
	return fmt.Sprintf("restarted pid %d read=%dus stop=%dus write=%dus start=%dus", r.Pid,
		r.Read.Microseconds(), r.Stop.Microseconds(), r.Write.Microseconds(), r.Start.Microseconds())
}

// ParseRestarted reads Restarted.String's line.
func ParseRestarted(line string) (Restarted, bool) {
	var r Restarted
	var read, stop, write, start int64
	if _, err := fmt.Sscanf(strings.TrimSpace(line), "restarted pid %d read=%dus stop=%dus write=%dus start=%dus", &r.Pid, &read, &stop, &write, &start); err != nil {
		return Restarted{}, false
	}
	us := time.Microsecond
	r.Read, r.Stop, r.Write, r.Start = time.Duration(read)*us, time.Duration(stop)*us, time.Duration(write)*us, time.Duration(start)*us
	return r, true
}

// Restart reads the tar stream files whole (so the program is down only
// while they are written), stops the supervised program, writes the files
// and starts it again.
func Restart(socket string, files io.Reader) (Restarted, error) {
	var res Restarted
	t0 := time.Now()
	data, err := io.ReadAll(files)
	if err != nil {
		return res, fmt.Errorf("reading the files to install: %w", err)
	}
	res.Read = time.Since(t0)
	c, err := net.DialTimeout("unix", socket, 5*time.Second)
	if err != nil {
		return res, fmt.Errorf("no supervisor answers in this container (%w): is its entrypoint devloop's supervisor?", err)
	}
	defer c.Close()
	r := bufio.NewReader(c)
	call := func(op string) (string, error) {
		_ = c.SetDeadline(time.Now().Add(StopGrace + 10*time.Second))
		if _, err := io.WriteString(c, op+"\n"); err != nil {
			return "", err
		}
		line, err := r.ReadString('\n')
		return strings.TrimSpace(line), err
	}
	t1 := time.Now()
	reply, err := call("stop")
	if err != nil || reply != "stopped" {
		return res, fmt.Errorf("stopping the program: %s%v", reply, errOrNil(err))
	}
	t2 := time.Now()
	installErr := Install(bytes.NewReader(data), "/")
	t3 := time.Now()
	// Start whatever is there now, even after a failed install: the
	// container keeps a program.
	reply, err = call("start")
	if err != nil {
		return res, fmt.Errorf("starting the program: %v", err)
	}
	res.Stop, res.Write, res.Start = t2.Sub(t1), t3.Sub(t2), time.Since(t3)
	pidStr, ok := strings.CutPrefix(reply, "started ")
	if !ok {
		return res, fmt.Errorf("starting the program: %s", strings.TrimPrefix(reply, "error: "))
	}
	if installErr != nil {
		return res, fmt.Errorf("installing the new files (the old program was started again): %w", installErr)
	}
	res.Pid, _ = strconv.Atoi(pidStr)
	return res, nil
}

func errOrNil(err error) any {
	if err == nil {
		return ""
	}
	return err
}

// Install extracts a tar stream of regular files, directories and symlinks
// under root. A file is rewritten in place when it can be (it keeps its
// owner, and the directory need not be writable), else replaced through a
// temporary file beside it.
func Install(r io.Reader, root string) error {
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("reading tar: %w", err)
		}
		target := filepath.Join(root, filepath.Clean("/"+h.Name))
		mode := os.FileMode(h.Mode) & os.ModePerm
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(target, mode|0o700); err != nil {
				return err
			}
		case tar.TypeSymlink:
			_ = os.Remove(target)
			if err := os.Symlink(h.Linkname, target); err != nil {
				return err
			}
		case tar.TypeReg:
			if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
				return err
			}
			if err := writeFile(target, tr, mode); err != nil {
				return err
			}
		}
	}
}

func writeFile(target string, r io.Reader, mode os.FileMode) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(target, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, mode)
	if err == nil {
		_, werr := f.Write(data)
		cerr := f.Close()
		if werr != nil {
			return fmt.Errorf("writing %s: %w", target, werr)
		}
		if cerr != nil {
			return fmt.Errorf("writing %s: %w", target, cerr)
		}
		_ = os.Chmod(target, mode)
		return nil
	}
	tmp := filepath.Join(filepath.Dir(target), "."+filepath.Base(target)+".devloop-new")
	if werr := os.WriteFile(tmp, data, mode); werr != nil {
		return fmt.Errorf("writing %s: %w (and no temporary file beside it: %v)", target, err, werr)
	}
	_ = os.Chmod(tmp, mode)
	if rerr := os.Rename(tmp, target); rerr != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("replacing %s: %w", target, rerr)
	}
	return nil
}
