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
// file to the new response arriving through the port-forward, with a rebuild,
// with live sync and in restart mode (a sync rule with restart: true), split
// into phases read from devloop's own output.
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

	rb := measureRebuilds(b, up, runs, forwardURL, func(want string) {
		atomicWrite(b, filepath.Join(dir, "message.go"), message(want))
	})

	var syncs []time.Duration
	for i := 0; i < runs; i++ {
		want := fmt.Sprintf("sync-%d-%d", time.Now().UnixNano(), i)
		writeFile(b, filepath.Join(dir, "static", "index.html"), "<p>"+want+"</p>\n")
		syncs = append(syncs, eventually(b, forwardURL+"static/", "", want, time.Minute))
	}

	rb.report(b, "rebuild")
	reportPct(b, "livesync/total", syncs)

	// The same project and cluster in restart mode (issue 15): the restart
	// rule added, devloop started again with it (its first build adds the
	// supervisor layer), then the same edits.
	up.stop()
	cfg := strings.Replace(helloConfig, "        dest: /app/static\n", "        dest: /app/static\n"+restartRule, 1)
	writeFile(b, filepath.Join(dir, "devloop.yaml"), cfg)
	up = start(b, dir, "up")
	up.waitOutput("all services ready", 0, 8*time.Minute)
	eventually(b, forwardURL, "", "hello from devloop", time.Minute)
	rs := measureRestarts(b, up, runs, func(want string) {
		atomicWrite(b, filepath.Join(dir, "message.go"), message(want))
	})
	rs.report(b)
	up.stop()
	run(b, dir, 2*time.Minute, "down")
}

// restarts holds the phases of each measured restart-mode edit.
type restarts struct{ total, debounce, compile, copy, restart, answer []time.Duration }

var restartLine = regexp.MustCompile(`restarted \d+ container\(s\) with the new build in \S+: pre-build (\S+), copy (\S+), restart (\S+)`)

// measureRestarts makes runs edits in restart mode, each timed from the
// save to the new answer through the forward (polled every 20 ms: the
// 100 ms of eventually would be an eighth of the target), and split with
// devloop's lines: debounce = save → "live-updating" line; compile, copy
// and restart from the "restarted" line; answer = that line → the first
// new answer. Every edit must be served by the same pod (no new pod).
func measureRestarts(b *testing.B, up *proc, runs int, edit func(want string)) restarts {
	var r restarts
	for i := 0; i < runs; i++ {
		want := fmt.Sprintf("bench-%d-%d", time.Now().UnixNano(), i)
		mark := up.mark()
		saved := time.Now()
		edit(want)
		var took time.Duration
		for {
			code, body, err := httpGet(forwardURL, "")
			if err == nil && code == 200 && strings.Contains(body, want) {
				took = time.Since(saved)
				break
			}
			if time.Since(saved) > time.Minute {
				b.Fatalf("edit %d not served within a minute:\n%s", i, up.out.String()[mark:])
			}
			time.Sleep(20 * time.Millisecond) // the poll rate, not synchronisation
		}
		up.waitOutput("all services ready", mark, time.Minute)
		if out := up.out.String()[mark:]; strings.Contains(out, "building (") {
			b.Fatalf("a restart-mode edit built an image:\n%s", out)
		}
		r.total = append(r.total, took)
		var doneAt time.Time
		for _, l := range up.out.linesSince(saved) {
			switch {
			case strings.Contains(l.text, "live-updating (") && len(r.debounce) == i:
				r.debounce = append(r.debounce, l.at.Sub(saved))
			case restartLine.MatchString(l.text) && doneAt.IsZero():
				m := restartLine.FindStringSubmatch(l.text)
				for j, list := range []*[]time.Duration{&r.compile, &r.copy, &r.restart} {
					d, _ := time.ParseDuration(m[j+1])
					*list = append(*list, d)
				}
				doneAt = l.at
			}
		}
		if doneAt.IsZero() || len(r.debounce) != i+1 {
			b.Fatalf("edit %d: no live-updating or restarted line:\n%s", i, up.out.String()[mark:])
		}
		r.answer = append(r.answer, saved.Add(took).Sub(doneAt))
	}
	return r
}

func (r restarts) report(b *testing.B) {
	reportPct(b, "restart/total", r.total)
	reportPct(b, "restart/debounce", r.debounce)
	reportPct(b, "restart/compile", r.compile)
	reportPct(b, "restart/copy", r.copy)
	reportPct(b, "restart/restart", r.restart)
	reportPct(b, "restart/first-answer", r.answer)
}

// BenchmarkSaveToServingMultistage is BenchmarkSaveToServing's rebuild on
// examples/multistage: the app compiled inside the image build (golang:1.26,
// BuildKit cache mounts warm after the first build), a FROM scratch image.
//
//	go test -tags e2e -run '^$' -bench SaveToServingMultistage -benchtime 1x ./e2e/
func BenchmarkSaveToServingMultistage(b *testing.B) {
	runs := 20
	if v := getenvInt("DEVLOOP_BENCH_RUNS"); v > 0 {
		runs = v
	}
	port := featuresPort + 2
	dir := multistageProject(b, port)
	up := start(b, dir, "up")
	up.waitOutput("all services ready", 0, 10*time.Minute)
	url := fmt.Sprintf("http://127.0.0.1:%d/", port)
	eventually(b, url, "", "hello from a multi-stage build", time.Minute)
	main := filepath.Join(dir, "main.go")
	src, err := os.ReadFile(main)
	if err != nil {
		b.Fatal(err)
	}
	rb := measureRebuilds(b, up, runs, url, func(want string) {
		atomicWrite(b, main, strings.Replace(string(src), `"hello from a multi-stage build"`, fmt.Sprintf("%q", want), 1))
	})
	rb.report(b, "multistage")
	up.stop()
	run(b, dir, 2*time.Minute, "down")
}

// rebuilds holds the phases of each measured rebuild.
type rebuilds struct{ total, debounce, build, load, serve, rollout []time.Duration }

// measureRebuilds makes runs edits (edit writes a source so that the app
// answers want), each timed from the save to the new answer at url, and
// waits for devloop to settle before the next.
func measureRebuilds(b *testing.B, up *proc, runs int, url string, edit func(want string)) rebuilds {
	var r rebuilds
	for i := 0; i < runs; i++ {
		want := fmt.Sprintf("bench-%d-%d", time.Now().UnixNano(), i)
		mark := up.mark()
		saved := time.Now()
		edit(want)
		took := eventually(b, url, "", want, 3*time.Minute)
		r.total = append(r.total, took)
		up.waitOutput("all services ready", mark, time.Minute)
		ph := phases(up.out.linesSince(saved), saved, saved.Add(took))
		r.debounce = append(r.debounce, ph["debounce"])
		r.build = append(r.build, ph["build"])
		r.load = append(r.load, ph["load"])
		r.serve = append(r.serve, ph["serve"])
		r.rollout = append(r.rollout, ph["rollout"])
	}
	return r
}

func (r rebuilds) report(b *testing.B, name string) {
	reportPct(b, name+"/total", r.total)
	reportPct(b, name+"/debounce", r.debounce)
	reportPct(b, name+"/build", r.build)
	reportPct(b, name+"/load", r.load)
	reportPct(b, name+"/serve", r.serve)
	reportPct(b, name+"/rollout-done", r.rollout)
}

func reportPct(b *testing.B, name string, ds []time.Duration) {
	p50, p95 := pct(ds, 50), pct(ds, 95)
	b.ReportMetric(p50.Seconds(), name+"-p50-s")
	b.ReportMetric(p95.Seconds(), name+"-p95-s")
	b.Logf("%-22s p50 %6s  p95 %6s  (n=%d)", name, p50.Round(time.Millisecond), p95.Round(time.Millisecond), len(ds))
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
