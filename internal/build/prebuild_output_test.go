package build

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"testing"

	"github.com/devloop-dev/devloop/internal/config"
	"github.com/devloop-dev/devloop/internal/ui"
)

// progressCommand prints lines progress updates ended by carriage returns
// only (one progress bar, redrawn), then an error line, and fails.
func progressCommand(lines int) string {
	return fmt.Sprintf(`yes 'fetching 42%%' | head -n %d | tr '\n' '\r'; printf '\nerror: disk full\n' >&2; exit 1`, lines)
}

// TestPreBuildCarriageReturns: a pre-build command whose output is one
// progress bar redrawn with \r (7.8 MB without a newline) reports a short
// tail: the bar's last state and the error (issue 16, item 6).
func TestPreBuildCarriageReturns(t *testing.T) {
	svc := svcIn(t, "api", map[string]string{"Dockerfile": "FROM scratch\n"})
	svc.Build.PreBuild = &config.Command{Run: progressCommand(600_000)}
	out := ui.NewPrinter(io.Discard, false, false).Writer("api")
	_, err := NewBuilder(&FakeDocker{}).Build(context.Background(), svc, out)
	var be *BuildError
	if !errors.As(err, &be) || be.Stage != "pre-build" {
		t.Fatalf("err = %v", err)
	}
	if want := "fetching 42%\nerror: disk full"; be.Output != want {
		t.Errorf("output tail of %d bytes: %.200q, want %q", len(be.Output), be.Output, want)
	}
}

// BenchmarkPreBuildCarriageReturns runs a pre-build command writing 32 MiB
// of carriage-return progress updates, printed through the printer's line
// writer and kept in the error tail, as devloop up does.
func BenchmarkPreBuildCarriageReturns(b *testing.B) {
	dir := b.TempDir() // the command fails before the image build: no Dockerfile needed
	svc := config.Service{Name: "api", Build: config.Build{Context: dir, Dockerfile: filepath.Join(dir, "Dockerfile")}}
	svc.Build.PreBuild = &config.Command{Run: progressCommand(32 << 20 / len("fetching 42%\n"))}
	p := ui.NewPrinter(io.Discard, false, false)
	b.ReportAllocs()
	b.SetBytes(32 << 20)
	for b.Loop() {
		out := p.Writer("api")
		_, err := NewBuilder(&FakeDocker{}).Build(context.Background(), svc, out)
		_ = out.Close()
		if err == nil || !strings.Contains(err.Error(), "exit status 1") {
			b.Fatalf("err = %v", err)
		}
	}
}
