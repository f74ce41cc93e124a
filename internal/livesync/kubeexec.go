package livesync

import (
	"context"
	"fmt"
	"io"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/remotecommand"
	"k8s.io/streaming/pkg/httpstream"
)

// kubeExecer runs commands in pods through the exec subresource.
type kubeExecer struct {
	cfg *rest.Config
	cs  kubernetes.Interface
}

// NewKubeExecer returns an Execer using the pods/exec subresource, over
// WebSockets with a fallback to SPDY when the upgrade is refused, as kubectl
// exec does.
func NewKubeExecer(cfg *rest.Config, cs kubernetes.Interface) Execer {
	return &kubeExecer{cfg: cfg, cs: cs}
}

// Exec implements Execer. A non-zero exit is returned as client-go's
// exec.CodeExitError (it has ExitStatus() int).
func (k *kubeExecer) Exec(ctx context.Context, namespace, pod, container string, cmd []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if stdout == nil {
		stdout = io.Discard
	}
	if stderr == nil {
		stderr = io.Discard
	}
	u := k.cs.CoreV1().RESTClient().Post().
		Resource("pods").Namespace(namespace).Name(pod).SubResource("exec").
		VersionedParams(&corev1.PodExecOptions{
			Container: container,
			Command:   cmd,
			Stdin:     stdin != nil,
			Stdout:    true,
			Stderr:    true,
		}, scheme.ParameterCodec).URL()

	spdyExec, err := remotecommand.NewSPDYExecutor(k.cfg, "POST", u)
	if err != nil {
		return fmt.Errorf("exec in %s/%s: creating SPDY executor: %w", namespace, pod, err)
	}
	// WebSockets must use GET (RFC 6455 4.1).
	wsExec, err := remotecommand.NewWebSocketExecutor(k.cfg, "GET", u.String())
	if err != nil {
		return fmt.Errorf("exec in %s/%s: creating WebSocket executor: %w", namespace, pod, err)
	}
	ex, err := remotecommand.NewFallbackExecutor(wsExec, spdyExec, func(err error) bool {
		return httpstream.IsUpgradeFailure(err) || httpstream.IsHTTPSProxyError(err)
	})
	if err != nil {
		return fmt.Errorf("exec in %s/%s: %w", namespace, pod, err)
	}
	return ex.StreamWithContext(ctx, remotecommand.StreamOptions{Stdin: stdin, Stdout: stdout, Stderr: stderr})
}
