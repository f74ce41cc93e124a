package imageload

// The relay: the engine pushes the image to devloop, and devloop streams into
// each node what it lacks.
//
// `docker save` cannot send part of an image. On the classic image store the
// engine copies every layer into a temporary directory before it writes the
// first byte (1.4 s of a 500 MB image's 2.0 s save here), so after a one-layer
// change the save of the whole image is most of a load. A push is the
// engine's own way of sending only what the other side lacks: it asks (HEAD)
// for every blob whose digest it knows and uploads only the blobs the
// registry does not have. The relay is a registry endpoint in this process on
// 127.0.0.1 that answers those questions from the nodes' content stores: a
// blob every target node holds "exists"; the rest are uploaded to it, spooled
// to a temporary directory, and streamed into the nodes' `ctr images import`
// with the pushed manifest, as the OCI layout of the save path is.
//
// The engine must reach 127.0.0.1 of this machine: a daemon in a VM (Docker
// Desktop, colima), in a rootless network namespace, or on another host
// cannot. The first push that never reaches the relay marks it unreachable
// for the process, and every load reads docker save instead.
//
// The endpoint is written here rather than taken from distribution/distribution
// (whose registry serves from a storage driver): what it must answer, "this
// blob is in every node that needs it", is not a storage layout, and it needs
// six routes of the distribution API, from one client, on loopback.

import (
	"archive/tar"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/distribution/reference"
	"github.com/moby/moby/client"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// FormatRelay is NodeResult.Format of a load the engine pushed to the relay.
const FormatRelay = "relay"

// RelayAPI is the subset of the Docker client the relay needs: tag the image
// with the relay's name, push it, and remove that name again.
type RelayAPI interface {
	PushAPI
	ImageRemove(ctx context.Context, image string, options client.ImageRemoveOptions) (client.ImageRemoveResult, error)
	ImageList(ctx context.Context, options client.ImageListOptions) (client.ImageListResult, error)
}

var _ RelayAPI = (*client.Client)(nil)

// WithRelay makes the fast path have the engine push each image to the
// relay (see the top of relay.go); without it, or when the engine cannot
// reach the relay, the fast path reads docker save. What a push uploads is
// spooled in a directory of its own under spool ("" is os.TempDir()), on
// disk rather than in the RAM a tmpfs /tmp is: it is the size of the image's
// new layers.
func WithRelay(api RelayAPI, spool string) Option {
	return func(l *Loader) { l.relay = &relay{api: api, spool: spool} }
}

// relayTimeout bounds the untagging after a push (on a context of its own:
// the relay's name must not stay behind when the load was cancelled).
const relayTimeout = 30 * time.Second

// Limits of what the relay accepts.
const (
	maxRelayManifest = 4 << 20
)

type relay struct {
	api   RelayAPI
	spool string // parent of each push's spool directory

	once     sync.Once
	startErr error
	host     string // 127.0.0.1:port
	token    string // first path component of every repository it serves
	srv      *http.Server

	hits atomic.Int64 // requests served: the engine reaches the relay

	sweep sync.Once      // the names earlier processes left behind, removed once
	bg    sync.WaitGroup // the clean-ups running

	mu          sync.Mutex
	n           int
	pushes      map[string]*relayPush // repository (path without host) -> push
	unreachable error                 // the engine could not reach the relay
	stale       []string              // names whose removal failed (the engine was away): tried again
}

// relayName matches the names the relay gives images in the engine:
// 127.0.0.1:<port>/devloop-<token>/<n>/<path>:<tag>.
var relayName = regexp.MustCompile(`^127\.0\.0\.1:(\d+)/devloop-[0-9a-f]{12}/\d+/[^:]+:[^:]+$`)

// spoolName matches a push's spool directory; its number is the pid of the
// devloop that made it.
var spoolName = regexp.MustCompile(`^devloop-relay-(\d+)-\d+$`)

// cleanUp removes, in the background, the relay's names that a removal
// could not (the engine was restarting) and, once per process, those an
// earlier devloop left (it was killed mid-push): names of the relay's
// pattern whose port nothing listens on (a live devloop's relay does), and
// spool directories whose process is gone.
func (r *relay) cleanUp(ctx context.Context) {
	r.mu.Lock()
	stale := r.stale
	r.stale = nil
	r.mu.Unlock()
	first := false
	r.sweep.Do(func() { first = true })
	if len(stale) == 0 && !first {
		return
	}
	r.bg.Add(1)
	go func() {
		defer r.bg.Done()
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), relayTimeout)
		defer cancel()
		if first {
			r.sweepSpools()
			if list, err := r.api.ImageList(ctx, client.ImageListOptions{}); err == nil {
				for _, img := range list.Items {
					for _, name := range img.RepoTags {
						if m := relayName.FindStringSubmatch(name); m != nil && !strings.HasPrefix(name, r.host+"/") && !listening("127.0.0.1:"+m[1]) {
							stale = append(stale, name)
						}
					}
				}
			}
		}
		for _, name := range stale {
			if _, err := r.api.ImageRemove(ctx, name, client.ImageRemoveOptions{}); err != nil && !cerrdefs.IsNotFound(err) {
				r.mu.Lock()
				r.stale = append(r.stale, name)
				r.mu.Unlock()
			}
		}
	}()
}

// sweepSpools removes the spool directories of devloops that no longer run
// (killed mid-push); a live process's, and anything else there, stay.
func (r *relay) sweepSpools() {
	ents, err := os.ReadDir(r.spoolDir())
	if err != nil {
		return
	}
	for _, e := range ents {
		m := spoolName.FindStringSubmatch(e.Name())
		if m == nil || !e.IsDir() {
			continue
		}
		if pid, err := strconv.Atoi(m[1]); err == nil && pid != os.Getpid() && !processAlive(pid) {
			os.RemoveAll(filepath.Join(r.spoolDir(), e.Name()))
		}
	}
}

func (r *relay) spoolDir() string {
	if r.spool == "" {
		return os.TempDir()
	}
	return r.spool
}

func listening(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// start listens on an ephemeral loopback port, once.
func (r *relay) start() error {
	r.once.Do(func() {
		var b [6]byte
		if _, err := rand.Read(b[:]); err != nil {
			r.startErr = err
			return
		}
		r.token = "devloop-" + hex.EncodeToString(b[:])
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			r.startErr = err
			return
		}
		r.host = ln.Addr().String()
		r.pushes = map[string]*relayPush{}
		r.srv = &http.Server{Handler: r, ReadHeaderTimeout: 30 * time.Second}
		go r.srv.Serve(ln) //nolint:errcheck // ends with Close
	})
	return r.startErr
}

// errRelayClosed: the loader was closed before the relay started.
var errRelayClosed = errors.New("the image relay was closed")

// close stops the endpoint, once the clean-ups end; a relay closed before
// it started never starts.
func (r *relay) close() {
	r.bg.Wait()
	r.once.Do(func() { r.startErr = errRelayClosed })
	if r.srv != nil {
		r.srv.Close()
	}
}

func (r *relay) unreachableErr() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.unreachable
}

// relayPush is one image's push in progress.
type relayPush struct {
	dir  string                        // the spool, removed with the push
	have func(dg string) (int64, bool) // size, when every target node holds dg

	mu        sync.Mutex
	requests  int                       // requests for this repository: the engine reached the relay
	blobs     map[string]spooled        // by the pushed digest
	manifests map[string]storedManifest // digest -> manifest
	tags      map[string]string         // tag -> manifest digest
	uploads   map[string]*upload
}

type spooled struct {
	path string
	size int64
}

type storedManifest struct {
	mediaType string
	b         []byte
}

// upload is a blob being received into a file.
type upload struct {
	f *os.File
	h hash.Hash // of the bytes received: the blob's digest
	n int64
}

func (p *relayPush) blob(dg string) (spooled, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	s, ok := p.blobs[dg]
	return s, ok
}

// registry API errors (distribution spec, "Error codes").
func regError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]any{"errors": []map[string]string{{"code": code, "message": msg}}}) //nolint:errcheck
}

// ServeHTTP serves the routes of the distribution API a push uses.
func (r *relay) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	r.hits.Add(1)
	w.Header().Set("Docker-Distribution-API-Version", "registry/2.0")
	if req.URL.Path == "/v2/" || req.URL.Path == "/v2" {
		w.WriteHeader(http.StatusOK)
		return
	}
	rest, ok := strings.CutPrefix(req.URL.Path, "/v2/")
	if !ok {
		regError(w, http.StatusNotFound, "UNSUPPORTED", "not a registry API path")
		return
	}
	repo, route, arg := splitRoute(rest)
	r.mu.Lock()
	p := r.pushes[repo]
	r.mu.Unlock()
	if p == nil || route == "" {
		regError(w, http.StatusNotFound, "NAME_UNKNOWN", "repository not known to devloop's relay")
		return
	}
	p.mu.Lock()
	p.requests++
	p.mu.Unlock()
	switch route {
	case "blobs":
		p.serveBlob(w, req, arg)
	case "uploads":
		p.serveUpload(w, req, repo, arg)
	case "manifests":
		p.serveManifest(w, req, repo, arg)
	}
}

// splitRoute splits "<repo>/blobs/<digest>", "<repo>/blobs/uploads/[<id>]"
// and "<repo>/manifests/<ref>"; route is "" for anything else.
func splitRoute(rest string) (repo, route, arg string) {
	if i := strings.LastIndex(rest, "/blobs/uploads"); i > 0 {
		tail := rest[i+len("/blobs/uploads"):]
		if tail == "" || tail == "/" {
			return rest[:i], "uploads", ""
		}
		if id, ok := strings.CutPrefix(tail, "/"); ok && !strings.Contains(id, "/") {
			return rest[:i], "uploads", id
		}
	}
	if i := strings.LastIndex(rest, "/blobs/"); i > 0 && !strings.Contains(rest[i+7:], "/") {
		return rest[:i], "blobs", rest[i+7:]
	}
	if i := strings.LastIndex(rest, "/manifests/"); i > 0 && !strings.Contains(rest[i+11:], "/") {
		return rest[:i], "manifests", rest[i+11:]
	}
	return rest, "", ""
}

func (p *relayPush) serveBlob(w http.ResponseWriter, req *http.Request, dg string) {
	if _, err := digest.Parse(dg); err != nil {
		regError(w, http.StatusBadRequest, "DIGEST_INVALID", "invalid digest")
		return
	}
	switch req.Method {
	case http.MethodHead, http.MethodGet:
	default:
		regError(w, http.StatusMethodNotAllowed, "UNSUPPORTED", "method not allowed")
		return
	}
	if s, ok := p.blob(dg); ok {
		w.Header().Set("Docker-Content-Digest", dg)
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Length", strconv.FormatInt(s.size, 10))
		if req.Method == http.MethodHead {
			w.WriteHeader(http.StatusOK)
			return
		}
		f, err := os.Open(s.path)
		if err != nil {
			regError(w, http.StatusInternalServerError, "UNKNOWN", err.Error())
			return
		}
		defer f.Close()
		w.WriteHeader(http.StatusOK)
		io.Copy(w, f) //nolint:errcheck
		return
	}
	// In the nodes, not here: it "exists" for the engine's question, and
	// cannot be read from the relay.
	if size, ok := p.have(dg); ok && req.Method == http.MethodHead {
		w.Header().Set("Docker-Content-Digest", dg)
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Length", strconv.FormatInt(size, 10))
		w.WriteHeader(http.StatusOK)
		return
	}
	regError(w, http.StatusNotFound, "BLOB_UNKNOWN", "blob unknown")
}

func (p *relayPush) serveUpload(w http.ResponseWriter, req *http.Request, repo, id string) {
	q := req.URL.Query()
	switch {
	case req.Method == http.MethodPost && id == "":
		if from := q.Get("mount"); from != "" {
			if p.haveOrSpooled(from) {
				w.Header().Set("Location", "/v2/"+repo+"/blobs/"+from)
				w.Header().Set("Docker-Content-Digest", from)
				w.Header().Set("Content-Length", "0")
				w.WriteHeader(http.StatusCreated)
				return
			}
		}
		u, uid, err := p.newUpload()
		if err != nil {
			regError(w, http.StatusInternalServerError, "UNKNOWN", err.Error())
			return
		}
		if dg := q.Get("digest"); dg != "" { // monolithic upload
			p.finish(w, req, repo, uid, u, dg)
			return
		}
		w.Header().Set("Location", "/v2/"+repo+"/blobs/uploads/"+uid)
		w.Header().Set("Docker-Upload-UUID", uid)
		w.Header().Set("Range", "0-0")
		w.Header().Set("Content-Length", "0")
		w.WriteHeader(http.StatusAccepted)
	case id == "":
		regError(w, http.StatusMethodNotAllowed, "UNSUPPORTED", "method not allowed")
	default:
		p.mu.Lock()
		u := p.uploads[id]
		p.mu.Unlock()
		if u == nil {
			regError(w, http.StatusNotFound, "BLOB_UPLOAD_UNKNOWN", "upload unknown")
			return
		}
		switch req.Method {
		case http.MethodPatch:
			if err := u.write(req.Body); err != nil {
				p.drop(id)
				regError(w, http.StatusBadRequest, "BLOB_UPLOAD_INVALID", err.Error())
				return
			}
			w.Header().Set("Location", "/v2/"+repo+"/blobs/uploads/"+id)
			w.Header().Set("Docker-Upload-UUID", id)
			w.Header().Set("Range", fmt.Sprintf("0-%d", max(u.n-1, 0)))
			w.Header().Set("Content-Length", "0")
			w.WriteHeader(http.StatusAccepted)
		case http.MethodPut:
			p.finish(w, req, repo, id, u, q.Get("digest"))
		case http.MethodGet:
			w.Header().Set("Docker-Upload-UUID", id)
			w.Header().Set("Range", fmt.Sprintf("0-%d", max(u.n-1, 0)))
			w.WriteHeader(http.StatusNoContent)
		case http.MethodDelete:
			p.drop(id)
			w.WriteHeader(http.StatusNoContent)
		default:
			regError(w, http.StatusMethodNotAllowed, "UNSUPPORTED", "method not allowed")
		}
	}
}

func (p *relayPush) haveOrSpooled(dg string) bool {
	if _, err := digest.Parse(dg); err != nil {
		return false
	}
	if _, ok := p.blob(dg); ok {
		return true
	}
	_, ok := p.have(dg)
	return ok
}

func (p *relayPush) newUpload() (*upload, string, error) {
	var b [12]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, "", err
	}
	id := hex.EncodeToString(b[:])
	f, err := os.Create(filepath.Join(p.dir, "upload-"+id))
	if err != nil {
		return nil, "", err
	}
	u := &upload{f: f, h: sha256.New()}
	p.mu.Lock()
	p.uploads[id] = u
	p.mu.Unlock()
	return u, id, nil
}

func (u *upload) write(r io.Reader) error {
	n, err := io.Copy(io.MultiWriter(u.f, u.h), r)
	u.n += n
	return err
}

func (p *relayPush) drop(id string) {
	p.mu.Lock()
	u := p.uploads[id]
	delete(p.uploads, id)
	p.mu.Unlock()
	if u != nil {
		u.abort()
	}
}

func (u *upload) abort() {
	u.f.Close()
	os.Remove(u.f.Name())
}

// finish ends an upload with its last bytes (the request's body) and checks
// it is the digest the client says.
func (p *relayPush) finish(w http.ResponseWriter, req *http.Request, repo, id string, u *upload, dg string) {
	want, err := digest.Parse(dg)
	if err != nil || want.Algorithm() != digest.SHA256 {
		p.drop(id)
		regError(w, http.StatusBadRequest, "DIGEST_INVALID", "a sha256 digest is required")
		return
	}
	if err := u.write(req.Body); err != nil {
		p.drop(id)
		regError(w, http.StatusBadRequest, "BLOB_UPLOAD_INVALID", err.Error())
		return
	}
	if got := "sha256:" + hex.EncodeToString(u.h.Sum(nil)); got != want.String() {
		p.drop(id)
		regError(w, http.StatusBadRequest, "DIGEST_INVALID", "content has digest "+got)
		return
	}
	name := u.f.Name()
	if err := u.f.Close(); err != nil {
		p.drop(id)
		regError(w, http.StatusInternalServerError, "UNKNOWN", err.Error())
		return
	}
	p.mu.Lock()
	delete(p.uploads, id)
	if old, dup := p.blobs[want.String()]; dup {
		os.Remove(old.path)
	}
	p.blobs[want.String()] = spooled{path: name, size: u.n}
	p.mu.Unlock()
	w.Header().Set("Location", "/v2/"+repo+"/blobs/"+want.String())
	w.Header().Set("Docker-Content-Digest", want.String())
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusCreated)
}

func (p *relayPush) serveManifest(w http.ResponseWriter, req *http.Request, repo, ref string) {
	switch req.Method {
	case http.MethodHead, http.MethodGet:
		p.mu.Lock()
		dg := ref
		if t, ok := p.tags[ref]; ok {
			dg = t
		}
		m, ok := p.manifests[dg]
		p.mu.Unlock()
		if !ok {
			regError(w, http.StatusNotFound, "MANIFEST_UNKNOWN", "manifest unknown")
			return
		}
		w.Header().Set("Docker-Content-Digest", dg)
		w.Header().Set("Content-Type", m.mediaType)
		w.Header().Set("Content-Length", strconv.Itoa(len(m.b)))
		w.WriteHeader(http.StatusOK)
		if req.Method == http.MethodGet {
			w.Write(m.b) //nolint:errcheck
		}
	case http.MethodPut:
		b, err := io.ReadAll(http.MaxBytesReader(w, req.Body, maxRelayManifest))
		if err != nil {
			regError(w, http.StatusBadRequest, "MANIFEST_INVALID", err.Error())
			return
		}
		dg := digestOf(b)
		isDigest := strings.HasPrefix(ref, "sha256:")
		if isDigest && ref != dg {
			regError(w, http.StatusBadRequest, "DIGEST_INVALID", "manifest has digest "+dg)
			return
		}
		if !isDigest {
			if m := reference.TagRegexp.FindString(ref); m != ref {
				regError(w, http.StatusBadRequest, "TAG_INVALID", "invalid tag")
				return
			}
		}
		mt := req.Header.Get("Content-Type")
		if mt == "" {
			var probe struct {
				MediaType string `json:"mediaType"`
			}
			_ = json.Unmarshal(b, &probe)
			mt = probe.MediaType
		}
		p.mu.Lock()
		p.manifests[dg] = storedManifest{mediaType: mt, b: b}
		if !isDigest {
			p.tags[ref] = dg
		}
		p.mu.Unlock()
		w.Header().Set("Location", "/v2/"+repo+"/manifests/"+dg)
		w.Header().Set("Docker-Content-Digest", dg)
		w.Header().Set("Content-Length", "0")
		w.WriteHeader(http.StatusCreated)
	default:
		regError(w, http.StatusMethodNotAllowed, "UNSUPPORTED", "method not allowed")
	}
}

// errRelayMissed: the push ended without a manifest for the tag.
var errRelayMissed = errors.New("the push left no manifest in the relay")

// loadRelay has the engine push ref to the relay and streams into each
// target what it lacks. It returns the targets still to load (all of them
// when the relay cannot be used: the save path takes them), saying why to
// out when something failed.
func (l *Loader) loadRelay(ctx context.Context, ref string, want *hostImage, targets []*target, out io.Writer) []*target {
	r := l.relay
	if err := r.start(); err != nil {
		if l.verbose {
			fmt.Fprintf(out, "image relay unavailable, reading docker save: %v\n", err)
		}
		return targets
	}
	if r.unreachableErr() != nil {
		return targets
	}
	r.cleanUp(ctx)
	for _, t := range targets {
		if t.haveErr != nil {
			return targets // the save path says why, and falls back per node
		}
	}
	named, err := reference.ParseNormalizedNamed(ref)
	if err != nil {
		return targets
	}
	named = reference.TagNameOnly(named) // the node's image is "<name>:latest" for an untagged ref
	tagged, ok := named.(reference.NamedTagged)
	if !ok {
		return targets
	}
	start := time.Now()

	err = os.MkdirAll(r.spoolDir(), 0o700)
	var dir string
	if err == nil {
		dir, err = os.MkdirTemp(r.spoolDir(), fmt.Sprintf("devloop-relay-%d-", os.Getpid()))
	}
	if err != nil {
		fmt.Fprintf(out, "image relay: %v; reading docker save instead\n", err)
		return targets
	}
	r.mu.Lock()
	r.n++
	repo := fmt.Sprintf("%s/%d/%s", r.token, r.n, reference.Path(named))
	p := &relayPush{dir: dir, blobs: map[string]spooled{}, manifests: map[string]storedManifest{},
		tags: map[string]string{}, uploads: map[string]*upload{}, have: haveAll(targets)}
	r.pushes[repo] = p
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		delete(r.pushes, repo)
		r.mu.Unlock()
		p.mu.Lock()
		defer p.mu.Unlock()
		for id, u := range p.uploads {
			u.abort()
			delete(p.uploads, id)
		}
		os.RemoveAll(p.dir)
	}()

	relayRef := r.host + "/" + repo + ":" + tagged.Tag()
	if _, err := reference.ParseNormalizedNamed(relayRef); err != nil {
		return targets
	}
	if _, err := r.api.ImageTag(ctx, client.ImageTagOptions{Source: ref, Target: relayRef}); err != nil {
		fmt.Fprintf(out, "image relay: tagging %s: %v; reading docker save instead\n", ref, err)
		return targets
	}
	defer func() {
		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), relayTimeout)
		defer cancel()
		if _, err := r.api.ImageRemove(uctx, relayRef, client.ImageRemoveOptions{}); err != nil && !cerrdefs.IsNotFound(err) {
			// The engine may be restarting: the next load tries again.
			r.mu.Lock()
			r.stale = append(r.stale, relayRef)
			r.mu.Unlock()
		}
	}()
	opts := client.ImagePushOptions{RegistryAuth: noAuth}
	if want.index {
		// Only the nodes' platform: no other platform's blobs (which an
		// engine that pulled the image may not even have), no attestations.
		plat := targets[0].platform
		if !slices.ContainsFunc(targets, func(t *target) bool { return platformString(t.platform) != platformString(plat) }) {
			opts.Platform = &plat
		}
	}
	// Each node's `ctr import` starts now, and waits for its archive while
	// the engine pushes: its start costs as much as a small push.
	imports := make([]*relayImport, len(targets))
	for i, t := range targets {
		imports[i] = l.startImport(ctx, t)
	}
	abortAll := func() {
		for _, imp := range imports {
			imp.abort()
		}
	}
	hits := r.hits.Load()
	perr := r.push(ctx, relayRef, opts)
	if perr == nil {
		p.mu.Lock()
		if _, ok := p.tags[tagged.Tag()]; !ok {
			perr = errRelayMissed
		}
		p.mu.Unlock()
	}
	if perr != nil {
		abortAll()
		if ctx.Err() != nil {
			return targets
		}
		p.mu.Lock()
		reached := p.requests > 0 || r.hits.Load() > hits
		p.mu.Unlock()
		var said engineSaid
		if !reached && errors.As(perr, &said) && unreachableError(perr) {
			r.mu.Lock()
			r.unreachable = perr
			r.mu.Unlock()
			if l.verbose {
				fmt.Fprintf(out, "the engine cannot push to devloop's image relay at %s (%v): reading docker save instead\n", r.host, perr)
			}
			return targets
		}
		fmt.Fprintf(out, "image relay: pushing %s failed, reading docker save instead: %v\n", ref, perr)
		return targets
	}

	p.mu.Lock()
	topDigest := p.tags[tagged.Tag()]
	top := p.manifests[topDigest]
	p.mu.Unlock()
	topDesc := ocispec.Descriptor{MediaType: top.mediaType, Digest: digest.Digest(topDigest), Size: int64(len(top.b))}
	get := func(d ocispec.Descriptor) ([]byte, error) {
		p.mu.Lock()
		defer p.mu.Unlock()
		if m, ok := p.manifests[d.Digest.String()]; ok {
			return m.b, nil
		}
		return nil, fmt.Errorf("the push did not send manifest %s", d.Digest)
	}

	var (
		remaining []*target
		mu        sync.Mutex
		wg        sync.WaitGroup
	)
	for i, t := range targets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := l.relayInto(ctx, p, named, get, topDesc, t, imports[i])
			if err == nil {
				t.result.Fast = true
				t.result.Format = FormatRelay
				t.result.Duration = time.Since(start)
				return
			}
			t.result.Bytes = 0
			t.result.LayersSent, t.result.LayersSkipped = 0, 0
			mu.Lock()
			defer mu.Unlock()
			if ctx.Err() == nil {
				fmt.Fprintf(out, "image relay into %s failed, reading docker save instead: %v\n", t.node.String(), err)
			}
			remaining = append(remaining, t)
		}()
	}
	wg.Wait()
	return remaining
}

// unreachableError says whether a push's error is the engine failing to
// connect to the relay, or to speak plain HTTP to it (an engine that insists
// on TLS for loopback), rather than, say, refusing the image.
func unreachableError(err error) bool {
	msg := err.Error()
	for _, s := range []string{"dial tcp", "connection refused", "no route to host", "network is unreachable", "i/o timeout",
		"connection reset", "server gave HTTP response to HTTPS client", "tls: ", "x509: "} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}

// push runs the engine's push of target and waits for its end. A push of
// one platform that the engine's API refuses (before 1.46) is retried whole.
func (r *relay) push(ctx context.Context, target string, opts client.ImagePushOptions) error {
	resp, err := r.api.ImagePush(ctx, target, opts)
	if err != nil && opts.Platform != nil && ctx.Err() == nil {
		opts.Platform = nil
		resp, err = r.api.ImagePush(ctx, target, opts)
	}
	if err != nil {
		return err
	}
	_, _, err = readPush(ctx, resp)
	return err
}

// haveAll answers the relay's "does the blob exist": when every target's
// node holds it, with its size.
func haveAll(targets []*target) func(string) (int64, bool) {
	return func(dg string) (int64, bool) {
		size := int64(-1)
		for _, t := range targets {
			s, ok := t.sizes[dg]
			if !ok || !t.have[dg] || (size >= 0 && s != size) {
				return 0, false
			}
			size = s
		}
		return size, size >= 0
	}
}

// relayInto imports into t's node the image manifest for its platform with
// what the node lacks of it, from the push p.
func (l *Loader) relayInto(ctx context.Context, p *relayPush, named reference.Named, get func(ocispec.Descriptor) ([]byte, error), top ocispec.Descriptor, t *target, imp *relayImport) (err error) {
	written := false
	defer func() {
		if !written {
			imp.abort()
		}
	}()
	m, err := resolveManifest(get, top, t.platform)
	if err != nil {
		return err
	}
	mb, err := get(m.desc)
	if err != nil {
		return err
	}
	var files []sendFile
	sent := map[string]bool{}
	need := func(d ocispec.Descriptor, layer bool) error {
		dg := d.Digest.String()
		if sent[dg] {
			return nil
		}
		if s, ok := p.blob(dg); ok && !t.have[dg] {
			files = append(files, sendFile{dg, s})
			sent[dg] = true
			if layer {
				t.result.LayersSent++
			}
			return nil
		}
		if t.have[dg] {
			if layer {
				t.result.LayersSkipped++
			}
			return nil
		}
		return fmt.Errorf("blob %s of %s (%s) was neither pushed nor in the node", dg, named, d.MediaType)
	}
	if err := need(m.manifest.Config, false); err != nil {
		return err
	}
	for _, ld := range m.manifest.Layers {
		if err := need(ld, true); err != nil {
			return err
		}
	}
	mdesc := descriptor{MediaType: m.desc.MediaType, Digest: m.desc.Digest.String(), Size: m.desc.Size}
	if pl := m.platform; pl != nil && pl.OS != "" && pl.Architecture != "" {
		mdesc.Platform = &platform{Architecture: pl.Architecture, OS: pl.OS, Variant: pl.Variant}
	}
	written = true
	werr := func() error {
		if imp.err != nil {
			return imp.err
		}
		tw := tar.NewWriter(&countWriter{w: imp.pw, n: &t.result.Bytes})
		for _, f := range files {
			if err := writeSpooled(tw, "blobs/sha256/"+strings.TrimPrefix(f.dg, "sha256:"), f.s); err != nil {
				return err
			}
		}
		return writeLayout(tw, named, mdesc, []blob{{"blobs/sha256/" + strings.TrimPrefix(mdesc.Digest, "sha256:"), mb}})
	}()
	if imp.err != nil {
		return imp.err
	}
	if werr != nil {
		imp.pw.CloseWithError(werr)
	} else {
		imp.pw.Close()
	}
	ierr := <-imp.done
	if werr != nil && !errors.Is(werr, errImportEnded) {
		return werr
	}
	if ierr != nil {
		return ierr
	}
	if werr != nil {
		return werr
	}
	t.relayed = mdesc.Digest
	return nil
}

// relayImport is a node's `ctr images import`, started before its archive
// is known.
type relayImport struct {
	err  error // it could not start
	pw   *io.PipeWriter
	done chan error
}

var errRelayAborted = errors.New("the image relay sends nothing after all")

func (l *Loader) startImport(ctx context.Context, t *target) *relayImport {
	snap, err := l.nodeSnapshotter(ctx, t.node)
	if err != nil {
		return &relayImport{err: err}
	}
	pr, pw := io.Pipe()
	imp := &relayImport{pw: pw, done: make(chan error, 1)}
	go func() {
		err := importArchive(ctx, t.node, snap, pr)
		pr.CloseWithError(errImportEnded)
		imp.done <- err
	}()
	return imp
}

// abort ends an import that gets no archive (an empty stream: ctr imports
// nothing) and waits for it.
func (imp *relayImport) abort() {
	if imp.err != nil || imp.pw == nil {
		return
	}
	imp.pw.CloseWithError(errRelayAborted)
	<-imp.done
	imp.pw = nil
}

type sendFile struct {
	dg string
	s  spooled
}

// writeSpooled writes a spooled blob as one tar entry.
func writeSpooled(tw *tar.Writer, name string, s spooled) error {
	f, err := os.Open(s.path)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: s.size, Typeflag: tar.TypeReg, ModTime: time.Unix(0, 0)}); err != nil {
		return err
	}
	_, err = io.CopyN(tw, f, s.size)
	return err
}

// RelayProbeAPI is what ProbeRelay needs of the Docker client.
type RelayProbeAPI interface {
	ImagePull(ctx context.Context, ref string, options client.ImagePullOptions) (client.ImagePullResponse, error)
}

// relayProbeTimeout bounds ProbeRelay's pull: an engine that cannot reach
// the relay may wait for its own dial timeout.
const relayProbeTimeout = 15 * time.Second

// ProbeRelay tells whether the engine reaches an image relay on this
// machine's 127.0.0.1 (doctor asks it: in a VM, rootless or remote, it does
// not, and loads read docker save). It starts a relay of its own and has the
// engine pull a name from it that it serves nothing for: nil when the
// engine's pull asked it anything (the pull itself fails, "not found"),
// else the engine's error.
func ProbeRelay(ctx context.Context, api RelayProbeAPI) error {
	r := &relay{}
	if err := r.start(); err != nil {
		return fmt.Errorf("starting the image relay: %w", err)
	}
	defer r.close()
	ctx, cancel := context.WithTimeout(ctx, relayProbeTimeout)
	defer cancel()
	resp, err := api.ImagePull(ctx, r.host+"/"+r.token+"/probe/reachable:probe", client.ImagePullOptions{RegistryAuth: noAuth})
	if err == nil {
		err = resp.Wait(ctx)
		resp.Close()
	}
	switch {
	case r.hits.Load() > 0:
		return nil
	case err == nil:
		return errors.New("the engine's pull from the relay ended without asking it anything")
	default:
		return err
	}
}
