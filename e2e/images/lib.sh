# Helpers shared by e2e/setup.sh and the stage scripts under e2e/images/ (sourced, bash).
# Caching model:
#   - every stage has an input hash: sha256 over its script, its input files and the hashes of the stages
#     it depends on (so a change anywhere upstream rebuilds everything downstream);
#   - a stage whose output is a Docker image is up to date when the image exists and carries the label
#     devloop.e2e.hash=<that hash>;
#   - a stage whose output is a directory of binaries under $DEVLOOP_E2E_CACHE is up to date when the
#     directory holds a .devloop-e2e-hash file with that hash (written last, after a successful build).

# e2e_log prints a message on stderr (stdout of setup.sh is reserved for the final `export PATH=` line).
e2e_log() { echo "[e2e-images] $*" >&2; }

# e2e_hash_files prints a sha256 over the names and contents of the given files and directories (recursive,
# sorted, paths relative to $E2E_IMAGES) plus any extra strings given after `--`.
e2e_hash_files() {
  local -a files=() extra=()
  while [ $# -gt 0 ]; do
    if [ "$1" = -- ]; then shift; extra=("$@"); break; fi
    files+=("$1"); shift
  done
  {
    (cd "$E2E_IMAGES" && find "${files[@]}" -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum)
    (cd "$E2E_IMAGES" && find "${files[@]}" -type l -printf '%p -> %l\n' | LC_ALL=C sort)
    printf '%s\n' "${extra[@]}"
  } | sha256sum | cut -d' ' -f1
}

# e2e_image_hash prints the devloop.e2e.hash label of a local image, or nothing.
e2e_image_hash() {
  docker image inspect --format '{{index .Config.Labels "devloop.e2e.hash"}}' "$1" 2>/dev/null || true
}

# e2e_dir_hash prints the hash stamp of a cached binary directory, or nothing.
e2e_dir_hash() { cat "$1/.devloop-e2e-hash" 2>/dev/null || true; }

# e2e_docker_build TAG HASH CONTEXT_DIR [BUILD_FLAGS...]: build CONTEXT_DIR, label the image with its stage
# hash. BuildKit (`docker buildx build`, the builder of Docker 23+) where the buildx plugin is there, without
# provenance/SBOM attestations (the harness images are single-platform images, as a registry pull of one
# platform would be); else the legacy builder.
e2e_docker_build() {
  local tag=$1 hash=$2 ctx=$3
  shift 3
  if docker buildx version >/dev/null 2>&1; then
    docker buildx build -q --load --provenance=false --sbom=false --label "devloop.e2e.hash=$hash" -t "$tag" "$@" "$ctx" >/dev/null
  else
    DOCKER_BUILDKIT=0 docker build -q --label "devloop.e2e.hash=$hash" -t "$tag" "$@" "$ctx" >/dev/null
  fi
}

# e2e_needs_shim succeeds when kind's `docker run --privileged` fails on this host and engine, so kind must
# run with e2e/images/shim first in PATH. That is so where the capability bounding set lacks
# CAP_SYS_RESOURCE (bit 24) AND the engine asks runc for every capability under --privileged (Docker < 23;
# from 23 on, moby grants only the capabilities the environment has, and Docker 28 refuses the shim's
# --cap-drop=SYS_RESOURCE of a capability the host lacks). Decided by a probe, `docker run --rm --privileged`
# of a tiny local busybox image, whose answer is cached per engine version and bounding set; by the engine's
# major version when no probe image can be made. No daemon answering: no shim.
e2e_needs_shim() {
  local bnd ver cache f
  bnd=$(awk '/^CapBnd:/{print $2}' /proc/self/status)
  [ -n "$bnd" ] || return 1
  (( (16#$bnd >> 24 & 1) == 0 )) || return 1
  ver=$(docker version --format '{{.Server.Version}}' 2>/dev/null) || return 1
  [ -n "$ver" ] || return 1
  cache=${DEVLOOP_E2E_CACHE:-/var/cache/devloop-e2e}/engines/privileged-probe
  mkdir -p "$cache" 2>/dev/null || cache=${TMPDIR:-/tmp}/devloop-e2e-privileged-probe
  mkdir -p "$cache"
  f="$cache/$(printf '%s' "$ver" | tr -c 'A-Za-z0-9.+-' _)-$bnd"
  if [ ! -s "$f" ]; then
    local answer
    if e2e_probe_image >/dev/null 2>&1; then
      if docker run --rm --privileged "$E2E_PROBE_IMAGE" true >/dev/null 2>&1; then answer=works; else answer=fails; fi
    elif [ "${ver%%.*}" -lt 23 ] 2>/dev/null; then answer=fails
    else answer=works
    fi
    echo "$answer" >"$f.tmp" && mv "$f.tmp" "$f"
  fi
  [ "$(cat "$f")" = fails ]
}

# E2E_PROBE_IMAGE: a few-KB image (Debian's static busybox, `docker import`ed) for probing the engine.
E2E_PROBE_IMAGE=devloop.local/e2e-probe:busybox
# e2e_probe_image makes $E2E_PROBE_IMAGE unless it exists (needs /bin/busybox, Debian's busybox-static).
e2e_probe_image() {
  docker image inspect "$E2E_PROBE_IMAGE" >/dev/null 2>&1 && return
  [ -x /bin/busybox ] || return 1
  local d
  d=$(mktemp -d)
  mkdir -p "$d/bin" && cp /bin/busybox "$d/bin/busybox" && ln -s busybox "$d/bin/sh" && ln -s busybox "$d/bin/true"
  tar -C "$d" -c . | docker import - "$E2E_PROBE_IMAGE" >/dev/null
  local rc=$?
  rm -rf "$d"
  return $rc
}
