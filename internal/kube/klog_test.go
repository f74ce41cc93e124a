package kube

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/klog/v2"
)

// What client-go reports on its own while the API server is down (a broken
// watch, through HandleError and klog) goes where devloop says, not to the
// process's stderr in the middle of the user's log stream.
func TestClientGoLogsAreRouted(t *testing.T) {
	var got bytes.Buffer
	RouteClientGoLogs(&got)
	defer RouteClientGoLogs(nil)
	utilruntime.HandleError(errors.New("Failed to watch *v1.Pod: connection refused"))
	klog.Flush()
	if !strings.Contains(got.String(), "client-go: ") || !strings.Contains(got.String(), "connection refused") {
		t.Errorf("routed output = %q", got.String())
	}
}
