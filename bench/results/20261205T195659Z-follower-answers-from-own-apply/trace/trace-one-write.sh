#!/usr/bin/env bash
# ad-hoc: 3-member Arbiter, 1-client put through a follower, perf trace on a follower and the leader
set -euo pipefail
cd /work/main; ROOT=$PWD; source bench/lib.sh
log() { echo "[probe] $*" >&2; }
OUT=${OUT:-/work/notes/probe}; mkdir -p $OUT
WORK=$(mktemp -d "$ROOT/bench/.work-XXXXXX")
ARBITER_DLL=$ROOT/src/Arbiter.Cli/bin/Release/net10.0/arbiter.dll
BENCH_DLL=$ROOT/bench/Arbiter.Bench/bin/Release/net10.0/arbiter-bench.dll
trap 'stop_pids "${CLUSTER_PIDS[@]}"; rm -rf $WORK' EXIT
start_cluster arbiter $WORK $OUT/arbiter
wait_cluster_ready "$CLUSTER_URLS" "${CLUSTER_PIDS[@]}"
leader=$(cluster_leader_url "$CLUSTER_URLS")
IFS=, read -ra urls <<<"$CLUSTER_URLS"
for i in 0 1 2; do if [ "${urls[i]}" = "$leader" ]; then L=$i; fi; done
F=$(( (L+1)%3 )); F2=$(( (L+2)%3 ))
log "leader ${urls[L]} pid ${CLUSTER_PIDS[L]}, follower ${urls[F]} pid ${CLUSTER_PIDS[F]}"
dotnet $BENCH_DLL run --endpoints "${urls[F]}" --workload put --clients 1 --connections 1 --duration ${DURATION_S:-20} --warmup 1 > $OUT/load.txt 2>&1 &
LP=$!
sleep 8
if [ -n "${TRACE:-}" ]; then
perf trace -p ${CLUSTER_PIDS[F]} -e 'pwrite64,pwritev,openat,fsync,fdatasync,sendmsg,recvmsg,sendto,recvfrom,writev,read,write' -o $OUT/trace-follower.txt -- sleep 2 2>/dev/null &
perf trace -p ${CLUSTER_PIDS[L]} -e 'pwrite64,pwritev,openat,fsync,fdatasync,sendmsg,recvmsg,sendto,recvfrom,writev,read,write' -o $OUT/trace-leader.txt -- sleep 2 2>/dev/null &
perf trace -p ${CLUSTER_PIDS[F2]} -e 'pwrite64,pwritev,openat,fsync,fdatasync' -o $OUT/trace-follower2.txt -- sleep 2 2>/dev/null &
fi
wait $LP || true
tail -2 $OUT/load.txt
