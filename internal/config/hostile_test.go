package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
	"unicode/utf16"
)

// mergeChain returns a config whose cluster.ingress is a chain of depth
// mappings, each merging the one before it ten times: expanded naively,
// 10^depth copies of the first, whose duplicate key (when dup) is a problem
// each time.
func mergeChain(depth int, dup bool) string {
	var b strings.Builder
	b.WriteString("name: p\nmanifests: [k8s]\nx:\n")
	if dup {
		b.WriteString("  - &a0 {httpPort: 1, httpPort: 2}\n")
	} else {
		b.WriteString("  - &a0 {httpPort: 1}\n")
	}
	for i := 1; i <= depth; i++ {
		fmt.Fprintf(&b, "  - &a%d {<<: [%s]}\n", i, strings.TrimSuffix(strings.Repeat(fmt.Sprintf("*a%d,", i-1), 10), ","))
	}
	fmt.Fprintf(&b, "cluster: {ingress: *a%d}\n", depth)
	return b.String()
}

// aliasSquare returns a config with n services, all one alias, each with n
// sync rules, all one alias: n*n values once expanded.
func aliasSquare(n int) string {
	rules := strings.TrimSuffix(strings.Repeat("*r,", n), ",")
	svcs := strings.TrimSuffix(strings.Repeat("*s,", n), ",")
	return "name: p\nx:\n  - &r {src: static, dest: /d}\n  - &s {name: web, sync: [" + rules + "]}\nservices: [" + svcs + "]\n"
}

// parseWithin parses body as devloop.yaml in a fixture project, failing the
// test when that takes longer than limit (0: no limit), and rather than
// hanging it after two minutes.
func parseWithin(t *testing.T, body string, limit time.Duration) (ErrorList, string) {
	t.Helper()
	dir := fixture(t)
	type result struct {
		err  error
		took time.Duration
	}
	done := make(chan result, 1)
	go func() {
		start := time.Now()
		_, err := Parse(filepath.Join(dir, "devloop.yaml"), []byte(body))
		done <- result{err, time.Since(start)}
	}()
	select {
	case r := <-done:
		if limit > 0 && r.took > limit {
			t.Errorf("Parse took %s, want at most %s", r.took, limit)
		}
		if r.err == nil {
			return nil, ""
		}
		var list ErrorList
		if !errors.As(r.err, &list) {
			t.Fatalf("error %T is not an ErrorList: %v", r.err, r.err)
		}
		return list, strings.ReplaceAll(r.err.Error(), dir, "DIR")
	case <-time.After(2 * time.Minute):
		t.Fatalf("Parse still running after 2 minutes")
	}
	return nil, ""
}

// TestHostileMergeKeys: merge keys are resolved once per mapping, a cycle
// is an error (not a stack overflow), and each bad mapping is reported once
// however often it is merged (issue 16, items 1 and 2).
func TestHostileMergeKeys(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want []string // fragments, each on a line of its own
		// lines is the exact number of problems.
		lines int
	}{
		{
			name:  "the 12-byte self merge",
			yaml:  "&a {<<: *a}",
			want:  []string{`:1:9: merge key (<<) merges a mapping into itself`},
			lines: 1,
		},
		{
			name:  "self merge in a service",
			yaml:  "name: p\nservices:\n  - &s {name: web, <<: *s}\n",
			want:  []string{`:3:24: services[0]: merge key (<<) merges a mapping into itself`},
			lines: 1,
		},
		{
			name:  "two mappings merging each other",
			yaml:  "name: p\nmanifests: [k8s]\ncluster: &b {name: c, <<: {<<: *b}}\n",
			want:  []string{`:3:32: cluster: merge key (<<) merges a mapping into itself`},
			lines: 1,
		},
		{
			name:  "a cycle through a list of merges",
			yaml:  "name: p\nmanifests: [k8s]\ncluster: &b {<<: [{name: c}, *b]}\n",
			want:  []string{`:3:30: cluster: merge key (<<) merges a mapping into itself`},
			lines: 1,
		},
		{
			name:  "a mapping with a duplicate key merged 10^5 times is reported once",
			yaml:  mergeChain(5, true),
			want:  []string{`:4:23: cluster.ingress.httpPort: duplicate key (first set at line 4)`, `:3:1: x: unknown key`},
			lines: 2,
		},
		{
			name:  "a 10^8 merge chain decodes at once",
			yaml:  mergeChain(8, false),
			want:  []string{`:3:1: x: unknown key`},
			lines: 1,
		},
		{
			name:  "aliases expanding past the budget stop decoding",
			yaml:  aliasSquare(400),
			want:  []string{`:3:28: the file decodes to more than 20000 values, aliases and merge keys (<<) expanded`, `:2:1: x: unknown key`},
			lines: 2,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			list, msg := parseWithin(t, tc.yaml, time.Second)
			for _, w := range tc.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error lacks %q; got:\n%.2000s", w, msg)
				}
			}
			if len(list) != tc.lines {
				t.Errorf("got %d problems, want %d:\n%.2000s", len(list), tc.lines, msg)
			}
		})
	}
}

// TestHostileErrorsAreShortAndPlaced: what a problem echoes back of the file
// is cut to a sane length, and every problem has a line and column, encoding
// problems included (issue 16, item 9).
func TestHostileErrorsAreShortAndPlaced(t *testing.T) {
	huge := strings.Repeat("a", 5<<20) // the 5 MB name
	big := huge[:1<<20]                // enough elsewhere, and quicker under -race
	tests := []struct {
		name string
		yaml string
		want string
		// max is the longest the whole error may be, in bytes.
		max int
	}{
		{"a 5 MB project name", "name: " + huge + "\nmanifests: [k8s]\n",
			`DIR/devloop.yaml:1:7: name: invalid name "` + strings.Repeat("a", 64) + `"… (5242880 bytes)`, 1000},
		{"a 1 MB string where a number goes", "name: p\nmanifests: [k8s]\ncluster: {ingress: {httpPort: " + big + "}}\n",
			`:3:31: cluster.ingress.httpPort: expected an integer, got string "aaaa`, 1000},
		{"a 1000-byte unknown key", "name: p\nmanifests: [k8s]\n" + huge[:1000] + ": 1\n",
			`:3:1: aaaaaaaa`, 1000},
		{"a 1 MB key (YAML refuses keys over 1024 bytes)", "name: p\nmanifests: [k8s]\n" + big + ": 1\n",
			`DIR/devloop.yaml:3: invalid YAML: could not find expected ':'`, 1000},
		{"a 1 MB watch path", "name: p\nservices:\n  - name: web\n    watch: [" + big + "]\n",
			`:4:13: services[0].watch[0]: watched path DIR/aaaa`, 3000},
		{"a byte that is not UTF-8", "name: p\nmanifests: [k8s]\nnamespace: caf\xe9\n",
			`DIR/devloop.yaml:3:15: invalid YAML: byte 0xe9 is not valid UTF-8`, 1000},
		{"not UTF-8 after multi-byte characters", "name: p # é€😀\n\xff\n",
			`DIR/devloop.yaml:2:1: invalid YAML: byte 0xff is not valid UTF-8`, 1000},
		{"an escape character", "name: p\nmanifests: [k8s]\nnamespace: \"a\x1b[2Jb\"\n",
			`DIR/devloop.yaml:3:14: invalid YAML: character U+001B is not allowed`, 1000},
		{"a syntax error on the first line", "\"",
			`DIR/devloop.yaml:1: invalid YAML: found unexpected end of stream`, 1000},
		{"an alias of no anchor", "name: p\nmanifests: [k8s]\nnamespace: *nope\n",
			`DIR/devloop.yaml:3:12: invalid YAML: alias *nope names no anchor (&nope) defined before it`, 1000},
		{"an alias of no anchor with a 1 MB name", "name: *" + big + "\n",
			`DIR/devloop.yaml:1:7: invalid YAML: alias *aaaa`, 1000},
		{"UTF-16 with a control character", utf16LE("name: p\nnamespace: \x07\n"),
			`DIR/devloop.yaml:2:12: invalid YAML: character U+0007 is not allowed`, 1000},
		{"UTF-16 cut in half a character", utf16LE("name: p\n")[:7],
			`DIR/devloop.yaml:1:3: invalid YAML: the file ends in half a UTF-16 character`, 1000},
		{"a NUL after CR LF line ends", "name: p\r\nmanifests: [k8s]\r\n\x00\r\n",
			`DIR/devloop.yaml:3:1: invalid YAML: character U+0000 is not allowed`, 1000},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			list, msg := parseWithin(t, tc.yaml, 0) // 5 MB inputs are slow under -race
			if !strings.Contains(msg, tc.want) {
				t.Errorf("error lacks %q; got:\n%.3000s", tc.want, msg)
			}
			if len(msg) > tc.max {
				t.Errorf("error is %d bytes, want at most %d:\n%.3000s", len(msg), tc.max, msg)
			}
			for _, e := range list {
				if e.Line == 0 {
					t.Errorf("problem without a position: %.300s", e.Error())
				}
			}
		})
	}
}

// utf16LE encodes s as UTF-16, little-endian, with a byte order mark.
func utf16LE(s string) string {
	out := []byte{0xff, 0xfe}
	for _, u := range utf16.Encode([]rune(s)) {
		out = append(out, byte(u), byte(u>>8))
	}
	return string(out)
}

// TestUTF16Loads: a UTF-16 file (Windows editors write them) still loads.
func TestUTF16Loads(t *testing.T) {
	dir := fixture(t)
	cfg, err := Parse(filepath.Join(dir, "devloop.yaml"), []byte(utf16LE("name: caf\u00e9-p\nmanifests: [k8s]\n")))
	if err == nil || !strings.Contains(err.Error(), `:1:7: name: invalid name "café-p"`) {
		t.Fatalf("got %+v, %v", cfg, err)
	}
	if _, err := Parse(filepath.Join(dir, "devloop.yaml"), []byte(utf16LE("name: p\nmanifests: [k8s]\n"))); err != nil {
		t.Fatal(err)
	}
}

// TestHostilePathsOutsideProject: paths the file gives must lie in the
// project directory or the service's build context; a build context may
// name a parent directory (a monorepo), but not one holding the home
// directory (issue 16, item 9).
func TestHostilePathsOutsideProject(t *testing.T) {
	t.Setenv("HOME", "/home/someone")
	tests := []struct {
		name string
		// yaml is the config; DIR is the project directory.
		yaml string
		want string // empty: loads
	}{
		{"watch ../..", "name: p\nservices:\n  - name: web\n    watch: [../..]\n",
			`:4:13: services[0].watch[0]: watched path `},
		{"absolute watch path elsewhere", "name: p\nservices:\n  - name: web\n    watch: [/etc]\n",
			`:4:13: services[0].watch[0]: watched path /etc is outside the project directory DIR: devloop reads, watches and syncs only the project's files`},
		{"sync src outside", "name: p\nservices:\n  - name: web\n    sync: [{src: ../, dest: /x}]\n",
			`:4:18: services[0].sync[0].src: sync source `},
		{"dockerfile outside", "name: p\nservices:\n  - name: web\n    build: {dockerfile: ../../Dockerfile}\n",
			`:4:25: services[0].build.dockerfile: Dockerfile `},
		{"preBuild dir outside", "name: p\nservices:\n  - name: web\n    build: {preBuild: {run: make, dir: ..}}\n",
			`:4:40: services[0].build.preBuild.dir: preBuild directory `},
		{"manifest outside", "name: p\nmanifests: [../k8s]\n",
			`:2:13: manifests[0]: manifest `},
		{"manifest glob outside", "name: p\nmanifests: [\"../*.yaml\"]\n",
			`:2:13: manifests[0]: manifest `},
		{"context of the file system root", "name: p\nservices:\n  - name: web\n    build: {context: /}\n",
			`:4:22: services[0].build.context: build context / is the root of the file system: devloop would send all of it`},
		{"context holding the home directory", "name: p\nservices:\n  - name: web\n    build: {context: /home}\n",
			`:4:22: services[0].build.context: build context /home contains your home directory /home/someone`},
		{"a monorepo context and a watch inside it", "name: p\nservices:\n  - name: web\n    build: {context: .., dockerfile: DIR/Dockerfile}\n    watch: [../" + "BASE/app]\n", ""},
		{"an absolute path inside the project", "name: p\nservices:\n  - name: web\n    watch: [DIR/app]\nmanifests: [DIR/k8s]\n", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := fixture(t)
			body := strings.ReplaceAll(tc.yaml, "DIR", dir)
			body = strings.ReplaceAll(body, "BASE", filepath.Base(dir))
			_, err := Parse(filepath.Join(dir, "devloop.yaml"), []byte(body))
			if tc.want == "" {
				if err != nil {
					t.Fatalf("want no error, got:\n%v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("loaded; want %q", tc.want)
			}
			msg := strings.ReplaceAll(err.Error(), dir, "DIR")
			if !strings.Contains(msg, tc.want) {
				t.Errorf("error lacks %q; got:\n%s", tc.want, msg)
			}
			if !strings.Contains(tc.want, "build context") && !strings.Contains(msg, " is outside the project directory DIR") {
				t.Errorf("error does not say the path is outside the project; got:\n%s", msg)
			}
		})
	}
}

// TestHostileTooManyProblems: a file with thousands of distinct problems
// reports the first maxErrors and says how many more there are.
func TestHostileTooManyProblems(t *testing.T) {
	var b strings.Builder
	b.WriteString("name: p\nmanifests: [k8s]\n")
	for i := range 500 {
		fmt.Fprintf(&b, "bad%d: 1\n", i)
	}
	list, msg := parseWithin(t, b.String(), time.Second)
	if len(list) != maxErrors+1 || !strings.HasSuffix(msg, "devloop.yaml: and 400 more problems not shown; fix the ones above first") {
		t.Errorf("got %d problems:\n%s", len(list), msg)
	}
}

// fuzzSeeds are the loader's seed corpus: valid configs, the issue's
// reproductions and the shapes of past bugs.
func fuzzSeeds(t testing.TB) []string {
	seeds := []string{
		"&a {<<: *a}",
		"name: p\nservices:\n  - &s {name: web, <<: *s}\n",
		mergeChain(3, true),
		mergeChain(8, false),
		aliasSquare(20),
		"name: p\nmanifests: [k8s]\nnamespace: caf\xe9\n",
		"name: p\nmanifests: [k8s]\nnamespace: \"a\x1b[2Jb\"\n",
		"\xff\xfen\x00a\x00m\x00e\x00:\x00 \x00p\x00\n\x00",
		"name: p\nservices:\n  - name: web\n    watch: [../..]\n",
		"name: p\ncharts:\n  - chart: k8s\n    release: Web\n    values: [a.yaml, ~]\n    set: {\"a[1].b\": 1, c: [x], \"\": y}\n",
		"name: p\nservices:\n  - &web\n    name: web\n    build: {context: app}\n  - <<: *web\n    name: api\n",
		"name: p\nservices:\n  - name: web\n    build:\n      args: {A: 1, <<: {B: 2}}\n      preBuild: {run: make, env: {<<: [{X: 1}, {Y: 2}]}}\n",
		"name: p\nmanifests: [k8s]\n---\nname: q\n",
		"name: p\nservices:\n  - name: a\n    dependsOn: [b, c]\n  - name: b\n    dependsOn: [c]\n  - name: c\n    dependsOn: [a, zz]\n",
		"- name: p\n",
		"",
	}
	for _, p := range []string{"../../examples/hello/devloop.yaml", "../../devloop.example.yaml"} {
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		seeds = append(seeds, string(data))
	}
	return seeds
}

// cpuTime is the CPU time this process has used, user and system.
func cpuTime(t *testing.T) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		t.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// FuzzParse: the loader never panics, overflows its stack or takes more
// than a second, and whatever it reports has a position and a bounded size.
func FuzzParse(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add([]byte(s))
	}
	dir := fixture(f)
	path := filepath.Join(dir, "devloop.yaml")
	f.Fuzz(func(t *testing.T, data []byte) {
		// CPU time, not wall time, is what an input costs: on a loaded
		// machine the worker can wait seconds for a core.
		start, cpu := time.Now(), cpuTime(t)
		cfg, err := Parse(path, data)
		if took := cpuTime(t) - cpu; took > time.Second {
			t.Fatalf("Parse took %s of CPU", took)
		}
		if took := time.Since(start); took > 20*time.Second {
			t.Fatalf("Parse took %s", took)
		}
		if err == nil {
			if cfg == nil || cfg.Name == "" {
				t.Fatalf("no error and no config: %+v", cfg)
			}
			return
		}
		var list ErrorList
		if !errors.As(err, &list) || len(list) == 0 {
			t.Fatalf("error %T is not a non-empty ErrorList: %v", err, err)
		}
		if len(list) > maxErrors+1 {
			t.Fatalf("%d problems reported, want at most %d", len(list), maxErrors+1)
		}
		for i, e := range list {
			unplaced := strings.HasPrefix(e.Msg, "the file is empty") || (i == maxErrors && strings.HasPrefix(e.Msg, "and "))
			if (e.Line == 0) != unplaced {
				t.Errorf("problem position %d:%d: %s", e.Line, e.Column, e.Error())
			}
			if len(e.Msg) > maxMessage || len(e.Path) > maxPath+32 {
				t.Errorf("problem of %d bytes (path %d): %.500s", len(e.Msg), len(e.Path), e.Error())
			}
		}
	})
}
