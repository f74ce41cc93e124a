package paths

import "testing"

func TestUnder(t *testing.T) {
	tests := []struct {
		p, dir       string
		under, inner bool
	}{
		{"/a/b", "/a/b", true, false},
		{"/a/b/c", "/a/b", true, true},
		{"/a/bc", "/a/b", false, false}, // a shared prefix is not a parent
		{"/a", "/a/b", false, false},
		{"/x", "/", true, true},
		{"/", "/", true, false},
		{"a/b", "a", true, true},
	}
	for _, tt := range tests {
		if got := Under(tt.p, tt.dir); got != tt.under {
			t.Errorf("Under(%q, %q) = %v, want %v", tt.p, tt.dir, got, tt.under)
		}
		if got := Within(tt.p, tt.dir); got != tt.inner {
			t.Errorf("Within(%q, %q) = %v, want %v", tt.p, tt.dir, got, tt.inner)
		}
	}
	if !UnderAny("/p/web/x.go", []string{"/p/api", "/p/web/"}) {
		t.Error("UnderAny: a root given with a trailing slash must still match")
	}
	if UnderAny("/p/other", []string{"/p/api", "/p/web"}) {
		t.Error("UnderAny matched a path under no root")
	}
}
