// Command api is the shop's API, behind http://shop.localhost:8080/api/:
//
//	GET /api/         the greeting (from the ConfigMap) and the stored value
//	PUT /api/value    stores the request body in the db
//	GET /healthz      for probes
//
// It reads the greeting from the ConfigMap (GREETING) and the db password
// from the Secret (DB_PASSWORD), both as environment variables.
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"strings"
	"time"
)

func main() {
	log.SetFlags(0)
	log.SetOutput(os.Stdout)
	greeting := os.Getenv("GREETING")
	password := os.Getenv("DB_PASSWORD")
	db := envOr("DB_URL", "http://db:8080")
	// Careless on purpose: an app that logs a secret. devloop masks the
	// values of the project's Secrets in everything it prints, these log
	// lines included; `kubectl logs` would show it.
	log.Printf("api: connecting to %s with password %s", db, password)
	client := &http.Client{Timeout: 5 * time.Second}
	call := func(method string, body io.Reader) (string, error) {
		req, err := http.NewRequest(method, db+"/value", body)
		if err != nil {
			return "", err
		}
		req.Header.Set("X-Password", password)
		resp, err := client.Do(req)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
		if err == nil && resp.StatusCode/100 != 2 {
			err = fmt.Errorf("db answered %s: %s", resp.Status, strings.TrimSpace(string(b)))
		}
		return string(b), err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "ok\n") })
	mux.HandleFunc("GET /api/{$}", func(w http.ResponseWriter, r *http.Request) {
		value, err := call(http.MethodGet, nil)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]string{"service": "api", "greeting": greeting, "value": value})
	})
	mux.HandleFunc("PUT /api/value", func(w http.ResponseWriter, r *http.Request) {
		if _, err := call(http.MethodPut, io.LimitReader(r.Body, 1<<16)); err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	log.Printf("api: listening on :8080")
	srv := &http.Server{Addr: ":8080", Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	log.Fatal(srv.ListenAndServe())
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}
