#!/usr/bin/env bash
# Runs the load generator against etcd 3.4 and Arbiter on this machine, side by side, and writes
# bench/results/<timestamp>/{results.md,chart.png,machine.md,raw/*.json}.
#
# Both servers run at the same time on loopback (free ports, not 2379/2380), data on the same disk,
# both fsyncing before they acknowledge (etcd always fsyncs its WAL; Arbiter does by default).
# Every cell (workload x clients) runs etcd then Arbiter, alternating, so drift hits both.
#
# Usage: bench/compare.sh                     (all workloads x 1/16/64 clients, 8 s + 1 s warm-up each,
#                                              after a 6 s unmeasured warm-up of every workload per server)
#   DURATION_S=10 CLIENT_COUNTS="1 16" WORKLOADS="put txn" bench/compare.sh
#   KEY_SPACE=1 WORKLOADS="put cas-counter crdt-increment" bench/compare.sh   (one hot counter: the
#                                              eventual tier's increments next to etcd's compare-and-swap)
#   TLS=1 CLIENT_COUNTS=16 WORKLOADS="put range-linearizable" bench/compare.sh   (both servers with the
#                                              same throw-away certificates, clients over mutual TLS)
#   TLS=1 AUTH=1 CLIENT_COUNTS=16 WORKLOADS="put range-linearizable" bench/compare.sh   (and authentication
#                                              on: user root added, auth enabled; the client certificate's
#                                              common name, root, is the user, etcd's --client-cert-auth rule)
#   MEMBERS=3 bench/compare.sh                 (3-member etcd next to 3-member Arbiter, etcd's default timing
#                                              for both; clients over all members: TARGET=all, the default)
#   MEMBERS=3 TARGET=leader WORKLOADS="put txn" bench/compare.sh   (every client connection to the leader)
#   MEMBERS=3 ARBITER_ENV="DOTNET_ThreadPool_UnfairSemaphoreSpinLimit=0" bench/compare.sh   (a runtime knob
#                                              for the Arbiter members only; MEMBERS=3 only)
#   MEMBERS=3 ARBITER_ARGS="--raft-log-pages mapped" bench/compare.sh   (extra serve flags for the Arbiter
#                                              members; MEMBERS=3 only)
# With MEMBERS=3 each cell also records every member's /metrics and CPU time before and after, and
# bench/cluster-profile.py turns them into profile.md (writes per Raft entry, fsyncs, CPU per write).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"

DURATION_S=${DURATION_S:-8}
WARMUP_S=${WARMUP_S:-1}
# Before the first measured cell, each server runs every workload unmeasured for this long (half at
# 1 client, half at 16): a fresh .NET process compiles its hot paths in the first seconds (tiered
# JIT), while etcd is compiled ahead of time. 0 measures Arbiter cold.
WARMUP_ALL_S=${WARMUP_ALL_S:-6}
CLIENT_COUNTS=${CLIENT_COUNTS:-"1 16 64"}
WORKLOADS=${WORKLOADS:-"put range-linearizable range-serializable txn mixed lock-service lock-recipe watch lease"}
KEY_SPACE=${KEY_SPACE:-1000}
LOCK_KEY_SPACE=${LOCK_KEY_SPACE:-8}
VALUE_SIZE=${VALUE_SIZE:-256}
# 1: both servers also listen on https with the same certificates (client-cert-auth) and every
# measured and warm-up run goes over mutual TLS; readiness checks use the plain URL.
TLS=${TLS:-0}
# 1 (needs TLS=1): authentication on in both servers; every request is checked as user root, named by
# the client certificate (no token or password exchange in the measured requests).
AUTH=${AUTH:-0}
if [ "$AUTH" = "1" ] && [ "$TLS" != "1" ]; then
  echo "[compare] AUTH=1 needs TLS=1 (the client certificate names the user)" >&2
  exit 2
fi
# 1: one server of each; 3: a 3-member cluster of each on loopback.
MEMBERS=${MEMBERS:-1}
# With MEMBERS=3, where the clients' connections go: "all" spreads them over the members, followers
# first (one client talks to a follower, as most of a balanced client's requests do; 6 connections
# are 2 per member); "leader" sends them all to the member that leads when the run starts.
TARGET=${TARGET:-all}
case "$MEMBERS:$TARGET" in
  1:all | 3:all | 3:leader) ;;
  1:*) echo "[compare] TARGET=$TARGET needs MEMBERS=3" >&2; exit 2 ;;
  3:*) echo "[compare] TARGET must be all or leader, not '$TARGET'" >&2; exit 2 ;;
  *) echo "[compare] MEMBERS must be 1 or 3, not '$MEMBERS'" >&2; exit 2 ;;
esac
if [ "$MEMBERS" = "3" ] && [ "$TLS" = "1" ]; then
  echo "[compare] MEMBERS=3 runs without TLS (TLS=1 is for the single node)" >&2
  exit 2
fi
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
OUT=${OUT:-$ROOT/bench/results/$STAMP}
# Server data lives on the repository's disk (not a tmpfs), so fsync costs what it costs here.
WORK=$(mktemp -d "$ROOT/bench/.work-XXXXXX")

ETCD_PID=""
ARBITER_PID=""
ETCD_PIDS=()
ARBITER_PIDS=()
cleanup() {
  stop_pids "$ETCD_PID" "$ARBITER_PID" "${ETCD_PIDS[@]}" "${ARBITER_PIDS[@]}"
  rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

log() { echo "[compare] $*" >&2; }

ensure_packages etcd etcd-server etcd-client
ensure_packages etcdctl etcd-server etcd-client

build_bench_tools

mkdir -p "$OUT/raw"
SERVER_TLS=()
CLIENT_TLS=()
if [ "$MEMBERS" = "3" ]; then
  start_cluster_pair "$WORK" "$OUT"
  ETCD_MEMBER_URLS=$ETCD_URLS
  ARBITER_MEMBER_URLS=$ARBITER_URLS
  ETCD_LEADER=$(cluster_leader_url "$ETCD_MEMBER_URLS")
  ARBITER_LEADER=$(cluster_leader_url "$ARBITER_MEMBER_URLS")
  # The leader's pid: its CPU time is the cell's serverCpuS (followers' are in profile.md).
  pid_of_url() { # url member-urls pid...
    local url=$1 urls=$2 i=0 member
    shift 2
    for member in ${urls//,/ }; do
      if [ "$member" = "$url" ]; then echo "${@:$((i + 1)):1}"; fi
      i=$((i + 1))
    done
  }
  ETCD_PID=$(pid_of_url "$ETCD_LEADER" "$ETCD_MEMBER_URLS" "${ETCD_PIDS[@]}")
  ARBITER_PID=$(pid_of_url "$ARBITER_LEADER" "$ARBITER_MEMBER_URLS" "${ARBITER_PIDS[@]}")
  followers_then_leader() { # member-urls leader-url
    local member out=""
    for member in ${1//,/ }; do if [ "$member" != "$2" ]; then out="$out,$member"; fi; done
    echo "${out#,},$2"
  }
  if [ "$TARGET" = "leader" ]; then
    ETCD_URL=$ETCD_LEADER
    ARBITER_URL=$ARBITER_LEADER
  else
    ETCD_URL=$(followers_then_leader "$ETCD_MEMBER_URLS" "$ETCD_LEADER")
    ARBITER_URL=$(followers_then_leader "$ARBITER_MEMBER_URLS" "$ARBITER_LEADER")
  fi
  log "leaders: etcd $ETCD_LEADER (pid $ETCD_PID), Arbiter $ARBITER_LEADER (pid $ARBITER_PID); clients go to $TARGET"
else
  ETCD_PORT=$(free_port)
  ETCD_PEER_PORT=$(free_port)
  ARBITER_PORT=$(free_port)
  ETCD_URL=http://127.0.0.1:$ETCD_PORT
  ARBITER_URL=http://127.0.0.1:$ARBITER_PORT
  ETCD_LISTEN=$ETCD_URL
  ARBITER_LISTEN=$ARBITER_URL
  if [ "$TLS" = "1" ]; then
    dotnet "$ARBITER_DLL" cert --dir "$WORK/tls" >/dev/null
    ETCD_TLS_URL=https://127.0.0.1:$(free_port)
    ARBITER_TLS_URL=https://127.0.0.1:$(free_port)
    ETCD_LISTEN=$ETCD_URL,$ETCD_TLS_URL
    ARBITER_LISTEN=$ARBITER_URL,$ARBITER_TLS_URL
    SERVER_TLS=(--cert-file "$WORK/tls/server.crt" --key-file "$WORK/tls/server.key" --trusted-ca-file "$WORK/tls/ca.crt" --client-cert-auth)
    CLIENT_TLS=(--cacert "$WORK/tls/ca.crt" --cert "$WORK/tls/client.crt" --key "$WORK/tls/client.key")
  fi

  log "starting etcd on $ETCD_LISTEN and Arbiter on $ARBITER_LISTEN (data in $WORK)"
  etcd --name bench --data-dir "$WORK/etcd" \
    --listen-client-urls "$ETCD_LISTEN" --advertise-client-urls "$ETCD_LISTEN" \
    --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-cluster "bench=http://127.0.0.1:$ETCD_PEER_PORT" "${SERVER_TLS[@]}" >"$OUT/etcd.log" 2>&1 &
  ETCD_PID=$!
  dotnet "$ARBITER_DLL" serve --data-dir "$WORK/arbiter" --listen-client-urls "$ARBITER_LISTEN" \
    --log-level warn "${SERVER_TLS[@]}" >"$OUT/arbiter.log" 2>&1 &
  ARBITER_PID=$!

  wait_endpoint_ready "$ETCD_URL" "$ETCD_PID" 100
  wait_endpoint_ready "$ARBITER_URL" "$ARBITER_PID" 100
  if [ "$TLS" = "1" ]; then
    # Measure over TLS from here on.
    ETCD_URL=$ETCD_TLS_URL
    ARBITER_URL=$ARBITER_TLS_URL
  fi
fi
if [ "$AUTH" = "1" ]; then
  for url in "$ETCD_URL" "$ARBITER_URL"; do
    etcdctl --endpoints "$url" "${CLIENT_TLS[@]}" user add root --new-user-password=bench >/dev/null
    etcdctl --endpoints "$url" "${CLIENT_TLS[@]}" auth enable >/dev/null
    # Auth is on: a request with the certificate alone (CN root) must pass, one without must not.
    etcdctl --endpoints "$url" "${CLIENT_TLS[@]}" put bench-auth-check ok >/dev/null
  done
  log "authentication enabled on both servers (user root, from the client certificate)"
fi

log "probing the machine"
dotnet "$BENCH_DLL" probe --dir "$WORK" --out "$OUT/probe.json" >/dev/null
probe() { # probe.json field, e.g. fsyncMs p50
  python3 -c "import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]][sys.argv[3]])" "$OUT/probe.json" "$1" "$2"
}
DISK_DEV=$(df --output=source "$WORK" | tail -1)
{
  echo "## Machine and run"
  echo
  echo "| | |"
  echo "|---|---|"
  echo "| date (UTC) | $(date -u +%Y-%m-%dT%H:%M:%SZ) |"
  echo "| commit | $(git rev-parse --short HEAD) |"
  echo "| CPU | $(lscpu | sed -n 's/^Model name: *//p' | head -1), $(nproc) cores available |"
  echo "| memory | $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo) |"
  echo "| disk | $DISK_DEV ($(df -h --output=fstype,size "$WORK" | tail -1 | xargs)), rotational=$(cat "/sys/block/$(basename "$DISK_DEV")/queue/rotational" 2>/dev/null || echo "?") |"
  echo "| kernel | $(uname -r) |"
  echo "| etcd | $(etcd --version | head -1) |"
  echo "| .NET | $(dotnet --version) |"
  echo "| fsync (4 KiB append + fsync) | p50 $(probe fsyncMs p50) ms, p99 $(probe fsyncMs p99) ms |"
  echo "| loopback TCP RTT | p50 $(probe loopbackRttMs p50) ms, p99 $(probe loopbackRttMs p99) ms |"
  echo "| load average at start | $(cut -d' ' -f1-3 /proc/loadavg) |"
  echo "| cell | ${WARMUP_S} s warm-up + ${DURATION_S} s measured; key space $KEY_SPACE (locks: $LOCK_KEY_SPACE names), values $VALUE_SIZE B |"
  echo "| client TLS | $([ "$TLS" = "1" ] && echo "on: https with client-cert-auth, same throw-away ECDSA P-256 certificates for both" || echo off) |"
  echo "| authentication | $([ "$AUTH" = "1" ] && echo "on in both: user root (the client certificate's CN), every request permission-checked" || echo off) |"
  if [ "$MEMBERS" = "3" ]; then
    echo "| servers | 3 etcd members and 3 Arbiter members on loopback, all at once; heartbeat ${HEARTBEAT_MS:-100} ms, election ${ELECTION_MS:-1000} ms for both |"
    echo "| Arbiter members' extra environment | ${ARBITER_ENV:-(none: as shipped)} |"
    echo "| Arbiter members' extra flags | ${ARBITER_ARGS:-(none: the defaults)} |"
    echo "| clients go to | $([ "$TARGET" = leader ] && echo "the leader only (the member leading at the start)" || echo "all members, followers first: min(clients, 6) connections round-robin, 1 client on a follower") |"
  fi
  echo "| servers warmed up first | every workload, ${WARMUP_ALL_S} s per server (half at 1 client, half at 16), not measured |"
} >"$OUT/machine.md"

run_cell() { # system url pid workload clients
  local system=$1 url=$2 pid=$3 workload=$4 clients=$5
  local args=(--workload "$workload" --duration "$DURATION_S" --warmup "$WARMUP_S" --value-size "$VALUE_SIZE"
    --endpoints "$url" --label "$system" --server-pid "$pid" --out "$OUT/raw/$workload-c$clients-$system.json" "${CLIENT_TLS[@]}")
  local connections=$((clients < 4 ? clients : 4))
  if [ "$MEMBERS" = "3" ] && [ "$TARGET" = "all" ]; then
    connections=$((clients < 6 ? clients : 6))
  fi
  case "$workload" in
    watch) args+=(--clients 1 --watchers "$clients" --connections "$connections" --key-space "$KEY_SPACE") ;;
    lock-*) args+=(--clients "$clients" --connections "$connections" --key-space "$LOCK_KEY_SPACE") ;;
    *) args+=(--clients "$clients" --connections "$connections" --key-space "$KEY_SPACE") ;;
  esac
  if [ "$MEMBERS" = "3" ]; then snapshot_members "$system" "$OUT/raw/$workload-c$clients-$system" before; fi
  if ! dotnet "$BENCH_DLL" run "${args[@]}"; then
    log "$system $workload c=$clients reported errors (kept in the results)"
  fi
  if [ "$MEMBERS" = "3" ]; then snapshot_members "$system" "$OUT/raw/$workload-c$clients-$system" after; fi
}

PROFILE_METRICS='^(etcd_server_proposals_committed_total|etcd_debugging_mvcc_current_revision|etcd_disk_wal_fsync_duration_seconds_(count|sum)|etcd_server_is_leader|grpc_server_started_total\{grpc_method="Propose(Batch)?")'
snapshot_members() { # system cell-prefix before|after: every member's /metrics and CPU seconds
  local system=$1 prefix=$2 when=$3 urls pids i=0 url pid ticks
  if [ "$system" = etcd ]; then urls=$ETCD_MEMBER_URLS; pids=("${ETCD_PIDS[@]}"); else urls=$ARBITER_MEMBER_URLS; pids=("${ARBITER_PIDS[@]}"); fi
  for url in ${urls//,/ }; do
    pid=${pids[$i]}
    i=$((i + 1))
    # Only what cluster-profile.py reads (the whole page is ~30 KiB per member and cell).
    { curl -s --max-time 5 "$url/metrics" || true; } | grep -E "$PROFILE_METRICS" >"$prefix.m$i.$when.prom" || true
    ticks=$(awk '{print $14 + $15}' "/proc/$pid/stat" 2>/dev/null || echo 0)
    echo "{\"cpuS\": $(python3 -c "print($ticks / $(getconf CLK_TCK))"), \"wallS\": $(date +%s.%N)}" >"$prefix.m$i.$when.json"
  done
}

etcd_workloads() { # $WORKLOADS without Arbiter-only ones
  local w out=""
  for w in $WORKLOADS; do case "$w" in crdt-*) ;; *) out="$out $w" ;; esac; done
  echo "$out"
}

warm_up() { # system url
  local half_s
  half_s=$(python3 -c "print($WARMUP_ALL_S / 2)")
  for workload in $WORKLOADS; do
    for clients in 1 16; do
      case "$workload" in
        watch) dotnet "$BENCH_DLL" run --workload watch --clients 1 --watchers "$clients" --connections 4 --key-space "$KEY_SPACE" \
          --duration "$half_s" --warmup 0 --value-size "$VALUE_SIZE" --endpoints "$2" "${CLIENT_TLS[@]}" --quiet >/dev/null 2>&1 || true ;;
        *) dotnet "$BENCH_DLL" run --workload "$workload" --clients "$clients" --connections 4 --key-space "$KEY_SPACE" \
          --duration "$half_s" --warmup 0 --value-size "$VALUE_SIZE" --endpoints "$2" "${CLIENT_TLS[@]}" --quiet >/dev/null 2>&1 || true ;;
      esac
    done
  done
}
if [ "$WARMUP_ALL_S" != "0" ]; then
  log "warming up both servers: every workload, ${WARMUP_ALL_S} s each (not measured)"
  WORKLOADS="$(etcd_workloads)" warm_up etcd "$ETCD_URL"
  warm_up arbiter "$ARBITER_URL"
fi

for workload in $WORKLOADS; do
  for clients in $CLIENT_COUNTS; do
    case "$workload" in
      crdt-*) ;; # Arbiter's eventual tier; etcd has nothing to compare (its counter is cas-counter)
      *) run_cell etcd "$ETCD_URL" "$ETCD_PID" "$workload" "$clients" ;;
    esac
    run_cell arbiter "$ARBITER_URL" "$ARBITER_PID" "$workload" "$clients"
  done
done

echo "| load average at end | $(cut -d' ' -f1-3 /proc/loadavg) |" >>"$OUT/machine.md"
# rss_mib PID [FIELD]: VmRSS (now) or VmHWM (the peak since the process started) in MiB.
rss_mib() { awk -v field="${2:-VmRSS}:" '$1 == field {printf "%.0f MiB", $2/1024}' "/proc/$1/status"; }
if [ "$MEMBERS" = "3" ]; then
  rss_list() { local pid field=$1 out=""; shift; for pid in "$@"; do out="$out, $(rss_mib "$pid" "$field")"; done; echo "${out#, }"; }
  echo "| server RSS at end | etcd $(rss_list VmRSS "${ETCD_PIDS[@]}"), arbiter $(rss_list VmRSS "${ARBITER_PIDS[@]}") (members 1-3) |" >>"$OUT/machine.md"
  echo "| server peak RSS | etcd $(rss_list VmHWM "${ETCD_PIDS[@]}"), arbiter $(rss_list VmHWM "${ARBITER_PIDS[@]}") (members 1-3) |" >>"$OUT/machine.md"
  echo "| leaders at end | etcd $(cluster_leader_url "$ETCD_MEMBER_URLS") (start: $ETCD_LEADER), Arbiter $(cluster_leader_url "$ARBITER_MEMBER_URLS") (start: $ARBITER_LEADER) |" >>"$OUT/machine.md"
  python3 "$ROOT/bench/cluster-profile.py" "$OUT"
else
  echo "| server RSS at end | etcd $(rss_mib "$ETCD_PID"), arbiter $(rss_mib "$ARBITER_PID") |" >>"$OUT/machine.md"
fi
dotnet "$BENCH_DLL" report --in "$OUT"
if [ -f "$OUT/profile.md" ]; then
  { echo; cat "$OUT/profile.md"; } >>"$OUT/results.md"
fi
log "done: $OUT/results.md"
