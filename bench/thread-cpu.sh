#!/usr/bin/env bash
# Where a single node's CPU goes per pessimistic transfer at one client (8 accounts, the hotspot of
# bench/transactions.sh), per named thread: the log's writer thread, the thread-pool workers, the
# socket engine. For each build in turn (alternating, REPEATS rounds): start it, one unmeasured
# cell, then read every thread's CPU time and voluntary context switches (its sleeps) from /proc
# around a measured cell. CPU figures are in µs per committed transfer. Not a throughput benchmark
# (use bench/ab.sh for that); it shows whether a change moved the CPU it meant to move.
# Writes bench/results/<stamp>-thread-cpu${LABEL:+-LABEL}/results.md.
#
# Usage: bench/thread-cpu.sh BUILD...     (build dirs: copies of src/Arbiter.Cli/bin/Release/net10.0)
#        REPEATS=3 DURATION_S=6 LABEL=writer-wakeups bench/thread-cpu.sh /tmp/arb-old /tmp/arb-new
# shellcheck source=bench/lib.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
source bench/lib.sh
log() { echo "[thread-cpu] $*" >&2; }

[ $# -ge 1 ] || { echo "usage: bench/thread-cpu.sh BUILD..." >&2; exit 2; }
REPEATS=${REPEATS:-3}
DURATION_S=${DURATION_S:-6}
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
OUT=${OUT:-$ROOT/bench/results/$STAMP-thread-cpu${LABEL:+-$LABEL}}
WORK=$(mktemp -d "$ROOT/bench/.work-XXXXXX")
BENCH=$ROOT/bench/Arbiter.Bench/bin/Release/net10.0/arbiter-bench.dll
mkdir -p "$OUT"
PID=
cleanup() {
  stop_pids "$PID"
  rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

dotnet build bench/Arbiter.Bench -c Release -nologo -v q >/dev/null

# Every thread's name, CPU ticks (stat's fields counted after the name, which may hold spaces) (user + system) and voluntary context switches, one per line.
threads() {
  local task
  printf '__process\t%s\t0\n' "$(awk '{print $14 + $15}' /proc/"$1"/stat)" # threads that ended meanwhile included
  for task in /proc/"$1"/task/*; do
    printf '%s\t%s\t%s\n' "$(cat "$task/comm" 2>/dev/null)" \
      "$(sed 's/.*) //' "$task/stat" 2>/dev/null | awk '{print $12 + $13}')" \
      "$(awk '/^voluntary_ctxt_switches/ {print $2}' "$task/status" 2>/dev/null)"
  done
}

cell() {
  local port=$1 out=$2
  dotnet "$BENCH" transactions --arbiter "http://127.0.0.1:$port" --duration-s "$DURATION_S" --warmup-s 1 \
    --global-warmup-s 0 --clients 1 --accounts 8 --families pessimistic --deadlock-rounds 0 --out "$out" 2>&1 |
    grep 'commits/s' | tail -1
}

{
  echo "# Thread CPU per pessimistic transfer, 1 client, 8 accounts ($STAMP)"
  echo
  echo "Builds: $*. Commit of the tree: $(git rev-parse --short HEAD). ${DURATION_S} s cells, $REPEATS rounds, builds alternating."
  echo "Load average before: $(cut -d' ' -f1-3 /proc/loadavg)."
  echo
  echo "| round | build | transfers/s | process CPU µs/transfer | writer thread CPU µs | writer sleeps/transfer | thread-pool workers CPU µs | sockets CPU µs |"
  echo "|---:|---|---:|---:|---:|---:|---:|---:|"
} >"$OUT/results.md"

for round in $(seq 1 "$REPEATS"); do
  for build in "$@"; do
    port=$(free_port)
    rm -rf "$WORK/data"
    dotnet "$build/arbiter.dll" serve --data-dir "$WORK/data" --listen-client-urls "http://127.0.0.1:$port" --log-level warn \
      >"$OUT/server.log" 2>&1 &
    PID=$!
    wait_endpoint_ready "http://127.0.0.1:$port" "$PID"
    cell "$port" "$WORK/warm" >/dev/null
    threads "$PID" >"$WORK/before"
    line=$(cell "$port" "$WORK/cell")
    threads "$PID" >"$WORK/after"
    stop_pids "$PID"
    PID=
    rate=$(echo "$line" | grep -o '[0-9.]* commits/s' | cut -d' ' -f1)
    python3 - "$WORK/before" "$WORK/after" "$rate" "$DURATION_S" "$round" "$(basename "$build")" "$(getconf CLK_TCK)" >>"$OUT/results.md" <<'EOF'
import sys
def read(path):
    rows = {}
    for i, line in enumerate(open(path)):
        name, ticks, switches = (line.rstrip("\n").split("\t") + ["0", "0"])[:3]
        rows.setdefault(name, []).append((int(ticks or 0), int(switches or 0)))
    return {name: (sum(t for t, _ in v), sum(s for _, s in v)) for name, v in rows.items()}
before, after, rate, seconds, rnd, build, hz = read(sys.argv[1]), read(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), sys.argv[5], sys.argv[6], int(sys.argv[7])
transfers = rate * seconds
def delta(match):
    ticks = switches = 0
    for name, (t, s) in after.items():
        if match(name):
            t0, s0 = before.get(name, (0, 0))
            ticks += t - t0; switches += s - s0
    return ticks * 1e6 / hz / transfers, switches / transfers
process, _ = delta(lambda n: n == "__process")
writer, writer_sleeps = delta(lambda n: n.startswith("arbiter-log-wri"))
pool, _ = delta(lambda n: n.startswith(".NET TP Worker"))
sockets, _ = delta(lambda n: n.startswith(".NET Sockets"))
print(f"| {rnd} | {build} | {rate:,.0f} | {process:.0f} | {writer:.0f} | {writer_sleeps:.2f} | {pool:.0f} | {sockets:.0f} |")
EOF
    tail -1 "$OUT/results.md" >&2
  done
done
echo >>"$OUT/results.md"
echo "Load average after: $(cut -d' ' -f1-3 /proc/loadavg)." >>"$OUT/results.md"
log "wrote $OUT/results.md"
