#!/usr/bin/env bash
# Failover benchmark (issue #12): the same seeded fault schedule against a 3-member etcd 3.4 and a
# 3-member Arbiter, one after the other in one run, both with etcd's default timing (heartbeat
# 100 ms, election 1000 ms). Writers (arbiter-bench failover-load: 2 per member, pinned, each put with
# a 2 s client deadline) run throughout. The faults hit the current leader:
#   kill     SIGKILL, restarted after FAULT_MS
#   stop     SIGSTOP for FAULT_MS (longer than the election timeout), then SIGCONT
#   isolate  iptables drops its packets to and from the other members for FAULT_MS, then heals
# Reports per fault kind the write outage (fault -> first acknowledged write sent after it) p50/max
# and how the requests through the surviving members during the outages ended (deadline vs error).
# Needs root (iptables owner and connmark matches; each member runs under its own uid through setpriv).
#
# Writes bench/results/failover-<timestamp>/{results.md,results.json,machine.md,raw/*}.
# Usage: bench/failover.sh            (SEED=12 ROUNDS=4 KINDS="kill stop isolate" FAULT_MS=3000)
#        ARBITER_BIN=artifacts/arbiter-linux-x64/arbiter.dll bench/failover.sh
#                                     runs that Arbiter build (the ReadyToRun publish of scripts/publish.sh,
#                                     as production members run) instead of the Release build
#        ARBITER_ARGS="--raft-log-pages mapped" KINDS=kill bench/failover.sh   (extra serve flags for
#                                     every Arbiter member, recorded in machine.md)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"

SEED=${SEED:-12}
ROUNDS=${ROUNDS:-4}
KINDS=${KINDS:-"kill stop isolate"}
FAULT_MS=${FAULT_MS:-3000}
DEADLINE_MS=${DEADLINE_MS:-2000}
HEARTBEAT_MS=${HEARTBEAT_MS:-100}
ELECTION_MS=${ELECTION_MS:-1000}
SYSTEMS=${SYSTEMS:-"etcd arbiter"}
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
OUT=${OUT:-$ROOT/bench/results/failover-$STAMP}
WORK=$(mktemp -d /tmp/arbiter-failover-XXXXXX)
chmod 755 "$WORK"
TAG="arbiter-bench-failover-$$"
UID_BASE=${UID_BASE:-$((62000 + ($$ % 500) * 4))}

PIDS=(0 0 0)
LOAD_PID=""
log() { echo "[failover $(date -u +%H:%M:%S.%3N)] $*" >&2; }
now_ms() { date +%s%3N; }

remove_rules() { # table: removes every rule of this run (each carries the comment tag) from it
  { iptables -w 10 -t "$1" -S OUTPUT 2>/dev/null | grep -- "$TAG" || true; } | sed 's/^-A /-D /' | while read -r rule; do
    eval "iptables -w 10 -t $1 $rule" || true
  done
}
heal_all() { remove_rules filter; }
stop_members() {
  local i
  for i in 0 1 2; do
    if [ "${PIDS[$i]}" != 0 ] && kill -0 "${PIDS[$i]}" 2>/dev/null; then
      kill -CONT "${PIDS[$i]}" 2>/dev/null || true
      kill -9 "${PIDS[$i]}" 2>/dev/null || true
      wait "${PIDS[$i]}" 2>/dev/null || true
    fi
    PIDS[$i]=0
  done
}
cleanup() {
  heal_all
  remove_rules mangle
  if [ -n "$LOAD_PID" ]; then kill "$LOAD_PID" 2>/dev/null || true; fi
  stop_members
  rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

ensure_packages etcd etcd-server etcd-client
ensure_packages etcdctl etcd-server etcd-client
ensure_packages iptables iptables
ensure_packages setpriv util-linux
ensure_packages jq jq

build_bench_tools
if [ -n "${ARBITER_BIN:-}" ]; then
  ARBITER_DLL=$(realpath "$ARBITER_BIN")
  [ -f "$ARBITER_DLL" ] || { log "ARBITER_BIN=$ARBITER_BIN: no such file"; exit 2; }
fi
mkdir -p "$OUT/raw"

declare -A CLIENT_PORT PEER_PORT

start_member() { # system index
  local system=$1 i=$2 uid=$((UID_BASE + $2)) dir="$WORK/$1/m$2"
  local cluster="m0=http://127.0.0.1:${PEER_PORT[${system}0]},m1=http://127.0.0.1:${PEER_PORT[${system}1]},m2=http://127.0.0.1:${PEER_PORT[${system}2]}"
  local client="http://127.0.0.1:${CLIENT_PORT[$system$i]}" peer="http://127.0.0.1:${PEER_PORT[$system$i]}"
  local state=new
  if [ -d "$dir" ]; then state=existing; fi
  mkdir -p "$dir"
  chown "$uid:$uid" "$dir"
  if [ "$system" = etcd ]; then
    setpriv --reuid="$uid" --regid="$uid" --clear-groups env HOME="$dir" \
      etcd --name "m$i" --data-dir "$dir/data" --listen-client-urls "$client" --advertise-client-urls "$client" \
      --listen-peer-urls "$peer" --initial-advertise-peer-urls "$peer" --initial-cluster "$cluster" \
      --initial-cluster-state new --initial-cluster-token bench-failover \
      --heartbeat-interval "$HEARTBEAT_MS" --election-timeout "$ELECTION_MS" >>"$OUT/raw/$system-m$i.log" 2>&1 &
  else
    setpriv --reuid="$uid" --regid="$uid" --clear-groups env HOME="$dir" DOTNET_CLI_HOME="$dir" \
      dotnet "$ARBITER_DLL" serve --name "m$i" --data-dir "$dir/data" --listen-client-urls "$client" \
      --initial-advertise-peer-urls "$peer" --initial-cluster "$cluster" --initial-cluster-token bench-failover \
      --heartbeat-interval "$HEARTBEAT_MS" --election-timeout "$ELECTION_MS" ${ARBITER_ARGS:-} >>"$OUT/raw/$system-m$i.log" 2>&1 &
  fi
  PIDS[$i]=$!
  : "$state"
}

endpoints() { echo "http://127.0.0.1:${CLIENT_PORT[${1}0]},http://127.0.0.1:${CLIENT_PORT[${1}1]},http://127.0.0.1:${CLIENT_PORT[${1}2]}"; }

leader_index() { # system -> index of the member every reachable member agrees leads, or empty
  local system=$1 i status leader="" id
  declare -A ids
  for i in 0 1 2; do
    status=$(ETCDCTL_API=3 timeout 3 etcdctl --endpoints="http://127.0.0.1:${CLIENT_PORT[$system$i]}" --command-timeout=1s endpoint status -w json 2>/dev/null) || continue
    id=$(echo "$status" | jq -r '.[0].Status.header.member_id')
    ids[$id]=$i
    leader=$(echo "$status" | jq -r '.[0].Status.leader')
  done
  if [ -n "$leader" ] && [ -n "${ids[$leader]:-}" ]; then echo "${ids[$leader]}"; fi
}

wait_healthy() { # system: a leader agreed and a write through every member acknowledged
  local system=$1 deadline=$((SECONDS + 120)) i ok
  while [ $SECONDS -lt $deadline ]; do
    ok=1
    for i in 0 1 2; do
      ETCDCTL_API=3 timeout 5 etcdctl --endpoints="http://127.0.0.1:${CLIENT_PORT[$system$i]}" --command-timeout=2s put failover-health "$i" >/dev/null 2>&1 || ok=0
    done
    if [ $ok = 1 ] && [ -n "$(leader_index "$system")" ]; then return 0; fi
    sleep 0.2
  done
  log "$system did not become healthy"; return 1
}

# Every connection is marked with the uid of the member that opened it, so that isolate() can also
# drop what flows back on connections the other side opened: etcd streams Raft messages over the
# response of a connection its peer opened, which a destination-port rule alone does not catch.
mark_connections() {
  local i
  for i in 0 1 2; do
    iptables -w 10 -t mangle -I OUTPUT 1 -m conntrack --ctstate NEW -m owner --uid-owner $((UID_BASE + i)) -m comment --comment "$TAG" -j CONNMARK --set-mark $((UID_BASE + i))
  done
}

isolate() { # system index
  # All rules in one iptables-restore transaction: inserted one iptables call at a time (10-30 ms
  # each), the member first cut off fell behind the other for those milliseconds, so its candidacy
  # was always refused for a shorter log, and traffic was already partly cut before the fault's
  # timestamp.
  local system=$1 i=$2 j others="" rules=""
  for j in 0 1 2; do
    if [ "$j" != "$i" ]; then
      others="$others,${PEER_PORT[$system$j]},${CLIENT_PORT[$system$j]}"
      rules+="-I OUTPUT 1 -p tcp -m owner --uid-owner $((UID_BASE + j)) -m multiport --dports ${PEER_PORT[$system$i]},${CLIENT_PORT[$system$i]} -m comment --comment $TAG -j DROP"$'\n'
      rules+="-I OUTPUT 1 -p tcp -m owner --uid-owner $((UID_BASE + j)) -m connmark --mark $((UID_BASE + i)) -m comment --comment $TAG -j DROP"$'\n'
      rules+="-I OUTPUT 1 -p tcp -m owner --uid-owner $((UID_BASE + i)) -m connmark --mark $((UID_BASE + j)) -m comment --comment $TAG -j DROP"$'\n'
    fi
  done
  rules+="-I OUTPUT 1 -p tcp -m owner --uid-owner $((UID_BASE + i)) -m multiport --dports ${others#,} -m comment --comment $TAG -j DROP"$'\n'
  # Retransmissions from sockets closed meanwhile have no owner: drop them too (see IptablesPartition).
  rules+="-I OUTPUT 1 -p tcp -m owner ! --socket-exists -m multiport --dports ${PEER_PORT[$system$i]},${CLIENT_PORT[$system$i]}${others} -m comment --comment $TAG -j DROP"$'\n'
  printf '*filter\n%sCOMMIT\n' "$rules" | iptables-restore --noflush
}

run_system() { # system
  local system=$1 round kind i leader fault_ms heal_ms gap_ms
  # Drawn just before use (other test runs take ports meanwhile), and before the schedule's seed is
  # set, so the schedule is the same for both systems.
  for i in 0 1 2; do CLIENT_PORT[$system$i]=$(free_port); PEER_PORT[$system$i]=$(free_port); done
  log "$system: starting 3 members (uids $UID_BASE..$((UID_BASE + 2)))"
  remove_rules mangle
  mark_connections
  for i in 0 1 2; do start_member "$system" "$i"; done
  wait_healthy "$system"
  rm -f "$WORK/stop-load"
  dotnet "$BENCH_DLL" failover-load --endpoints "$(endpoints "$system")" --clients-per-endpoint 2 --deadline-ms "$DEADLINE_MS" \
    --duration-s 3600 --stop-file "$WORK/stop-load" --out "$OUT/raw/$system-requests.csv" >/dev/null &
  LOAD_PID=$!
  sleep 3
  echo "kind,endpoint,fault_ms,heal_ms" >"$OUT/raw/$system-faults.csv"
  RANDOM=$SEED
  for round in $(seq 1 "$ROUNDS"); do
    # The kinds in a seeded order each round, with a seeded pause before each fault. RANDOM is
    # drawn in this shell only: bash reseeds it in every subshell.
    local keyed=() k
    for k in $KINDS; do keyed+=("$RANDOM $k"); done
    for kind in $(printf '%s\n' "${keyed[@]}" | sort -n | cut -d' ' -f2); do
      gap_ms=$((2000 + RANDOM % 2000))
      sleep "$(printf '%d.%03d' $((gap_ms / 1000)) $((gap_ms % 1000)))"
      wait_healthy "$system"
      leader=$(leader_index "$system")
      if [ -z "$leader" ]; then log "$system: no leader before round $round $kind"; continue; fi
      case $kind in
        kill) kill -9 "${PIDS[$leader]}"; wait "${PIDS[$leader]}" 2>/dev/null || true ;;
        stop) kill -STOP "${PIDS[$leader]}" ;;
        isolate) isolate "$system" "$leader" ;;
      esac
      # The fault counts from when it is in place (iptables-restore returns after its transaction).
      fault_ms=$(now_ms)
      log "$system round $round: $kind of leader m$leader"
      sleep "$(printf '%d.%03d' $((FAULT_MS / 1000)) $((FAULT_MS % 1000)))"
      case $kind in
        kill) start_member "$system" "$leader" ;;
        stop) kill -CONT "${PIDS[$leader]}" ;;
        isolate) heal_all ;;
      esac
      heal_ms=$(now_ms)
      echo "$kind,$leader,$fault_ms,$heal_ms" >>"$OUT/raw/$system-faults.csv"
    done
  done
  wait_healthy "$system"
  sleep 2
  touch "$WORK/stop-load"
  wait "$LOAD_PID" || true
  LOAD_PID=""
  stop_members
}

{
  echo "| | |"
  echo "|---|---|"
  echo "| date | $STAMP |"
  echo "| commit | $(git rev-parse --short HEAD)$(git diff --quiet || echo ' (uncommitted changes)') |"
  echo "| cpus | $(nproc) |"
  echo "| etcd | $(etcd --version | head -1) |"
  echo "| arbiter | ${ARBITER_DLL#"$ROOT"/}${ARBITER_ARGS:+ (extra serve flags: $ARBITER_ARGS)} |"
  echo "| timing | heartbeat $HEARTBEAT_MS ms, election $ELECTION_MS ms (both systems) |"
  echo "| schedule | seed $SEED, $ROUNDS rounds of: $KINDS; each fault lasts $FAULT_MS ms; 2-4 s pause before each |"
  echo "| load | 6 writers (2 pinned to each member), puts, client deadline $DEADLINE_MS ms |"
  echo "| load average at start | $(cut -d' ' -f1-3 /proc/loadavg) (the machine is shared with other engineers' builds and tests) |"
} >"$OUT/machine.md"

REPORT_ARGS=()
for system in $SYSTEMS; do
  run_system "$system"
  echo "| load average after $system | $(cut -d' ' -f1-3 /proc/loadavg) |" >>"$OUT/machine.md"
  REPORT_ARGS+=(--system "$system" "$OUT/raw/$system-requests.csv" "$OUT/raw/$system-faults.csv")
done

dotnet "$BENCH_DLL" failover-report "${REPORT_ARGS[@]}" --out "$OUT/results.md" --json "$OUT/results.json"
log "results in $OUT"
