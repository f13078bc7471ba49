#!/usr/bin/env bash
# Two single nodes side by side, pessimistic transfers on 8 accounts at one client, cells alternating:
# A never compacted, B compacted to its current revision before each cell. Does B keep its first cells' speed?
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
cd "$HERE/../../.."
B=${B:-src/Arbiter.Cli/bin/Release/net10.0}; REPEATS=${REPEATS:-8}; DURATION_S=${DURATION_S:-5}
BENCH=$PWD/bench/Arbiter.Bench/bin/Release/net10.0/arbiter-bench.dll
W=$(mktemp -d "$PWD/bench/.work-ab-XXXX"); OUT=${OUT:-$HERE/cells}; mkdir -p $OUT
PA=$((21000 + RANDOM % 5000)); PB=$((27000 + RANDOM % 5000))
dotnet $B/arbiter.dll serve --data-dir $W/a --listen-client-urls http://127.0.0.1:$PA --log-level warn > $OUT/a.log 2>&1 & PIDA=$!
dotnet $B/arbiter.dll serve --data-dir $W/b --listen-client-urls http://127.0.0.1:$PB --log-level warn > $OUT/b.log 2>&1 & PIDB=$!
trap 'kill $PIDA $PIDB 2>/dev/null; wait $PIDA $PIDB 2>/dev/null; rm -rf $W' EXIT
sleep 3
for r in $(seq 1 $REPEATS); do for s in a b; do
  if [ $s = a ]; then p=$PA; else p=$PB; fi
  if [ $s = b ]; then
    rev=$(ETCDCTL_API=3 etcdctl --endpoints=http://127.0.0.1:$p endpoint status -w json | python3 -c "import json,sys; print(json.load(sys.stdin)[0]['Status']['header']['revision'])")
    ETCDCTL_API=3 etcdctl --endpoints=http://127.0.0.1:$p compact $rev --physical >/dev/null
  fi
  rss=$(awk '$1=="VmRSS:"{printf "%d MiB", $2/1024}' /proc/$([ $s = a ] && echo $PIDA || echo $PIDB)/status)
  dotnet $BENCH transactions --arbiter http://127.0.0.1:$p --duration-s $DURATION_S --warmup-s 1 --global-warmup-s 0 --clients 1 --accounts 8 \
    --families pessimistic,pessimistic --deadlock-rounds 0 --out $OUT/bank-$s-$r 2>&1 | grep 'commits/s' | tail -1 | sed "s/^/bank c=1 $s #$r (rss before $rss) /"
done; done
