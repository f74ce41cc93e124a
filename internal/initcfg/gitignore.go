package initcfg

import (
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strings"
)

// gitignored reports whether the file or directory p (absolute, under root)
// is ignored by a .gitignore in root or in a directory between root and p.
//
// It is a heuristic for "this is build output", not git: it reads the
// .gitignore files on the way down to p and understands the usual patterns
// (anchored or not, trailing slash for directories, *, ?, [...] and **).
// Negations ("!pattern") are skipped, so a re-included file still counts as
// ignored; for telling generated files apart that is close enough.
func gitignored(root, p string, isDir bool) bool {
	r, err := filepath.Rel(root, p)
	if err != nil || r == "." || strings.HasPrefix(r, "..") {
		return false
	}
	parts := strings.Split(filepath.ToSlash(r), "/")
	// The .gitignore in root applies to parts[0:], the one in root/parts[0]
	// to parts[1:], and so on.
	dir := root
	for k := 0; k < len(parts); k++ {
		if k > 0 {
			dir = filepath.Join(dir, parts[k-1])
		}
		data, err := os.ReadFile(filepath.Join(dir, ".gitignore"))
		if err != nil {
			continue
		}
		for _, pat := range parseGitignore(data) {
			if pat.matches(parts[k:], isDir) {
				return true
			}
		}
	}
	return false
}

type ignorePattern struct {
	re       *regexp.Regexp
	anchored bool // matched against the path from the .gitignore's directory, not a name
	dirOnly  bool
}

func parseGitignore(data []byte) []ignorePattern {
	var out []ignorePattern
	for _, l := range strings.Split(string(data), "\n") {
		l = strings.TrimRight(l, " \t\r")
		if l == "" || strings.HasPrefix(l, "#") || strings.HasPrefix(l, "!") {
			continue
		}
		l = strings.TrimPrefix(l, `\`) // "\#file" is a literal "#file"
		p := ignorePattern{}
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
		re, err := regexp.Compile("^" + globRegexp(l) + "$")
		if err != nil {
			continue
		}
		p.re = re
		out = append(out, p)
	}
	return out
}

// matches reports whether the path parts (relative to the pattern's
// .gitignore directory; the last one is the file itself, a directory when
// isDir) or one of its parent directories match.
func (p ignorePattern) matches(parts []string, isDir bool) bool {
	for n := 1; n <= len(parts); n++ {
		dir := n < len(parts) || isDir
		if p.dirOnly && !dir {
			continue
		}
		subject := parts[n-1]
		if p.anchored {
			subject = path.Join(parts[:n]...)
		}
		if p.re.MatchString(subject) {
			return true
		}
	}
	return false
}

// globRegexp translates a gitignore glob into a regular expression body.
func globRegexp(glob string) string {
	var b strings.Builder
	for i := 0; i < len(glob); i++ {
		c := glob[i]
		switch {
		case strings.HasPrefix(glob[i:], "**/"):
			b.WriteString(`(?:.*/)?`)
			i += 2
		case strings.HasPrefix(glob[i:], "/**") && i+3 == len(glob):
			b.WriteString(`/.*`)
			i += 2
		case strings.HasPrefix(glob[i:], "**"):
			b.WriteString(`.*`)
			i++
		case c == '*':
			b.WriteString(`[^/]*`)
		case c == '?':
			b.WriteString(`[^/]`)
		case c == '[':
			if j := strings.IndexByte(glob[i+1:], ']'); j >= 0 {
				class := glob[i+1 : i+1+j]
				if strings.HasPrefix(class, "!") {
					class = "^" + class[1:]
				}
				b.WriteString("[" + strings.ReplaceAll(class, `\`, `\\`) + "]")
				i += j + 1
			} else {
				b.WriteString(`\[`)
			}
		case c == '\\' && i+1 < len(glob):
			i++
			b.WriteString(regexp.QuoteMeta(string(glob[i])))
		default:
			b.WriteString(regexp.QuoteMeta(string(c)))
		}
	}
	return b.String()
}
