package config

import (
	"bytes"
	"fmt"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"
)

// pos is a 1-based position in the config file.
type pos struct{ line, col int }

// decoder strictly decodes a yaml.Node tree into the config types, using
// their JSON tags as key names. It records the position of every value by
// key path so validation can point at the offending line, and collects
// every problem instead of stopping at the first.
type decoder struct {
	file string
	errs ErrorList
	// pos maps a key path ("services[0].build.context") to its value's position.
	pos map[string]pos
	// bad holds key paths whose value failed to decode; validation skips
	// them (and everything below them) to avoid reporting one mistake twice.
	bad map[string]bool

	// merged memoises each mapping's pairs (merge keys expanded), so a
	// mapping is resolved once however many aliases name it; merging holds
	// the mappings being resolved, to detect merge-key cycles.
	merged  map[*yaml.Node][]pair
	merging map[*yaml.Node]bool
	// steps counts the work aliases and merge keys multiply (values
	// decoded, merged keys copied); past maxSteps decoding stops.
	steps      int
	overBudget bool
	// reported holds the problems already reported, by position and
	// message: a node reached through many aliases is reported once.
	reported map[problem]bool
	// dropped counts problems not kept beyond maxErrors.
	dropped int
}

type problem struct {
	line, col int
	msg       string
}

// maxSteps bounds the values one file may decode to, aliases and merge
// keys expanded. A real devloop.yaml decodes to a few hundred; the budget
// also bounds the memory the key paths take (20000 of at most ~1 kB).
const maxSteps = 20_000

// maxErrors bounds the problems reported for one file.
const maxErrors = 100

func newDecoder(file string) *decoder {
	return &decoder{file: file, pos: map[string]pos{}, bad: map[string]bool{},
		merged: map[*yaml.Node][]pair{}, merging: map[*yaml.Node]bool{}, reported: map[problem]bool{}}
}

func (d *decoder) errorAt(p pos, path, format string, args ...any) {
	msg := clip(fmt.Sprintf(format, args...), maxMessage)
	k := problem{p.line, p.col, msg}
	if d.reported[k] {
		return
	}
	d.reported[k] = true
	if len(d.errs) >= maxErrors {
		d.dropped++
		return
	}
	d.errs = append(d.errs, &Error{File: d.file, Line: p.line, Column: p.col, Path: clip(path, maxPath), Msg: msg})
}

// step counts one unit of work at n and reports whether decoding may go on.
// The first step over the budget is reported at n.
func (d *decoder) step(n *yaml.Node) bool {
	if d.overBudget {
		return false
	}
	d.steps++
	if d.steps > maxSteps {
		d.overBudget = true
		d.errorAt(nodePos(n), "", "the file decodes to more than %d values, aliases and merge keys (<<) expanded; "+
			"devloop stopped reading it here (a devloop.yaml has a few hundred: does an alias repeat a list or mapping that itself repeats aliases?)", maxSteps)
		return false
	}
	return true
}

// finish returns the problems found, in file order, with a last line
// counting those left out.
func (d *decoder) finish() ErrorList {
	sortErrors(d.errs)
	if d.dropped > 0 {
		d.errs = append(d.errs, &Error{File: d.file, Msg: fmt.Sprintf("and %d more problems not shown; fix the ones above first", d.dropped)})
	}
	return d.errs
}

// fail reports a value that could not be decoded and marks its path bad.
func (d *decoder) fail(n *yaml.Node, path, format string, args ...any) {
	d.bad[path] = true
	d.errorAt(nodePos(n), path, format, args...)
}

func nodePos(n *yaml.Node) pos { return pos{n.Line, n.Column} }

// resolve follows aliases to the node they name.
func resolve(n *yaml.Node) *yaml.Node {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}

func joinKey(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func isNull(n *yaml.Node) bool { return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" }

// describe names what a node is, for "expected X, got Y" messages.
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		switch n.ShortTag() {
		case "!!str":
			return "string " + quote(n.Value)
		case "!!int":
			return "integer " + clip(n.Value, maxQuoted)
		case "!!float":
			return "number " + clip(n.Value, maxQuoted)
		case "!!bool":
			return "boolean " + n.Value
		case "!!null":
			return "null"
		}
		return clip(n.ShortTag(), maxQuoted) + " " + quote(n.Value)
	}
	return "an unsupported YAML node"
}

// decode decodes n into v (addressable), recording positions under path.
func (d *decoder) decode(n *yaml.Node, v reflect.Value, path string) {
	if !d.step(n) {
		return
	}
	d.pos[path] = nodePos(n)
	n = resolve(n)
	if isNull(n) {
		return // an explicit null leaves the zero value, as if the key were absent
	}
	switch v.Kind() {
	case reflect.Pointer:
		elem := reflect.New(v.Type().Elem())
		d.decode(n, elem.Elem(), path)
		v.Set(elem)
	case reflect.Struct:
		d.decodeStruct(n, v, path)
	case reflect.Map:
		d.decodeStringMap(n, v, path)
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			d.fail(n, path, "expected a list, got %s", describe(n))
			return
		}
		s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
		for i, item := range n.Content {
			d.decode(item, s.Index(i), fmt.Sprintf("%s[%d]", path, i))
		}
		v.Set(s)
	case reflect.String:
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!str" {
			hint := ""
			if n.Kind == yaml.ScalarNode {
				hint = " (quote it to make it a string)"
			}
			d.fail(n, path, "expected a string, got %s%s", describe(n), hint)
			return
		}
		v.SetString(n.Value)
	case reflect.Int:
		var i int
		if n.Kind == yaml.ScalarNode && digits.MatchString(n.Value) &&
			(n.ShortTag() == "!!float" || (n.ShortTag() == "!!int" && n.Decode(&i) != nil)) {
			// YAML resolves an integer too large for int64 as a float.
			d.fail(n, path, "integer %s is too large", clip(n.Value, maxQuoted))
			return
		}
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!int" || n.Decode(&i) != nil {
			d.fail(n, path, "expected an integer, got %s", describe(n))
			return
		}
		v.SetInt(int64(i))
	case reflect.Bool:
		var b bool
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!bool" || n.Decode(&b) != nil {
			d.fail(n, path, "expected true or false, got %s", describe(n))
			return
		}
		v.SetBool(b)
	default:
		panic(fmt.Sprintf("config: unsupported field type %s at %s", v.Type(), path))
	}
}

type pair struct{ key, value *yaml.Node }

// pairs returns a mapping's key/value pairs with YAML merge keys ("<<")
// expanded; explicit keys win over merged ones, and earlier merged
// mappings over later ones. Duplicate explicit keys are reported here.
// Each mapping is resolved once (its problems reported once, under the
// path it was first reached by), a merge cycle is an error, and the keys
// copied count against the decoding budget.
func (d *decoder) pairs(n *yaml.Node, path string) []pair {
	if out, ok := d.merged[n]; ok {
		return out
	}
	d.merging[n] = true
	defer delete(d.merging, n)
	var out []pair
	seen := map[string]*yaml.Node{}
	var merged []*yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		if k.Kind == yaml.ScalarNode && k.ShortTag() == "!!merge" {
			merged = append(merged, val)
			continue
		}
		if k.Kind != yaml.ScalarNode || isNull(k) {
			d.fail(k, path, "expected a key name, got %s", describe(k))
			continue
		}
		if first, ok := seen[k.Value]; ok {
			d.fail(k, joinKey(path, k.Value), "duplicate key (first set at line %d)", first.Line)
			continue
		}
		seen[k.Value] = k
		out = append(out, pair{k, val})
	}
	for _, m := range merged {
		r := resolve(m)
		srcs := []*yaml.Node{m}
		if r.Kind == yaml.SequenceNode {
			srcs = r.Content
		}
		for _, src := range srcs {
			at := src
			src = resolve(src)
			if src.Kind != yaml.MappingNode {
				d.fail(at, path, "merge key (<<) expects a mapping or a list of mappings, got %s", describe(src))
				continue
			}
			if d.merging[src] {
				d.fail(at, path, "merge key (<<) merges a mapping into itself (the alias names a mapping that contains it)")
				continue
			}
			for _, p := range d.pairs(src, path) {
				if !d.step(p.key) {
					return nil
				}
				if _, ok := seen[p.key.Value]; !ok {
					seen[p.key.Value] = p.key
					out = append(out, p)
				}
			}
		}
	}
	d.merged[n] = out
	return out
}

func (d *decoder) decodeStruct(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.MappingNode {
		d.fail(n, path, "expected a mapping, got %s", describe(n))
		return
	}
	fields := map[string]int{}
	var names []string
	t := v.Type()
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		if name == "" || name == "-" {
			continue
		}
		fields[name] = i
		names = append(names, name)
	}
	for _, p := range d.pairs(n, path) {
		if d.overBudget {
			return
		}
		key := p.key.Value
		i, ok := fields[key]
		if !ok {
			d.errorAt(nodePos(p.key), joinKey(path, key), "unknown key%s", suggest(key, names))
			continue
		}
		d.decode(p.value, v.Field(i), joinKey(path, key))
	}
}

func (d *decoder) decodeStringMap(n *yaml.Node, v reflect.Value, path string) {
	if v.Type().Key().Kind() != reflect.String || v.Type().Elem().Kind() != reflect.String {
		panic(fmt.Sprintf("config: unsupported map type %s at %s", v.Type(), path))
	}
	if n.Kind != yaml.MappingNode {
		d.fail(n, path, "expected a mapping of names to values, got %s", describe(n))
		return
	}
	m := reflect.MakeMap(v.Type())
	for _, p := range d.pairs(n, path) {
		if !d.step(p.value) {
			return
		}
		key := joinKey(path, p.key.Value)
		d.pos[key] = nodePos(p.value)
		val := resolve(p.value)
		// Unquoted numbers and booleans are fine here (CGO_ENABLED: 0):
		// every value ends up as a string in an environment or build arg.
		if val.Kind != yaml.ScalarNode || isNull(val) {
			d.fail(p.value, key, "expected a string value, got %s", describe(val))
			continue
		}
		m.SetMapIndex(reflect.ValueOf(p.key.Value), reflect.ValueOf(val.Value))
	}
	v.Set(m)
}

// suggest returns a did-you-mean hint for an unknown key, or the list of
// valid keys when none is close.
func suggest(key string, valid []string) string {
	sorted := append([]string(nil), valid...)
	sort.Strings(sorted)
	if len(key) > maxQuoted { // nothing valid is that long: spare the edit distance
		return "; valid keys here: " + strings.Join(sorted, ", ")
	}
	best, bestDist := "", -1
	for _, c := range valid {
		dist := levenshtein(strings.ToLower(key), strings.ToLower(c))
		if bestDist < 0 || dist < bestDist {
			best, bestDist = c, dist
		}
	}
	if best != "" && (bestDist <= 2 || bestDist*3 <= len(key)) {
		return fmt.Sprintf("; did you mean %q?", best)
	}
	return "; valid keys here: " + strings.Join(sorted, ", ")
}

// levenshtein is the edit distance between a and b, counted in runes.
func levenshtein(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(rb)]
}

var digits = regexp.MustCompile(`^[-+]?[0-9]+$`)

var (
	yamlLineRE      = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)
	unknownAnchorRE = regexp.MustCompile(`^yaml: unknown anchor '(.*)' referenced$`)
)

// syntaxError turns a yaml.v3 parse error into an Error with its line.
// The parser leaves the line out when it is the first one (its lines count
// from zero there), and for an unknown alias, which is found in data.
func syntaxError(file string, data []byte, err error) *Error {
	msg := err.Error()
	if m := yamlLineRE.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		return &Error{File: file, Line: line, Msg: "invalid YAML: " + clip(m[2], maxMessage)}
	}
	if m := unknownAnchorRE.FindStringSubmatch(msg); m != nil {
		e := &Error{File: file, Line: 1, Msg: fmt.Sprintf("invalid YAML: alias *%s names no anchor (&%s) defined before it", clip(m[1], maxQuoted), clip(m[1], maxQuoted))}
		if i := bytes.Index(data, []byte("*"+m[1])); i >= 0 {
			e.Line, e.Column = lineCol(data[:i])
		}
		return e
	}
	return &Error{File: file, Line: 1, Msg: "invalid YAML: " + clip(strings.TrimPrefix(msg, "yaml: "), maxMessage)}
}

// lineCol is the 1-based line and column (in characters) just after data,
// counting YAML's line breaks: LF, CR LF, CR, NEL, LS and PS. A byte order
// mark at the start is no character.
func lineCol(data []byte) (line, col int) {
	line, col = 1, 1
	data = bytes.TrimPrefix(data, []byte("\uFEFF"))
	for i := 0; i < len(data); {
		r, size := utf8.DecodeRune(data[i:])
		i += size
		switch {
		case r == '\r' && i < len(data) && data[i] == '\n':
		case r == '\n' || r == '\r' || r == 0x85 || r == 0x2028 || r == 0x2029:
			line, col = line+1, 1
		default:
			col++
		}
	}
	return line, col
}
