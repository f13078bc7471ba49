#!/usr/bin/env bash
# Warm-up curve: a fresh 3-member cluster, consecutive 8 s runs of one workload, ops/s of each.
set -euo pipefail
cd "$(dirname "$0")/../../.."
source bench/lib.sh
log() { echo "[curve] $*" >&2; }
SYSTEM=${SYSTEM:-arbiter}
ARBITER_DLL=${ARBITER_DLL:-$PWD/src/Arbiter.Cli/bin/Release/net10.0/arbiter.dll}
CLIENTS=${CLIENTS:-64}; RUNS=${RUNS:-10}
OUT=${OUT:-/tmp/prof/curve}; rm -rf $OUT; mkdir -p $OUT
WORK=$(mktemp -d "$PWD/bench/.work-prof-XXXX")
trap 'stop_pids "${CLUSTER_PIDS[@]}"; rm -rf $WORK' EXIT
start_cluster $SYSTEM $WORK $OUT/m
wait_cluster_ready "$CLUSTER_URLS" "${CLUSTER_PIDS[@]}"
BENCH=$PWD/bench/Arbiter.Bench/bin/Release/net10.0/arbiter-bench.dll
conn=$((CLIENTS < 4 ? CLIENTS : 4))
line="$SYSTEM ${WORKLOAD:-put} c=$CLIENTS:"
for r in $(seq 1 $RUNS); do
  dotnet $BENCH run --workload ${WORKLOAD:-put} --clients $CLIENTS --connections $conn --key-space 1000 --value-size 256 --duration 8 --warmup 0 --endpoints $CLUSTER_URLS --label p --quiet --out $OUT/r$r.json > /dev/null 2>&1
  line="$line $(python3 -c "import json; print(round(json.load(open('$OUT/r$r.json'))['results'][0]['opsPerSecond']))")"
done
echo "$line"
