// Command worker is the shop's background job: every few seconds it reads
// the value the db holds and logs it when it changed. It serves nothing.
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
	db := os.Getenv("DB_URL")
	if db == "" {
		db = "http://db:8080"
	}
	password := os.Getenv("DB_PASSWORD")
	client := &http.Client{Timeout: 5 * time.Second}
	last := "\x00"
	log.Printf("worker: watching %s", db)
	for range time.Tick(2 * time.Second) {
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
			log.Printf("worker: the db holds %q", v)
		}
	}
}
