package kube

import (
	"fmt"
	"io"
	"sync"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"
	"k8s.io/klog/v2"
)

var klogMu sync.Mutex

// RouteClientGoLogs sends what client-go logs on its own (through klog: a
// watch that broke and is retried, an error handed to HandleError) to w,
// one line per message, instead of the process's stderr, where those lines
// ("E1201 12:21:56 reflector.go:227] Failed to watch ...") cut into the
// user's log stream while the API server restarts. devloop says what
// matters itself (a forward's or a tail's state, a failed apply), so nil
// drops them; -v shows them.
func RouteClientGoLogs(w io.Writer) {
	klogMu.Lock()
	defer klogMu.Unlock()
	if w == nil {
		klog.SetLogger(logr.Discard())
		return
	}
	var mu sync.Mutex
	klog.SetLogger(funcr.New(func(prefix, args string) {
		mu.Lock()
		defer mu.Unlock()
		if prefix != "" {
			fmt.Fprintf(w, "client-go: %s %s\n", prefix, args)
		} else {
			fmt.Fprintf(w, "client-go: %s\n", args)
		}
	}, funcr.Options{}))
}
