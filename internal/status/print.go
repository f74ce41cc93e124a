package status

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// ANSI colors of the same length, so that colored cells keep tabwriter's
// columns aligned when every cell of a column carries one.
const (
	ansiGreen   = "\x1b[32m"
	ansiYellow  = "\x1b[33m"
	ansiRed     = "\x1b[31m"
	ansiDefault = "\x1b[39m"
	ansiReset   = "\x1b[0m"
)

// PrintTable writes r compactly: a header line, one table row per service,
// the URLs to open, then each service's problems indented under its name.
// color adds ANSI colors: READY is green when everything is ready, yellow
// when partly, red when nothing is or a problem was found.
func PrintTable(w io.Writer, r Report, color bool) {
	var b strings.Builder
	state := "running"
	stateColor := ansiGreen
	if !r.ClusterRunning {
		state, stateColor = "not running", ansiYellow
	}
	if color {
		state = stateColor + state + ansiReset
	}
	fmt.Fprintf(&b, "project %s · cluster %s (%s) · %s\n\n", r.Project, r.Cluster, r.Context, state)

	if len(r.Services) == 0 {
		b.WriteString("no services in devloop.yaml\n")
	} else {
		tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
		cell := func(code, text string) string {
			if !color {
				return text
			}
			return code + text + ansiReset
		}
		fmt.Fprintf(tw, "SERVICE\t%s\tRESTARTS\tIMAGE\n", cell(ansiDefault, "READY"))
		for _, s := range r.Services {
			image := s.Image
			if image == "" {
				image = "-"
			}
			if s.LiveUpdated > 0 {
				image += fmt.Sprintf(" (%d pod(s) live-updated: the image lags)", s.LiveUpdated)
			}
			fmt.Fprintf(tw, "%s\t%s\t%d\t%s\n", s.Name, cell(readyColor(s, r.ClusterRunning), fmt.Sprintf("%d/%d", s.Ready, s.Desired)), s.Restarts, image)
		}
		tw.Flush()
	}

	if len(r.Ingress)+len(r.Forwards) > 0 {
		b.WriteString("\nURLs\n")
		tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
		for _, u := range r.Ingress {
			fmt.Fprintf(tw, "  %s\tingress\n", u)
		}
		for _, f := range r.Forwards {
			fmt.Fprintf(tw, "  %s\t→ %s (while devloop up runs)\n", f.URL, f.Target)
		}
		tw.Flush()
	}

	for _, s := range r.Services {
		if len(s.Problems) == 0 {
			continue
		}
		name := s.Name
		if color {
			name = ansiRed + name + ansiReset
		}
		fmt.Fprintf(&b, "\n%s:\n", name)
		for _, p := range s.Problems {
			for _, line := range strings.Split(strings.TrimRight(p, "\n"), "\n") {
				b.WriteString("  " + line + "\n")
			}
		}
	}

	if !r.ClusterRunning {
		b.WriteString("\nThe cluster is not running: devloop up creates it and deploys the services.\n")
	}
	io.WriteString(w, b.String())
}

func readyColor(s Service, running bool) string {
	switch {
	case !running:
		return ansiDefault
	case len(s.Problems) > 0 || (s.Ready == 0 && s.Desired > 0):
		return ansiRed
	case s.Ready < s.Desired:
		return ansiYellow
	}
	return ansiGreen
}

// WriteJSON writes r as indented JSON, with empty lists as [] rather than null.
func WriteJSON(w io.Writer, r Report) error {
	r.Services = append([]Service{}, r.Services...)
	for i := range r.Services {
		s := &r.Services[i]
		s.Workloads = append([]string{}, s.Workloads...)
		s.Problems = append([]string{}, s.Problems...)
	}
	r.Ingress = append([]string{}, r.Ingress...)
	r.Forwards = append([]Forward{}, r.Forwards...)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(r); err != nil {
		return fmt.Errorf("writing status as JSON: %w", err)
	}
	return nil
}
