//go:build tools

// Package tools pins the registry the e2e harness builds: distribution/distribution's cmd/registry
// (the CNCF registry, what `registry:3` runs), built static by setup.sh's registry stage.
package tools

import _ "github.com/distribution/distribution/v3/cmd/registry"
