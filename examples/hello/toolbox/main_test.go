package main

import (
	"archive/tar"
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

func TestUntarAndRm(t *testing.T) {
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	_ = tw.WriteHeader(&tar.Header{Name: "app/static/", Typeflag: tar.TypeDir, Mode: 0o755})
	body := []byte("<h1>hi</h1>\n")
	_ = tw.WriteHeader(&tar.Header{Name: "app/static/index.html", Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(body))})
	_, _ = tw.Write(body)
	_ = tw.Close()

	dir := t.TempDir()
	if err := untar(&b, []string{"-xmf", "-", "-C", dir}); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "app/static/index.html")
	got, err := os.ReadFile(p)
	if err != nil || string(got) != string(body) {
		t.Fatalf("extracted %q, %v", got, err)
	}
	if err := rm([]string{"-rf", "--", p}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(p); !os.IsNotExist(err) {
		t.Fatalf("not removed: %v", err)
	}
}

func TestUntarStaysInsideDir(t *testing.T) {
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	_ = tw.WriteHeader(&tar.Header{Name: "../../escape", Typeflag: tar.TypeReg, Mode: 0o644, Size: 1})
	_, _ = tw.Write([]byte("x"))
	_ = tw.Close()
	dir := t.TempDir()
	if err := untar(&b, []string{"-C", filepath.Join(dir, "sub")}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "sub", "escape")); err != nil {
		t.Fatalf("entry should land inside -C: %v", err)
	}
}
