//go:build tools

// Package tools only exists so that this build-only module requires Traefik's command; see ../README.md.
package tools

import _ "github.com/traefik/traefik/v3/cmd/traefik"
