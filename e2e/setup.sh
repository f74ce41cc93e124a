#!/usr/bin/env bash
# Hermetic e2e setup: installs what the e2e tests need on a fresh Debian machine (as root), starts the
# harness's Docker 28 (images/engine.sh: Debian sid's docker.io, leg containerd or classic store) unless a
# dockerd answers, and builds every image the e2e tests use, offline (Go module proxy + Debian apt only):
#   - the kind node image  $NODE_IMAGE  (Kubernetes, control-plane images, CNI placeholder and kind's
#     local-path StorageClass images preloaded), see images/README.md;
#   - the Traefik v3 ingress controller image  $TRAEFIK_IMAGE  (loaded into the node by devloop itself);
#   - the registry image  $REGISTRY_IMAGE  (distribution/distribution, for cluster.registry);
#   - the base images a user's Dockerfile pulls: golang:<machine's Go minor> and debian:bookworm-slim.
# Stages whose output exists with a matching input hash are skipped, so a second run takes seconds.
# Intermediate binaries are cached in ${DEVLOOP_E2E_CACHE:-/var/cache/devloop-e2e} (outside the checkout),
# and the product images as `docker save` tars keyed by hash, loaded into a store (leg) that lacks them.
# DEVLOOP_E2E_ENGINE_LEG=containerd|classic switches the harness's dockerd to that leg first.
#
# Progress goes to stderr; stdout is exactly one line to eval:
#   eval "$(e2e/setup.sh)"  # -> export PATH=... DEVLOOP_E2E_ENGINE_LEG=... DEVLOOP_E2E_NODE_IMAGE=... (and the rest)
set -euo pipefail
E2E_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
E2E_IMAGES="$E2E_DIR/images"
export E2E_IMAGES
# shellcheck source=images/lib.sh
source "$E2E_IMAGES/lib.sh"
# shellcheck source=images/VERSIONS
source "$E2E_IMAGES/VERSIONS"
# shellcheck source=images/registry/VERSION
source "$E2E_IMAGES/registry/VERSION"
CACHE=${DEVLOOP_E2E_CACHE:-/var/cache/devloop-e2e}
export PATH="$PATH:/usr/local/go/bin:/usr/sbin:/sbin"
T0=$(date +%s)

# --- host packages -------------------------------------------------------------------------------------
missing=()
command -v debootstrap >/dev/null || missing+=(debootstrap)
# the helper and probe images copy /bin/busybox into images without a libc: it must be Debian's static build
dpkg-query -W -f='${Status}' busybox-static 2>/dev/null | grep -q 'ok installed' || missing+=(busybox-static)
if [ ${#missing[@]} -gt 0 ]; then
  e2e_log "installing ${missing[*]}"
  [ "$(id -u)" = 0 ] || { e2e_log "must run as root to install packages"; exit 1; }
  apt-get update >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}" >&2
fi
command -v go >/dev/null || { e2e_log "go is not installed"; exit 1; }

# --- docker engine ---------------------------------------------------------------------------------------
# The harness's engine (images/engine.sh: Docker 28 from Debian sid, legs containerd|classic) unless a dockerd
# that engine.sh did not start already answers: then that one is used as it is (a developer's own Docker).
# DEVLOOP_E2E_ENGINE_LEG=containerd|classic asks for a leg (switching the harness's dockerd when another
# leg runs); without it a running leg is kept, and a stopped engine starts on the containerd leg.
ENGINE="$E2E_IMAGES/engine.sh"
want_leg=${DEVLOOP_E2E_ENGINE_LEG:-}
leg=$("$ENGINE" leg 2>/dev/null || true)
engine_bin=""
if [ -z "$leg" ] && docker info >/dev/null 2>&1; then
  [ -z "$want_leg" ] || { e2e_log "DEVLOOP_E2E_ENGINE_LEG=$want_leg needs the harness's dockerd, but another dockerd answers (stop it first)"; exit 1; }
  leg=external
  e2e_log "using the running Docker engine $(docker version --format '{{.Server.Version}}' 2>/dev/null) (not the harness's: leg external)"
else
  [ "$(id -u)" = 0 ] || { e2e_log "must run as root to install and start the harness's dockerd"; exit 1; }
  "$ENGINE" install
  engine_bin=$("$ENGINE" bin)
  export PATH="$engine_bin:$PATH"
  if [ -z "$leg" ] || { [ -n "$want_leg" ] && [ "$want_leg" != "$leg" ]; }; then
    "$ENGINE" start "${want_leg:-containerd}"
    leg=$("$ENGINE" leg)
  fi
  e2e_log "engine: $(docker version --format 'Docker {{.Server.Version}}' 2>/dev/null), leg $leg"
fi

mkdir -p "$CACHE/logs"
# one setup at a time per cache (two checkouts on one machine share images and binaries)
exec 9>"$CACHE/.lock"
flock 9

# --- stages ----------------------------------------------------------------------------------------------
# Each stage: KIND (dir|image), OUT (cache dir or image tag), DEPS, its input files (relative to images/) and
# the version strings it depends on. The hash of a stage covers all of these and the hashes of its deps.
declare -A KIND OUT DEPS FILES EXTRA HASH
def() { KIND[$1]=$2; OUT[$1]=$3; DEPS[$1]=$4; FILES[$1]=$5; EXTRA[$1]=$6; }
def k8s-bins       dir   "$CACHE/k8s-bins"       ""                                 "k8s-bins.sh"       "$K8S_VERSION"
def addon-bins     dir   "$CACHE/addon-bins"     ""                                 "addon-bins.sh src" "$ETCD_VERSION $COREDNS_VERSION $LOCAL_PATH_VERSION"
def crictl-bin     dir   "$CACHE/crictl-bin"     ""                                 "crictl-bin.sh"     "$CRICTL_VERSION"
def traefik-bin    dir   "$CACHE/traefik-bin"    ""                                 "traefik-bin.sh traefik" "$TRAEFIK_VERSION"
def rootfs         image "$ROOTFS_IMAGE"         ""                                 "rootfs.sh"         "$DEBIAN_SUITE $DEBIAN_MIRROR"
def base           image "$BASE_IMAGE"           "rootfs"                           "base"              ""
def component-tars dir   "$CACHE/component-tars" "k8s-bins addon-bins rootfs"       "component-images.sh iptables-wrapper lib.sh" \
  "$K8S_VERSION $PAUSE_VERSION $ETCD_VERSION $COREDNS_VERSION $STORAGE_PROVISIONER_IMAGE $STORAGE_HELPER_IMAGE"
def node           image "$NODE_IMAGE"           "base component-tars k8s-bins crictl-bin" "node-image.sh node" "$K8S_VERSION $PAUSE_VERSION"
def traefik        image "$TRAEFIK_IMAGE"        "traefik-bin"                      "VERSIONS"          "$TRAEFIK_IMAGE"
# base images a user's Dockerfile pulls (no registry here), tagged like the public ones
GO_VERSION=$(go env GOVERSION)
GO_MINOR=$(sed -E 's/^go([0-9]+\.[0-9]+).*/\1/' <<<"$GO_VERSION")
GOLANG_IMAGE=golang:$GO_MINOR
DEBIAN_IMAGE=debian:$DEBIAN_SUITE-slim
# the CNCF registry (distribution/distribution v3, built from its Go module) that cluster.registry runs
def registry       image "$REGISTRY_IMAGE"       ""                                 "registry"          "$REGISTRY_VERSION $(go env GOVERSION)"
def golang         image "$GOLANG_IMAGE"         "rootfs"                           "golang"            "$GO_VERSION $(go env GOROOT) $ROOTFS_IMAGE"
def debian-slim    image "$DEBIAN_IMAGE"         "rootfs"                           "debian-slim"       "$ROOTFS_IMAGE"
# image stages whose image is also kept as a `docker save` tar in $CACHE/images (keyed by its hash): a store
# that lacks the image (the other leg, a wiped data root) loads it in seconds instead of rebuilding
SAVED="rootfs node traefik registry golang debian-slim"

stage_hash() {
  local s=$1 d extra
  [ -n "${HASH[$s]:-}" ] && return
  extra="stage=$s ${EXTRA[$s]}"
  for d in ${DEPS[$s]}; do stage_hash "$d"; extra="$extra $d=${HASH[$d]}"; done
  # shellcheck disable=SC2086
  HASH[$s]=$(e2e_hash_files ${FILES[$s]} -- "$extra")
}
up_to_date() {
  local s=$1
  stage_hash "$s"
  if [ "${KIND[$s]}" = image ]; then
    [ "$(e2e_image_hash "${OUT[$s]}")" = "${HASH[$s]}" ]
  else
    [ "$(e2e_dir_hash "${OUT[$s]}")" = "${HASH[$s]}" ]
  fi
}
run_stage() {
  local s=$1 log="$CACHE/logs/$1.log" h=${HASH[$1]} o=${OUT[$1]}
  case $s in
    k8s-bins)    K8S_VERSION=$K8S_VERSION OUT=$o WORK=$CACHE/work/k8sbuild "$E2E_IMAGES/k8s-bins.sh" ;;
    addon-bins)
      # addon-bins.sh runs `etcd --version | head -1` (and coredns) under pipefail: when head exits first, the
      # Go binary dies of SIGPIPE and the stage fails at random (seen under load). A head that drains its
      # input keeps the stage's script, and so its cache hash, unchanged.
      local drain="$CACHE/work/drain-head"
      mkdir -p "$drain"
      printf '#!/bin/sh\n/usr/bin/head "$@"; rc=$?; cat >/dev/null; exit $rc\n' >"$drain/head"; chmod +x "$drain/head"
      PATH="$drain:$PATH" OUT=$o WORK=$CACHE/work/addons ETCD_VERSION=$ETCD_VERSION COREDNS_VERSION=$COREDNS_VERSION \
        LOCAL_PATH_VERSION=$LOCAL_PATH_VERSION "$E2E_IMAGES/addon-bins.sh" ;;
    crictl-bin)  OUT=$o WORK=$CACHE/work/crictl CRICTL_VERSION=$CRICTL_VERSION "$E2E_IMAGES/crictl-bin.sh" ;;
    traefik-bin) OUT=$o TRAEFIK_VERSION=$TRAEFIK_VERSION "$E2E_IMAGES/traefik-bin.sh" ;;
    rootfs)      WORK=$CACHE/work TAG=$o HASH=$h DEBIAN_SUITE=$DEBIAN_SUITE DEBIAN_MIRROR=$DEBIAN_MIRROR "$E2E_IMAGES/rootfs.sh" ;;
    base)        e2e_docker_build "$o" "$h" "$E2E_IMAGES/base" ;;
    component-tars)
      BIN=${OUT[k8s-bins]} ADDONS=${OUT[addon-bins]} OUT=$o WORK=$CACHE/work HASH=$h K8S_VERSION=$K8S_VERSION \
        ROOTFS_IMAGE=$ROOTFS_IMAGE PAUSE_VERSION=$PAUSE_VERSION ETCD_VERSION=$ETCD_VERSION \
        COREDNS_VERSION=$COREDNS_VERSION STORAGE_PROVISIONER_IMAGE=$STORAGE_PROVISIONER_IMAGE \
        STORAGE_HELPER_IMAGE=$STORAGE_HELPER_IMAGE "$E2E_IMAGES/component-images.sh" ;;
    node)        BIN=${OUT[k8s-bins]} CRICTL=${OUT[crictl-bin]}/crictl TARS=${OUT[component-tars]} TAG=$o HASH=$h BASE_IMAGE=$BASE_IMAGE \
                   K8S_VERSION=$K8S_VERSION PAUSE_VERSION=$PAUSE_VERSION "$E2E_IMAGES/node-image.sh" ;;
    traefik)
      local ctx="$CACHE/work/traefik-ctx"
      rm -rf "$ctx"; mkdir -p "$ctx"; cp "${OUT[traefik-bin]}/traefik" "$ctx/traefik"
      printf 'FROM scratch\nCOPY traefik /traefik\nEXPOSE 80\nENTRYPOINT ["/traefik"]\n' >"$ctx/Dockerfile"
      e2e_docker_build "$o" "$h" "$ctx"
      docker run --rm "$o" version ;;
    registry)
      local ctx="$CACHE/work/registry-ctx"
      rm -rf "$ctx"; mkdir -p "$ctx"; cp "$E2E_IMAGES/registry/config.yml" "$ctx/config.yml"
      # the module's go.mod requires $REGISTRY_VERSION (checked here); go.sum pins it
      grep -q "github.com/distribution/distribution/v3 $REGISTRY_VERSION\$" "$E2E_IMAGES/registry/go.mod" \
        && (cd "$E2E_IMAGES/registry" && CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o "$ctx/registry" \
          github.com/distribution/distribution/v3/cmd/registry) \
        && printf 'FROM scratch\nCOPY registry /bin/registry\nCOPY config.yml /etc/distribution/config.yml\nVOLUME ["/var/lib/registry"]\nEXPOSE 5000\nENTRYPOINT ["/bin/registry"]\nCMD ["serve", "/etc/distribution/config.yml"]\n' >"$ctx/Dockerfile" \
        && e2e_docker_build "$o" "$h" "$ctx" && rm -rf "$ctx" && docker run --rm "$o" --version ;;
    golang)
      local ctx="$CACHE/work/golang-ctx" goroot
      goroot=$(go env GOROOT)
      rm -rf "$ctx"; mkdir -p "$ctx"; cp "$E2E_IMAGES/golang/Dockerfile" "$ctx/"
      cp -al "$goroot" "$ctx/go" 2>/dev/null || { rm -rf "$ctx/go"; cp -a "$goroot" "$ctx/go"; }
      e2e_docker_build "$o" "$h" "$ctx" --build-arg "ROOTFS_IMAGE=$ROOTFS_IMAGE" --build-arg "GOLANG_VERSION=${GO_VERSION#go}"
      rm -rf "$ctx"
      docker run --rm "$o" sh -c 'go version && go env GOROOT GOPATH GOTOOLCHAIN && pwd' ;;
    debian-slim)
      e2e_docker_build "$o" "$h" "$E2E_IMAGES/debian-slim" --build-arg "ROOTFS_IMAGE=$ROOTFS_IMAGE"
      docker run --rm "$o" sh -c '. /etc/os-release && echo "$PRETTY_NAME"' ;;
  esac >"$log" 2>&1
}
# docker_answers fails the run when the daemon stopped answering (e.g. a leg switch under way): an image
# that seems missing then is not missing
docker_answers() {
  docker version >/dev/null 2>&1 || { e2e_log "the Docker daemon does not answer (any more); stopping"; exit 1; }
}
saved() { [[ " $SAVED " == *" $1 "* ]]; }
image_tar() { echo "$CACHE/images/$1-${HASH[$1]}.tar"; }
# save_tar STAGE: keep the current image of a saved stage as a tar (once per hash; older tars removed)
save_tar() {
  local s=$1 t start
  saved "$s" || return 0
  t=$(image_tar "$s")
  [ -s "$t" ] && return 0
  start=$(date +%s)
  mkdir -p "$CACHE/images"
  rm -f "$CACHE/images/$s-"*.tar "$CACHE/images/$s-"*.tar.tmp
  docker save -o "$t.tmp" "${OUT[$s]}" && mv "$t.tmp" "$t" \
    || { rm -f "$t.tmp"; e2e_log "STAGE $s: docker save ${OUT[$s]} failed"; exit 1; }
  e2e_log "STAGE $s: saved to $t ($(du -m "$t" | cut -f1) MB) in $(( $(date +%s) - start ))s"
}
# load_tar STAGE: load the saved tar of the current hash into this store; fails when there is none
load_tar() {
  local s=$1 t start
  saved "$s" || return 1
  t=$(image_tar "$s")
  [ -s "$t" ] || return 1
  start=$(date +%s)
  docker_answers
  if ! docker load -i "$t" >"$CACHE/logs/$s.load.log" 2>&1 || ! up_to_date "$s"; then
    docker_answers
    e2e_log "STAGE $s: $t did not load as ${OUT[$s]} (see $CACHE/logs/$s.load.log); removing it and rebuilding"
    rm -f "$t"; return 1
  fi
  e2e_log "STAGE $s: loaded ${OUT[$s]} from $t in $(( $(date +%s) - start ))s"
}
# ensure STAGE: build it (and, first, whatever it needs that is out of date) unless it is up to date
declare -A DONE
ensure() {
  local s=$1 d start
  [ -z "${DONE[$s]:-}" ] || return 0
  DONE[$s]=1
  if up_to_date "$s"; then e2e_log "STAGE $s: up to date (${OUT[$s]})"; save_tar "$s"; return; fi
  [ "${KIND[$s]}" = dir ] || docker_answers
  load_tar "$s" && return
  for d in ${DEPS[$s]}; do ensure "$d"; done
  e2e_log "STAGE $s: building (log: $CACHE/logs/$s.log)"
  start=$(date +%s)
  [ "${KIND[$s]}" = dir ] && rm -f "${OUT[$s]}/.devloop-e2e-hash"
  if ! run_stage "$s"; then
    e2e_log "STAGE $s: FAILED after $(( $(date +%s) - start ))s; last lines of $CACHE/logs/$s.log:"
    tail -25 "$CACHE/logs/$s.log" >&2
    exit 1
  fi
  [ "${KIND[$s]}" = dir ] && echo "${HASH[$s]}" >"${OUT[$s]}/.devloop-e2e-hash"
  up_to_date "$s" || { e2e_log "STAGE $s: output missing or unlabelled after build"; exit 1; }
  e2e_log "STAGE $s: built in $(( $(date +%s) - start ))s"
  save_tar "$s"
}

TARGETS=${DEVLOOP_E2E_TARGETS:-node traefik registry golang debian-slim}
for target in $TARGETS; do ensure "$target"; done
e2e_log "ready in $(( $(date +%s) - T0 ))s (leg $leg): $(for t in $TARGETS; do printf '%s ' "${OUT[$t]}"; done)"

path_value='$PATH'
[ -z "$engine_bin" ] || path_value="$engine_bin:$path_value"
if e2e_needs_shim; then
  e2e_log "this engine cannot run --privileged containers on this host (no CAP_SYS_RESOURCE): kind must run with PATH=$E2E_IMAGES/shim:\$PATH"
  path_value="$E2E_IMAGES/shim:$path_value"
fi
echo "export PATH=\"$path_value\" DEVLOOP_E2E_ENGINE_LEG=$leg DEVLOOP_E2E_NODE_IMAGE=$NODE_IMAGE DEVLOOP_E2E_TRAEFIK_IMAGE=$TRAEFIK_IMAGE DEVLOOP_E2E_REGISTRY_IMAGE=$REGISTRY_IMAGE DEVLOOP_E2E_GOLANG_IMAGE=$GOLANG_IMAGE DEVLOOP_E2E_DEBIAN_IMAGE=$DEBIAN_IMAGE"
