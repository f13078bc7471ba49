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
PIDS=()

cleanup() {
  stop_pids "${PIDS[@]}"
  rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

log() { echo "[consistency] $*" >&2; }

build_bench_tools
mkdir -p "$OUT/raw"

# Three members of each system.
declare -a E_CLIENT E_PEER A_CLIENT A_PEER
for i in 1 2 3; do
  E_CLIENT[$i]=$(free_port); E_PEER[$i]=$(free_port); A_CLIENT[$i]=$(free_port); A_PEER[$i]=$(free_port)
done
E_INITIAL="e1=http://127.0.0.1:${E_PEER[1]},e2=http://127.0.0.1:${E_PEER[2]},e3=http://127.0.0.1:${E_PEER[3]}"
A_INITIAL="a1=http://127.0.0.1:${A_PEER[1]},a2=http://127.0.0.1:${A_PEER[2]},a3=http://127.0.0.1:${A_PEER[3]}"
ETCD_URLS="http://127.0.0.1:${E_CLIENT[1]},http://127.0.0.1:${E_CLIENT[2]},http://127.0.0.1:${E_CLIENT[3]}"
ARBITER_URLS="http://127.0.0.1:${A_CLIENT[1]},http://127.0.0.1:${A_CLIENT[2]},http://127.0.0.1:${A_CLIENT[3]}"

log "starting etcd ($ETCD_URLS) and Arbiter ($ARBITER_URLS), data in $WORK"
for i in 1 2 3; do
  etcd --name "e$i" --data-dir "$WORK/etcd$i" \
    --listen-client-urls "http://127.0.0.1:${E_CLIENT[$i]}" --advertise-client-urls "http://127.0.0.1:${E_CLIENT[$i]}" \
    --listen-peer-urls "http://127.0.0.1:${E_PEER[$i]}" --initial-advertise-peer-urls "http://127.0.0.1:${E_PEER[$i]}" \
    --initial-cluster "$E_INITIAL" --initial-cluster-state new --initial-cluster-token "bench-$STAMP" >"$OUT/etcd$i.log" 2>&1 &
  PIDS+=($!)
  dotnet "$ARBITER_DLL" serve --name "a$i" --data-dir "$WORK/arbiter$i" \
    --listen-client-urls "http://127.0.0.1:${A_CLIENT[$i]}" --advertise-client-urls "http://127.0.0.1:${A_CLIENT[$i]}" \
    --listen-peer-urls "http://127.0.0.1:${A_PEER[$i]}" --initial-advertise-peer-urls "http://127.0.0.1:${A_PEER[$i]}" \
    --initial-cluster "$A_INITIAL" --initial-cluster-state new --log-level warn >"$OUT/arbiter$i.log" 2>&1 &
  PIDS+=($!)
done

wait_ready() { # comma-separated urls
  for _ in $(seq 1 300); do
    if ETCDCTL_API=3 etcdctl --endpoints="$1" --command-timeout=2s endpoint health >/dev/null 2>&1 \
      && ETCDCTL_API=3 etcdctl --endpoints="$1" --command-timeout=2s put /bench-ready 1 >/dev/null 2>&1; then
      return 0
    fi
    sleep 0.2
  done
  log "cluster $1 did not become ready"
  return 1
}
wait_ready "$ETCD_URLS"
wait_ready "$ARBITER_URLS"

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
