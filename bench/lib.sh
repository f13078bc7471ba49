#!/usr/bin/env bash
# Shared by the bench/*.sh scripts (sourced, not run): free ports, stopping servers, Debian
# packages, building the server and the load generator. Expects the caller to be in the repository
# root, to define log(), and (for build_bench_tools) to have set ROOT.

# A TCP port nothing listens on (not etcd's 2379/2380), below the kernel's ephemeral range (32768+ here), so a client connection's local port cannot
# take it between the check and the server's bind, and never one this run handed out already.
BENCH_PORTS_GIVEN=${BENCH_PORTS_GIVEN:-/tmp/arbiter-bench-ports.$$}
free_port() {
  local port low
  low=$(cut -f1 /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
  while true; do
    port=$((20000 + RANDOM % (low - 20000)))
    if grep -qx "$port" "$BENCH_PORTS_GIVEN" 2>/dev/null; then continue; fi
    if ! ss -ltn "( sport = :$port )" 2>/dev/null | grep -q ":$port"; then
      echo "$port" >>"$BENCH_PORTS_GIVEN"
      echo "$port"
      return
    fi
  done
}

# Stops every given process that still runs (SIGTERM, then waits for it); empty arguments are skipped.
stop_pids() {
  local pid
  for pid in "$@"; do
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
      kill "$pid" 2>/dev/null || true
      wait "$pid" 2>/dev/null || true
    fi
  done
}

# Installs Debian packages when the command that says they are there is missing:
#   ensure_packages COMMAND PACKAGE...
ensure_packages() {
  local command=$1
  shift
  if command -v "$command" >/dev/null 2>&1; then
    return
  fi
  log "installing $* from Debian"
  local sudo=()
  if [ "$(id -u)" -ne 0 ]; then sudo=(sudo); fi
  "${sudo[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq "$@" >/dev/null
}

# Builds the server and arbiter-bench (Release); sets ARBITER_DLL and BENCH_DLL.
build_bench_tools() {
  log "building Arbiter and the load generator (Release)"
  dotnet build src/Arbiter.Cli -c Release -nologo -v q >/dev/null
  dotnet build bench/Arbiter.Bench -c Release -nologo -v q >/dev/null
  ARBITER_DLL=$ROOT/src/Arbiter.Cli/bin/Release/net10.0/arbiter.dll
  BENCH_DLL=$ROOT/bench/Arbiter.Bench/bin/Release/net10.0/arbiter-bench.dll
}

# Waits until an etcd v3 endpoint answers a read (etcdctl), or its process exits: wait_endpoint_ready URL PID [TRIES]
# (each try waits 0.2 s; the default, 150, is 30 s). Needs $OUT for the message naming the logs.
wait_endpoint_ready() {
  local url=$1 pid=$2 tries=${3:-150}
  for _ in $(seq 1 "$tries"); do
    if ! kill -0 "$pid" 2>/dev/null; then
      log "server for $url exited; see its log in $OUT"
      return 1
    fi
    if ETCDCTL_API=3 etcdctl --endpoints="$url" --command-timeout=2s get /bench-ready >/dev/null 2>&1; then
      return 0
    fi
    sleep 0.2
  done
  log "server for $url did not become ready"
  return 1
}

# Starts a 3-member cluster of etcd or Arbiter on free loopback ports, both with the same timing
# flags (etcd's defaults unless HEARTBEAT_MS/ELECTION_MS say otherwise):
#   start_cluster etcd|arbiter DATA_DIR LOG_PREFIX
# Member i keeps its data in DATA_DIR/<system><i> and logs to LOG_PREFIX<i>.log. Sets
# CLUSTER_URLS (the members' client URLs, comma-separated, member order) and CLUSTER_PIDS (array);
# the caller stops the pids (stop_pids). CLUSTER_ARGS[i] holds member i's flags, shell-quoted, for a
# caller that restarts it (bench/startup.sh: eval "args=(${CLUSTER_ARGS[i]})"). ARBITER_ENV (NAME=value
# words) is the Arbiter members' extra environment, e.g. a runtime knob; ARBITER_ARGS (words) their
# extra serve flags, e.g. ARBITER_ARGS="--raft-log-pages mapped".
start_cluster() {
  local system=$1 data=$2 logs=$3 i name initial=""
  local -a client peer
  CLUSTER_PIDS=()
  CLUSTER_ARGS=()
  CLUSTER_URLS=""
  for i in 1 2 3; do
    client[i]=$(free_port)
    peer[i]=$(free_port)
    initial="$initial,${system:0:1}$i=http://127.0.0.1:${peer[i]}"
    CLUSTER_URLS="$CLUSTER_URLS,http://127.0.0.1:${client[i]}"
  done
  initial=${initial#,}
  CLUSTER_URLS=${CLUSTER_URLS#,}
  for i in 1 2 3; do
    name=${system:0:1}$i
    local common=(--name "$name" --data-dir "$data/$system$i"
      --listen-client-urls "http://127.0.0.1:${client[i]}" --advertise-client-urls "http://127.0.0.1:${client[i]}"
      --listen-peer-urls "http://127.0.0.1:${peer[i]}" --initial-advertise-peer-urls "http://127.0.0.1:${peer[i]}"
      --initial-cluster "$initial" --initial-cluster-state new
      --heartbeat-interval "${HEARTBEAT_MS:-100}" --election-timeout "${ELECTION_MS:-1000}")
    if [ "$system" = etcd ]; then common+=(--initial-cluster-token "bench-$$"); fi
    CLUSTER_ARGS[i]=$(printf '%q ' "${common[@]}")
    if [ "$system" = etcd ]; then
      etcd "${common[@]}" >"$logs$i.log" 2>&1 &
    else
      # shellcheck disable=SC2086 # ARBITER_ENV and ARBITER_ARGS are lists of words
      env ${ARBITER_ENV:-} dotnet "$ARBITER_DLL" serve "${common[@]}" ${ARBITER_ARGS:-} --log-level warn >"$logs$i.log" 2>&1 &
    fi
    CLUSTER_PIDS+=($!)
  done
}

# Starts a 3-member etcd and a 3-member Arbiter side by side (start_cluster: same flags, free
# ports) and waits until both are ready (wait_cluster_ready): start_cluster_pair DATA_DIR LOG_DIR.
# Sets ETCD_URLS, ETCD_PIDS, ARBITER_URLS and ARBITER_PIDS; the pids are set before the wait, so a
# caller's exit trap that stops them (stop_pids) also stops a pair that never became ready.
# The exit trap of a script that runs start_cluster_pair in $WORK: stops both clusters, removes
# $WORK. Usage: trap stop_cluster_pair EXIT INT TERM (before start_cluster_pair).
ETCD_PIDS=()
ARBITER_PIDS=()
stop_cluster_pair() {
  stop_pids "${ETCD_PIDS[@]}" "${ARBITER_PIDS[@]}"
  rm -rf "$WORK"
}

start_cluster_pair() {
  local data=$1 logs=$2
  start_cluster etcd "$data" "$logs/etcd"
  ETCD_PIDS=("${CLUSTER_PIDS[@]}")
  ETCD_URLS=$CLUSTER_URLS
  start_cluster arbiter "$data" "$logs/arbiter"
  ARBITER_PIDS=("${CLUSTER_PIDS[@]}")
  ARBITER_URLS=$CLUSTER_URLS
  log "started 3-member etcd ($ETCD_URLS) and Arbiter ($ARBITER_URLS), data in $data"
  wait_cluster_ready "$ETCD_URLS" "${ETCD_PIDS[@]}"
  wait_cluster_ready "$ARBITER_URLS" "${ARBITER_PIDS[@]}"
}

# The client URL of the member the others agree leads, or nothing: cluster_leader_url URLS
# (comma-separated client URLs; etcdctl's endpoint status, which both systems answer).
cluster_leader_url() {
  python3 - "$1" <<'PY'
import json, subprocess, sys
ids, leaders = {}, set()
for url in sys.argv[1].split(","):
    try:
        out = subprocess.run(["etcdctl", "--endpoints", url, "--command-timeout=2s", "endpoint", "status", "-w", "json"],
                             capture_output=True, text=True, timeout=5, env={"ETCDCTL_API": "3", "PATH": "/usr/bin:/bin"})
        header = json.loads(out.stdout)[0]["Status"]
        ids[header["header"]["member_id"]] = url
        leaders.add(header["leader"])
    except Exception:
        continue
if len(leaders) == 1 and (leader := leaders.pop()) in ids and len(ids) == len(sys.argv[1].split(",")):
    print(ids[leader])
PY
}

# Waits until every member of a cluster acknowledges a write and all agree on one leader, or a
# member exits: wait_cluster_ready URLS PID... (up to 60 s; needs $OUT for the message naming the logs).
wait_cluster_ready() {
  local urls=$1 deadline=$((SECONDS + 60)) url pid ok
  shift
  while [ $SECONDS -lt $deadline ]; do
    for pid in "$@"; do
      if ! kill -0 "$pid" 2>/dev/null; then
        log "a member of $urls exited; see its log in $OUT"
        return 1
      fi
    done
    ok=1
    for url in ${urls//,/ }; do
      ETCDCTL_API=3 etcdctl --endpoints="$url" --command-timeout=2s put /bench-ready 1 >/dev/null 2>&1 || ok=0
    done
    if [ $ok = 1 ] && [ -n "$(cluster_leader_url "$urls")" ]; then
      return 0
    fi
    sleep 0.2
  done
  log "cluster $urls did not become ready (a write through every member and one agreed leader)"
  return 1
}
