package initcfg

import (
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strings"
)

// gitignored reports whether the file or directory p (absolute, under root)
// is ignored by the .gitignore files in root and in the directories between
// root and p.
//
// It is a heuristic for "this is build output", not git, but it follows
// git's rules for the usual patterns: anchored or not, a trailing slash for
// directories, *, ?, [...] (POSIX classes included) and **, and negations:
// the last pattern that matches decides (a deeper .gitignore after the ones
// above it), "!pattern" re-includes, and nothing below an ignored directory
// can be re-included.
func gitignored(root, p string, isDir bool) bool {
	r, err := filepath.Rel(root, p)
	if err != nil || r == "." || strings.HasPrefix(r, "..") {
		return false
	}
	parts := strings.Split(filepath.ToSlash(r), "/")
	// files[k] are the patterns of the .gitignore in root/parts[:k]; they
	// apply to parts[k:].
	files := make([][]ignorePattern, len(parts))
	dir := root
	for k := range parts {
		if k > 0 {
			dir = filepath.Join(dir, parts[k-1])
		}
		if data, err := os.ReadFile(filepath.Join(dir, ".gitignore")); err == nil {
			files[k] = parseGitignore(data)
		}
	}
	// Like git, walk down: an ignored directory hides everything below it.
	for n := 1; n <= len(parts); n++ {
		dir := n < len(parts) || isDir
		ignored := false
		for k := 0; k < n; k++ {
			for _, pat := range files[k] {
				if pat.match(parts[k:n], dir) {
					ignored = !pat.negate
				}
			}
		}
		if ignored {
			return true
		}
	}
	return false
}

type ignorePattern struct {
	re       *regexp.Regexp // nil: a pattern that matches nothing (malformed)
	anchored bool           // matched against the path from the .gitignore's directory, not a name
	dirOnly  bool
	negate   bool // "!pattern": re-includes
}

func parseGitignore(data []byte) []ignorePattern {
	var out []ignorePattern
	for _, l := range strings.Split(string(data), "\n") {
		l = strings.TrimSuffix(l, "\r")
		// Trailing spaces are dropped unless escaped ("a\ ").
		for strings.HasSuffix(l, " ") && !strings.HasSuffix(l, "\\ ") {
			l = l[:len(l)-1]
		}
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		p := ignorePattern{}
		if strings.HasPrefix(l, "!") {
			p.negate = true
			l = l[1:]
		}
		if strings.HasPrefix(l, `\#`) || strings.HasPrefix(l, `\!`) {
			l = l[1:] // "\#file" and "\!file" are literal names
		}
		if strings.HasSuffix(l, "/") {
			p.dirOnly = true
			l = strings.TrimRight(l, "/")
		}
		if strings.Contains(l, "/") {
			p.anchored = true
			l = strings.TrimPrefix(l, "/")
		}
		if l == "" {
			continue
		}
		p.re, _ = regexp.Compile("^" + globRegexp(l) + "$") // a class Go does not know matches nothing
		out = append(out, p)
	}
	return out
}

// match reports whether the path parts (relative to the pattern's
// .gitignore directory) match the pattern; isDir tells whether the path is a
// directory.
func (p ignorePattern) match(parts []string, isDir bool) bool {
	if p.re == nil || (p.dirOnly && !isDir) {
		return false
	}
	subject := parts[len(parts)-1]
	if p.anchored {
		subject = path.Join(parts...)
	}
	return p.re.MatchString(subject)
}

// globRegexp translates a gitignore glob into a regular expression body.
// "**" is special only as a whole path segment ("**/a", "a/**", "a/**/b");
// elsewhere it is a plain "*", as in git.
func globRegexp(glob string) string {
	var b strings.Builder
	for i := 0; i < len(glob); i++ {
		c := glob[i]
		segStart := i == 0 || glob[i-1] == '/'
		switch {
		case strings.HasPrefix(glob[i:], "**/") && segStart:
			b.WriteString(`(?:.*/)?`)
			i += 2
		case glob[i:] == "**" && segStart:
			b.WriteString(`.*`)
			i++
		case strings.HasPrefix(glob[i:], "**"):
			b.WriteString(`[^/]*`)
			i++
		case c == '*':
			b.WriteString(`[^/]*`)
		case c == '?':
			b.WriteString(`[^/]`)
		case c == '[':
			if class, n := globClass(glob[i:]); n > 0 {
				b.WriteString(class)
				i += n - 1
			} else {
				b.WriteString(`\[`)
			}
		case c == '\\' && i+1 < len(glob):
			i++
			b.WriteString(regexp.QuoteMeta(glob[i : i+1]))
		default:
			b.WriteString(regexp.QuoteMeta(glob[i : i+1])) // bytes, so that UTF-8 stays UTF-8
		}
	}
	return b.String()
}

// globClass translates the bracket expression at the start of s ("[a-z]",
// "[!0-9]", "[]x]", "[[:alpha:]_]") into a regular expression class and
// returns it with the length it spans in s; n is 0 when s holds no complete
// bracket expression (the "[" is then literal).
func globClass(s string) (class string, n int) {
	var b strings.Builder
	b.WriteByte('[')
	i := 1
	if i < len(s) && (s[i] == '!' || s[i] == '^') {
		b.WriteString("^/") // a negated class still never matches a slash
		i++
	}
	for first := true; i < len(s); first = false {
		switch c := s[i]; {
		case c == ']' && !first:
			b.WriteByte(']')
			return b.String(), i + 1
		case c == '[' && strings.HasPrefix(s[i:], "[:"):
			end := strings.Index(s[i+2:], ":]")
			if end < 0 {
				b.WriteString(`\[`)
				i++
				continue
			}
			b.WriteString(s[i : i+2+end+2]) // Go knows the POSIX classes; an unknown one fails to compile
			i += 2 + end + 2
		case c == '\\' && i+1 < len(s):
			b.WriteString(regexp.QuoteMeta(s[i+1 : i+2]))
			i += 2
		case c == '-' && !first && i+1 < len(s) && s[i+1] != ']':
			b.WriteByte('-')
			i++
		default:
			b.WriteString(regexp.QuoteMeta(s[i : i+1]))
			i++
		}
	}
	return "", 0
}
