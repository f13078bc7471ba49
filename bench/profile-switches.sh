#!/usr/bin/env bash
# Profile evidence for docs/performance.md: per-operation server CPU, context switches and threads
# for etcd and Arbiter on the same workload (one client, so per-request overheads dominate), and
# Arbiter with --unsafe-no-fsync to separate disk from CPU. Optional: a dotnet-trace CPU sample of
# Arbiter during the run (set TRACE=1; needs `dotnet tool install --global dotnet-trace`).
# Usage: WORKLOADS="range-serializable lease" CLIENTS=1 DURATION_S=5 bench/profile-switches.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
WORKLOADS=${WORKLOADS:-"range-serializable put lease watch"}
CLIENTS=${CLIENTS:-1}
DURATION_S=${DURATION_S:-5}
OUT=${OUT:-$ROOT/bench/results/profile-$(date -u +%Y%m%dT%H%M%SZ)}
WORK=$(mktemp -d "$ROOT/bench/.work-XXXXXX")
PIDS=()
cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do
    if kill -0 "$pid" 2>/dev/null; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  done
  rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

dotnet build src/Arbiter.Cli -c Release -nologo -v q >/dev/null
dotnet build bench/Arbiter.Bench -c Release -nologo -v q >/dev/null
BENCH_DLL=$ROOT/bench/Arbiter.Bench/bin/Release/net10.0/arbiter-bench.dll
mkdir -p "$OUT"

port() {
  local p
  while true; do
    p=$((20000 + RANDOM % 20000))
    if ! ss -ltn "( sport = :$p )" 2>/dev/null | grep -q ":$p"; then echo "$p"; return; fi
  done
}
wait_ready() {
  local url=$1
  for _ in $(seq 1 100); do
    if ETCDCTL_API=3 etcdctl --endpoints="$url" --command-timeout=2s get /ready >/dev/null 2>&1; then return 0; fi
    sleep 0.2
  done
  return 1
}
# Sum of voluntary + involuntary context switches over every thread of a process.
switches() {
  cat /proc/"$1"/task/*/status 2>/dev/null | awk '/ctxt_switches/ {s += $2} END {print s}'
}
threads() { find /proc/"$1"/task -mindepth 1 -maxdepth 1 | wc -l; }

P=$(port); PP=$(port)
etcd --name p --data-dir "$WORK/etcd" --listen-client-urls "http://127.0.0.1:$P" --advertise-client-urls "http://127.0.0.1:$P" \
  --listen-peer-urls "http://127.0.0.1:$PP" --initial-advertise-peer-urls "http://127.0.0.1:$PP" \
  --initial-cluster "p=http://127.0.0.1:$PP" >"$OUT/etcd.log" 2>&1 &
PIDS+=("$!"); ETCD_PID=$!; ETCD_URL=http://127.0.0.1:$P
A=$(port)
dotnet src/Arbiter.Cli/bin/Release/net10.0/arbiter.dll serve --data-dir "$WORK/arbiter" --listen-client-urls "http://127.0.0.1:$A" --log-level warn >"$OUT/arbiter.log" 2>&1 &
PIDS+=("$!"); ARB_PID=$!; ARB_URL=http://127.0.0.1:$A
N=$(port)
dotnet src/Arbiter.Cli/bin/Release/net10.0/arbiter.dll serve --data-dir "$WORK/arbiter-nofsync" --unsafe-no-fsync --listen-client-urls "http://127.0.0.1:$N" --log-level warn >"$OUT/arbiter-nofsync.log" 2>&1 &
PIDS+=("$!"); NOF_PID=$!; NOF_URL=http://127.0.0.1:$N
wait_ready "$ETCD_URL"; wait_ready "$ARB_URL"; wait_ready "$NOF_URL"

echo "| workload | system | ops/s | p50 ms | p90 ms | p99 ms | server CPU µs/op | context switches/op | threads |" >"$OUT/switches.md"
echo "|---|---|---:|---:|---:|---:|---:|---:|---:|" >>"$OUT/switches.md"
for workload in $WORKLOADS; do
  for system in etcd arbiter arbiter-nofsync; do
    case $system in
      etcd) url=$ETCD_URL; pid=$ETCD_PID ;;
      arbiter) url=$ARB_URL; pid=$ARB_PID ;;
      *) url=$NOF_URL; pid=$NOF_PID ;;
    esac
    before=$(switches "$pid")
    dotnet "$BENCH_DLL" run --workload "$workload" --clients "$CLIENTS" --connections 1 --watchers 1 --duration "$DURATION_S" --warmup 1 \
      --endpoints "$url" --label "$system" --server-pid "$pid" --quiet --out "$OUT/$workload-$system.json" >/dev/null || true
    after=$(switches "$pid")
    python3 - "$OUT/$workload-$system.json" "$((after - before))" "$(threads "$pid")" >>"$OUT/switches.md" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["results"][0]
l = r["latencyMs"]
# Switches are counted over warm-up + window; scale by the run's share of ops (approximation noted in docs).
ops_all = max(1, r["ops"] * (1 + 1 / max(r["durationS"], 1)))
print(f"| {r['workload']} | {r['label']} | {r['opsPerSecond']:.0f} | {l['p50']:.2f} | {l['p90']:.2f} | {l['p99']:.2f} | {r['extra'].get('serverCpuUsPerOp', 0):.0f} | {int(sys.argv[2]) / ops_all:.1f} | {sys.argv[3]} |")
PY
  done
done

if [ "${TRACE:-0}" = "1" ] && command -v dotnet-trace >/dev/null 2>&1; then
  dotnet "$BENCH_DLL" run --workload range-serializable --clients "$CLIENTS" --connections 1 --duration 8 --warmup 0 --endpoints "$ARB_URL" --quiet >/dev/null &
  LOAD_PID=$!
  sleep 1
  dotnet-trace collect -p "$ARB_PID" --profile cpu-sampling --duration 00:00:00:05 -o "$OUT/arbiter-range.nettrace" >/dev/null 2>&1 || true
  wait "$LOAD_PID" || true
fi
cat "$OUT/switches.md"
