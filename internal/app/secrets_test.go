package app

import (
	"context"
	"encoding/base64"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/devloop-dev/devloop/internal/project"
)

// A Secret's value never reaches the output, whatever quotes it (here an
// error the engine returns, quoting the object as an API error would), in
// plain or base64 form; nor status -o json.
func TestSecretValuesAreMaskedInEveryOutput(t *testing.T) {
	const value = "s3cr3t-Pa55w0rd"
	b64 := base64.StdEncoding.EncodeToString([]byte("b64-only-value"))
	dir := t.TempDir()
	files := map[string]string{
		"devloop.yaml":    "name: shop\nmanifests: [k8s/secret.yaml]\n",
		"k8s/secret.yaml": "apiVersion: v1\nkind: Secret\nmetadata: {name: db}\nstringData: {password: " + value + "}\ndata: {other: " + b64 + "}\n",
	}
	for name, body := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	prev := newDeps
	newDeps = func(io.Writer, int) *project.Deps {
		return &project.Deps{Clusters: noClusters{}, Engine: func(context.Context) (*project.Engine, error) {
			return nil, errors.New(`Secret "db" is invalid: data[password]: Invalid value: "` + value + `" (base64 ` + b64 + `, decoded b64-only-value)`)
		}}
	}
	t.Cleanup(func() { newDeps = prev })

	out, errOut, err := run(t, dir, "up", "--once", "--no-color")
	if err == nil {
		t.Fatal("want the engine's error")
	}
	all := out + errOut
	for _, v := range []string{value, b64, "b64-only-value"} {
		if strings.Contains(all, v) {
			t.Errorf("output shows %q:\n%s", v, all)
		}
	}
	if !strings.Contains(errOut, `Invalid value: "[redacted]"`) {
		t.Errorf("the error is not printed masked:\n%s", errOut)
	}
	out, errOut, _ = run(t, "", "status", "-o", "json")
	if strings.Contains(out+errOut, value) {
		t.Errorf("status -o json shows the value:\n%s%s", out, errOut)
	}
}
