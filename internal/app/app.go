// Package app is devloop's command line: cobra commands that translate flags
// into calls on the internal packages. main only calls Main; everything else
// goes through Run, which tests call directly.
package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/devloop-dev/devloop/examples"
	"github.com/devloop-dev/devloop/internal/config"
	"github.com/devloop-dev/devloop/internal/debugserver"
	"github.com/devloop-dev/devloop/internal/project"
	"github.com/devloop-dev/devloop/internal/redact"
	"github.com/devloop-dev/devloop/internal/ui"
)

// Version is set at build time with -ldflags "-X .../internal/app.Version=...".
var Version = "dev"

// Streams are the standard streams a command uses.
type Streams struct {
	In          io.Reader
	Out, ErrOut io.Writer
}

// Main runs devloop with the process's arguments and exits non-zero on error.
// Ctrl-C and SIGTERM cancel one root context.
func Main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := Run(ctx, Streams{In: os.Stdin, Out: os.Stdout, ErrOut: os.Stderr}, os.Args[1:]); err != nil {
		os.Exit(1)
	}
}

// Run executes one devloop command line. Errors are printed to ErrOut once,
// readably, and returned.
func Run(ctx context.Context, s Streams, args []string) error {
	defer debugserver.StartFromEnv(s.ErrOut)() // DEVLOOP_PPROF_ADDR: profiles for leak measurements, loopback only
	// Everything devloop prints goes through out and errOut, which mask the
	// values of the project's Secrets (added as the manifests render).
	secrets := redact.New()
	g := &globals{streams: s, secrets: secrets, out: secrets.Writer(s.Out)}
	errOut := secrets.Writer(s.ErrOut)
	root := newRoot(g)
	root.SetArgs(args)
	root.SetIn(s.In)
	root.SetOut(s.Out)
	root.SetErr(s.ErrOut)
	err := root.ExecuteContext(ctx)
	if err != nil {
		printError(errOut, err, g.verbosity)
	}
	return err
}

// globals are the flags every command has.
type globals struct {
	streams    Streams
	configPath string
	configSet  bool
	verbosity  int
	noColor    bool
	// liveOut, when set, receives the printer's lines (the live status view).
	liveOut io.Writer
	// secrets are the values out masks; out is streams.Out through them.
	secrets *redact.Set
	out     io.Writer
}

func newRoot(g *globals) *cobra.Command {
	root := &cobra.Command{
		Use:   "devloop",
		Short: "One command for the Kubernetes inner loop: cluster, ingress, builds, deploys, forwards, logs, live updates",
		Long: `devloop runs your project on a local kind cluster while you code.

'devloop up' creates (or adopts) a kind cluster with a Traefik ingress, builds
your images with Docker, loads them into the cluster, applies your manifests,
waits for every rollout, keeps port-forwards and one log stream alive, and
rebuilds or live-syncs whatever you change.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRun: func(cmd *cobra.Command, _ []string) {
			g.configSet = cmd.Flags().Changed("config")
			if os.Getenv("NO_COLOR") != "" {
				g.noColor = true
			}
		},
	}
	root.PersistentFlags().StringVarP(&g.configPath, "config", "f", "devloop.yaml", "path to devloop.yaml (without it, the bundled example runs)")
	root.PersistentFlags().CountVarP(&g.verbosity, "verbose", "v", "more output (repeat for more)")
	root.PersistentFlags().BoolVar(&g.noColor, "no-color", false, "plain output, no ANSI colors (also NO_COLOR=1)")
	root.AddCommand(
		newUpCommand(g),
		newDownCommand(g),
		newBuildCommand(g),
		newStatusCommand(g),
		newLogsCommand(g),
		newDoctorCommand(g),
		newVersionCommand(g),
		newInitCommand(g),
	)
	return root
}

// printer makes the output printer for a command.
func (g *globals) printer() *ui.Printer {
	tty := ui.IsTerminal(g.streams.Out)
	if g.liveOut != nil {
		return ui.NewPrinter(g.secrets.Writer(g.liveOut), tty && !g.noColor, false)
	}
	return ui.NewPrinter(g.out, tty && !g.noColor, !tty)
}

// newDeps makes the external systems a command uses (tests replace it).
var newDeps = project.NewDeps

// deps returns the external systems, with kind's progress printed under "cluster".
func (g *globals) deps(p *ui.Printer) *project.Deps {
	d := newDeps(p.Writer("cluster"), g.verbosity)
	d.Secrets = g.secrets
	return d
}

// load loads the config and makes the printer, its prefixes as wide as the
// longest service name.
func (g *globals) load() (*config.Config, *ui.Printer, error) {
	p := g.printer()
	cfg, err := g.loadConfig(p)
	if err != nil {
		return nil, nil, err
	}
	width := len("devloop")
	for _, s := range cfg.Services {
		width = max(width, len(s.Name))
	}
	p.SetPrefixWidth(width)
	return cfg, p, nil
}

// loadConfig loads the config named by -f. When -f was not given and
// ./devloop.yaml does not exist, the bundled example is extracted into the
// user's cache directory and used: clone, then one command.
func (g *globals) loadConfig(p *ui.Printer) (*config.Config, error) {
	path := g.configPath
	if !g.configSet {
		if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
			dir, err := exampleDir()
			if err != nil {
				return nil, err
			}
			if err := examples.Extract(examples.HelloFS(), dir); err != nil {
				return nil, fmt.Errorf("extracting the bundled example to %s: %w", dir, err)
			}
			if p != nil {
				p.Line("devloop", "no devloop.yaml here: running the bundled example from %s (edit its files there)", dir)
			}
			path = filepath.Join(dir, "devloop.yaml")
		}
	}
	cfg, err := loadConfigFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, withHint(fmt.Errorf("config file %s does not exist", path),
			"create one (see devloop.example.yaml), or run devloop without -f to use the bundled example")
	}
	return cfg, err
}

// loadConfigFile loads the config at path with the environment's overrides.
func loadConfigFile(path string) (*config.Config, error) {
	cfg, err := config.Load(path)
	if err != nil {
		return nil, err
	}
	config.ApplyEnv(cfg, os.Getenv)
	return cfg, nil
}

func exampleDir() (string, error) {
	base, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("finding a cache directory for the bundled example: %w", err)
	}
	return filepath.Join(base, "devloop", "example-hello"), nil
}

// hintError is an error with what to do next.
type hintError struct {
	err  error
	hint string
}

func (e *hintError) Error() string { return e.err.Error() }
func (e *hintError) Unwrap() error { return e.err }

func withHint(err error, hint string) error { return &hintError{err: err, hint: hint} }

// printError prints err once: the message, and what to do next if known.
func printError(w io.Writer, err error, verbosity int) {
	msg := err.Error()
	var lines []string
	if strings.Contains(msg, "\n") {
		lines = append(lines, "devloop: error:")
		for _, l := range strings.Split(strings.TrimRight(msg, "\n"), "\n") {
			lines = append(lines, "  "+l)
		}
	} else {
		lines = append(lines, "devloop: error: "+msg)
	}
	var h *hintError
	if errors.As(err, &h) {
		lines = append(lines, "  what to do: "+h.hint)
	}
	if verbosity > 0 {
		lines = append(lines, fmt.Sprintf("  (detail: %#v)", err))
	}
	fmt.Fprintln(w, strings.Join(lines, "\n"))
}
