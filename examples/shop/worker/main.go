// Command worker is the shop's background job: every $INTERVAL (default 2s)
// it reads the value the db holds and logs it, with $GREETING, when it
// changed. It serves nothing. `worker check` is its Helm chart's
// pre-install and pre-upgrade hook: it checks its settings, prints one line
// and exits (0 when they are good).
package main

import (
	"io"
	"log"
	"net/http"
	"os"
	"time"
)

func main() {
	log.SetFlags(0)
	log.SetOutput(os.Stdout)
	interval := 2 * time.Second
	if s := os.Getenv("INTERVAL"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d <= 0 {
			log.Fatalf("worker: INTERVAL %q is not a positive duration", s)
		}
		interval = d
	}
	greeting := os.Getenv("GREETING")
	if len(os.Args) > 1 && os.Args[1] == "check" {
		log.Printf("worker check: interval %s, greeting %q: ok", interval, greeting)
		return
	}
	db := os.Getenv("DB_URL")
	if db == "" {
		db = "http://db:8080"
	}
	password := os.Getenv("DB_PASSWORD")
	client := &http.Client{Timeout: 5 * time.Second}
	last := "\x00"
	log.Printf("worker: %s; watching %s every %s", greeting, db, interval)
	for range time.Tick(interval) {
		req, _ := http.NewRequest(http.MethodGet, db+"/value", nil)
		req.Header.Set("X-Password", password)
		resp, err := client.Do(req)
		if err != nil {
			log.Printf("worker: %v", err)
			continue
		}
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
		resp.Body.Close()
		if v := string(b); v != last {
			last = v
			log.Printf("worker: %s; the db holds %q", greeting, v)
		}
	}
}
