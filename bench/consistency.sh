#!/usr/bin/env bash
# Reads at each consistency level on a 3-member Arbiter cluster, next to a 3-member etcd cluster's
# linearizable and serializable reads, in the same run (issue #15's PACELC measurement). Writes
# bench/results/<timestamp>/{results.md,chart.png,machine.md,raw/*.json}.
#
# Both clusters run at the same time on loopback (free ports), data on the repository's disk, both
# fsyncing. Each cell is a single-key Range of a random preloaded key; the clients' gRPC connections
# are spread over all three members (6 connections: 2 per member). Cells alternate etcd / Arbiter.
#
# Usage: bench/consistency.sh                 (16 and 64 clients, 8 s + 1 s warm-up per cell)
#   DURATION_S=5 CLIENT_COUNTS="16" bench/consistency.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"

DURATION_S=${DURATION_S:-8}
WARMUP_S=${WARMUP_S:-1}
WARMUP_ALL_S=${WARMUP_ALL_S:-4}
CLIENT_COUNTS=${CLIENT_COUNTS:-"16 64"}
ARBITER_LEVELS=${ARBITER_LEVELS:-"linearizable bounded session serializable"}
ETCD_LEVELS=${ETCD_LEVELS:-"linearizable serializable"}
KEY_SPACE=${KEY_SPACE:-1000}
VALUE_SIZE=${VALUE_SIZE:-256}
MAX_STALENESS_MS=${MAX_STALENESS_MS:-1000}
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
OUT=${OUT:-$ROOT/bench/results/$STAMP-consistency}
WORK=$(mktemp -d "$ROOT/bench/.work-XXXXXX")
trap stop_cluster_pair EXIT INT TERM

log() { echo "[consistency] $*" >&2; }

build_bench_tools
mkdir -p "$OUT/raw"

# Three members of each system, etcd's default timing for both.
start_cluster_pair "$WORK" "$OUT"

{
  echo "## Machine and run"
  echo
  echo "| | |"
  echo "|---|---|"
  echo "| date (UTC) | $(date -u +%Y-%m-%dT%H:%M:%SZ) |"
  echo "| commit | $(git rev-parse --short HEAD) |"
  echo "| CPU | $(lscpu | sed -n 's/^Model name: *//p' | head -1), $(nproc) cores available |"
  echo "| etcd | $(etcd --version | head -1) |"
  echo "| .NET | $(dotnet --version) |"
  echo "| clusters | 3 etcd members and 3 Arbiter members, all on this machine at once |"
  echo "| load average at start | $(cut -d' ' -f1-3 /proc/loadavg) |"
  echo "| cell | ${WARMUP_S} s warm-up + ${DURATION_S} s measured; single-key Range over $KEY_SPACE keys of $VALUE_SIZE B; 6 connections spread over the 3 members; bounded = ${MAX_STALENESS_MS} ms |"
} >"$OUT/machine.md"

run_cell() { # system urls level clients
  local system=$1 urls=$2 level=$3 clients=$4
  if ! dotnet "$BENCH_DLL" run --workload "range-$level" --clients "$clients" --connections 6 --key-space "$KEY_SPACE" \
    --duration "$DURATION_S" --warmup "$WARMUP_S" --value-size "$VALUE_SIZE" --max-staleness-ms "$MAX_STALENESS_MS" \
    --endpoints "$urls" --label "$system" --quiet --out "$OUT/raw/range-$level-c$clients-$system.json"; then
    log "$system range-$level c=$clients reported errors (kept in the results)"
  fi
}

if [ "$WARMUP_ALL_S" != "0" ]; then
  log "warming up (not measured)"
  for level in $ARBITER_LEVELS; do
    dotnet "$BENCH_DLL" run --workload "range-$level" --clients 16 --connections 6 --key-space "$KEY_SPACE" \
      --duration "$WARMUP_ALL_S" --warmup 0 --endpoints "$ARBITER_URLS" --quiet >/dev/null 2>&1 || true
  done
  for level in $ETCD_LEVELS; do
    dotnet "$BENCH_DLL" run --workload "range-$level" --clients 16 --connections 6 --key-space "$KEY_SPACE" \
      --duration "$WARMUP_ALL_S" --warmup 0 --endpoints "$ETCD_URLS" --quiet >/dev/null 2>&1 || true
  done
fi

for clients in $CLIENT_COUNTS; do
  for level in $ARBITER_LEVELS; do
    if [[ " $ETCD_LEVELS " == *" $level "* ]]; then
      run_cell etcd "$ETCD_URLS" "$level" "$clients"
    fi
    run_cell arbiter "$ARBITER_URLS" "$level" "$clients"
  done
done

echo "| load average at end | $(cut -d' ' -f1-3 /proc/loadavg) |" >>"$OUT/machine.md"
dotnet "$BENCH_DLL" report --in "$OUT"
log "done: $OUT/results.md"
