#!/usr/bin/env bash
# Start-up benchmark (issue #12: a restarted member should serve within about a second). For a single
# node and for a follower of a running 3-member cluster, each with a data directory holding KEYS keys
# of history, the server is killed (SIGKILL, as a crash) and started again RUNS times; each start is
# timed from the exec of `arbiter serve` (or etcd) by bench/startup_probe.py:
#   ready    the server's own "ready" line (Arbiter: "ready at revision"; etcd: "ready to serve client requests")
#   served   the first etcdctl read (linearizable get, 1 s timeout per try) answered through its client URL
# with the server's CPU time (user+system, /proc/PID/stat) at both moments. Variants:
#   jit   the Release build (dotnet src/Arbiter.Cli/bin/Release/net10.0/arbiter.dll), as the README runs it
#   r2r   the ReadyToRun publish of scripts/publish.sh (dotnet <dir>/arbiter.dll; ARBITER_BIN=DLL to time another)
#   etcd  etcd 3.4 (Debian's etcd-server), the comparison
#   base  another Arbiter build to compare with, BASE_DLL=…/arbiter.dll (e.g. the previous commit's Release build)
# Runs alternate between the variants, so a change in the machine's load hits all of them.
# Writes bench/results/startup-<stamp>/{results.md,machine.md,raw/runs.jsonl,raw/*.log}.
# Usage: bench/startup.sh     (RUNS=3 KEYS=20000 VALUE_SIZE=256 VARIANTS="jit r2r etcd" SCENARIOS="single member")
#   SCENARIOS=member VARIANTS="jit etcd" KEYS=15000 VALUE_SIZE=65536 bench/startup.sh   (a follower whose
#                                              Raft log since the last snapshot is about a gigabyte)
# A default run takes about two minutes after the builds (the first publish takes a few more).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"

RUNS=${RUNS:-3}
KEYS=${KEYS:-20000}
VALUE_SIZE=${VALUE_SIZE:-256}
VARIANTS=${VARIANTS:-"jit r2r etcd"}
SCENARIOS=${SCENARIOS:-"single member"}
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
OUT=${OUT:-$ROOT/bench/results/startup-$STAMP}
WORK=$(mktemp -d /tmp/arbiter-startup-XXXXXX)
declare -A RUNNING=() # pids of servers the probe started that may still run (not this shell's children)

log() { echo "[startup $(date -u +%H:%M:%S.%3N)] $*" >&2; }

# Kills a process that is not this shell's child and waits until it is gone: stop_hard PID [SIGNAL]
stop_hard() {
  local pid=$1 signal=${2:-KILL}
  unset "RUNNING[$pid]"
  kill "-$signal" "$pid" 2>/dev/null || return 0
  for _ in $(seq 1 300); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.05
  done
  kill -KILL "$pid" 2>/dev/null || true
}
cleanup() {
  local pid
  for pid in "${!RUNNING[@]}"; do stop_hard "$pid"; done
  stop_pids "${CLUSTER_PIDS[@]:-}"
  rm -rf "$WORK" "$BENCH_PORTS_GIVEN"
}
trap cleanup EXIT INT TERM

ensure_packages etcd etcd-server etcd-client
ensure_packages etcdctl etcd-server etcd-client
build_bench_tools
R2R_DLL=${ARBITER_BIN:-}
if [[ " $VARIANTS " == *" r2r "* && -z "$R2R_DLL" ]]; then
  log "publishing Arbiter ReadyToRun (scripts/publish.sh)"
  scripts/publish.sh >&2
  R2R_DLL=$ROOT/artifacts/arbiter-linux-x64/arbiter.dll
fi
mkdir -p "$OUT/raw"

# The command that runs a variant's server (Arbiter variants take `serve …` after it).
server_command() {
  case $1 in
    jit) echo "dotnet $ARBITER_DLL serve" ;;
    r2r) echo "dotnet $R2R_DLL serve" ;;
    etcd) echo etcd ;;
    base) echo "dotnet ${BASE_DLL:?VARIANTS has base: set BASE_DLL to the arbiter.dll to compare with} serve" ;;
  esac
}
ready_pattern() { if [ "$1" = etcd ]; then echo "ready to serve client requests"; else echo "ready at revision"; fi; }

# Writes KEYS keys through URLS (arbiter-bench's fill: every key once).
fill() {
  log "writing $KEYS keys through $1"
  dotnet "$BENCH_DLL" run --endpoints "$1" --workload fill --total "$KEYS" --key-space "$KEYS" --value-size "$VALUE_SIZE" --warmup 0 \
    --clients 64 --connections 8 --quiet >"$OUT/raw/fill-$2.txt"
}

# One timed start: probe SCENARIO VARIANT RUN URL LOG COMMAND... ; leaves the server running (pid in PROBED_PID).
probe() {
  local scenario=$1 variant=$2 run=$3 url=$4 server_log=$5 json
  shift 5
  json=$(python3 "$ROOT/bench/startup_probe.py" --log "$server_log" --ready "$(ready_pattern "$variant")" --endpoint "$url" -- "$@") || true
  PROBED_PID=$(echo "$json" | python3 -c 'import json,sys; print(json.load(sys.stdin)["pid"])')
  RUNNING[$PROBED_PID]=1
  echo "$json" | python3 -c 'import json,sys; r=json.load(sys.stdin); r.update(scenario=sys.argv[1], variant=sys.argv[2], run=int(sys.argv[3]), load=open("/proc/loadavg").read().split()[0]); print(json.dumps(r))' \
    "$scenario" "$variant" "$run" >>"$OUT/raw/runs.jsonl"
  log "$scenario $variant run $run: $(tail -1 "$OUT/raw/runs.jsonl")"
}

# The variants of one system in run order: the Arbiter ones, or etcd.
variants_of() {
  local v
  for v in $VARIANTS; do
    if { [ "$1" = etcd ] && [ "$v" = etcd ]; } || { [ "$1" = arbiter ] && [ "$v" != etcd ]; }; then echo "$v"; fi
  done
}

single_node() { # system
  local system=$1 port dir run variant url pid
  port=$(free_port)
  url="http://127.0.0.1:$port"
  dir="$WORK/single-$system"
  local -a flags=(--name s1 --data-dir "$dir" --listen-client-urls "$url" --advertise-client-urls "$url")
  if [ "$system" = etcd ]; then
    local peer
    peer="http://127.0.0.1:$(free_port)"
    flags+=(--listen-peer-urls "$peer" --initial-advertise-peer-urls "$peer" --initial-cluster "s1=$peer")
  fi
  [ -n "$(variants_of "$system")" ] || return 0
  # History first, written by the first variant's server, which is then killed like every start after.
  variant=$(variants_of "$system" | head -1)
  # shellcheck disable=SC2046
  $(server_command "$variant") "${flags[@]}" >"$OUT/raw/single-$system-fill.log" 2>&1 &
  pid=$!
  wait_endpoint_ready "$url" "$pid"
  fill "$url" "single-$system"
  kill -KILL "$pid"
  wait "$pid" 2>/dev/null || true
  for run in $(seq 1 "$RUNS"); do
    for variant in $(variants_of "$system"); do
      # shellcheck disable=SC2046
      probe single "$variant" "$run" "$url" "$OUT/raw/single-$variant.log" $(server_command "$variant") "${flags[@]}"
      stop_hard "$PROBED_PID"
    done
  done
}

cluster_member() { # system
  local system=$1 run variant leader i pid
  [ -n "$(variants_of "$system")" ] || return 0
  log "$system: starting 3 members"
  start_cluster "$system" "$WORK/cluster" "$OUT/raw/member-$system-start-"
  wait_cluster_ready "$CLUSTER_URLS" "${CLUSTER_PIDS[@]}"
  fill "$CLUSTER_URLS" "member-$system"
  local -a urls
  IFS=, read -r -a urls <<<"$CLUSTER_URLS"
  for run in $(seq 1 "$RUNS"); do
    for variant in $(variants_of "$system"); do
      wait_cluster_ready "$CLUSTER_URLS" "${CLUSTER_PIDS[@]}"
      # A follower: a member that leads would add an election to its own restart.
      leader=$(cluster_leader_url "$CLUSTER_URLS")
      for i in 2 1 0; do if [ "${urls[i]}" != "$leader" ]; then break; fi; done
      pid=${CLUSTER_PIDS[i]}
      if [ -n "${RUNNING[$pid]:-}" ]; then stop_hard "$pid"; else kill -KILL "$pid"; wait "$pid" 2>/dev/null || true; fi
      local -a args
      eval "args=(${CLUSTER_ARGS[i + 1]})"
      if [ "$system" = arbiter ]; then args+=(--log-level info); fi
      # shellcheck disable=SC2046
      probe member "$variant" "$run" "${urls[i]}" "$OUT/raw/member-$variant.log" $(server_command "$variant") "${args[@]}"
      CLUSTER_PIDS[i]=$PROBED_PID
    done
  done
  for pid in "${CLUSTER_PIDS[@]}"; do stop_hard "$pid" TERM; done
  CLUSTER_PIDS=()
  rm -rf "$WORK/cluster"
}

{
  echo "| | |"
  echo "|---|---|"
  echo "| date | $STAMP |"
  echo "| commit | $(git rev-parse --short HEAD)$(git diff --quiet || echo ' (uncommitted changes)') |"
  echo "| cpus | $(nproc) |"
  echo "| etcd | $(etcd --version | head -1) |"
  echo "| dotnet | $(dotnet --version) |"
  echo "| runs | $RUNS per variant; $KEYS keys of history, values of $VALUE_SIZE B; variants: $VARIANTS; scenarios: $SCENARIOS |"
  if [[ " $VARIANTS " == *" base "* ]]; then echo "| base | $BASE_DLL |"; fi
  echo "| load average at start | $(cut -d' ' -f1-3 /proc/loadavg) |"
} >"$OUT/machine.md"

for scenario in $SCENARIOS; do
  for system in arbiter etcd; do
    case $scenario in
      single) single_node "$system" ;;
      member) cluster_member "$system" ;;
      *) log "unknown scenario $scenario"; exit 2 ;;
    esac
  done
done
echo "| load average at end | $(cut -d' ' -f1-3 /proc/loadavg) |" >>"$OUT/machine.md"

python3 - "$OUT" <<'PY' >"$OUT/results.md"
import json, statistics, sys
out = sys.argv[1]
runs = [json.loads(line) for line in open(f"{out}/raw/runs.jsonl")]
def cell(values):
    values = [v for v in values if v is not None]
    if not values:
        return "-"
    return f"{statistics.median(values):.2f} ({min(values):.2f}–{max(values):.2f})"
print("# Start-up time: exec to ready and to the first answered read\n")
print(open(f"{out}/machine.md").read())
print("Seconds, median (min–max) over the runs. *ready*: the server's ready line; *served*: the first")
print("etcdctl read (linearizable get) answered on its client URL; CPU: the server's user+system time then.\n")
print("| scenario | variant | runs | ready (wall) | served (wall) | CPU at ready | CPU at served | failed |")
print("|---|---|---|---|---|---|---|---|")
for scenario in ("single", "member"):
    for variant in ("base", "jit", "r2r", "etcd"):
        rows = [r for r in runs if r["scenario"] == scenario and r["variant"] == variant]
        if not rows:
            continue
        ok = [r for r in rows if r["error"] is None]
        print(f"| {scenario} | {variant} | {len(rows)} | {cell([r['ready_s'] for r in ok])} | {cell([r['served_s'] for r in ok])} "
              f"| {cell([r['ready_cpu_s'] for r in ok])} | {cell([r['served_cpu_s'] for r in ok])} | {len(rows) - len(ok)} |")
print("\nsingle: a single node restarted on its data directory; member: a follower of a running 3-member")
print("cluster (heartbeat 100 ms, election 1000 ms) killed and restarted. Load average per run in raw/runs.jsonl.")
PY
cat "$OUT/results.md"
log "results in $OUT"
