#!/usr/bin/env bash
# How long `etcdctl move-leader` takes on a 3-member etcd and a 3-member Arbiter (same flags, etcd's
# default timing, no load), moves alternating between the systems: the command's wall time and exit
# code, then the time until every member agrees the target leads. Run from the repository root after
# a Release build: bench/results/<this folder>/move-leader.sh  (MOVES=6)
set -euo pipefail
cd "$(dirname "$0")/../../.."
ROOT=$PWD
source bench/lib.sh
log() { echo "[move-leader] $*" >&2; }
MOVES=${MOVES:-6}
OUT=$(cd "$(dirname "$0")" && pwd)
WORK=$(mktemp -d "$ROOT/bench/.work-XXXXXX")
ARBITER_DLL=$ROOT/src/Arbiter.Cli/bin/Release/net10.0/arbiter.dll
trap stop_cluster_pair EXIT INT TERM
mkdir -p "$OUT/raw"
start_cluster_pair "$WORK/data" "$OUT/raw"
ms() { date +%s%3N; }
member_id() { ETCDCTL_API=3 etcdctl --endpoints="$1" --command-timeout=2s endpoint status -w json | python3 -c 'import json,sys; print(format(json.load(sys.stdin)[0]["Status"]["header"]["member_id"], "x"))'; }
echo "system,move,command_ms,exit,agreed_ms" >"$OUT/moves.csv"
for move in $(seq 1 "$MOVES"); do
  for system in etcd arbiter; do
    if [ $system = etcd ]; then urls=$ETCD_URLS; else urls=$ARBITER_URLS; fi
    leader=$(cluster_leader_url "$urls")
    target=""
    for url in ${urls//,/ }; do if [ "$url" != "$leader" ] && [ -z "$target" ]; then target=$url; fi; done
    id=$(member_id "$target")
    start=$(ms)
    rc=0
    ETCDCTL_API=3 etcdctl --endpoints="$leader" --command-timeout=30s move-leader "$id" >>"$OUT/raw/etcdctl.log" 2>&1 || rc=$?
    done_ms=$(($(ms) - start))
    agreed=""
    for _ in $(seq 1 300); do
      if [ "$(cluster_leader_url "$urls")" = "$target" ]; then agreed=$(($(ms) - start)); break; fi
      sleep 0.05
    done
    echo "$system,$move,$done_ms,$rc,$agreed" | tee -a "$OUT/moves.csv" >&2
  done
done
