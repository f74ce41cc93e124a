// Command db is the shop's tiny database: one value, kept in a file on the
// StatefulSet's volume (/data), so it survives a pod deletion, an upgrade
// and `devloop down` + `devloop up` (down keeps the volume unless --volumes).
//
//	GET /value      the stored value ("" when none)
//	PUT /value      stores the request body
//	GET /healthz    ready once the volume is writable
//
// Every /value request must carry the shop's password (the Secret), in the
// X-Password header.
package main

import (
	"crypto/subtle"
	"io"
	"log"
	"net/http"
	"os"
	"path/filepath"
	"time"
)

func main() {
	log.SetFlags(0)
	log.SetOutput(os.Stdout)
	dir := envOr("DATA_DIR", "/data")
	password := os.Getenv("DB_PASSWORD")
	if password == "" {
		log.Fatal("db: DB_PASSWORD is not set")
	}
	file := filepath.Join(dir, "value")
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		probe := filepath.Join(dir, ".probe")
		if err := os.WriteFile(probe, nil, 0o600); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		_, _ = io.WriteString(w, "ok\n")
	})
	authorized := func(w http.ResponseWriter, r *http.Request) bool {
		if subtle.ConstantTimeCompare([]byte(r.Header.Get("X-Password")), []byte(password)) != 1 {
			http.Error(w, "wrong password", http.StatusUnauthorized)
			return false
		}
		return true
	}
	mux.HandleFunc("GET /value", func(w http.ResponseWriter, r *http.Request) {
		if !authorized(w, r) {
			return
		}
		b, err := os.ReadFile(file)
		if err != nil && !os.IsNotExist(err) {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		_, _ = w.Write(b)
	})
	mux.HandleFunc("PUT /value", func(w http.ResponseWriter, r *http.Request) {
		if !authorized(w, r) {
			return
		}
		b, err := io.ReadAll(io.LimitReader(r.Body, 1<<16))
		if err == nil {
			err = writeFile(file, b)
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		log.Printf("db: stored %d bytes", len(b))
		w.WriteHeader(http.StatusNoContent)
	})
	log.Printf("db: serving %s on :8080", file)
	srv := &http.Server{Addr: ":8080", Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	log.Fatal(srv.ListenAndServe())
}

// writeFile replaces path's content atomically and durably: a pod killed
// mid-write leaves the old value or the new one.
func writeFile(path string, b []byte) error {
	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}
