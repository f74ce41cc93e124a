# Shell helpers for devloop's e2e tests and CI (source it from bash):
#   source e2e/lib.sh
#   devloop_e2e_setup     # build/refresh the images (e2e/setup.sh), then set the environment below
#   devloop_e2e_env       # only set the environment (images already built)
# The environment: PATH with the harness's Docker 28 binaries first (when its dockerd runs) and e2e/images/shim
# before them when the running engine cannot run `docker run --privileged` on this host (Docker < 23 without
# CAP_SYS_RESOURCE: e2e_needs_shim), DEVLOOP_E2E_ENGINE_LEG (containerd|classic|external),
# DEVLOOP_E2E_NODE_IMAGE, DEVLOOP_E2E_TRAEFIK_IMAGE, DEVLOOP_E2E_REGISTRY_IMAGE, DEVLOOP_E2E_GOLANG_IMAGE and
# DEVLOOP_E2E_DEBIAN_IMAGE.

# devloop_e2e_env exports that environment.
devloop_e2e_env() {
  local dir leg bin
  dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
  # shellcheck source=images/lib.sh
  source "$dir/images/lib.sh"
  DEVLOOP_E2E_NODE_IMAGE=$(sed -n 's/^NODE_IMAGE=//p' "$dir/images/VERSIONS")
  DEVLOOP_E2E_TRAEFIK_IMAGE=$(sed -n 's/^TRAEFIK_IMAGE=//p' "$dir/images/VERSIONS")
  DEVLOOP_E2E_REGISTRY_IMAGE=$(sed -n 's/^REGISTRY_IMAGE=//p' "$dir/images/registry/VERSION")
  DEVLOOP_E2E_GOLANG_IMAGE=golang:$(go env GOVERSION 2>/dev/null | sed -E 's/^go([0-9]+\.[0-9]+).*/\1/')
  DEVLOOP_E2E_DEBIAN_IMAGE=debian:$(sed -n 's/^DEBIAN_SUITE=//p' "$dir/images/VERSIONS")-slim
  export DEVLOOP_E2E_NODE_IMAGE DEVLOOP_E2E_TRAEFIK_IMAGE DEVLOOP_E2E_REGISTRY_IMAGE DEVLOOP_E2E_GOLANG_IMAGE DEVLOOP_E2E_DEBIAN_IMAGE
  leg=$("$dir/images/engine.sh" leg 2>/dev/null || true)
  if [ -n "$leg" ]; then
    bin=$("$dir/images/engine.sh" bin)
    case ":$PATH:" in *":$bin:"*) ;; *) export PATH="$bin:$PATH" ;; esac
  else
    leg=external
  fi
  export DEVLOOP_E2E_ENGINE_LEG=$leg
  if e2e_needs_shim; then
    case ":$PATH:" in
      *":$dir/images/shim:"*) ;;
      *) export PATH="$dir/images/shim:$PATH" ;;
    esac
  fi
}

# devloop_e2e_setup runs e2e/setup.sh (skips up-to-date stages) and applies the environment it prints.
devloop_e2e_setup() {
  local dir out
  dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
  out=$("$dir/setup.sh") || return
  eval "$out"
}
