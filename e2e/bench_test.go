//go:build e2e

package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"
)

// BenchmarkSaveToServing measures, on the example project and a real
// cluster, the time from writing a changed response string into a source
// file to the new response arriving through the port-forward, with a rebuild
// and with live sync, split into phases read from devloop's own output.
//
//	make e2e-bench   (go test -tags e2e -run '^$' -bench SaveToServing -benchtime 1x ./e2e/)
//
// Runs DEVLOOP_BENCH_RUNS (default 20) edits of each kind whatever b.N is:
// the numbers are percentiles over those runs, not per-op averages.
func BenchmarkSaveToServing(b *testing.B) {
	runs := 20
	if v := getenvInt("DEVLOOP_BENCH_RUNS"); v > 0 {
		runs = v
	}
	dir := helloProject(b)
	up := start(b, dir, "up")
	up.waitOutput("all services ready", 0, 8*time.Minute)
	eventually(b, forwardURL, "", "hello from devloop", time.Minute)

	var total, debounce, build, load, serve, rollout []time.Duration
	for i := 0; i < runs; i++ {
		want := fmt.Sprintf("bench-%d-%d", time.Now().UnixNano(), i)
		mark := up.mark()
		saved := time.Now()
		atomicWrite(b, filepath.Join(dir, "message.go"), message(want))
		took := eventually(b, forwardURL, "", want, 2*time.Minute)
		total = append(total, took)
		// Wait for the loop to settle before the next edit.
		up.waitOutput("all services ready", mark, time.Minute)
		ph := phases(up.out.linesSince(saved), saved, saved.Add(took))
		debounce = append(debounce, ph["debounce"])
		build = append(build, ph["build"])
		load = append(load, ph["load"])
		serve = append(serve, ph["serve"])
		rollout = append(rollout, ph["rollout"])
	}

	var syncs []time.Duration
	for i := 0; i < runs; i++ {
		want := fmt.Sprintf("sync-%d-%d", time.Now().UnixNano(), i)
		writeFile(b, filepath.Join(dir, "static", "index.html"), "<p>"+want+"</p>\n")
		syncs = append(syncs, eventually(b, forwardURL+"static/", "", want, time.Minute))
	}

	report := func(name string, ds []time.Duration) {
		p50, p95 := pct(ds, 50), pct(ds, 95)
		b.ReportMetric(p50.Seconds(), name+"-p50-s")
		b.ReportMetric(p95.Seconds(), name+"-p95-s")
		b.Logf("%-22s p50 %6s  p95 %6s  (n=%d)", name, p50.Round(time.Millisecond), p95.Round(time.Millisecond), len(ds))
	}
	report("rebuild/total", total)
	report("rebuild/debounce", debounce)
	report("rebuild/build", build)
	report("rebuild/load", load)
	report("rebuild/serve", serve)
	report("rebuild/rollout-done", rollout)
	report("livesync/total", syncs)
}

var (
	imageLine   = regexp.MustCompile(`image \S+: build (\S+), load into \d+ node\(s\) (\S+)`)
	rolloutLine = regexp.MustCompile(`rolled out in (\S+)`)
)

// phases splits one save-to-serving interval using devloop's output:
// debounce = save → "building" line; build and load from the image line;
// serve = image line → first good answer through the forward (apply, the
// new pod scheduled, started and Ready, the forward switching to it). Also
// rollout = devloop's "rolled out in" (apply → the rollout complete, which
// includes the old pod terminating: it ends after serving began).
func phases(lines []timedLine, saved, served time.Time) map[string]time.Duration {
	out := map[string]time.Duration{}
	var rolledAt time.Time
	for _, l := range lines {
		switch {
		case strings.Contains(l.text, "building (") && out["debounce"] == 0:
			out["debounce"] = l.at.Sub(saved)
		case imageLine.MatchString(l.text):
			m := imageLine.FindStringSubmatch(l.text)
			out["build"], _ = time.ParseDuration(m[1])
			out["load"], _ = time.ParseDuration(m[2])
			if served.After(l.at) {
				out["serve"] = served.Sub(l.at)
			}
		case rolloutLine.MatchString(l.text) && rolledAt.IsZero():
			out["rollout"], _ = time.ParseDuration(rolloutLine.FindStringSubmatch(l.text)[1])
			rolledAt = l.at
		}
	}
	return out
}

func pct(ds []time.Duration, p int) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	i := (len(s)*p + 99) / 100
	if i < 1 {
		i = 1
	}
	return s[i-1]
}

func getenvInt(k string) int {
	var n int
	fmt.Sscanf(strings.TrimSpace(os.Getenv(k)), "%d", &n)
	return n
}
