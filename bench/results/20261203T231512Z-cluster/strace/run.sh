#!/usr/bin/env bash
# Starts a 3-member Arbiter, puts load (64 clients over all members), straces one follower's fsyncs.
set -euo pipefail
cd /work/wt-cbench
ROOT=$PWD
source bench/lib.sh
log() { echo "[strace] $*" >&2; }
OUT=/tmp/cb/strace
ARBITER_DLL=$ROOT/src/Arbiter.Cli/bin/Release/net10.0/arbiter.dll
BENCH_DLL=$ROOT/bench/Arbiter.Bench/bin/Release/net10.0/arbiter-bench.dll
WORK=$(mktemp -d "$ROOT/bench/.work-XXXXXX")
PIDS=()
trap 'stop_pids "${PIDS[@]}"; rm -rf "$WORK"' EXIT
start_cluster arbiter "$WORK" "$OUT/arbiter"
PIDS=("${CLUSTER_PIDS[@]}")
wait_cluster_ready "$CLUSTER_URLS" "${PIDS[@]}"
LEADER=$(cluster_leader_url "$CLUSTER_URLS")
i=0; for u in ${CLUSTER_URLS//,/ }; do if [ "$u" != "$LEADER" ]; then FPID=${PIDS[$i]}; fi; if [ "$u" = "$LEADER" ]; then LPID=${PIDS[$i]}; fi; i=$((i+1)); done
dotnet "$BENCH_DLL" run --workload put --clients 64 --connections 6 --key-space 1000 --duration 12 --warmup 1 --endpoints "$LEADER" --quiet --out $OUT/put.json >/dev/null 2>&1 &
LOAD=$!
sleep 4
timeout 5 strace -f -c -e trace=fsync,fdatasync,msync,sync_file_range,pwrite64,write,pwritev,pwritev2 -p "$FPID" -o $OUT/follower.txt || true
timeout 5 strace -f -c -e trace=fsync,fdatasync,msync,sync_file_range,pwrite64,write,pwritev,pwritev2 -p "$LPID" -o $OUT/leader.txt || true
wait $LOAD || true
ls -la "$WORK"/arbiter1/member/raft | head -20
