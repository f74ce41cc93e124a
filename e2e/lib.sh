# Shell helpers for devloop's e2e tests and CI (source it from bash):
#   source e2e/lib.sh
#   devloop_e2e_setup     # build/refresh the images (e2e/setup.sh), then set the environment below
#   devloop_e2e_env       # only set the environment (images already built)
# The environment: PATH with e2e/images/shim first when the host lacks CAP_SYS_RESOURCE (kind's
# `docker run --privileged` cannot work there), DEVLOOP_E2E_NODE_IMAGE and DEVLOOP_E2E_TRAEFIK_IMAGE.

# devloop_e2e_env exports PATH (shim first when needed), DEVLOOP_E2E_NODE_IMAGE and DEVLOOP_E2E_TRAEFIK_IMAGE.
devloop_e2e_env() {
  local dir
  dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
  # shellcheck source=images/lib.sh
  source "$dir/images/lib.sh"
  DEVLOOP_E2E_NODE_IMAGE=$(sed -n 's/^NODE_IMAGE=//p' "$dir/images/VERSIONS")
  DEVLOOP_E2E_TRAEFIK_IMAGE=$(sed -n 's/^TRAEFIK_IMAGE=//p' "$dir/images/VERSIONS")
  export DEVLOOP_E2E_NODE_IMAGE DEVLOOP_E2E_TRAEFIK_IMAGE
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
