#!/usr/bin/env bash
# A/B of two Arbiter builds (or one build with two environments) side by side on loopback: both
# servers run at once, data on the repository's disk, every cell alternates A and B and repeats.
# For deciding whether a change helps when the machine is too noisy for single runs; compare.sh
# is for the comparison with etcd. Build dirs are copies of src/Arbiter.Cli/bin/Release/net10.0.
# Usage: WORKLOADS="put txn" CLIENTS="1 16 64" REPEATS=3 bench/ab.sh /tmp/arb-old /tmp/arb-new
#        ENV_B="DOTNET_gcConcurrent=0" bench/ab.sh /tmp/arb /tmp/arb      (runtime knob)
#        ARGS_A=--lock-grants-await-fsync WORKLOADS=bank CLIENTS=1 bench/ab.sh $B $B   (serve flag;
#        B=src/Arbiter.Cli/bin/Release/net10.0; 'bank' is the pessimistic transfer on 8 accounts
#        of bench/transactions.sh, one cell per run after one unmeasured one)
set -uo pipefail
cd "$(dirname "$0")/.."
A=$1; B=$2
WORKLOADS=${WORKLOADS:-"put txn"}; CLIENTS=${CLIENTS:-"1 16 64"}; REPEATS=${REPEATS:-2}; DURATION_S=${DURATION_S:-5}
BENCH=$PWD/bench/Arbiter.Bench/bin/Release/net10.0/arbiter-bench.dll
W=$(mktemp -d "$PWD/bench/.work-ab-XXXX"); OUT=${OUT:-/tmp/ab-out-$(date +%s)}; mkdir -p $OUT
PA=$((21000 + RANDOM % 5000)); PB=$((27000 + RANDOM % 5000))
env ${ENV_A:-} dotnet $A/arbiter.dll serve --data-dir $W/a --listen-client-urls http://127.0.0.1:$PA --log-level ${LOGLEVEL:-warn} ${ARGS_A:-} > $OUT/a.log 2>&1 & PIDA=$!
env ${ENV_B:-} dotnet $B/arbiter.dll serve --data-dir $W/b --listen-client-urls http://127.0.0.1:$PB --log-level ${LOGLEVEL:-warn} ${ARGS_B:-} > $OUT/b.log 2>&1 & PIDB=$!
trap 'kill $PIDA $PIDB 2>/dev/null; wait $PIDA $PIDB 2>/dev/null; rm -rf $W' EXIT
sleep 3
for w in $WORKLOADS; do for c in $CLIENTS; do for r in $(seq 1 $REPEATS); do for s in a b; do
  if [ $s = a ]; then p=$PA; pid=$PIDA; else p=$PB; pid=$PIDB; fi
  if [ $w = bank ]; then
    dotnet $BENCH transactions --arbiter http://127.0.0.1:$p --duration-s $DURATION_S --warmup-s 1 --global-warmup-s 0 --clients $c --accounts 8 \
      --families pessimistic,pessimistic --deadlock-rounds 0 --out $OUT/$w-c$c-$s-$r 2>&1 | grep 'commits/s' | tail -1 | sed "s/^/$w c=$c $s #$r  /"
    continue
  fi
  conn=$((c < 4 ? c : 4))
  dotnet $BENCH run --workload $w --clients $c --connections $conn --key-space 1000 --value-size 256 --duration $DURATION_S --warmup 1 --endpoints http://127.0.0.1:$p --label $s --server-pid $pid --quiet --out $OUT/$w-c$c-$s-$r.json >/dev/null 2>&1
  python3 -c "
import json; r=json.load(open('$OUT/$w-c$c-$s-$r.json'))['results'][0]; l=r['latencyMs']
print(f\"$w c=$c $s #$r  {r['opsPerSecond']:8.0f} ops/s  p50 {l['p50']:6.2f}  p99 {l['p99']:6.2f}  p99.9 {l['p999']:7.2f}  max {l['max']:7.1f}  cpu/op {r['extra'].get('serverCpuUsPerOp',0)}\")"
done; done; done; done
