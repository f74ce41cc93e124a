// Package redact keeps secret values out of devloop's output: a Set of
// values (a project's Kubernetes Secret data), and writers and strings with
// every occurrence replaced by a mask.
//
// Tilt does the same with the Secrets it deploys ("secret scrubbing"); like
// it, devloop also scrubs the apps' own log lines, since a value an app
// prints reaches the terminal through devloop.
package redact

import (
	"encoding/base64"
	"io"
	"sort"
	"strings"
	"sync"
)

// Mask replaces every secret value.
const Mask = "[redacted]"

// MinLen is the shortest value redacted: masking every "1" or "on" would
// make the output unreadable and hide nothing worth hiding.
const MinLen = 4

// Set is a set of secret values. The zero value and nil are empty sets;
// every method is safe for concurrent use, and values can be added while
// writers are in use.
type Set struct {
	mu     sync.RWMutex
	values map[string]bool
	r      *strings.Replacer
}

// New returns an empty set.
func New() *Set { return &Set{} }

// Add adds values: each value, each of its lines (output is line-based, so
// a multi-line value such as a PEM key is masked line by line) and the
// value's standard base64 form (as a manifest's data field or an API error
// quoting the object shows it). Parts shorter than MinLen are skipped.
func (s *Set) Add(values ...string) {
	if s == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.values == nil {
		s.values = map[string]bool{}
	}
	added := false
	add := func(v string) {
		if len(strings.TrimSpace(v)) >= MinLen && !s.values[v] {
			s.values[v] = true
			added = true
		}
	}
	for _, v := range values {
		add(v)
		add(strings.TrimRight(v, "\r\n"))
		for _, l := range strings.Split(v, "\n") {
			add(strings.TrimRight(l, "\r"))
		}
		if len(v) >= MinLen {
			add(base64.StdEncoding.EncodeToString([]byte(v)))
		}
	}
	if !added {
		return
	}
	all := make([]string, 0, len(s.values))
	for v := range s.values {
		all = append(all, v)
	}
	// Longest first: at one position, a value wins over its own prefix.
	sort.Slice(all, func(i, j int) bool {
		if len(all[i]) != len(all[j]) {
			return len(all[i]) > len(all[j])
		}
		return all[i] < all[j]
	})
	pairs := make([]string, 0, 2*len(all))
	for _, v := range all {
		pairs = append(pairs, v, Mask)
	}
	s.r = strings.NewReplacer(pairs...)
}

// Len is the number of values (and parts of values) masked.
func (s *Set) Len() int {
	if s == nil {
		return 0
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.values)
}

// String returns x with every value masked.
func (s *Set) String(x string) string {
	if s == nil {
		return x
	}
	s.mu.RLock()
	r := s.r
	s.mu.RUnlock()
	if r == nil {
		return x
	}
	return r.Replace(x)
}

// Writer returns a writer that masks the values in each Write before
// passing it on to w. devloop's printers write whole lines (or whole
// blocks of lines) per call, so a value is never split between two writes.
// Write reports len(p) written when w took all of the masked bytes.
func (s *Set) Writer(w io.Writer) io.Writer { return &writer{s: s, w: w} }

type writer struct {
	s *Set
	w io.Writer
}

func (w *writer) Write(p []byte) (int, error) {
	out := w.s.String(string(p))
	if _, err := io.WriteString(w.w, out); err != nil {
		return 0, err
	}
	return len(p), nil
}
