// Command web is the shop's front end, behind http://shop.localhost:8080/:
// it serves /app/static (live-synced by devloop: edit web/static and the
// running pod serves it, no rebuild) and /healthz for probes.
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
	dir := os.Getenv("STATIC_DIR")
	if dir == "" {
		dir = "/app/static"
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "ok\n") })
	mux.Handle("GET /", http.FileServer(http.Dir(dir)))
	log.Printf("web: serving %s on :8080", dir)
	srv := &http.Server{Addr: ":8080", Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	log.Fatal(srv.ListenAndServe())
}
