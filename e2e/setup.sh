#!/usr/bin/env bash
# Hermetic e2e setup: installs what the e2e tests need on a fresh Debian machine (as root), starts dockerd if
# none answers, and builds every image the e2e tests use, offline (Go module proxy + Debian apt only):
#   - the kind node image  $NODE_IMAGE  (Kubernetes, control-plane images, CNI placeholder and kind's
#     local-path StorageClass images preloaded), see images/README.md;
#   - the Traefik v3 ingress controller image  $TRAEFIK_IMAGE  (loaded into the node by devloop itself).
# Stages whose output exists with a matching input hash are skipped, so a second run takes seconds.
# Intermediate binaries are cached in ${DEVLOOP_E2E_CACHE:-/var/cache/devloop-e2e} (outside the checkout).
#
# Progress goes to stderr; stdout is exactly one line to eval:
#   eval "$(e2e/setup.sh)"      # -> export PATH=... DEVLOOP_E2E_NODE_IMAGE=... DEVLOOP_E2E_TRAEFIK_IMAGE=...
set -euo pipefail
E2E_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
E2E_IMAGES="$E2E_DIR/images"
export E2E_IMAGES
# shellcheck source=images/lib.sh
source "$E2E_IMAGES/lib.sh"
# shellcheck source=images/VERSIONS
source "$E2E_IMAGES/VERSIONS"
CACHE=${DEVLOOP_E2E_CACHE:-/var/cache/devloop-e2e}
export PATH="$PATH:/usr/local/go/bin:/usr/sbin:/sbin"
T0=$(date +%s)

# --- host packages -------------------------------------------------------------------------------------
missing=()
command -v docker >/dev/null || missing+=(docker.io)
command -v dockerd >/dev/null || missing+=(docker.io)
command -v debootstrap >/dev/null || missing+=(debootstrap)
# the helper image copies /bin/busybox into a FROM scratch image: it must be Debian's static build
dpkg-query -W -f='${Status}' busybox-static 2>/dev/null | grep -q 'ok installed' || missing+=(busybox-static)
if [ ${#missing[@]} -gt 0 ]; then
  e2e_log "installing ${missing[*]}"
  [ "$(id -u)" = 0 ] || { e2e_log "must run as root to install packages"; exit 1; }
  apt-get update >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $(printf '%s\n' "${missing[@]}" | sort -u) >&2
fi
command -v go >/dev/null || { e2e_log "go is not installed"; exit 1; }

# --- docker daemon -------------------------------------------------------------------------------------
if ! docker info >/dev/null 2>&1; then
  e2e_log "starting dockerd (log: /var/log/devloop-dockerd.log)"
  setsid nohup dockerd >>/var/log/devloop-dockerd.log 2>&1 </dev/null &
  for i in $(seq 1 120); do
    docker info >/dev/null 2>&1 && break
    [ "$i" = 120 ] && { e2e_log "dockerd did not answer within 60s"; tail -20 /var/log/devloop-dockerd.log >&2; exit 1; }
    sleep 0.5
  done
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
    addon-bins)  OUT=$o WORK=$CACHE/work/addons ETCD_VERSION=$ETCD_VERSION COREDNS_VERSION=$COREDNS_VERSION \
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
  esac >"$log" 2>&1
}
# ensure STAGE: build it (and, first, whatever it needs that is out of date) unless it is up to date
declare -A DONE
ensure() {
  local s=$1 d start
  [ -z "${DONE[$s]:-}" ] || return 0
  DONE[$s]=1
  if up_to_date "$s"; then e2e_log "STAGE $s: up to date (${OUT[$s]})"; return; fi
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
}

for target in ${DEVLOOP_E2E_TARGETS:-node traefik}; do ensure "$target"; done
e2e_log "ready in $(( $(date +%s) - T0 ))s: ${DEVLOOP_E2E_TARGETS:-$NODE_IMAGE $TRAEFIK_IMAGE}"

path_value='$PATH'
if e2e_needs_shim; then
  e2e_log "host lacks CAP_SYS_RESOURCE: kind must run with PATH=$E2E_IMAGES/shim:\$PATH"
  path_value="$E2E_IMAGES/shim:\$PATH"
fi
echo "export PATH=\"$path_value\" DEVLOOP_E2E_NODE_IMAGE=$NODE_IMAGE DEVLOOP_E2E_TRAEFIK_IMAGE=$TRAEFIK_IMAGE"
