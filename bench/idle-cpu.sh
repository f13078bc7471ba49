#!/usr/bin/env bash
# CPU an idle 3-member cluster burns, Arbiter next to etcd 3.4: both clusters started at once on
# loopback (start_cluster, etcd's default timing), one write through every member, then nothing
# for SETTLE_S (the JIT's tiering is over by then), then each member's CPU time over MEASURE_S.
# Writes bench/results/<stamp>-idle-cpu/{results.md,*.log}.
#
# Usage: bench/idle-cpu.sh
#   ARBITER_ENV="DOTNET_ThreadPool_UnfairSemaphoreSpinLimit=0" LABEL=spin0 bench/idle-cpu.sh   (a runtime
#                                              knob for the Arbiter members; LABEL names the folder)
# shellcheck source=bench/lib.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
source bench/lib.sh
log() { echo "[idle-cpu] $*" >&2; }

SETTLE_S=${SETTLE_S:-60}
MEASURE_S=${MEASURE_S:-30}
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
OUT=${OUT:-$ROOT/bench/results/$STAMP-idle-cpu${LABEL:+-$LABEL}}
WORK=$(mktemp -d "$ROOT/bench/.work-XXXXXX")
mkdir -p "$OUT"
trap stop_cluster_pair EXIT INT TERM

ensure_packages etcd etcd-server etcd-client
ensure_packages etcdctl etcd-server etcd-client
build_bench_tools
start_cluster_pair "$WORK" "$OUT"
log "both clusters ready; idle for ${SETTLE_S} s, then measuring ${MEASURE_S} s"
sleep "$SETTLE_S"

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
ALL=("${ETCD_PIDS[@]}" "${ARBITER_PIDS[@]}")
BEFORE=()
for pid in "${ALL[@]}"; do BEFORE+=("$(cpu_ticks "$pid")"); done
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
sleep "$MEASURE_S"
HZ=$(getconf CLK_TCK)
{
  echo "## CPU of idle 3-member clusters"
  echo
  echo "| | |"
  echo "|---|---|"
  echo "| date (UTC) | $(date -u +%Y-%m-%dT%H:%M:%SZ) |"
  echo "| commit | $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src || echo ' (with uncommitted changes)') |"
  echo "| CPU | $(lscpu | sed -n 's/^Model name: *//p' | head -1), $(nproc) cores available |"
  echo "| etcd | $(etcd --version | head -1) |"
  echo "| .NET | $(dotnet --version) |"
  echo "| Arbiter members' extra environment | ${ARBITER_ENV:-(none: as shipped)} |"
  echo "| timing | heartbeat ${HEARTBEAT_MS:-100} ms, election ${ELECTION_MS:-1000} ms for both |"
  echo "| idle before measuring | ${SETTLE_S} s after one write through every member |"
  echo "| load average at start / end of the measurement | $LOAD_START / $(cut -d' ' -f1-3 /proc/loadavg) |"
  echo
  echo "| system | member | CPU ms per s |"
  echo "|---|---:|---:|"
  i=0
  for pid in "${ALL[@]}"; do
    system=etcd; member=$((i + 1))
    if [ "$i" -ge 3 ]; then system=arbiter; member=$((i - 2)); fi
    echo "| $system | $member | $(python3 -c "print(round(($(cpu_ticks "$pid") - ${BEFORE[$i]}) / $HZ / $MEASURE_S * 1000, 1))") |"
    i=$((i + 1))
  done
} >"$OUT/results.md"
cat "$OUT/results.md"
log "done: $OUT/results.md"
