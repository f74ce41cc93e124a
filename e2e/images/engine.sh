#!/usr/bin/env bash
# The Docker engine the e2e harness runs on: Docker 28 from Debian unstable (sid), unpacked into the harness
# cache without touching the machine's apt state (a private sources list, lists dir and package cache), and
# run as one dockerd at a time on one of two "legs":
#   containerd  the containerd image store (daemon.json features.containerd-snapshotter: what Docker 29 does
#               by default on new installs)
#   classic     the classic graph-driver image store (overlay2) that Docker <= 28 uses by default
#
#   e2e/images/engine.sh install        download (pinned .debs, kept in the cache) and unpack; idempotent
#   e2e/images/engine.sh start LEG      stop whatever leg runs, start LEG, wait until `docker version` answers
#   e2e/images/engine.sh stop           stop the running dockerd; returns once its process and socket are gone
#   e2e/images/engine.sh status         the running leg and versions (exit 1 when no dockerd answers)
#   e2e/images/engine.sh leg            print the running leg's name (nothing, exit 1, when none runs)
#   e2e/images/engine.sh bin            print the directory to put first in PATH (docker 28.5.2 CLI, dockerd...)
#   e2e/images/engine.sh env            print `export PATH=...` for that directory
#
# Never two dockerd at once: on one host network namespace a second daemon deletes the first one's docker0.
# `start` refuses to run next to a dockerd it did not start, and a leg switch is stop (process gone, socket
# removed), then start.
#
# Each leg has its own data root, so the two image stores never mix: switching the snapshotter on a shared
# root hides the other store's images and containers while keeping their disk, and a leg can be wiped
# (`rm -rf` its root while stopped) without losing the other. Images move between legs as `docker save` tars
# in the harness cache (see setup.sh), which costs seconds.
#
# Env: DEVLOOP_E2E_CACHE (default /var/cache/devloop-e2e), DEVLOOP_E2E_ENGINE_ROOT (data roots, default
# /var/lib/devloop-e2e), DEVLOOP_E2E_DEBIAN_MIRROR (default http://deb.debian.org/debian).
set -euo pipefail

# Pinned packages from sid. When a pin is no longer served (sid moves on), install takes the newest served
# version with a warning instead of failing. runc is NOT taken from sid (its runc needs glibc 2.38; bookworm
# has 2.36): bookworm's runc 1.1.5 is installed with the machine's apt when missing.
ENGINE_PKGS=(
  docker.io=28.5.2+dfsg4-5
  docker-cli=28.5.2+dfsg4-5
  containerd=2.1.9+ds1-5
  docker-buildx=0.29.1+ds1-4
)
ENGINE_NAME=docker-28
LEGS="containerd classic"

CACHE=${DEVLOOP_E2E_CACHE:-/var/cache/devloop-e2e}
ENG=$CACHE/engines
APT=$ENG/apt
DEBS=$ENG/debs
DIST=$ENG/$ENGINE_NAME
BIN=$DIST/bin
DATA=${DEVLOOP_E2E_ENGINE_ROOT:-/var/lib/devloop-e2e}
MIRROR=${DEVLOOP_E2E_DEBIAN_MIRROR:-http://deb.debian.org/debian}
SOCK=/var/run/docker.sock
PIDFILE=/var/run/docker.pid
STATE=/var/run/devloop-e2e-engine.leg
PLUGIN_DIR=/usr/local/lib/docker/cli-plugins

log() { echo "[engine] $*" >&2; }
die() { log "$*"; exit 1; }

apt_private() {
  local cmd=$1; shift
  "$cmd" -o Dir::Etc::sourcelist="$APT/sources.list" -o Dir::Etc::sourceparts=/nonexistent \
    -o Dir::State::Lists="$APT/lists" -o Dir::Cache="$APT/cache" -o Dir::Cache::archives="$DEBS" \
    -o APT::Get::List-Cleanup=0 -o APT::Sandbox::User=root "$@"
}

# want_version PKG PIN: the pinned version when served, else the newest served one (warning), else fail.
want_version() {
  local pkg=$1 pin=$2 served newest
  served=$(apt_private apt-cache madison "$pkg" 2>/dev/null | awk -F' [|] ' '{gsub(/ /,"",$2); print $2}')
  if grep -qxF "$pin" <<<"$served"; then echo "$pin"; return; fi
  newest=$(head -1 <<<"$served")
  [ -n "$newest" ] || die "$pkg is not served by $MIRROR sid (apt lists in $APT/lists)"
  log "WARNING: $pkg=$pin is no longer served by sid; taking the newest, $newest"
  echo "$newest"
}

# host_deps installs from the machine's normal (bookworm) apt what the sid binaries need and sid must not
# provide: runc (glibc), iptables (dockerd's networking).
host_deps() {
  local missing=()
  command -v runc >/dev/null 2>&1 || [ -x /usr/sbin/runc ] || missing+=(runc)
  command -v iptables >/dev/null 2>&1 || [ -x /usr/sbin/iptables ] || missing+=(iptables)
  [ -x /usr/bin/tini-static ] || missing+=(tini)   # docker-init, for `docker run --init`
  [ ${#missing[@]} -eq 0 ] && return
  [ "$(id -u)" = 0 ] || die "must run as root to install ${missing[*]}"
  log "installing ${missing[*]} from the machine's apt"
  mkdir -p "$ENG"
  { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"; } \
    >"$ENG/apt-host.log" 2>&1 || { tail -20 "$ENG/apt-host.log" >&2; die "installing ${missing[*]} failed (log: $ENG/apt-host.log)"; }
}

installed_stamp() { cat "$DIST/.installed" 2>/dev/null || true; }
want_stamp() { printf '%s\n' "${ENGINE_PKGS[@]}" | sha256sum | cut -d' ' -f1; }

cmd_install() {
  host_deps
  if [ "$(installed_stamp)" = "$(want_stamp)" ] && [ -x "$BIN/dockerd" ]; then
    link_bins "$DIST"; link_plugin; return
  fi
  local t0 p pkg pin ver debs=()
  t0=$(date +%s)
  mkdir -p "$APT/lists/partial" "$APT/cache" "$DEBS/partial"
  echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $MIRROR sid main" >"$APT/sources.list"
  # the pinned .debs may all be in the cache already: then no network is needed at all
  for p in "${ENGINE_PKGS[@]}"; do
    pkg=${p%%=*}; pin=${p#*=}
    ls "$DEBS/${pkg}_${pin//:/%3a}_"*.deb >/dev/null 2>&1 || { debs=(); break; }
    debs+=("$(ls "$DEBS/${pkg}_${pin//:/%3a}_"*.deb | head -1)")
  done
  if [ ${#debs[@]} -ne ${#ENGINE_PKGS[@]} ]; then
    log "apt update (private lists for sid: $APT)"
    apt_private apt-get -qq update >"$ENG/apt-sid.log" 2>&1 || { tail -20 "$ENG/apt-sid.log" >&2; die "apt update for sid failed"; }
    debs=()
    for p in "${ENGINE_PKGS[@]}"; do
      pkg=${p%%=*}; pin=${p#*=}
      ver=$(want_version "$pkg" "$pin")
      if ! ls "$DEBS/${pkg}_${ver//:/%3a}_"*.deb >/dev/null 2>&1; then
        (cd "$DEBS" && apt_private apt-get -qq download "$pkg=$ver" >>"$ENG/apt-sid.log" 2>&1) \
          || { tail -20 "$ENG/apt-sid.log" >&2; die "downloading $pkg=$ver failed"; }
      fi
      debs+=("$(ls "$DEBS/${pkg}_${ver//:/%3a}_"*.deb | head -1)")
    done
  fi
  rm -rf "$DIST.new"; mkdir -p "$DIST.new/root" "$DIST.new/bin"
  for p in "${debs[@]}"; do dpkg -x "$p" "$DIST.new/root"; done
  link_bins "$DIST.new"
  printf '%s\n' "${debs[@]##*/}" >"$DIST.new/PACKAGES"
  want_stamp >"$DIST.new/.installed"
  rm -rf "$DIST"; mv "$DIST.new" "$DIST"
  link_plugin
  log "installed $(tr '\n' ' ' <"$DIST/PACKAGES")in $(( $(date +%s) - t0 ))s: $BIN"
}

# link_bins DIST: the binaries dockerd and the CLI look for in PATH, in one directory DIST/bin (links into the
# unpacked tree; runc is bookworm's, in /usr/sbin; docker-init is bookworm's static tini)
link_bins() {
  local d=$1 p f
  mkdir -p "$d/bin"
  ln -sfn ../root/usr/sbin/dockerd "$d/bin/dockerd"
  ln -sfn ../root/usr/sbin/docker-proxy "$d/bin/docker-proxy"
  ln -sfn ../root/usr/bin/docker "$d/bin/docker"
  for p in containerd containerd-shim-runc-v2 ctr; do ln -sfn "../root/usr/bin/$p" "$d/bin/$p"; done
  ln -sfn /usr/bin/tini-static "$d/bin/docker-init"
  for f in "$d"/bin/*; do [ -e "$f" ] || die "unpacked engine lacks $(basename "$f") ($(readlink "$f"))"; done
}

# link_plugin makes `docker buildx` work for any docker CLI on the machine (the CLI searches
# /usr/local/lib/docker/cli-plugins; Debian's own plugin dir is inside the unpacked tree, which no CLI knows).
link_plugin() {
  local src=$DIST/root/usr/libexec/docker/cli-plugins/docker-buildx
  [ -x "$src" ] || die "unpacked engine lacks the buildx plugin ($src)"
  mkdir -p "$PLUGIN_DIR"
  [ "$(readlink "$PLUGIN_DIR/docker-buildx" 2>/dev/null)" = "$src" ] || ln -sfn "$src" "$PLUGIN_DIR/docker-buildx"
}

dockerd_pids() { pgrep -x dockerd || true; }
# running_leg prints the leg of the running dockerd when engine.sh started it (its pidfile names a live
# dockerd of this engine and the state file says which leg), else nothing
running_leg() {
  local pid
  pid=$(cat "$PIDFILE" 2>/dev/null) || return 0
  [ -n "$pid" ] && [ "$(readlink "/proc/$pid/exe" 2>/dev/null)" = "$(readlink -f "$BIN/dockerd")" ] || return 0
  cat "$STATE" 2>/dev/null || true
}

leg_config() {
  local leg=$1 f=$ENG/daemon-$1.json
  case $leg in
    containerd) printf '{\n  "data-root": "%s",\n  "features": {"containerd-snapshotter": true}\n}\n' "$DATA/docker-$leg" >"$f" ;;
    classic)    printf '{\n  "data-root": "%s",\n  "storage-driver": "overlay2",\n  "features": {"containerd-snapshotter": false}\n}\n' "$DATA/docker-$leg" >"$f" ;;
    *) die "unknown leg $leg (legs: $LEGS)" ;;
  esac
  echo "$f"
}

cmd_stop() {
  local pids i
  pids=$(dockerd_pids)
  if [ -z "$pids" ]; then rm -f "$STATE"; return; fi
  log "stopping dockerd ($(running_leg || true)) pid $pids"
  # shellcheck disable=SC2086
  kill -TERM $pids 2>/dev/null || true
  for i in $(seq 1 240); do
    [ -z "$(dockerd_pids)" ] && [ ! -S "$SOCK" ] && break
    if [ "$i" = 120 ] && [ -n "$(dockerd_pids)" ]; then
      log "dockerd still running after 60s; SIGKILL"
      # shellcheck disable=SC2086
      kill -KILL $(dockerd_pids) 2>/dev/null || true
    fi
    [ -z "$(dockerd_pids)" ] && [ "$i" -gt 120 ] && rm -f "$SOCK"
    sleep 0.5
  done
  [ -z "$(dockerd_pids)" ] || die "dockerd did not stop"
  # dockerd's own containerd exits with it; wait for it so the next leg's containerd finds its socket free
  for i in $(seq 1 60); do pgrep -f "containerd --config /var/run/docker/containerd/containerd.toml" >/dev/null || break; sleep 0.5; done
  rm -f "$STATE"
}

cmd_start() {
  local leg=${1:?usage: engine.sh start LEG ($LEGS)} cfg i cur
  cmd_install
  cfg=$(leg_config "$leg")
  cur=$(running_leg)
  if [ -n "$(dockerd_pids)" ]; then
    [ -n "$cur" ] || die "a dockerd that engine.sh did not start is running (pid $(dockerd_pids)): stop it first"
    cmd_stop
  fi
  mkdir -p "$DATA/docker-$leg"
  local logf=/var/log/devloop-dockerd-$leg.log
  log "starting dockerd $ENGINE_NAME leg $leg (data root $DATA/docker-$leg, log $logf)"
  echo "$leg" >"$STATE"
  # the daemon must not inherit any descriptor but stdio: started under `flock /tmp/devloop-docker.lock`, it
  # would otherwise hold that lock for as long as it runs
  (
    for fd in /proc/$BASHPID/fd/*; do
      fd=${fd##*/}
      [ "$fd" -gt 2 ] 2>/dev/null && eval "exec $fd>&-" 2>/dev/null
    done
    PATH="$BIN:/usr/sbin:/usr/bin:/sbin:/bin" exec setsid "$BIN/dockerd" --config-file "$cfg" \
      --pidfile "$PIDFILE" -H "unix://$SOCK" >>"$logf" 2>&1 </dev/null
  ) &
  for i in $(seq 1 120); do
    "$BIN/docker" -H "unix://$SOCK" version >/dev/null 2>&1 && break
    if [ "$i" = 120 ] || [ -z "$(dockerd_pids)" ]; then
      log "dockerd ($leg) did not answer within 60s; last lines of $logf:"; tail -20 "$logf" >&2
      rm -f "$STATE"; exit 1
    fi
    sleep 0.5
  done
  check_leg "$leg"
}

# check_leg fails unless the daemon answering is of the wanted leg.
check_leg() {
  local leg=$1 drv
  drv=$("$BIN/docker" -H "unix://$SOCK" info --format '{{.Driver}} {{json .DriverStatus}}' 2>/dev/null)
  case $leg in
    containerd) grep -q 'io.containerd.snapshotter' <<<"$drv" || die "leg containerd: daemon reports $drv" ;;
    classic) ! grep -q 'io.containerd.snapshotter' <<<"$drv" || die "leg classic: daemon reports $drv" ;;
  esac
}

cmd_status() {
  local leg
  leg=$(running_leg)
  "$BIN/docker" -H "unix://$SOCK" version --format 'client {{.Client.Version}}, engine {{.Server.Version}}' 2>/dev/null \
    || { echo "no dockerd answers on $SOCK"; return 1; }
  echo "leg: ${leg:-unknown (not started by engine.sh)}"
  "$BIN/docker" -H "unix://$SOCK" info --format 'storage: {{.Driver}}, data root: {{.DockerRootDir}}, images: {{.Images}}, containers: {{.Containers}}'
}

case ${1:-} in
  install) cmd_install ;;
  start)   shift; cmd_start "$@" ;;
  stop)    cmd_stop ;;
  status)  cmd_status ;;
  leg)     l=$(running_leg); [ -n "$l" ] && echo "$l" ;;
  bin)     echo "$BIN" ;;
  env)     echo "export PATH=\"$BIN:\$PATH\"" ;;
  legs)    echo "$LEGS" ;;
  *) sed -n '2,/^set -euo/p' "$0" | sed '$d' >&2; exit 2 ;;
esac
