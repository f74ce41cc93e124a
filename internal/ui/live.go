package ui

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"
	"github.com/muesli/termenv"
)

// StatusView is what the live status table shows.
type StatusView struct {
	Project, Cluster string
	Services         []ServiceRow
	Forwards         []ForwardRow
	Ingress          []string
}

// ServiceRow is one service's line.
type ServiceRow struct {
	Name  string
	Phase string // pending, building, loading, deploying, syncing, ready, failed, "waiting for <services>"
	Since time.Time
	Image string // content-tagged ref running (or last built)
	Error string // last error, first line only is shown
	// Pods is "ready/desired" ("" when not known yet); Restarts sums the pods' container restarts.
	Pods     string
	Restarts int
}

// ForwardRow is one port-forward's line.
type ForwardRow struct {
	URL, Target, State, Pod string
}

var phaseColor = map[string]string{
	"ready": "2", "failed": "1", "building": "3", "loading": "3", "deploying": "3", "syncing": "3", "restarting": "3", "pending": "8", "waiting": "8",
}

// RenderStatus draws the compact status table. now gives the "for how long"
// of each phase; color adds ANSI colors (lipgloss).
func RenderStatus(v StatusView, now time.Time, color bool) string {
	// The caller decides about color (terminal, --no-color), not lipgloss's
	// own detection of whatever stdout is.
	r := lipgloss.NewRenderer(io.Discard)
	r.SetColorProfile(termenv.ANSI)
	style := func(code, s string) string {
		if !color || code == "" {
			return s
		}
		return r.NewStyle().Foreground(lipgloss.Color(code)).Render(s)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s · cluster %s\n", style("6", "project "+v.Project), v.Cluster)
	// Columns are padded on the plain text, then colored, so escape codes
	// never count towards the width.
	rows := [][]string{{"SERVICE", "STATE", "FOR", "PODS", "RESTARTS", "IMAGE"}}
	for _, s := range v.Services {
		rows = append(rows, []string{s.Name, s.Phase, since(now, s.Since), orDash(s.Pods), fmt.Sprint(s.Restarts), orDash(s.Image)})
	}
	width := make([]int, len(rows[0]))
	for _, r := range rows {
		for i, c := range r {
			width[i] = max(width[i], len(c))
		}
	}
	for n, r := range rows {
		for i, c := range r {
			cell := c
			if i < len(r)-1 {
				cell += strings.Repeat(" ", width[i]-len(c)+2)
			}
			if n > 0 && i == 1 {
				phase, _, _ := strings.Cut(c, " ") // "waiting for db"
				cell = style(phaseColor[phase], cell)
			}
			b.WriteString(cell)
		}
		b.WriteString("\n")
	}
	for _, s := range v.Services {
		if s.Error != "" {
			first, _, _ := strings.Cut(s.Error, "\n")
			fmt.Fprintf(&b, "  %s %s: %s\n", style("1", "!"), s.Name, first)
		}
	}
	for _, f := range v.Forwards {
		state := f.State
		if f.Pod != "" {
			state += " → " + f.Pod
		}
		fmt.Fprintf(&b, "  %s → %s (%s)\n", style("4", f.URL), f.Target, state)
	}
	for _, u := range v.Ingress {
		fmt.Fprintf(&b, "  %s (ingress)\n", style("4", u))
	}
	return b.String()
}

func since(now, t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	d := now.Sub(t)
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
	}
	return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// Live redraws the status table in place at the bottom of the terminal,
// with every output line (devloop's own and the log stream) printed above
// it. It is a bubbletea program without input: Ctrl-C reaches devloop's
// own signal handling.
type Live struct {
	p       *tea.Program
	out     io.Writer
	done    chan struct{}
	mu      sync.Mutex
	stopped bool
	err     error
}

type viewMsg StatusView
type tickMsg time.Time

type liveModel struct {
	view  StatusView
	now   time.Time
	color bool
}

func (m liveModel) Init() tea.Cmd { return tick() }

func tick() tea.Cmd {
	return tea.Tick(time.Second, func(t time.Time) tea.Msg { return tickMsg(t) })
}

func (m liveModel) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	switch msg := msg.(type) {
	case viewMsg:
		m.view = StatusView(msg)
	case tickMsg:
		m.now = time.Time(msg)
		return m, tick()
	}
	return m, nil
}

func (m liveModel) View() string { return "\n" + RenderStatus(m.view, m.now, m.color) }

// NewLive starts the live view on out.
func NewLive(out io.Writer, color bool) *Live {
	l := &Live{out: out, done: make(chan struct{})}
	l.p = tea.NewProgram(liveModel{now: time.Now(), color: color},
		tea.WithOutput(out), tea.WithInput(nil), tea.WithoutSignalHandler())
	go func() {
		defer close(l.done)
		_, err := l.p.Run()
		l.mu.Lock()
		l.err = err
		l.mu.Unlock()
	}()
	return l
}

// Set replaces what the table shows.
func (l *Live) Set(v StatusView) { l.p.Send(viewMsg(v)) }

// Write prints complete lines above the table (it is the Printer's output);
// once the view has stopped, straight to the terminal.
func (l *Live) Write(b []byte) (int, error) {
	l.mu.Lock()
	stopped := l.stopped
	l.mu.Unlock()
	if stopped {
		return l.out.Write(b)
	}
	for _, line := range strings.Split(strings.TrimRight(string(b), "\n"), "\n") {
		l.p.Println(line)
	}
	return len(b), nil
}

// Stop ends the live view, leaving the last table on screen.
func (l *Live) Stop() error {
	l.mu.Lock()
	l.stopped = true
	l.mu.Unlock()
	l.p.Quit()
	<-l.done
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.err
}
