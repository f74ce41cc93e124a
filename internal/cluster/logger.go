package cluster

import (
	"fmt"
	"io"
	"strings"
	"sync"

	kindlog "sigs.k8s.io/kind/pkg/log"
)

// writerLogger adapts an io.Writer to kind's log.Logger: one line per
// message, V(0) messages and warnings/errors only unless verbosity is raised.
// It is safe for concurrent use (kind logs from several goroutines).
type writerLogger struct {
	mu        *sync.Mutex
	w         io.Writer
	verbosity kindlog.Level
}

var _ kindlog.Logger = writerLogger{}

func newWriterLogger(w io.Writer, verbosity kindlog.Level) writerLogger {
	if w == nil {
		w = io.Discard
	}
	return writerLogger{mu: &sync.Mutex{}, w: w, verbosity: verbosity}
}

func (l writerLogger) write(prefix, msg string) {
	msg = strings.TrimRight(msg, "\n")
	if msg == "" {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	_, _ = fmt.Fprintf(l.w, "%s%s\n", prefix, msg)
}

// Warn implements kind's log.Logger.
func (l writerLogger) Warn(message string) { l.write("WARNING: ", message) }

// Warnf implements kind's log.Logger.
func (l writerLogger) Warnf(format string, args ...interface{}) {
	l.Warn(fmt.Sprintf(format, args...))
}

// Error implements kind's log.Logger.
func (l writerLogger) Error(message string) { l.write("ERROR: ", message) }

// Errorf implements kind's log.Logger.
func (l writerLogger) Errorf(format string, args ...interface{}) {
	l.Error(fmt.Sprintf(format, args...))
}

// V implements kind's log.Logger.
func (l writerLogger) V(level kindlog.Level) kindlog.InfoLogger {
	return infoLogger{l: l, enabled: level <= l.verbosity}
}

type infoLogger struct {
	l       writerLogger
	enabled bool
}

func (i infoLogger) Info(message string) {
	if i.enabled {
		i.l.write("", message)
	}
}

func (i infoLogger) Infof(format string, args ...interface{}) {
	if i.enabled {
		i.l.write("", fmt.Sprintf(format, args...))
	}
}

func (i infoLogger) Enabled() bool { return i.enabled }
