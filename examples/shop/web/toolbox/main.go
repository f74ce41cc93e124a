// Command toolbox is a tiny static stand-in for the two tools devloop's live
// sync runs inside a container: `tar -xmf - -C DIR` and `rm -rf -- PATH...`
// (the same contract as `kubectl cp`). The example image is FROM scratch and
// has no shell or tar; the Dockerfile installs this binary as /bin/tar and
// /bin/rm. An image with a real tar (busybox, distroless debug, Debian...)
// needs none of this.
package main

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

func main() {
	var err error
	switch name := filepath.Base(os.Args[0]); name {
	case "tar":
		err = untar(os.Stdin, os.Args[1:])
	case "rm":
		err = rm(os.Args[1:])
	default:
		err = fmt.Errorf("toolbox: unknown tool %q (install me as tar or rm)", name)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

// untar extracts a tar stream into the -C directory (default "."). Only -x,
// -m, -f - and -C are understood; files are replaced atomically.
func untar(r io.Reader, args []string) error {
	dir := "."
	for i := 0; i < len(args); i++ {
		if args[i] == "-C" && i+1 < len(args) {
			dir = args[i+1]
			i++
		}
	}
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("tar: %w", err)
		}
		target := filepath.Join(dir, filepath.Clean("/"+h.Name))
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(target, os.FileMode(h.Mode)&os.ModePerm|0o700); err != nil {
				return fmt.Errorf("tar: %w", err)
			}
		case tar.TypeReg:
			if err := writeFile(target, tr, os.FileMode(h.Mode)&os.ModePerm); err != nil {
				return fmt.Errorf("tar: %w", err)
			}
		case tar.TypeSymlink:
			_ = os.Remove(target)
			if err := os.Symlink(h.Linkname, target); err != nil {
				return fmt.Errorf("tar: %w", err)
			}
		}
	}
}

func writeFile(target string, r io.Reader, mode os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(target), ".toolbox-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := io.Copy(tmp, r); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), target)
}

// rm removes each path after the flags, like rm -rf.
func rm(args []string) error {
	for _, a := range args {
		if strings.HasPrefix(a, "-") {
			continue
		}
		if err := os.RemoveAll(a); err != nil {
			return fmt.Errorf("rm: %w", err)
		}
	}
	return nil
}
