package imageload

import (
	"context"
	"errors"
	"io"
	"iter"
	"strings"
	"testing"

	"github.com/distribution/reference"
	"github.com/moby/moby/api/types/jsonstream"
	"github.com/moby/moby/client"
)

// fakePush is PushAPI: it records tags and answers pushes with messages.
type fakePush struct {
	tags    []client.ImageTagOptions
	pushes  []string
	auth    []string
	msgs    []jsonstream.Message
	tagErr  error
	pushErr error
}

func (f *fakePush) ImageTag(_ context.Context, o client.ImageTagOptions) (client.ImageTagResult, error) {
	f.tags = append(f.tags, o)
	return client.ImageTagResult{}, f.tagErr
}

func (f *fakePush) ImagePush(_ context.Context, image string, o client.ImagePushOptions) (client.ImagePushResponse, error) {
	f.pushes = append(f.pushes, image)
	f.auth = append(f.auth, o.RegistryAuth)
	if f.pushErr != nil {
		return nil, f.pushErr
	}
	return pushStream{io.NopCloser(strings.NewReader("")), f.msgs}, nil
}

type pushStream struct {
	io.ReadCloser
	msgs []jsonstream.Message
}

func (s pushStream) JSONMessages(context.Context) iter.Seq2[jsonstream.Message, error] {
	return func(yield func(jsonstream.Message, error) bool) {
		for _, m := range s.msgs {
			if !yield(m, nil) {
				return
			}
		}
	}
}

func (s pushStream) Wait(context.Context) error { return nil }

func TestRegistryRef(t *testing.T) {
	for ref, want := range map[string]string{
		"hello:devloop-1a2b":                   "localhost:5001/hello:devloop-1a2b",
		"docker.io/library/hello:devloop-1a2b": "localhost:5001/hello:devloop-1a2b",
		"team/api:devloop-1a2b":                "localhost:5001/team/api:devloop-1a2b",
		"example.com/team/api:devloop-1a2b":    "localhost:5001/example.com/team/api:devloop-1a2b",
		"localhost:5000/team/api:devloop-1a2b": "localhost:5001/localhost-5000/team/api:devloop-1a2b",
	} {
		got, err := RegistryRef("localhost:5001", ref)
		if err != nil || got != want {
			t.Errorf("RegistryRef(%q) = %q, %v; want %q", ref, got, err, want)
		}
	}
	if _, err := RegistryRef("localhost:5001", "Not A Ref"); err == nil {
		t.Error("a bad reference was accepted")
	}
}

func TestPushTagsPushesAndCounts(t *testing.T) {
	f := &fakePush{msgs: []jsonstream.Message{
		{Status: "The push refers to repository [localhost:5001/hello]"},
		{ID: "aaa", Status: "Preparing"},
		{ID: "aaa", Status: "Layer already exists"},
		{ID: "bbb", Status: "Pushing"},
		{ID: "bbb", Status: "Pushed"},
		{ID: "ccc", Status: "Mounted from team/base"},
		{Status: "devloop-1a2b: digest: sha256:00 size: 1"},
	}}
	var out strings.Builder
	res, err := NewPusher(f, "localhost:5001", true).LoadProbed(context.Background(), nil, "hello:devloop-1a2b", &out)
	if err != nil {
		t.Fatal(err)
	}
	if len(f.tags) != 1 || f.tags[0].Source != "hello:devloop-1a2b" || f.tags[0].Target != "localhost:5001/hello:devloop-1a2b" {
		t.Errorf("tags %+v", f.tags)
	}
	if len(f.pushes) != 1 || f.pushes[0] != "localhost:5001/hello:devloop-1a2b" || f.auth[0] == "" {
		t.Errorf("pushes %v, auth %q", f.pushes, f.auth)
	}
	if res.Pushed != "localhost:5001/hello:devloop-1a2b" || res.Push == nil || res.Push.LayersPushed != 1 || res.Push.LayersExisted != 2 {
		t.Errorf("result %+v push %+v", res, res.Push)
	}
	if b, n := res.Sent(); b != 0 || n != 0 {
		t.Errorf("a push loaded into nodes: %d bytes, %d nodes", b, n)
	}
	if !strings.Contains(out.String(), "pushed localhost:5001/hello:devloop-1a2b: 1 layer(s) sent, 2 already in the registry") {
		t.Errorf("output %q", out.String())
	}
}

func TestPushErrors(t *testing.T) {
	f := &fakePush{msgs: []jsonstream.Message{{ID: "bbb", Status: "Pushing"}, {Error: &jsonstream.Error{Message: "connection refused"}}}}
	_, err := NewPusher(f, "localhost:5001", false).Push(context.Background(), "hello:devloop-1a2b", nil)
	if err == nil || !strings.Contains(err.Error(), "pushing image hello:devloop-1a2b to localhost:5001: connection refused") {
		t.Errorf("stream error: %v", err)
	}
	f = &fakePush{pushErr: errors.New("no such image")}
	if _, err := NewPusher(f, "localhost:5001", false).Push(context.Background(), "hello:devloop-1a2b", nil); err == nil || !strings.Contains(err.Error(), "no such image") {
		t.Errorf("push error: %v", err)
	}
	f = &fakePush{tagErr: errors.New("no such image")}
	if _, err := NewPusher(f, "localhost:5001", false).Push(context.Background(), "hello:devloop-1a2b", nil); err == nil || len(f.pushes) != 0 {
		t.Errorf("tag error: %v, pushes %v", err, f.pushes)
	}
}

// A registry that needs a login gets what WithAuth returns; a failure to
// read it stops the push before anything is sent, saying why.
func TestPushSendsTheRegistrysCredentials(t *testing.T) {
	f := &fakePush{}
	p := NewPusher(f, "registry.example.com/team", false).WithAuth(func() (string, error) { return "eyJ1c2VybmFtZSI6ImRldiJ9", nil })
	if _, err := p.Push(context.Background(), "hello:devloop-1a2b", nil); err != nil {
		t.Fatal(err)
	}
	if len(f.auth) != 1 || f.auth[0] != "eyJ1c2VybmFtZSI6ImRldiJ9" {
		t.Errorf("auth headers %q", f.auth)
	}
	f = &fakePush{}
	p = NewPusher(f, "registry.example.com/team", false).WithAuth(func() (string, error) { return "", errors.New("docker-credential-desktop: not found") })
	if _, err := p.Push(context.Background(), "hello:devloop-1a2b", nil); err == nil || !strings.Contains(err.Error(), "credentials: docker-credential-desktop") || len(f.pushes) != 0 {
		t.Errorf("err %v, pushes %v", err, f.pushes)
	}
}

// FuzzRegistryRef: a service's image repository (from devloop.yaml) with a
// content tag never gives a reference Docker cannot push, and never loses
// the tag.
func FuzzRegistryRef(f *testing.F) {
	for _, s := range []string{"hello", "team/api", "example.com/team/api", "localhost:5000/x", "docker.io/library/hello", "a.b:1/c/d"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, repo string) {
		got, err := RegistryRef("localhost:5001", repo+":devloop-0123456789abcdef")
		if err != nil {
			return
		}
		if _, perr := reference.ParseNormalizedNamed(got); perr != nil || !strings.HasPrefix(got, "localhost:5001/") || !strings.HasSuffix(got, ":devloop-0123456789abcdef") {
			t.Fatalf("RegistryRef(%q) = %q (%v)", repo, got, perr)
		}
	})
}
