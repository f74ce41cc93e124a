package build

import (
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/client"
)

// TestIntegrationBuildRealDocker builds FROM scratch images with the local
// engine. It is skipped when Docker is unreachable (failed with
// DEVLOOP_REQUIRE_DOCKER=1) or with -short.
func TestIntegrationBuildRealDocker(t *testing.T) {
	c := dockerForTest(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	repo := "devloop-buildtest-" + strings.ToLower(strings.ReplaceAll(t.Name(), "/", "-"))
	svc := svcIn(t, "it", map[string]string{
		"Dockerfile":    "FROM scratch\nCOPY data.txt /data.txt\n",
		"data.txt":      "hello one\n",
		"ignored.txt":   "x",
		".dockerignore": "ignored.txt\n",
	})
	svc.Image = repo
	b := NewBuilder(c, WithLabels(map[string]string{"devloop.dev/test": "build"}))
	var ids []string
	t.Cleanup(func() {
		for _, id := range ids {
			c.ImageRemove(context.Background(), id, client.ImageRemoveOptions{Force: true, PruneChildren: true})
		}
	})

	first, err := b.Build(ctx, svc, io.Discard)
	if err != nil {
		t.Fatalf("first build: %v", err)
	}
	ids = append(ids, first.ID)
	if first.Tag != ContentTag(first.ID) || !strings.HasPrefix(first.Tag, "devloop-") || len(first.Tag) != len("devloop-")+16 {
		t.Fatalf("tag %q not derived from id %s", first.Tag, first.ID)
	}
	insp, err := c.ImageInspect(ctx, first.Ref())
	if err != nil || insp.ID != first.ID {
		t.Fatalf("inspect %s = %v, %v", first.Ref(), insp.ID, err)
	}

	again, err := b.Build(ctx, svc, io.Discard)
	if err != nil {
		t.Fatalf("second build: %v", err)
	}
	if again != first {
		t.Fatalf("same content gave %+v then %+v", first, again)
	}

	writeTree(t, svc.Build.Context, map[string]string{"data.txt": "hello two\n"})
	changed, err := b.Build(ctx, svc, io.Discard)
	if err != nil {
		t.Fatalf("third build: %v", err)
	}
	ids = append(ids, changed.ID)
	if changed.Tag == first.Tag {
		t.Fatalf("changed content kept tag %s", first.Tag)
	}

	// A broken Dockerfile reports the daemon's error.
	writeTree(t, svc.Build.Context, map[string]string{"Dockerfile": "FROM scratch\nCOPY missing.txt /\n"})
	_, err = b.Build(ctx, svc, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "missing.txt") {
		t.Fatalf("broken build err = %v", err)
	}
}
