#!/usr/bin/env bash
# 3-member Arbiter, put at $CLIENTS clients for 25 s, perf record every member for 12 s in the middle.
set -euo pipefail
cd "$(dirname "$0")/../../.."
source bench/lib.sh
log() { echo "[prof] $*" >&2; }
ARBITER_DLL=${ARBITER_DLL:-$PWD/src/Arbiter.Cli/bin/Release/net10.0/arbiter.dll}
CLIENTS=${CLIENTS:-64}
OUT=${OUT:-/tmp/prof/out}; rm -rf $OUT; mkdir -p $OUT
WORK=$(mktemp -d "$PWD/bench/.work-prof-XXXX")
trap 'stop_pids "${CLUSTER_PIDS[@]}"; rm -rf $WORK' EXIT
ARBITER_ENV="DOTNET_PerfMapEnabled=1 ${ARBITER_ENV:-}" start_cluster arbiter $WORK $OUT/arb
wait_cluster_ready "$CLUSTER_URLS" "${CLUSTER_PIDS[@]}"
BENCH=$PWD/bench/Arbiter.Bench/bin/Release/net10.0/arbiter-bench.dll
conn=$((CLIENTS < 4 ? CLIENTS : 4))
dotnet $BENCH run --workload ${WORKLOAD:-put} --clients $CLIENTS --connections $conn --key-space 1000 --value-size 256 --duration ${DUR:-25} --warmup 2 --endpoints $CLUSTER_URLS --label p --quiet --out $OUT/bench.json > $OUT/bench.log 2>&1 &
BP=$!
sleep ${DELAY:-9}
for i in 0 1 2; do perf record -F 499 -g -p ${CLUSTER_PIDS[$i]} -o $OUT/perf$i.data -- sleep 12 > /dev/null 2>&1 & done
wait $BP || true
sleep 1
python3 -c "
import json; r=json.load(open('$OUT/bench.json'))['results'][0]; l=r['latencyMs']
print(f\"{r['opsPerSecond']:8.0f} ops/s  p50 {l['p50']:6.2f}  p99 {l['p99']:6.2f}\")"
ETCDCTL_API=3 etcdctl --endpoints $CLUSTER_URLS endpoint status -w table > $OUT/status.txt 2>&1 || true
echo "${CLUSTER_PIDS[@]}" > $OUT/pids
