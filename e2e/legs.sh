#!/usr/bin/env bash
# `make e2e`: the whole e2e suite once per engine leg of the harness's Docker 28 (e2e/images/engine.sh), each
# on a freshly (re)started dockerd of that leg with the harness images present in its store (e2e/setup.sh
# builds them, or loads their cached `docker save` tars). Legs: DEVLOOP_E2E_LEGS (default
# "containerd classic"). Every leg runs even when one fails; a failing leg fails the run. The containerd leg
# is left running at the end. Where a dockerd that engine.sh did not start answers (a developer's own Docker),
# the suite runs once on it, as leg "external", without touching it.
# Extra arguments go to `go test` (e.g. -run TestUp).
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ENGINE=e2e/images/engine.sh
LEGS=${DEVLOOP_E2E_LEGS:-containerd classic}
if [ -z "$("$ENGINE" leg 2>/dev/null)" ] && docker info >/dev/null 2>&1; then LEGS=external; fi

# free_gb prints the free space of Docker's data root's filesystem in GiB.
free_gb() { df -BG --output=avail "${1:-/var/lib}" 2>/dev/null | tail -1 | tr -dc 0-9; }

# make_room removes what earlier runs left in the running engine (images the tests built, tagged
# devloop-*, and the build cache) when less than 20 GiB are free: every run adds a few hundred MB, and a
# full disk fails builds and image loads in ways that look like bugs. The harness images are kept.
make_room() {
  local free
  free=$(free_gb "$(docker info --format '{{.DockerRootDir}}' 2>/dev/null)")
  [ -n "$free" ] && [ "$free" -lt 20 ] || return 0
  echo "=== e2e: only ${free} GiB free: removing test images and the build cache of earlier runs ==="
  docker images --format '{{.Repository}}:{{.Tag}}' | grep -E ':devloop-[0-9a-f]{16}$' | xargs -r docker rmi -f >/dev/null 2>&1 || true
  docker builder prune -af >/dev/null 2>&1 || true
  echo "=== e2e: $(free_gb "$(docker info --format '{{.DockerRootDir}}' 2>/dev/null)") GiB free ==="
}

# failures LOG prints what each failed test logged (its lines from its "=== RUN" to the next test's
# header), leaves first, each cut at 40 lines: the summary's tail is what a CI page shows, and a failing
# subtest's message is otherwise far up in the log, before its parent's output dumps.
failures() {
  awk '
    FNR == NR { if (match($0, /^ *--- FAIL: [^ ]+/)) { n = $3; if (!(n in failed)) order[++k] = n; failed[n] = 1 }; next }
    /^=== (RUN|CONT|NAME) / { cur = $3; next }
    /^=== PAUSE / { next }
    /^(---|    ---|PASS$|FAIL$|ok |FAIL\t)/ { cur = ""; next }
    cur != "" && (cur in failed) { if (count[cur]++ < 40) text[cur] = text[cur] $0 "\n" }
    END {
      for (i = k; i >= 1; i--) { n = order[i]; printf "--- %s\n%s", n, text[n]; if (count[n] > 40) printf "    [... %d more lines in the log]\n", count[n] - 40 }
    }' "$1" "$1"
}

LOGDIR=${DEVLOOP_E2E_LOGDIR:-${TMPDIR:-/tmp}/devloop-e2e-logs}
mkdir -p "$LOGDIR"
declare -a summary failed_legs
rc=0
T0=$(date +%s)
for leg in $LEGS; do
  start=$(date +%s)
  echo "=== e2e leg $leg ==="
  if [ "$leg" != external ] && ! "$ENGINE" start "$leg"; then
    summary+=("e2e leg $leg: FAIL (dockerd did not start)"); rc=1; continue
  fi
  if [ "$leg" = external ]; then env_line=$(bash e2e/setup.sh); else env_line=$(DEVLOOP_E2E_ENGINE_LEG=$leg bash e2e/setup.sh); fi \
    || { summary+=("e2e leg $leg: FAIL (e2e/setup.sh failed)"); rc=1; continue; }
  setup_s=$(( $(date +%s) - start ))
  ( eval "$env_line"; make_room )
  (
    eval "$env_line"
    echo "=== e2e leg $leg: $(docker version --format 'Docker {{.Server.Version}}' 2>/dev/null), storage $(docker info --format '{{.Driver}}' 2>/dev/null), images ready in ${setup_s}s ==="
    go test -tags e2e -count=1 -v -timeout 60m ./e2e/ "$@" 2>&1 | tee "$LOGDIR/$leg.log"
    exit "${PIPESTATUS[0]}"
  )
  st=$?
  if [ $st = 0 ]; then verdict=PASS; else verdict=FAIL; rc=1; failed_legs+=("$leg"); fi
  summary+=("e2e leg $leg: $verdict in $(( $(date +%s) - start ))s (setup ${setup_s}s)")
  echo "=== e2e leg $leg: $verdict ==="
done
# leave the containerd leg running (what the other users of this machine expect)
if [ "$LEGS" != external ] && [ "$("$ENGINE" leg 2>/dev/null)" != containerd ]; then
  "$ENGINE" start containerd || rc=1
fi
echo "=== e2e summary ($(( $(date +%s) - T0 ))s) ==="
printf '%s\n' "${summary[@]}"
for leg in ${failed_legs[@]+"${failed_legs[@]}"}; do
  log="$LOGDIR/$leg.log"
  [ -s "$log" ] || continue
  echo "=== e2e leg $leg: what the failed tests said (the whole log: $log) ==="
  said=$(failures "$log")
  [ -n "$said" ] && printf '%s\n' "$said"
  if grep -q '^panic: ' "$log"; then
    sed -n '/^panic: /,$p' "$log" | head -n 30 # a panic or the suite's timeout: which test, and where
  elif [ -z "$said" ]; then
    tail -n 60 "$log" # no test failed by name: a build error, a setup failure
  fi
done
exit $rc
