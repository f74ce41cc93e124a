package livesync

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/devloop-dev/devloop/internal/config"
	"github.com/devloop-dev/devloop/internal/supervisor"
)

// ErrNoSupervisor is matched (errors.Is) when a restart cannot be done in
// the container: its entrypoint is not devloop's supervisor (an image built
// before the rule, or by a devloop without one), or none answers.
var ErrNoSupervisor = errors.New("the container does not run devloop's supervisor")

// RuleFiles returns the copies of a rule's whole source: the file itself, or
// every regular file and symlink below the directory.
func RuleFiles(rule config.SyncRule) ([]FileCopy, error) {
	src := filepath.Clean(rule.Src)
	fi, err := os.Lstat(src)
	if err != nil {
		return nil, err
	}
	dest := path.Clean(rule.Dest)
	if !fi.IsDir() {
		return []FileCopy{{Local: src, Dest: dest, Run: rule.Run}}, nil
	}
	var out []FileCopy
	err = filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		rel, _ := filepath.Rel(src, p)
		out = append(out, FileCopy{Local: p, Dest: path.Join(dest, filepath.ToSlash(rel)), Run: rule.Run})
		return nil
	})
	return out, err
}

// Restart hands files to the container's supervisor, which stops the
// process, writes them (in place: the running binary cannot be rewritten,
// and no tar or shell is needed in the image) and starts it again. The
// error matches ErrNoSupervisor when the container has none.
func Restart(ctx context.Context, ex Execer, target Target, files []FileCopy) (supervisor.Restarted, error) {
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		_, err := writeTar(pw, files)
		_ = pw.CloseWithError(err)
		done <- err
	}()
	var out, stdout limitedBuffer
	err := ex.Exec(ctx, target.Namespace, target.Pod, target.Container, []string{supervisor.Path, supervisor.RestartArg}, pr, &stdout, &out)
	_ = pr.CloseWithError(errors.New("restart exec finished"))
	werr := <-done
	if err != nil {
		msg := err.Error() + "\n" + out.String()
		if strings.Contains(msg, "no such file or directory") || strings.Contains(msg, "executable file not found") ||
			strings.Contains(msg, "no supervisor answers") {
			return supervisor.Restarted{}, fmt.Errorf("restarting %s: %w%s", target, ErrNoSupervisor, out.suffix())
		}
		return supervisor.Restarted{}, fmt.Errorf("restarting %s: %w%s", target, err, out.suffix())
	}
	if werr != nil {
		return supervisor.Restarted{}, fmt.Errorf("restarting %s: writing the files: %w", target, werr)
	}
	res, _ := supervisor.ParseRestarted(stdout.String())
	return res, nil
}
