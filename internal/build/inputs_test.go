package build

import (
	"testing"
)

func TestParseInputs(t *testing.T) {
	in := ParseInputs([]byte(`# syntax=docker/dockerfile:1
FROM golang:1.26 AS build
RUN --mount=type=bind,source=go.mod,target=go.mod --mount=type=cache,target=/c go mod download
COPY --from=build /out/app /app
FROM scratch
COPY bin/toolbox /bin/tar
COPY --chown=65532:65532 static /app/static
COPY ["conf/*.json", "extra file", "/etc/app/"]
ADD https://example.com/x.tgz /x
COPY <<EOF /greeting
hi
EOF
ENTRYPOINT ["/hello"]
COPY bin/hello /hello
`))
	if in.All {
		t.Fatalf("All for a Dockerfile with named sources: %+v", in)
	}
	for rel, want := range map[string]bool{
		"bin/hello":        true,
		"bin/toolbox":      true,
		"bin/other":        false,
		"static/index.css": true,
		"conf/a.json":      true,
		"conf/a.yaml":      false,
		"extra file":       true,
		"go.mod":           true,
		"main.go":          false,
		"message.go":       false,
		"out/app":          false,
	} {
		if got := in.Has(rel); got != want {
			t.Errorf("Has(%q) = %v, want %v (sources %q)", rel, got, want, in.Sources)
		}
	}
	for _, df := range []string{"FROM x\nCOPY . /src\n", "FROM x\nCOPY $DIR /src\n", "FROM x\nRUN --mount=type=bind,target=/src make\n", "FROM x\nCOPY ./ /src\n"} {
		if in := ParseInputs([]byte(df)); !in.All || !in.Has("anything.go") {
			t.Errorf("%q: %+v, want every path an input", df, in)
		}
	}
	if !ReadInputs("/no/such/Dockerfile").All {
		t.Error("an unreadable Dockerfile must make every path an input")
	}
}

// FuzzParseInputs: any Dockerfile text is read without a panic, and a
// path equal to one of its sources is always an input.
func FuzzParseInputs(f *testing.F) {
	f.Add([]byte("FROM scratch\nCOPY bin/hello /hello\n"), "bin/hello")
	f.Add([]byte("FROM x\nCOPY [\"a b\", \"/c\"]\nRUN --mount=type=bind,src=go.sum go build\n"), "a b")
	f.Add([]byte("FROM x\nONBUILD COPY *.go /src/\n"), "main.go")
	f.Fuzz(func(t *testing.T, df []byte, rel string) {
		in := ParseInputs(df)
		_ = in.Has(rel)
		for _, s := range in.Sources {
			if !in.Has(s) {
				t.Fatalf("source %q is not an input of itself", s)
			}
		}
	})
}
