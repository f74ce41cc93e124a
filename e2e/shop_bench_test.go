//go:build e2e

package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// BenchmarkShopColdUp measures `devloop up --once` on examples/shop from no
// cluster: start → "all services ready" (the cluster created, four images
// built on the host and in Docker, loaded, db and web rolled out, then api
// and worker once db is ready), and the whole command (which also waits for
// the ingress). Each run starts with `down --cluster`; Docker's build cache
// and the host's Go build cache stay warm, as on a developer's machine.
//
//	go test -tags e2e -run '^$' -bench ShopColdUp -benchtime 1x ./e2e/
//
// DEVLOOP_BENCH_RUNS runs (default 10), whatever b.N is.
func BenchmarkShopColdUp(b *testing.B) {
	runs := 10
	if v := getenvInt("DEVLOOP_BENCH_RUNS"); v > 0 {
		runs = v
	}
	dir := shopProject(b)
	var ready, wall []time.Duration
	for i := 0; i < runs; i++ {
		if out, err := run(b, dir, 3*time.Minute, "down", "--cluster"); err != nil {
			b.Fatalf("down --cluster: %v\n%s", err, out)
		}
		begin := time.Now()
		up := start(b, dir, "up", "--once")
		up.waitOutput("all services ready (db, api, web, worker)", 0, 8*time.Minute)
		for _, l := range up.out.linesSince(begin) {
			if strings.Contains(l.text, "all services ready") {
				ready = append(ready, l.at.Sub(begin))
				break
			}
		}
		<-up.done
		if up.err != nil {
			b.Fatalf("up --once: %v\n%s", up.err, up.out.String())
		}
		wall = append(wall, time.Since(begin))
		if i == 0 {
			// What the dependency order looks like in the plain output.
			for _, l := range strings.Split(up.out.String(), "\n") {
				if strings.Contains(l, "waiting for") || strings.Contains(l, "ready: ") || strings.Contains(l, "applying") ||
					strings.Contains(l, "rolling out") || strings.Contains(l, "rolled out") || strings.Contains(l, "all services ready") {
					b.Log(l)
				}
			}
		}
		b.Logf("run %d: all services ready after %s, command done after %s", i+1, ready[len(ready)-1].Round(10*time.Millisecond), wall[len(wall)-1].Round(10*time.Millisecond))
	}
	reportPct(b, "cold/all-ready", ready)
	reportPct(b, "cold/wall", wall)
	run(b, dir, 3*time.Minute, "down", "--volumes")
}

// BenchmarkShopSaveToServing is BenchmarkSaveToServing's rebuild on one
// service of examples/shop (api, behind its port-forward) while the other
// three run: an edit of the service name api answers with.
//
//	go test -tags e2e -run '^$' -bench ShopSaveToServing -benchtime 1x ./e2e/
func BenchmarkShopSaveToServing(b *testing.B) {
	runs := 20
	if v := getenvInt("DEVLOOP_BENCH_RUNS"); v > 0 {
		runs = v
	}
	dir := shopProject(b)
	up := start(b, dir, "up")
	up.waitOutput("all services ready (db, api, web, worker)", 0, 8*time.Minute)
	eventually(b, shopAPIURL, "", `"service":"api"`, time.Minute)
	main := filepath.Join(dir, "api", "main.go")
	src, err := os.ReadFile(main)
	if err != nil {
		b.Fatal(err)
	}
	rb := measureRebuilds(b, up, runs, shopAPIURL, func(want string) {
		atomicWrite(b, main, strings.Replace(string(src), `"service": "api"`, fmt.Sprintf(`"service": %q`, want), 1))
	})
	rb.report(b, "shop-api")
	up.stop()
	run(b, dir, 3*time.Minute, "down", "--volumes")
}
