#!/usr/bin/env bash
# Build a static Traefik v3 binary from the module proxy through the wrapper module in traefik/.
# Env: E2E_IMAGES, OUT, TRAEFIK_VERSION.
set -euo pipefail
: "${E2E_IMAGES:?}" "${OUT:?}" "${TRAEFIK_VERSION:?}"
mkdir -p "$OUT"
cd "$E2E_IMAGES/traefik"
grep -q "github.com/traefik/traefik/v3 $TRAEFIK_VERSION\$" go.mod || { echo "traefik/go.mod does not require $TRAEFIK_VERSION" >&2; exit 1; }
CGO_ENABLED=0 GOOS=linux GOARCH=amd64 go build -mod=readonly -trimpath \
  -ldflags "-s -w -X github.com/traefik/traefik/v3/pkg/version.Version=$TRAEFIK_VERSION -X github.com/traefik/traefik/v3/pkg/version.BuildDate=1970-01-01T00:00:00Z" \
  -o "$OUT/traefik" github.com/traefik/traefik/v3/cmd/traefik
"$OUT/traefik" version
