#!/usr/bin/env bash
# Alternating compare.sh runs (3 members, put and txn) with the default 6 s warm-up per workload and with 60 s.
cd "$(dirname "$0")/../../.."
for r in 1 2; do
  for w in 6 60; do
    echo "== round $r warm-up ${w}s start $(date -u +%H:%M:%S)"
    WARMUP_ALL_S=$w MEMBERS=3 DURATION_S=6 WORKLOADS="put txn" CLIENT_COUNTS="1 16 64" bench/compare.sh 2>&1 | grep -E "done:" | tail -1
  done
done
