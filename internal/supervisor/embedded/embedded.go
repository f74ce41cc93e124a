// Package embedded holds the supervisor binaries devloop puts into the dev
// images of services that restart on a sync: cmd/devloop-supervisor, built
// with the machine's Go (CGO_ENABLED=0, static, stripped) for linux/amd64 and
// linux/arm64 by `go generate ./internal/supervisor/embedded` (make build and
// the e2e suite run it). They are built when devloop is built, not when it
// runs, so devloop needs no Go toolchain and no network at run time; they are
// not committed (generated binaries), so a devloop built without the
// generate step has none and says so when a restart rule would need one.
package embedded

import (
	"embed"
	"fmt"
)

//go:generate sh -c "CGO_ENABLED=0 GOOS=linux GOARCH=amd64 go build -trimpath -ldflags='-s -w' -o bin/supervisor-linux-amd64 ../../../cmd/devloop-supervisor"
//go:generate sh -c "CGO_ENABLED=0 GOOS=linux GOARCH=arm64 go build -trimpath -ldflags='-s -w' -o bin/supervisor-linux-arm64 ../../../cmd/devloop-supervisor"

//go:embed bin
var bin embed.FS

// Binary returns the supervisor for a Linux architecture ("amd64", "arm64").
func Binary(arch string) ([]byte, error) {
	b, err := bin.ReadFile("bin/supervisor-linux-" + arch)
	if err != nil {
		return nil, fmt.Errorf("this devloop was built without its process supervisor for linux/%s "+
			"(build it with `make build`, which runs `go generate ./internal/supervisor/embedded`)", arch)
	}
	return b, nil
}

// Has reports whether this devloop holds the supervisor for arch.
func Has(arch string) bool {
	_, err := bin.ReadFile("bin/supervisor-linux-" + arch)
	return err == nil
}
