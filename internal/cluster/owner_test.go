package cluster

import (
	"os"
	"path/filepath"
	"testing"
)

func TestMarks(t *testing.T) {
	m := Marks{dir: filepath.Join(t.TempDir(), "clusters")}
	if ok, err := m.Owned("dev"); ok || err != nil {
		t.Fatalf("Owned before Created = %v, %v", ok, err)
	}
	if err := m.Forget("dev"); err != nil {
		t.Fatalf("Forget of an unknown cluster: %v", err)
	}
	if err := m.Created("dev"); err != nil {
		t.Fatal(err)
	}
	if ok, err := m.Owned("dev"); !ok || err != nil {
		t.Fatalf("Owned after Created = %v, %v", ok, err)
	}
	if ok, _ := m.Owned("other"); ok {
		t.Fatal("another cluster counts as devloop's")
	}
	// A name can never reach outside the marks directory.
	if err := m.Created("../../escape"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(m.dir), "escape")); err == nil {
		t.Fatal("a cluster name wrote outside the marks directory")
	}
	if err := m.Forget("dev"); err != nil {
		t.Fatal(err)
	}
	if ok, _ := m.Owned("dev"); ok {
		t.Fatal("still owned after Forget")
	}
}
