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
