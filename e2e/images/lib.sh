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

# e2e_docker_build TAG HASH CONTEXT_DIR: legacy-builder build (no buildx here) that labels the image.
e2e_docker_build() {
  local tag=$1 hash=$2 ctx=$3
  DOCKER_BUILDKIT=0 docker build -q --label "devloop.e2e.hash=$hash" -t "$tag" "$ctx" >/dev/null
}

# e2e_needs_shim succeeds when the capability bounding set lacks CAP_SYS_RESOURCE (bit 24): then
# `docker run --privileged` fails and kind must run with e2e/images/shim first in PATH.
e2e_needs_shim() {
  local bnd
  bnd=$(awk '/^CapBnd:/{print $2}' /proc/self/status)
  [ -n "$bnd" ] || return 1
  (( (16#$bnd >> 24 & 1) == 0 ))
}
