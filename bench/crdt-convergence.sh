#!/usr/bin/env bash
# CRDT tier benchmark (issue #16): convergence time after healing over many 1 | 2 iptables
# partitions (p50/p99/max), and anti-entropy bytes per update for a counter and a set at 1 and 16
# clients (from the members' arbiter_crdt_gossip_bytes_total / arbiter_crdt_updates_total).
# Runs 3 real `arbiter serve` members through the cluster test fixtures: the harness is
# tests/Arbiter.Cluster.Tests/Crdt/CrdtConvergenceBench.cs (tagged Soak and skipped unless this
# script sets ARBITER_BENCH_OUT). Needs root (iptables owner match; each member runs under its own uid).
#
# Writes bench/results/<timestamp>-crdt-convergence/{results.md,results.json,machine.md,test.log}.
# Usage: bench/crdt-convergence.sh      (ROUNDS=30; ARBITER_TEST_SEED=n replays the update counts)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
ROUNDS=${ROUNDS:-30}
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
OUT=${OUT:-$ROOT/bench/results/$STAMP-crdt-convergence}
log() { echo "[crdt-convergence $(date -u +%H:%M:%S)] $*" >&2; }

mkdir -p "$OUT"
if [ "${NO_BUILD:-0}" != 1 ]; then
  log "building"
  dotnet build tests/Arbiter.Cluster.Tests -c Release -warnaserror -nologo -v q >/dev/null
fi

{
  echo "| | |"
  echo "|---|---|"
  echo "| date (UTC) | $(date -u +%Y-%m-%dT%H:%M:%SZ) |"
  echo "| commit | $(git rev-parse --short HEAD) |"
  echo "| CPU | $(nproc) cores available ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)) |"
  echo "| load average at start | $(cut -d' ' -f1-3 /proc/loadavg) |"
  echo "| rounds | $ROUNDS |"
} >"$OUT/machine.md"

log "running $ROUNDS rounds; results in $OUT"
status=0
ARBITER_BENCH_OUT=$OUT ARBITER_BENCH_ROUNDS=$ROUNDS dotnet test tests/Arbiter.Cluster.Tests -c Release --no-build \
  --filter "FullyQualifiedName~CrdtConvergenceBench" --logger "console;verbosity=detailed" >"$OUT/test.log" 2>&1 || status=$?
echo "| load average at end | $(cut -d' ' -f1-3 /proc/loadavg) |" >>"$OUT/machine.md"
if [ "$status" -ne 0 ] || [ ! -f "$OUT/results.md" ]; then
  log "the run failed (exit $status); see $OUT/test.log"
  exit 1
fi
cat "$OUT/results.md"
