#!/usr/bin/env bash
# Alternating kill-failover runs: default, mapped pages, history in memory; twice.
cd "$(dirname "$0")/../../.."
for r in 1 2; do
  for v in default mapped inmem; do
    case $v in default) a="";; mapped) a="--raft-log-pages mapped";; inmem) a="--keep-history-in-memory";; esac
    echo "== round $r $v start $(date -u +%H:%M:%S)"
    ARBITER_ARGS="$a" KINDS=kill ROUNDS=8 bench/failover.sh 2>&1 | grep -E "results|done" | tail -2
  done
done
