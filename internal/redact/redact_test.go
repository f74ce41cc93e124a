package redact

import (
	"bytes"
	"encoding/base64"
	"strings"
	"sync"
	"testing"
)

func TestSetMasksValuesTheirLinesAndBase64(t *testing.T) {
	s := New()
	s.Add("hunter22", "ab", "-----BEGIN KEY-----\nMIIBOgIBAAJBAKj34GkxFhD9\n-----END KEY-----\n")
	for _, tc := range []struct{ in, want string }{
		{"password=hunter22.", "password=[redacted]."},
		{"b64: " + base64.StdEncoding.EncodeToString([]byte("hunter22")), "b64: [redacted]"},
		{"short ab stays", "short ab stays"},
		{"key line MIIBOgIBAAJBAKj34GkxFhD9 here", "key line [redacted] here"},
		{"hunter22hunter22", "[redacted][redacted]"},
	} {
		if got := s.String(tc.in); got != tc.want {
			t.Errorf("String(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	// A longer value that starts with a shorter one is masked whole.
	s.Add("hunter22-and-more")
	if got := s.String("x hunter22-and-more y"); got != "x [redacted] y" {
		t.Errorf("longest first: %q", got)
	}
}

func TestNilAndEmptySetsPassEverything(t *testing.T) {
	var s *Set
	s.Add("secret-value")
	if s.String("secret-value") != "secret-value" || s.Len() != 0 {
		t.Error("a nil set masked something")
	}
	var b bytes.Buffer
	n, err := New().Writer(&b).Write([]byte("plain\n"))
	if n != 6 || err != nil || b.String() != "plain\n" {
		t.Errorf("empty set writer: %d %v %q", n, err, b.String())
	}
}

func TestWriterMasksAndValuesCanBeAddedWhileInUse(t *testing.T) {
	s := New()
	var mu sync.Mutex
	var b bytes.Buffer
	w := s.Writer(lockedWriter{&mu, &b})
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		for range 100 {
			s.Add("s3cr3t-value")
		}
	}()
	go func() {
		defer wg.Done()
		for range 100 {
			_, _ = w.Write([]byte("line\n"))
		}
	}()
	wg.Wait()
	n, err := w.Write([]byte("the s3cr3t-value here\n"))
	if err != nil || n != len("the s3cr3t-value here\n") {
		t.Fatalf("Write = %d, %v", n, err)
	}
	if strings.Contains(b.String(), "s3cr3t") || !strings.Contains(b.String(), "the [redacted] here") {
		t.Errorf("output %q", b.String())
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	b  *bytes.Buffer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func FuzzSetNeverShowsAValue(f *testing.F) {
	f.Add("hunter22", "password=hunter22\n")
	f.Add("a\nbbbb\ncccc", "xx bbbb cccc yy")
	f.Fuzz(func(t *testing.T, value, text string) {
		s := New()
		s.Add(value)
		out := s.String(text + value)
		v := strings.TrimRight(value, "\r\n")
		// A value made of the mask's own brackets can re-form around a mask.
		if len(strings.TrimSpace(v)) >= MinLen && !strings.ContainsAny(v, "[]") && strings.Contains(out, v) {
			t.Fatalf("value %q visible in %q", v, out)
		}
	})
}
