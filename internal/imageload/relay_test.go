package imageload

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/distribution/reference"
	"github.com/moby/moby/api/types/image"
	"github.com/moby/moby/api/types/jsonstream"
	"github.com/moby/moby/client"
)

// relayImage is an image of the fake engine as its push sends it: a docker
// schema 2 manifest, its config and (compressed, as far as the relay can
// tell) layer blobs.
type relayImage struct {
	id       string
	config   []byte
	layers   [][]byte
	manifest []byte
}

func newRelayImage(layers ...string) *relayImage {
	img := &relayImage{}
	var descs []map[string]any
	var diffIDs []string
	for _, l := range layers {
		b := []byte("gzip:" + l)
		img.layers = append(img.layers, b)
		descs = append(descs, map[string]any{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "digest": digestOf(b), "size": len(b)})
		diffIDs = append(diffIDs, digestOf([]byte(l)))
	}
	img.config, _ = json.Marshal(map[string]any{"architecture": "amd64", "os": "linux", "rootfs": map[string]any{"type": "layers", "diff_ids": diffIDs}})
	img.id = digestOf(img.config)
	img.manifest, _ = json.Marshal(map[string]any{
		"schemaVersion": 2, "mediaType": mediaTypeManifest,
		"config": map[string]any{"mediaType": mediaTypeConfig, "digest": img.id, "size": len(img.config)},
		"layers": descs,
	})
	return img
}

// relayEngine is SaveAPI and RelayAPI: its push talks HTTP to the registry
// its target names, as dockerd's does on the classic store: a blob it has
// pushed before is asked for (HEAD); any other is uploaded (POST, PATCH,
// PUT; the config in one POST+PUT); then the manifest is put by tag.
type relayEngine struct {
	fakeDocker
	mu        sync.Mutex
	relayImg  map[string]*relayImage // source ref -> image
	tagged    map[string]string      // relay name -> source ref
	removed   []string
	pushes    int
	pushErr   error // the engine reports this from every push, having sent no request
	failOnce  error // the engine reports this from the next push, having sent no request
	clientErr error // the next push cannot reach the engine at all
	removeErr error // the next removal of a name containing removeFor fails
	removeFor string
	listed    []string        // names ImageList reports besides the tagged ones
	known     map[string]bool // digests pushed before (dockerd's v2 metadata)
	uploaded  []string
	heads     map[string]int // HEAD status per digest, last push
}

func newRelayEngine() *relayEngine {
	return &relayEngine{relayImg: map[string]*relayImage{}, tagged: map[string]string{}, known: map[string]bool{}}
}

func (e *relayEngine) add(ref string, img *relayImage) {
	e.relayImg[ref] = img
	if e.images == nil {
		e.images = map[string]*fakeImage{}
	}
	e.images[ref] = &fakeImage{id: img.id}
}

// tags is a copy of the names tagged now (the relay's background clean-up
// may be removing some meanwhile).
func (e *relayEngine) tags() map[string]string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return maps.Clone(e.tagged)
}

func (e *relayEngine) ImageInspect(ctx context.Context, ref string, _ ...client.ImageInspectOption) (client.ImageInspectResult, error) {
	img, ok := e.relayImg[ref]
	if !ok {
		return client.ImageInspectResult{}, fmt.Errorf("no such image: %s", ref)
	}
	return client.ImageInspectResult{InspectResponse: image.InspectResponse{ID: img.id}}, nil
}

func (e *relayEngine) ImageSave(ctx context.Context, refs []string, _ ...client.ImageSaveOption) (client.ImageSaveResult, error) {
	e.mu.Lock()
	e.saves++
	e.mu.Unlock()
	return nil, errors.New("fake engine: no docker save here")
}

func (e *relayEngine) ImageTag(_ context.Context, o client.ImageTagOptions) (client.ImageTagResult, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.tagged[o.Target] = o.Source
	return client.ImageTagResult{}, nil
}

func (e *relayEngine) ImageRemove(_ context.Context, ref string, _ client.ImageRemoveOptions) (client.ImageRemoveResult, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if err := e.removeErr; err != nil && strings.Contains(ref, e.removeFor) {
		e.removeErr = nil
		return client.ImageRemoveResult{}, err
	}
	delete(e.tagged, ref)
	e.listed = slices.DeleteFunc(e.listed, func(n string) bool { return n == ref })
	e.removed = append(e.removed, ref)
	return client.ImageRemoveResult{}, nil
}

func (e *relayEngine) ImageList(context.Context, client.ImageListOptions) (client.ImageListResult, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	names := slices.Clone(e.listed)
	for n := range e.tagged {
		names = append(names, n)
	}
	return client.ImageListResult{Items: []image.Summary{{RepoTags: names}}}, nil
}

func (e *relayEngine) ImagePush(ctx context.Context, target string, _ client.ImagePushOptions) (client.ImagePushResponse, error) {
	e.mu.Lock()
	e.pushes++
	src, ok := e.tagged[target]
	e.mu.Unlock()
	if err := e.clientErr; err != nil {
		e.clientErr = nil
		return nil, err
	}
	said := e.pushErr
	if said == nil && e.failOnce != nil {
		said, e.failOnce = e.failOnce, nil
	}
	if said != nil {
		return pushStream{io.NopCloser(strings.NewReader("")), []jsonstream.Message{{Error: &jsonstream.Error{Message: said.Error()}}}}, nil
	}
	if !ok {
		return nil, fmt.Errorf("no such image: %s", target)
	}
	named, err := reference.ParseNormalizedNamed(target)
	if err != nil {
		return nil, err
	}
	base := "http://" + reference.Domain(named) + "/v2/" + reference.Path(named)
	tag := reference.TagNameOnly(named).(reference.Tagged).Tag()
	err = e.push(ctx, base, tag, e.relayImg[src])
	var msgs []jsonstream.Message
	if err != nil {
		msgs = append(msgs, jsonstream.Message{Error: &jsonstream.Error{Message: err.Error()}})
	}
	return pushStream{io.NopCloser(strings.NewReader("")), msgs}, nil
}

func (e *relayEngine) push(ctx context.Context, base, tag string, img *relayImage) error {
	e.heads = map[string]int{}
	do := func(method, url string, body []byte, want int) (*http.Response, error) {
		req, err := http.NewRequestWithContext(ctx, method, url, bytes.NewReader(body))
		if err != nil {
			return nil, err
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return nil, err
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if want != 0 && resp.StatusCode != want {
			return resp, fmt.Errorf("%s %s: %s", method, url, resp.Status)
		}
		return resp, nil
	}
	if _, err := do(http.MethodGet, base[:strings.Index(base, "/v2/")+4], nil, http.StatusOK); err != nil {
		return err
	}
	for _, b := range append(img.layers, img.config) {
		dg := digestOf(b)
		if e.known[dg] {
			resp, err := do(http.MethodHead, base+"/blobs/"+dg, nil, 0)
			if err != nil {
				return err
			}
			e.heads[dg] = resp.StatusCode
			if resp.StatusCode == http.StatusOK {
				if resp.ContentLength != int64(len(b)) {
					return fmt.Errorf("HEAD %s: size %d, want %d", dg, resp.ContentLength, len(b))
				}
				continue
			}
		}
		resp, err := do(http.MethodPost, base+"/blobs/uploads/", nil, http.StatusAccepted)
		if err != nil {
			return err
		}
		loc := "http://" + resp.Request.URL.Host + resp.Header.Get("Location")
		half := len(b) / 2
		if _, err := do(http.MethodPatch, loc, b[:half], http.StatusAccepted); err != nil {
			return err
		}
		if _, err := do(http.MethodPut, loc+"?digest="+dg, b[half:], http.StatusCreated); err != nil {
			return err
		}
		e.uploaded = append(e.uploaded, dg)
		e.known[dg] = true
	}
	_, err := do(http.MethodPut, base+"/manifests/"+tag, img.manifest, http.StatusCreated)
	return err
}

func relayLoader(t *testing.T, e *relayEngine, f *fakeContainerd) *Loader {
	t.Helper()
	spool := t.TempDir()
	l := NewLoader(e, fakeLister{&funcNode{name: "dev-control-plane", run: f.run}}, WithRelay(e, spool), WithVerbose(true))
	t.Cleanup(func() {
		l.Close()
		if ents, _ := os.ReadDir(spool); len(ents) != 0 {
			t.Errorf("spool directories left: %v", ents)
		}
	})
	return l
}

func TestRelaySendsOnlyWhatTheNodeLacks(t *testing.T) {
	e, f := newRelayEngine(), newFakeContainerd()
	l := relayLoader(t, e, f)
	base, lower := "base layer "+strings.Repeat("b", 4000), "deps "+strings.Repeat("d", 3000)
	e.add("app:v1", newRelayImage(base, lower, "code v1"))
	e.add("app:v2", newRelayImage(base, lower, "code v2"))

	var out bytes.Buffer
	res, err := l.Load(context.Background(), "dev", "app:v1", &out)
	if err != nil {
		t.Fatalf("first load: %v\n%s", err, out.String())
	}
	n := res.Nodes[0]
	if !n.Fast || n.Format != FormatRelay || n.LayersSent != 3 || n.LayersSkipped != 0 {
		t.Fatalf("first load: %+v\n%s", n, out.String())
	}
	if got := f.configOf("docker.io/library/app:v1"); got != e.relayImg["app:v1"].id {
		t.Fatalf("node's app:v1 has config %q, want %q", got, e.relayImg["app:v1"].id)
	}
	first := f.received

	e.uploaded = nil
	out.Reset()
	res, err = l.Load(context.Background(), "dev", "app:v2", &out)
	if err != nil {
		t.Fatalf("second load: %v\n%s", err, out.String())
	}
	n = res.Nodes[0]
	if !n.Fast || n.Format != FormatRelay || n.LayersSent != 1 || n.LayersSkipped != 2 {
		t.Fatalf("second load: %+v\n%s", n, out.String())
	}
	v2 := e.relayImg["app:v2"]
	if want := []string{digestOf(v2.layers[2]), v2.id}; fmt.Sprint(e.uploaded) != fmt.Sprint(want) {
		t.Errorf("the engine uploaded %v, want only the changed layer and the config %v", e.uploaded, want)
	}
	for _, b := range v2.layers[:2] {
		if e.heads[digestOf(b)] != http.StatusOK {
			t.Errorf("HEAD of a layer the node holds answered %d", e.heads[digestOf(b)])
		}
	}
	if got := f.configOf("docker.io/library/app:v2"); got != v2.id {
		t.Fatalf("node's app:v2 has config %q, want %q", got, v2.id)
	}
	if sent := f.received - first; sent >= first {
		t.Errorf("the second load sent %d bytes, the first %d: the shared layers went again", sent, first)
	}
	if e.saves != 0 {
		t.Errorf("docker save ran %d times", e.saves)
	}
	if len(e.tagged) != 0 || len(e.removed) != 2 {
		t.Errorf("relay names left in the engine: %v (removed %v)", e.tagged, e.removed)
	}

	// A third load of v2: the node has it; nothing is pushed.
	pushes := e.pushes
	if res, err := l.Load(context.Background(), "dev", "app:v2", &out); err != nil || !res.Nodes[0].Skipped {
		t.Fatalf("third load: %+v, %v", res, err)
	}
	if e.pushes != pushes {
		t.Error("an image the node has was pushed again")
	}
}

func TestRelayUnknownSizeIsUploaded(t *testing.T) {
	// Without the content store's file sizes the relay cannot answer a HEAD
	// exactly: it says "unknown", and the engine uploads.
	e, f := newRelayEngine(), newFakeContainerd()
	f.noSizes = true
	l := relayLoader(t, e, f)
	e.add("app:v1", newRelayImage("a", "b"))
	e.add("app:v2", newRelayImage("a", "c"))
	for _, ref := range []string{"app:v1", "app:v2"} {
		var out bytes.Buffer
		res, err := l.Load(context.Background(), "dev", ref, &out)
		if err != nil || !res.Nodes[0].Fast {
			t.Fatalf("%s: %+v, %v\n%s", ref, res, err, out.String())
		}
	}
	if e.heads[digestOf(e.relayImg["app:v2"].layers[0])] != http.StatusNotFound {
		t.Errorf("HEAD with no known size: %v", e.heads)
	}
}

func TestRelayUnreachableFallsBackToSaveOnce(t *testing.T) {
	e, f := newRelayEngine(), newFakeContainerd()
	e.pushErr = errors.New("Get \"https://127.0.0.1:1/v2/\": connection refused")
	docker := &fakeDocker{}
	docker.addImage("app:v1", [][]byte{[]byte("a"), []byte("b")})
	docker.addImage("app:v2", [][]byte{[]byte("a"), []byte("c")})
	l := NewLoader(docker, fakeLister{&funcNode{name: "dev-control-plane", run: f.run}}, WithRelay(e, t.TempDir()), WithVerbose(true))
	defer l.Close()
	var out bytes.Buffer
	for _, ref := range []string{"app:v1", "app:v2"} {
		res, err := l.Load(context.Background(), "dev", ref, &out)
		if err != nil || !res.Nodes[0].Fast || res.Nodes[0].Format != FormatDockerArchive {
			t.Fatalf("%s: %+v, %v\n%s", ref, res, err, out.String())
		}
	}
	if e.pushes != 1 {
		t.Errorf("the engine was asked to push %d times; once it cannot reach the relay, never again", e.pushes)
	}
	if n := strings.Count(out.String(), "cannot push to devloop's image relay"); n != 1 {
		t.Errorf("the fallback was said %d times, want once:\n%s", n, out.String())
	}
	if len(e.tagged) != 0 {
		t.Errorf("relay names left in the engine: %v", e.tagged)
	}
}

func TestRelayUntaggedIsLatest(t *testing.T) {
	e, f := newRelayEngine(), newFakeContainerd()
	l := relayLoader(t, e, f)
	e.add("app", newRelayImage("a", "b"))
	for i := range 2 {
		var out bytes.Buffer
		res, err := l.Load(context.Background(), "dev", "app", &out)
		if err != nil {
			t.Fatalf("load %d: %v\n%s", i, err, out.String())
		}
		if i == 0 && res.Nodes[0].Format != FormatRelay {
			t.Fatalf("load %d: %+v", i, res.Nodes[0])
		}
		if i == 1 && !res.Nodes[0].Skipped {
			t.Errorf("the second load of app did not find app:latest in the node: %+v (node has %v)", res.Nodes[0], f.images)
		}
	}
	if _, ok := f.images["docker.io/library/app:latest"]; !ok {
		t.Errorf("node images: %v", f.images)
	}
}

func TestRelayRefusedPushFallsBackForThatLoadOnly(t *testing.T) {
	// An error that is not about reaching the relay (the engine refused
	// this image) does not switch the relay off.
	e, f := newRelayEngine(), newFakeContainerd()
	e.failOnce = errors.New("image does not provide the specified platform")
	docker := &fakeDocker{}
	docker.addImage("app:v1", [][]byte{[]byte("a")})
	l := relayLoader(t, e, f)
	l.docker = docker
	var out bytes.Buffer
	if res, err := l.Load(context.Background(), "dev", "app:v1", &out); err != nil || res.Nodes[0].Format != FormatDockerArchive {
		t.Fatalf("first load: %+v, %v\n%s", res, err, out.String())
	}
	if !strings.Contains(out.String(), "image relay: pushing app:v1 failed, reading docker save instead") {
		t.Errorf("the fallback was not said:\n%s", out.String())
	}
	e.add("app:v2", newRelayImage("a", "c"))
	l.docker = e
	if res, err := l.Load(context.Background(), "dev", "app:v2", &out); err != nil || res.Nodes[0].Format != FormatRelay {
		t.Fatalf("second load: %+v, %v\n%s", res, err, out.String())
	}
}

func TestRelayRemovesTheNamesLeftBehind(t *testing.T) {
	// A devloop killed mid-push left its name; a live devloop's relay (its
	// port listens) keeps its own; the user's names are never touched.
	live, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer live.Close()
	dead, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadAddr := dead.Addr().String()
	dead.Close()
	left := deadAddr + "/devloop-0123456789ab/3/library/app:v0"
	running := live.Addr().String() + "/devloop-ba9876543210/1/library/app:v0"
	users := []string{"127.0.0.1:5000/app:v1", deadAddr + "/devloop-team/app:v1", "app:v1"}
	e, f := newRelayEngine(), newFakeContainerd()
	e.listed = append([]string{left, running}, users...)
	e.add("app:v1", newRelayImage("a"))
	e.add("app:v2", newRelayImage("b"))
	// The engine restarts as the first load ends: the relay's own name stays, for now.
	e.removeErr, e.removeFor = errors.New("Cannot connect to the Docker daemon"), "/1/library/app:v1"
	// A devloop killed mid-push left its spool directory too; a running
	// one's (pid 1 is alive) and what is not a spool directory stay.
	spool := t.TempDir()
	gone := exec.Command("true")
	if err := gone.Run(); err != nil {
		t.Fatal(err)
	}
	deadSpool := fmt.Sprintf("devloop-relay-%d-123", gone.Process.Pid)
	keep := []string{"devloop-relay-1-456", "devloop-relay-notes", fmt.Sprintf("devloop-relay-%d-7", gone.Process.Pid+1e6)}
	for _, d := range append([]string{deadSpool}, keep[:2]...) {
		if err := os.MkdirAll(filepath.Join(spool, d, "blobs"), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(spool, keep[2]), []byte("a file"), 0o600); err != nil {
		t.Fatal(err)
	}
	l := NewLoader(e, fakeLister{&funcNode{name: "dev-control-plane", run: f.run}}, WithRelay(e, spool))
	var out bytes.Buffer
	if _, err := l.Load(context.Background(), "dev", "app:v1", &out); err != nil {
		t.Fatal(err)
	}
	if tagged := e.tags(); len(tagged) != 1 {
		t.Fatalf("the failed removal: tagged %v", tagged)
	}
	if _, err := l.Load(context.Background(), "dev", "app:v2", &out); err != nil {
		t.Fatal(err)
	}
	l.Close() // waits for the clean-ups
	if want := append([]string{running}, users...); fmt.Sprint(e.listed) != fmt.Sprint(want) {
		t.Errorf("names left: %v, want %v", e.listed, want)
	}
	if len(e.tagged) != 0 {
		t.Errorf("the relay's own names were not removed after all: %v", e.tagged)
	}
	var spooled []string
	ents, _ := os.ReadDir(spool)
	for _, e := range ents {
		spooled = append(spooled, e.Name())
	}
	if slices.Sort(keep); fmt.Sprint(spooled) != fmt.Sprint(keep) {
		t.Errorf("spool has %v, want %v (the dead devloop's removed, the rest kept)", spooled, keep)
	}
}

func TestRelayEngineAwayIsNotUnreachable(t *testing.T) {
	// The engine itself cannot be reached (it restarts): not the relay's
	// fault; the next load uses the relay again.
	e, f := newRelayEngine(), newFakeContainerd()
	e.clientErr = errors.New("Cannot connect to the Docker daemon at unix:///var/run/docker.sock: dial unix /var/run/docker.sock: connect: connection refused")
	e.add("app:v1", newRelayImage("a"))
	e.add("app:v2", newRelayImage("b"))
	l := relayLoader(t, e, f)
	var out bytes.Buffer
	// The first load's fallback (docker save) fails in this fake: only the
	// relay matters here.
	l.Load(context.Background(), "dev", "app:v1", &out) //nolint:errcheck
	if res, err := l.Load(context.Background(), "dev", "app:v2", &out); err != nil || res.Nodes[0].Format != FormatRelay {
		t.Fatalf("second load: %+v, %v\n%s", res, err, out.String())
	}
}

func TestRelayEndpoint(t *testing.T) {
	r := &relay{}
	if err := r.start(); err != nil {
		t.Fatal(err)
	}
	defer r.close()
	p := &relayPush{dir: t.TempDir(), blobs: map[string]spooled{}, manifests: map[string]storedManifest{}, tags: map[string]string{},
		uploads: map[string]*upload{}, have: func(dg string) (int64, bool) { return 7, dg == digestOf([]byte("in node")) }}
	r.pushes[r.token+"/1/library/app"] = p
	srv := httptest.NewServer(r)
	defer srv.Close()
	base := srv.URL + "/v2/" + r.token + "/1/library/app"
	call := func(method, url, body string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest(method, url, strings.NewReader(body))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	if resp := call(http.MethodHead, base+"/blobs/"+digestOf([]byte("in node")), ""); resp.StatusCode != 200 || resp.ContentLength != 7 {
		t.Errorf("HEAD of a blob in the node: %s, length %d", resp.Status, resp.ContentLength)
	}
	if resp := call(http.MethodGet, base+"/blobs/"+digestOf([]byte("in node")), ""); resp.StatusCode != 404 {
		t.Errorf("GET of a blob only the node has: %s", resp.Status)
	}
	if resp := call(http.MethodHead, base+"/blobs/"+digestOf([]byte("nowhere")), ""); resp.StatusCode != 404 {
		t.Errorf("HEAD of an unknown blob: %s", resp.Status)
	}
	if resp := call(http.MethodHead, srv.URL+"/v2/someone-else/app/blobs/"+digestOf([]byte("in node")), ""); resp.StatusCode != 404 {
		t.Errorf("a repository the relay does not serve: %s", resp.Status)
	}
	// An upload whose content is not its digest is refused, and not kept.
	resp := call(http.MethodPost, base+"/blobs/uploads/", "")
	if resp.StatusCode != 202 {
		t.Fatalf("POST upload: %s", resp.Status)
	}
	loc := srv.URL + resp.Header.Get("Location")
	if resp := call(http.MethodPatch, loc, "some bytes"); resp.StatusCode != 202 || resp.Header.Get("Range") != "0-9" {
		t.Errorf("PATCH: %s, range %q", resp.Status, resp.Header.Get("Range"))
	}
	if resp := call(http.MethodPut, loc+"?digest="+digestOf([]byte("other bytes")), ""); resp.StatusCode != 400 {
		t.Errorf("PUT with the wrong digest: %s", resp.Status)
	}
	if len(p.blobs) != 0 || len(p.uploads) != 0 {
		t.Errorf("a refused upload was kept: %v %v", p.blobs, p.uploads)
	}
	// A monolithic upload, then a mount of it, then the manifest.
	body := "config bytes"
	if resp := call(http.MethodPost, base+"/blobs/uploads/?digest="+digestOf([]byte(body)), body); resp.StatusCode != 201 {
		t.Errorf("monolithic upload: %s", resp.Status)
	}
	if resp := call(http.MethodPost, base+"/blobs/uploads/?mount="+digestOf([]byte(body))+"&from=other", ""); resp.StatusCode != 201 {
		t.Errorf("mount of a blob the relay holds: %s", resp.Status)
	}
	m := `{"schemaVersion":2}`
	if resp := call(http.MethodPut, base+"/manifests/v1", m); resp.StatusCode != 201 || resp.Header.Get("Docker-Content-Digest") != digestOf([]byte(m)) {
		t.Errorf("PUT manifest: %s %q", resp.Status, resp.Header.Get("Docker-Content-Digest"))
	}
	if resp := call(http.MethodPut, base+"/manifests/"+digestOf([]byte("x")), m); resp.StatusCode != 400 {
		t.Errorf("PUT manifest under another digest: %s", resp.Status)
	}
	if resp := call(http.MethodPut, base+"/manifests/bad:tag", m); resp.StatusCode != 400 {
		t.Errorf("PUT manifest with a bad tag: %s", resp.Status)
	}
	if p.tags["v1"] != digestOf([]byte(m)) {
		t.Errorf("tags: %v", p.tags)
	}
}

func TestSplitRoute(t *testing.T) {
	for in, want := range map[string][3]string{
		"a/b/blobs/sha256:1":          {"a/b", "blobs", "sha256:1"},
		"a/b/blobs/uploads/":          {"a/b", "uploads", ""},
		"a/b/blobs/uploads":           {"a/b", "uploads", ""},
		"a/b/blobs/uploads/id1":       {"a/b", "uploads", "id1"},
		"a/blobs/b/manifests/v1":      {"a/blobs/b", "manifests", "v1"},
		"a/b/tags/list":               {"a/b/tags/list", "", ""},
		"a/b/blobs/uploads/id1/extra": {"a/b/blobs/uploads/id1/extra", "", ""},
	} {
		repo, route, arg := splitRoute(in)
		if got := [3]string{repo, route, arg}; got != want {
			t.Errorf("splitRoute(%q) = %q, want %q", in, got, want)
		}
	}
}

// FuzzSplitRoute: any path the relay is asked for splits without a panic,
// and a route it serves is the path it was given.
func FuzzSplitRoute(f *testing.F) {
	for _, s := range []string{"a/b/blobs/sha256:1", "a/blobs/uploads/x", "r/manifests/v1", "blobs/", "/blobs/uploads", "a//manifests/"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, rest string) {
		repo, route, arg := splitRoute(rest)
		var back string
		switch route {
		case "":
			return
		case "blobs":
			back = repo + "/blobs/" + arg
		case "manifests":
			back = repo + "/manifests/" + arg
		case "uploads":
			back = repo + "/blobs/uploads/" + arg
			if arg == "" && !strings.HasSuffix(rest, "/") {
				back = repo + "/blobs/uploads"
			}
		default:
			t.Fatalf("route %q", route)
		}
		if back != rest || repo == "" || strings.Contains(arg, "/") {
			t.Fatalf("splitRoute(%q) = %q %q %q", rest, repo, route, arg)
		}
	})
}

func TestUnreachableError(t *testing.T) {
	for msg, want := range map[string]bool{
		`failed to do request: Head "https://127.0.0.1:1/v2/x/blobs/sha256:c7c8": dial tcp 127.0.0.1:1: connect: connection refused`: true,
		`Get "https://127.0.0.1:40000/v2/": http: server gave HTTP response to HTTPS client`:                                         true,
		`image does not provide the specified platform (linux/amd64)`:                                                                false,
		`denied: requested access to the resource is denied`:                                                                         false,
	} {
		if got := unreachableError(errors.New(msg)); got != want {
			t.Errorf("unreachableError(%q) = %v, want %v", msg, got, want)
		}
	}
}

// pullEngine's pull asks the registry the way dockerd does (GET /v2/, then
// the manifest), or, unable to reach it, fails without asking.
type pullEngine struct {
	reachable bool
	asked     []string
}

type pullStream struct {
	io.ReadCloser
	err error
}

func (s pullStream) JSONMessages(context.Context) iter.Seq2[jsonstream.Message, error] {
	return func(func(jsonstream.Message, error) bool) {}
}
func (s pullStream) Wait(context.Context) error { return s.err }

func (e *pullEngine) ImagePull(ctx context.Context, ref string, _ client.ImagePullOptions) (client.ImagePullResponse, error) {
	named, err := reference.ParseNormalizedNamed(ref)
	if err != nil {
		return nil, err
	}
	host := reference.Domain(named)
	if !e.reachable {
		return pullStream{io.NopCloser(strings.NewReader("")),
			fmt.Errorf(`Get "https://%s/v2/": dial tcp %s: connect: connection refused`, host, host)}, nil
	}
	for _, p := range []string{"/v2/", "/v2/" + reference.Path(named) + "/manifests/" + reference.TagNameOnly(named).(reference.Tagged).Tag()} {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+host+p, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return nil, err
		}
		resp.Body.Close()
		e.asked = append(e.asked, fmt.Sprintf("%s %d", p, resp.StatusCode))
	}
	return pullStream{io.NopCloser(strings.NewReader("")), fmt.Errorf("manifest unknown: repository %s not found", reference.Path(named))}, nil
}

func TestProbeRelay(t *testing.T) {
	e := &pullEngine{reachable: true}
	if err := ProbeRelay(t.Context(), e); err != nil {
		t.Fatalf("an engine that reaches the relay: %v", err)
	}
	if len(e.asked) != 2 || e.asked[0] != "/v2/ 200" || !strings.HasSuffix(e.asked[1], " 404") {
		t.Errorf("the probe's pull asked %v: want /v2/ answered, the name unknown", e.asked)
	}
	e = &pullEngine{}
	err := ProbeRelay(t.Context(), e)
	if err == nil || !strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("an engine that cannot reach the relay: %v, want its error", err)
	}
}
