package doctor

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/devloop-dev/devloop/internal/config"
)

// fakeImages is an initcfg.ImageChecker over a set.
type fakeImages struct {
	have  map[string]bool
	err   error
	calls int
}

func (f *fakeImages) HasImage(_ context.Context, ref string) (bool, error) {
	f.calls++
	return f.have[ref], f.err
}

func baseImagesConfig(t *testing.T) *config.Config {
	t.Helper()
	dir := t.TempDir()
	files := map[string]string{
		"api/Dockerfile":     "ARG GO=1.26\nFROM golang:${GO}-alpine AS build\nRUN go build -o /api .\nFROM alpine:3.22\nCOPY --from=build /api /api\n",
		"web/Dockerfile":     "FROM node:22-alpine\n",
		"scratch/Dockerfile": "FROM scratch\nCOPY bin/x /x\n",
		"arg/Dockerfile":     "ARG BASE\nFROM ${BASE}\n",
		"bad/Dockerfile":     "FROM alpine\nRUN <<EOF\n",
	}
	for name, body := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	svc := func(name string, args map[string]string) config.Service {
		return config.Service{Name: name, Build: config.Build{Context: filepath.Join(dir, name), Dockerfile: filepath.Join(dir, name, "Dockerfile"), Args: args}}
	}
	return &config.Config{Path: "devloop.yaml", Services: []config.Service{
		svc("api", map[string]string{"GO": "1.25"}), svc("web", nil), svc("scratch", nil), svc("arg", nil), svc("bad", nil),
		{Name: "gone", Build: config.Build{Dockerfile: filepath.Join(dir, "gone", "Dockerfile")}},
	}}
}

func TestBaseImages(t *testing.T) {
	cfg := baseImagesConfig(t)
	images := &fakeImages{have: map[string]bool{"golang:1.25-alpine": true, "alpine:3.22": true}}
	var buf bytes.Buffer
	res := BaseImages(context.Background(), cfg, images)
	Print(&buf, res, false)
	golden(t, "baseimages.golden", bytes.ReplaceAll(buf.Bytes(), []byte(filepath.Dir(cfg.Services[0].Build.Context)), []byte("$DIR")))
	if images.calls != 3 {
		t.Errorf("engine asked %d times, want 3 (one per image)", images.calls)
	}
	if Worst(res) != Fail {
		t.Errorf("worst = %v, want FAIL for the Dockerfile BuildKit rejects", Worst(res))
	}
}

func TestBaseImagesNoEngine(t *testing.T) {
	cfg := baseImagesConfig(t)
	cfg.Services = cfg.Services[:2]
	images := &fakeImages{err: errors.New("Cannot connect to the Docker daemon")}
	res := BaseImages(context.Background(), cfg, images)
	if images.calls != 1 {
		t.Errorf("unreachable engine asked %d times", images.calls)
	}
	for _, r := range res {
		if r.Level != Warn {
			t.Errorf("result %+v, want only warnings without an engine", r)
		}
	}
	if len(res) != 2 {
		t.Fatalf("results = %+v", res)
	}
	if res2 := BaseImages(context.Background(), cfg, nil); len(res2) != 2 || res2[0].Level != Warn {
		t.Errorf("nil checker: %+v", res2)
	}
}
