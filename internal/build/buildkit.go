package build

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"

	controlapi "github.com/moby/buildkit/api/services/control"
	bkclient "github.com/moby/buildkit/client"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/buildkit/session"
	"github.com/moby/buildkit/session/filesync"
	"github.com/moby/buildkit/session/secrets"
	"github.com/moby/buildkit/session/secrets/secretsprovider"
	"github.com/moby/buildkit/util/progress/progressui"
	buildtypes "github.com/moby/moby/api/types/build"
	"github.com/moby/moby/client"
	"github.com/tonistiigi/fsutil"

	"github.com/devloop-dev/devloop/internal/config"
)

// The aux message IDs of the daemon's BuildKit build stream.
const (
	auxTrace   = "moby.buildkit.trace" // a controlapi.StatusResponse, protobuf, as a JSON byte string
	auxImageID = "moby.image.id"       // {"ID":"sha256:..."}
)

// The local sources BuildKit's Dockerfile frontend asks the session for,
// with RemoteContext "client-session".
const (
	localContext    = "context"
	localDockerfile = "dockerfile"
	remoteSession   = "client-session"
)

// buildKitSpec is what one BuildKit build needs, resolved from a service.
type buildKitSpec struct {
	contextDir string
	dockerfile string // absolute path
	target     string
	args       map[string]string
	secrets    []config.Secret
}

// buildKit builds spec through the daemon's BuildKit: a session (the
// /session endpoint, hijacked) serves the context and the Dockerfile by file
// sync and the secrets; the build request names the session. The progress
// goes to log as BuildKit's plain display; the image ID is returned.
func (b *Builder) buildKit(ctx context.Context, spec buildKitSpec, log io.Writer) (string, error) {
	dockerfile, err := os.ReadFile(spec.dockerfile)
	if err != nil {
		return "", &stageError{"context", fmt.Errorf("reading Dockerfile: %w", err)}
	}
	excludes, err := dockerignorePatterns(ContextSpec{Dir: spec.contextDir, Dockerfile: spec.dockerfile})
	if err != nil {
		return "", &stageError{"context", err}
	}
	store, err := secretStore(spec.secrets, os.LookupEnv)
	if err != nil {
		return "", &stageError{"context", err}
	}
	ctxFS, err := fsutil.NewFS(spec.contextDir)
	if err != nil {
		return "", &stageError{"context", fmt.Errorf("opening build context: %w", err)}
	}
	// BuildKit's frontend applies the same patterns to its request; filtering
	// here too means an ignored file cannot be sent, whatever asks for it.
	ctxFS, err = fsutil.NewFilterFS(ctxFS, &fsutil.FilterOpt{ExcludePatterns: excludes})
	if err != nil {
		return "", &stageError{"context", fmt.Errorf("applying .dockerignore: %w", err)}
	}
	dfFS, err := fsutil.NewFS(filepath.Dir(spec.dockerfile))
	if err != nil {
		return "", &stageError{"context", fmt.Errorf("opening Dockerfile directory: %w", err)}
	}

	sess, err := session.NewSession(ctx, sharedKey(spec.contextDir))
	if err != nil {
		return "", &stageError{"build", fmt.Errorf("creating BuildKit session: %w", err)}
	}
	sess.Allow(filesync.NewFSSyncProvider(filesync.StaticDirSource{localContext: ctxFS, localDockerfile: dfFS}))
	sess.Allow(secretsprovider.NewSecretProvider(store))
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	sessDone := make(chan error, 1)
	go func() {
		sessDone <- sess.Run(sctx, func(ctx context.Context, proto string, meta map[string][]string) (net.Conn, error) {
			return b.api.DialHijack(ctx, "/session", proto, meta)
		})
	}()
	defer func() {
		sess.Close()
		<-sessDone
	}()

	args := make(map[string]*string, len(spec.args))
	for k, v := range spec.args {
		args[k] = &v
	}
	res, err := b.api.ImageBuild(ctx, nil, client.ImageBuildOptions{
		Version:       buildtypes.BuilderBuildKit,
		SessionID:     sess.ID(),
		RemoteContext: remoteSession,
		Dockerfile:    filepath.Base(spec.dockerfile),
		Target:        spec.target,
		BuildArgs:     args,
		Labels:        b.labels,
	})
	if err != nil {
		return "", &stageError{"build", fmt.Errorf("starting image build: %w", err)}
	}
	defer res.Body.Close()
	id, err := ReadBuildKitStream(ctx, res.Body, log)
	if err != nil {
		return "", &stageError{"build", syntaxHint(spec.dockerfile, dockerfile, err)}
	}
	return id, nil
}

// stageError is an error of one build stage ("context" or "build").
type stageError struct {
	stage string
	err   error
}

func (e *stageError) Error() string { return e.err.Error() }
func (e *stageError) Unwrap() error { return e.err }

// sharedKey names the context directory to BuildKit, which keeps the files
// it synced under it: the next build of the same directory sends only changes.
func sharedKey(dir string) string {
	sum := sha256.Sum256([]byte(dir))
	return "devloop-" + hex.EncodeToString(sum[:])[:32]
}

// secretStore serves the configured secrets. Environment variables are
// checked now, so a missing one fails before the build, naming the variable
// (never a value).
func secretStore(list []config.Secret, lookupEnv func(string) (string, bool)) (secrets.SecretStore, error) {
	srcs := make([]secretsprovider.Source, 0, len(list))
	for _, s := range list {
		if s.Env != "" {
			if _, ok := lookupEnv(s.Env); !ok {
				return nil, fmt.Errorf("build secret %q: environment variable %s is not set; export it before running devloop, or remove the secret from devloop.yaml", s.ID, s.Env)
			}
		}
		srcs = append(srcs, secretsprovider.Source{ID: s.ID, FilePath: s.Src, Env: s.Env})
	}
	store, err := secretsprovider.NewStore(srcs)
	if err != nil {
		return nil, fmt.Errorf("build secrets: %w", err)
	}
	return store, nil
}

// ReadBuildKitStream reads the daemon's JSON message stream of a BuildKit
// build: the moby.buildkit.trace aux messages are decoded with BuildKit's
// client types and written to log by BuildKit's plain progress display; the
// moby.image.id aux message gives the image ID returned. An error message
// ends the build with that error (after the display has printed the failed
// step's logs).
func ReadBuildKitStream(ctx context.Context, r io.Reader, log io.Writer) (string, error) {
	if log == nil {
		log = io.Discard
	}
	display, err := progressui.NewDisplay(log, progressui.PlainMode)
	if err != nil {
		return "", err
	}
	ch := make(chan *bkclient.SolveStatus)
	displayed := make(chan struct{})
	go func() {
		defer close(displayed)
		// The display must drain ch until it is closed, even on cancel.
		display.UpdateFrom(context.WithoutCancel(ctx), ch)
	}()
	id, err := decodeBuildKitStream(r, func(s *bkclient.SolveStatus) { ch <- s }, log)
	close(ch)
	<-displayed
	return id, err
}

// decodeBuildKitStream decodes the message stream, passing each progress
// update to status and any plain "stream" text to log.
func decodeBuildKitStream(r io.Reader, status func(*bkclient.SolveStatus), log io.Writer) (string, error) {
	var id string
	err := eachMessage(r, func(m buildMessage) error {
		if m.Stream != "" {
			io.WriteString(log, m.Stream)
		}
		if len(m.Aux) == 0 {
			return nil
		}
		switch m.ID {
		case auxTrace:
			var dt []byte
			if err := json.Unmarshal(m.Aux, &dt); err != nil {
				return fmt.Errorf("reading build progress: %w", err)
			}
			var resp controlapi.StatusResponse
			if err := resp.UnmarshalVT(dt); err != nil {
				return fmt.Errorf("reading build progress: %w", err)
			}
			status(bkclient.NewSolveStatus(&resp))
		case auxImageID:
			var aux struct {
				ID string `json:"ID"`
			}
			if err := json.Unmarshal(m.Aux, &aux); err != nil {
				return fmt.Errorf("reading built image ID: %w", err)
			}
			id = aux.ID
		}
		return nil
	})
	if err != nil {
		return "", err
	}
	if !strings.HasPrefix(id, "sha256:") {
		return "", errors.New("build finished without reporting an image ID")
	}
	return id, nil
}

// syntaxHint explains a failed build of a Dockerfile whose `# syntax=` line
// names a frontend image, when the failure is about that image: this engine
// could not pull it, and BuildKit's built-in frontend would have done.
func syntaxHint(path string, dockerfile []byte, err error) error {
	ref, line := SyntaxDirective(dockerfile)
	if ref == "" || !strings.Contains(err.Error(), ref) {
		return err
	}
	return fmt.Errorf("%s:%d: `# syntax=%s` asks the engine to pull the Dockerfile frontend image %s, which failed: %w\n"+
		"the engine's built-in frontend already serves docker/dockerfile:1 (heredocs, RUN --mount, COPY --link): "+
		"delete that line, or make %s available to the engine", path, line, ref, ref, err, ref)
}

// SyntaxDirective returns the frontend image a Dockerfile's `# syntax=`
// directive names and its 1-based line, or "" when it has none. It uses
// BuildKit's own parser.
func SyntaxDirective(dockerfile []byte) (ref string, line int) {
	ref, _, ranges, ok := parser.DetectSyntax(dockerfile)
	if !ok || ref == "" {
		return "", 0
	}
	line = 1
	if len(ranges) > 0 {
		line = ranges[0].Start.Line
	}
	return ref, line
}
