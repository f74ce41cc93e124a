// Command devloop-supervisor is the process supervisor devloop adds to the
// dev images of services that restart on a sync (see internal/supervisor).
// devloop embeds it (internal/supervisor/embedded); it is not meant to be
// installed on its own.
package main

import (
	"os"

	"github.com/devloop-dev/devloop/internal/supervisor"
)

func main() {
	os.Exit(supervisor.Main(os.Args, os.Stdin, os.Stdout, os.Stderr))
}
