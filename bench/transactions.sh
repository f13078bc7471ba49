#!/usr/bin/env bash
# Bank transfers per concurrency-control family (issue #14), on this machine, side by side:
#   pessimistic, optimistic and STM on a single Arbiter node; etcd's STM algorithm (the SDK's
#   AtomicallyAsync, a port of clientv3's stm.go) on a real single-node etcd 3.4; PostgreSQL
#   (Debian's package; SELECT … ORDER BY id FOR UPDATE, UPDATE, COMMIT; synchronous_commit on);
# at 1/16/64 clients over 10,000 accounts (rare conflicts) and over 8 accounts (a hotspot); then
# Arbiter's deadlock-detection latency. Writes bench/results/<timestamp>-transactions/
# {results.md,results.json,throughput.png,retries.png,machine.md,*.log}.
#
# Every server fsyncs before it acknowledges: etcd always fsyncs its WAL, Arbiter does by default,
# PostgreSQL runs with fsync=on and synchronous_commit=on. Data on the repository's disk.
# PostgreSQL runs as a private cluster (initdb/pg_ctl as the postgres user, a free port, a temp
# directory); the script apt-get installs the postgresql package if it is missing.
#
# Usage: bench/transactions.sh                       (20 s global warm-up, 10 s per cell + 1 s warm-up: about 8 minutes)
#   DURATION_S=5 CLIENT_COUNTS=1,16 ACCOUNTS=8 FAMILIES=pessimistic,postgres bench/transactions.sh
#   MEMBERS=3 bench/transactions.sh                (Arbiter and etcd as 3-member clusters, same flags as
#                                                  bench/compare.sh; every client on the leader, or on a
#                                                  follower with TARGET=follower; PostgreSQL stays one server)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"

DURATION_S=${DURATION_S:-10}
WARMUP_S=${WARMUP_S:-1}
# Unmeasured load on every family before the first cell: steady state, not a fresh server's JIT.
GLOBAL_WARMUP_S=${GLOBAL_WARMUP_S:-20}
CLIENT_COUNTS=${CLIENT_COUNTS:-1,16,64}
ACCOUNTS=${ACCOUNTS:-10000,8}
FAMILIES=${FAMILIES:-pessimistic,optimistic,stm,etcd-stm,postgres}
DEADLOCK_ROUNDS=${DEADLOCK_ROUNDS:-200}
MEMBERS=${MEMBERS:-1}
TARGET=${TARGET:-leader}
case "$MEMBERS:$TARGET" in
  1:leader | 3:leader | 3:follower) ;;
  1:*) echo "[transactions] TARGET=$TARGET needs MEMBERS=3" >&2; exit 2 ;;
  *) echo "[transactions] MEMBERS must be 1 or 3 and TARGET leader or follower, not '$MEMBERS', '$TARGET'" >&2; exit 2 ;;
esac
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
OUT=${OUT:-$ROOT/bench/results/$STAMP-transactions}
WORK=$(mktemp -d "$ROOT/bench/.work-XXXXXX")
chmod 755 "$WORK"

ETCD_PID=""
ARBITER_PID=""
PG_DATA=""
cleanup() {
  stop_pids "$ETCD_PID" "$ARBITER_PID" "${ETCD_PIDS[@]}" "${ARBITER_PIDS[@]}"
  if [ -n "$PG_DATA" ] && [ -f "$PG_DATA/postmaster.pid" ]; then
    as_postgres "$PG_BIN/pg_ctl" -D "$PG_DATA" -m immediate stop >/dev/null 2>&1 || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

log() { echo "[transactions] $*" >&2; }

SUDO=()
if [ "$(id -u)" -ne 0 ]; then SUDO=(sudo); fi
as_postgres() {
  if [ "$(id -un)" = postgres ]; then "$@"; else "${SUDO[@]}" runuser -u postgres -- "$@"; fi
}

ensure_packages etcd etcd-server etcd-client
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  log "installing postgresql from Debian"
  "${SUDO[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${SUDO[@]}" apt-get install -y -qq postgresql >/dev/null
fi
PG_BIN=$(dirname "$(ls /usr/lib/postgresql/*/bin/initdb | sort -V | tail -1)")

build_bench_tools

mkdir -p "$OUT"
PG_PORT=$(free_port)
if [ "$MEMBERS" = 3 ]; then
  start_cluster_pair "$WORK" "$OUT"
  ETCD_URL=$(cluster_leader_url "$ETCD_URLS")
  ARBITER_URL=$(cluster_leader_url "$ARBITER_URLS")
  if [ "$TARGET" = follower ]; then
    ETCD_URL=$(tr ',' '\n' <<<"$ETCD_URLS" | grep -vx "$ETCD_URL" | head -1)
    ARBITER_URL=$(tr ',' '\n' <<<"$ARBITER_URLS" | grep -vx "$ARBITER_URL" | head -1)
  fi
  log "clients go to the $TARGET: etcd $ETCD_URL, Arbiter $ARBITER_URL"
else
  ETCD_PORT=$(free_port)
  ETCD_PEER_PORT=$(free_port)
  ARBITER_PORT=$(free_port)
  ETCD_URL=http://127.0.0.1:$ETCD_PORT
  ARBITER_URL=http://127.0.0.1:$ARBITER_PORT

  log "starting etcd on $ETCD_URL and Arbiter on $ARBITER_URL (data in $WORK)"
  etcd --name bench --data-dir "$WORK/etcd" \
    --listen-client-urls "$ETCD_URL" --advertise-client-urls "$ETCD_URL" \
    --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-cluster "bench=http://127.0.0.1:$ETCD_PEER_PORT" >"$OUT/etcd.log" 2>&1 &
  ETCD_PID=$!
  dotnet "$ARBITER_DLL" serve --data-dir "$WORK/arbiter" --listen-client-urls "$ARBITER_URL" \
    --log-level warn >"$OUT/arbiter.log" 2>&1 &
  ARBITER_PID=$!
fi

log "starting PostgreSQL ($PG_BIN) on 127.0.0.1:$PG_PORT"
PG_DATA=$WORK/pg
mkdir -p "$PG_DATA" "$WORK/pgsock"
chown postgres "$PG_DATA" "$WORK/pgsock"
as_postgres "$PG_BIN/initdb" -D "$PG_DATA" --auth=trust -U postgres >"$OUT/postgres-initdb.log" 2>&1
as_postgres "$PG_BIN/pg_ctl" -D "$PG_DATA" -l "$WORK/pgsock/postgres.log" -w -o \
  "-p $PG_PORT -k $WORK/pgsock -c listen_addresses=127.0.0.1 -c fsync=on -c synchronous_commit=on -c max_connections=200" start >/dev/null

if [ "$MEMBERS" = 1 ]; then
  wait_endpoint_ready "$ETCD_URL" "$ETCD_PID"
  wait_endpoint_ready "$ARBITER_URL" "$ARBITER_PID"
fi

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
  echo "| disk | $DISK_DEV ($(df -h --output=fstype,size "$WORK" | tail -1 | xargs)) |"
  echo "| etcd | $(etcd --version | head -1) |"
  echo "| topology | $([ "$MEMBERS" = 3 ] && echo "3-member Arbiter and 3-member etcd (heartbeat ${HEARTBEAT_MS:-100} ms, election ${ELECTION_MS:-1000} ms), clients on the $TARGET; PostgreSQL one server" || echo "one server each") |"
  echo "| PostgreSQL | $("$PG_BIN/postgres" --version) (fsync=on, synchronous_commit=on) |"
  echo "| .NET | $(dotnet --version) |"
  echo "| load average at start | $(cut -d' ' -f1-3 /proc/loadavg) |"
  echo "| cell | ${GLOBAL_WARMUP_S} s global warm-up (every family, unmeasured), then ${WARMUP_S} s warm-up + ${DURATION_S} s measured per cell; clients $CLIENT_COUNTS; accounts $ACCOUNTS |"
} >"$OUT/machine.md"

STATUS=0
dotnet "$BENCH_DLL" transactions --arbiter "$ARBITER_URL" --etcd "$ETCD_URL" \
  --postgres "Host=127.0.0.1;Port=$PG_PORT;Username=postgres;Database=postgres;Pooling=true;Maximum Pool Size=200;No Reset On Close=true" \
  --duration-s "$DURATION_S" --warmup-s "$WARMUP_S" --global-warmup-s "$GLOBAL_WARMUP_S" --clients "$CLIENT_COUNTS" --accounts "$ACCOUNTS" \
  --families "$FAMILIES" --deadlock-rounds "$DEADLOCK_ROUNDS" --out "$OUT" | tee "$OUT/run.txt" || STATUS=$?

echo "| load average at end | $(cut -d' ' -f1-3 /proc/loadavg) |" >>"$OUT/machine.md"
cp "$WORK/pgsock/postgres.log" "$OUT/postgres.log" 2>/dev/null || true
log "done ($STATUS): $OUT/results.md"
exit "$STATUS"
