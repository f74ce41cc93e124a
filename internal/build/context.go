package build

import (
	"archive/tar"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"
)

// ContextSpec describes a build context to archive.
type ContextSpec struct {
	// Dir is the context directory.
	Dir string
	// Dockerfile is the Dockerfile path (absolute, or relative to Dir).
	// Default: Dir/Dockerfile.
	Dockerfile string
}

// ReadDockerignore returns the patterns of dir/.dockerignore, or nil when the
// file does not exist.
func ReadDockerignore(dir string) ([]string, error) {
	f, err := os.Open(filepath.Join(dir, ".dockerignore"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading .dockerignore: %w", err)
	}
	defer f.Close()
	patterns, err := ignorefile.ReadAll(f)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", f.Name(), err)
	}
	return patterns, nil
}

// dockerignorePatterns returns the exclude patterns for spec, as BuildKit
// and the docker CLI choose them: <Dockerfile>.dockerignore next to the
// Dockerfile when it exists, otherwise the context's .dockerignore.
func dockerignorePatterns(spec ContextSpec) ([]string, error) {
	df := spec.Dockerfile
	if df == "" {
		df = "Dockerfile"
	}
	if !filepath.IsAbs(df) {
		df = filepath.Join(spec.Dir, df)
	}
	f, err := os.Open(df + ".dockerignore")
	if errors.Is(err, fs.ErrNotExist) {
		return ReadDockerignore(spec.Dir)
	}
	if err != nil {
		return nil, fmt.Errorf("reading %s.dockerignore: %w", filepath.Base(df), err)
	}
	defer f.Close()
	patterns, err := ignorefile.ReadAll(f)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", f.Name(), err)
	}
	return patterns, nil
}

// dockerfileInContext resolves spec's Dockerfile. It returns the name the
// daemon must be given (a slash path inside the tar) and, when the Dockerfile
// lives outside the context, the host path that must be added under that name.
func dockerfileInContext(spec ContextSpec) (name, external string, err error) {
	df := spec.Dockerfile
	if df == "" {
		return "Dockerfile", "", nil
	}
	if !filepath.IsAbs(df) {
		df = filepath.Join(spec.Dir, df)
	}
	rel, err := filepath.Rel(spec.Dir, df)
	if err != nil {
		return "", "", fmt.Errorf("locating Dockerfile %s: %w", df, err)
	}
	if rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
		return filepath.ToSlash(rel), "", nil
	}
	// Outside the context: send it under a generated, stable name.
	sum := sha256.Sum256([]byte(df))
	return ".devloop-dockerfile-" + hex.EncodeToString(sum[:])[:12], df, nil
}

// WriteContext writes spec's build context as a tar stream to w and returns
// the Dockerfile name to pass to the daemon.
//
// It honours .dockerignore (or <Dockerfile>.dockerignore) with docker's semantics (patternmatcher; `!`
// exceptions; the Dockerfile and .dockerignore are always sent). The output
// is deterministic: entries are sorted and mtimes, owners and owner names are
// zeroed, so the same content always gives the same bytes (and the same
// legacy-builder cache key).
func WriteContext(w io.Writer, spec ContextSpec) (dockerfile string, err error) {
	dockerfile, external, err := dockerfileInContext(spec)
	if err != nil {
		return "", err
	}
	patterns, err := dockerignorePatterns(spec)
	if err != nil {
		return "", err
	}
	pm, err := patternmatcher.New(patterns)
	if err != nil {
		return "", fmt.Errorf("parsing .dockerignore: %w", err)
	}
	always := map[string]bool{".dockerignore": true}
	if external == "" {
		always[dockerfile] = true
	}

	tw := tar.NewWriter(w)
	parents := map[string]patternmatcher.MatchInfo{}
	err = walkSorted(spec.Dir, func(rel string, fi fs.FileInfo) (skipDir bool, err error) {
		parentInfo := parents[path.Dir(rel)]
		excluded, info, err := pm.MatchesUsingParentResults(rel, parentInfo)
		if err != nil {
			return false, fmt.Errorf("matching %s against .dockerignore: %w", rel, err)
		}
		if fi.IsDir() {
			parents[rel] = info
		}
		if excluded && !always[rel] {
			if fi.IsDir() && !pm.Exclusions() && !holdsAlways(rel, always) {
				return true, nil // nothing below can be re-included
			}
			return false, nil
		}
		return false, addFile(tw, filepath.Join(spec.Dir, filepath.FromSlash(rel)), rel, fi)
	})
	if err != nil {
		return "", err
	}
	if external != "" {
		fi, err := os.Stat(external)
		if err != nil {
			return "", fmt.Errorf("reading Dockerfile: %w", err)
		}
		if err := addFile(tw, external, dockerfile, fi); err != nil {
			return "", err
		}
	}
	if err := tw.Close(); err != nil {
		return "", fmt.Errorf("finishing build context: %w", err)
	}
	return dockerfile, nil
}

// holdsAlways reports whether an always-sent file lives under dir.
func holdsAlways(dir string, always map[string]bool) bool {
	for f := range always {
		if strings.HasPrefix(f, dir+"/") {
			return true
		}
	}
	return false
}

// walkSorted walks dir in lexical order of slash-separated relative paths,
// calling fn for every entry but the root.
func walkSorted(dir string, fn func(rel string, fi fs.FileInfo) (skipDir bool, err error)) error {
	var walk func(rel string) error
	walk = func(rel string) error {
		entries, err := os.ReadDir(filepath.Join(dir, filepath.FromSlash(rel)))
		if err != nil {
			return fmt.Errorf("reading build context: %w", err)
		}
		sort.Slice(entries, func(i, j int) bool { return entries[i].Name() < entries[j].Name() })
		for _, e := range entries {
			child := e.Name()
			if rel != "" {
				child = rel + "/" + e.Name()
			}
			fi, err := e.Info()
			if err != nil {
				return fmt.Errorf("reading build context: %w", err)
			}
			skip, err := fn(child, fi)
			if err != nil {
				return err
			}
			if fi.IsDir() && !skip {
				if err := walk(child); err != nil {
					return err
				}
			}
		}
		return nil
	}
	return walk("")
}

// addFile writes one entry; sockets, devices and pipes are skipped.
func addFile(tw *tar.Writer, hostPath, name string, fi fs.FileInfo) error {
	mode := fi.Mode()
	var link string
	switch {
	case mode.IsRegular(), mode.IsDir():
	case mode&fs.ModeSymlink != 0:
		l, err := os.Readlink(hostPath)
		if err != nil {
			return fmt.Errorf("reading symlink %s: %w", hostPath, err)
		}
		link = l
	default:
		return nil
	}
	hdr, err := tar.FileInfoHeader(fi, link)
	if err != nil {
		return fmt.Errorf("archiving %s: %w", hostPath, err)
	}
	hdr.Name = name
	if fi.IsDir() {
		hdr.Name += "/"
	}
	hdr.Uid, hdr.Gid, hdr.Uname, hdr.Gname = 0, 0, "", ""
	hdr.ModTime, hdr.AccessTime, hdr.ChangeTime = time.Unix(0, 0), time.Time{}, time.Time{}
	hdr.Format = tar.FormatUnknown
	hdr.PAXRecords = nil
	if err := tw.WriteHeader(hdr); err != nil {
		return fmt.Errorf("archiving %s: %w", hostPath, err)
	}
	if !mode.IsRegular() {
		return nil
	}
	f, err := os.Open(hostPath)
	if err != nil {
		return fmt.Errorf("archiving %s: %w", hostPath, err)
	}
	defer f.Close()
	if _, err := io.CopyN(tw, f, hdr.Size); err != nil {
		return fmt.Errorf("archiving %s: %w", hostPath, err)
	}
	return nil
}
