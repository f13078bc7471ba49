#!/usr/bin/env bash
# Alternating compare.sh runs (3 members, put and txn at 1, 16 and 64 clients) with and without the O_SYNC->O_DSYNC shim on Arbiter's members.
# Build the shim first: gcc -shared -fPIC -O2 -o /tmp/dsync.so bench/results/20261206T012316Z-cluster-dsync-ab/dsync.c -ldl
SHIM=${SHIM:-/tmp/dsync.so}; REPORT=${REPORT:-/tmp/dsync-report}
cd "$(dirname "$0")/../../.."
for r in 1 2; do
  for v in default dsync; do
    rm -f $REPORT
    if [ $v = dsync ]; then e="LD_PRELOAD=$SHIM DSYNC_SHIM_REPORT=$REPORT"; else e=""; fi
    echo "== round $r $v start $(date -u +%H:%M:%S)"
    ARBITER_ENV="$e" MEMBERS=3 DURATION_S=6 WORKLOADS="put txn" CLIENT_COUNTS="1 16 64" bench/compare.sh 2>&1 | grep -E "done:" | tail -1
    [ -f $REPORT ] && sort $REPORT | uniq -c
  done
done
