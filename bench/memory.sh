#!/usr/bin/env bash
# Memory for the same data and history, Arbiter next to etcd 3.4 (issue 19): KEYS distinct keys of
# VALUE_BYTES written (pass 1), then all overwritten PASSES-1 times, no compaction (etcd's default:
# every version kept). After each pass, for each server: VmRSS as a user sees it, the data dir's
# size on disk, and the heap — Arbiter: a dotnet-gcdump (it forces a full GC; the managed heap's
# size, its top types, and VmRSS again after that GC); etcd: go_memstats_heap_inuse_bytes from /metrics.
# Writes bench/results/memory-<stamp>/{results.md,machine.md,raw/*}.
#
# Both servers run at the same time on loopback with compare.sh's flags and the same client
# (arbiter-bench's `fill` workload: every key once per pass, CLIENTS concurrent clients).
#
# Usage: bench/memory.sh
#   KEYS=1000000 bench/memory.sh
#   ARBITER_ENV="DOTNET_GCConserveMemory=5" LABEL=conserve5 bench/memory.sh   (a GC setting for Arbiter)
#   SYSTEMS=arbiter bench/memory.sh                                            (Arbiter alone)
#   SYSTEMS=arbiter ARBITER_ARGS=--keep-history-in-memory bench/memory.sh     (without the value spill)
#   PASSES=0 SYSTEMS=arbiter ARBITER_ENV="DOTNET_TieredPGO=0" bench/memory.sh  (an empty server's RSS only)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"

KEYS=${KEYS:-200000}
VALUE_BYTES=${VALUE_BYTES:-256}
PASSES=${PASSES:-3}
CLIENTS=${CLIENTS:-16}
SYSTEMS=${SYSTEMS:-"etcd arbiter"}
# Extra environment for the Arbiter process only, e.g. "DOTNET_gcServer=1 DOTNET_GCgen0size=0x1000000".
ARBITER_ENV=${ARBITER_ENV:-}
LABEL=${LABEL:-}
ARBITER_ARGS=${ARBITER_ARGS:-}   # extra `arbiter serve` flags, e.g. --keep-history-in-memory
# RSS is read once it has stopped moving: two reads SETTLE_MS apart within 1 MiB (at most 30 tries).
SETTLE_MS=${SETTLE_MS:-1000}
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
OUT=${OUT:-$ROOT/bench/results/memory-$STAMP${LABEL:+-$LABEL}}
WORK=$(mktemp -d "$ROOT/bench/.work-XXXXXX")
GCDUMP=${GCDUMP:-$HOME/.dotnet/tools/dotnet-gcdump}

ETCD_PID=""
ARBITER_PID=""
cleanup() {
  stop_pids "$ETCD_PID" "$ARBITER_PID"
  rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

log() { echo "[memory] $*" >&2; }

# The top types of a `dotnet-gcdump report` by total bytes. Each line is a type (objects over 1 KiB
# in size buckets) with one object's size and a count, so the total is size x count; for types
# whose objects vary in size (byte[]) that is an estimate, and .NET 10's lossy dump undercounts.
top_types() { # report [how many types, 12]
  python3 - "$1" "${2:-12}" <<'PY'
import collections, re, sys
total, count = collections.Counter(), collections.Counter()
for line in open(sys.argv[1]):
    m = re.match(r"\s*([\d,]+)\s+([\d,]+)\s+(.*?)\s*(\(Bytes > [^)]*\))?\s*\[[^\]]*\]\s*$", line)
    if m:
        size, n = int(m.group(1).replace(",", "")), int(m.group(2).replace(",", ""))
        total[m.group(3)] += size * n
        count[m.group(3)] += n
print("| type | objects | MiB |")
print("|---|---:|---:|")
for name, size in total.most_common(int(sys.argv[2])):
    print(f"| `{name}` | {count[name]:,} | {size / 1048576:.1f} |")
PY
}

# results.md from $OUT/raw/rows.tsv (one row per system and pass: system pass rss_kib
# rss_after_gc_kib heap_bytes disk_bytes seconds), machine.md and the gcdump type reports.
write_report() {
  python3 - "$OUT/raw/rows.tsv" "$KEYS" "$PASSES" "$OUT" <<'PY' >"$OUT/results.md"
import json, os, sys
rows_path, keys, passes, out = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
rows = {}
for line in open(rows_path):
    system, p, rss, after_gc, heap, disk, seconds = line.rstrip("\n").split("\t")
    rows[(system, int(p))] = dict(rss=int(rss) * 1024, after_gc=int(after_gc) * 1024 if after_gc else None,
                                   heap=int(heap) if heap else None, disk=int(disk), seconds=float(seconds))
systems = [s for s in ("etcd", "arbiter") if (s, 0) in rows]
mib = lambda b: "" if b is None else f"{b / 1048576:.0f}"
def errors(system, p):
    path = os.path.join(out, "raw", f"fill-{system}-pass{p}.json")
    try:
        return sum(r.get("errorCount", 0) for r in json.load(open(path))["results"])
    except Exception:
        return "?"
print(open(os.path.join(out, "machine.md")).read())
print("## RSS, heap and disk after each pass")
print()
print("| system | pass | RSS MiB | RSS after full GC MiB | heap MiB | data dir MiB | pass s | put errors |")
print("|---|---:|---:|---:|---:|---:|---:|---:|")
for s in systems:
    for p in range(passes + 1):
        r = rows[(s, p)]
        print(f"| {s} | {p if p else 'empty'} | {mib(r['rss'])} | {mib(r['after_gc'])} | {mib(r['heap'])} | {mib(r['disk'])} | {r['seconds'] if p else ''} | {errors(s, p) if p else ''} |")
print()
print("heap: Arbiter's managed heap after a forced full GC (dotnet-gcdump); etcd's Go heap in use (go_memstats_heap_inuse_bytes).")
print()
print("## Cost in bytes")
print()
print("per key = (RSS after pass 1 - RSS empty) / keys; per version = (RSS after the last pass - RSS after pass 1) / ((passes - 1) x keys).")
print()
print("| system | RSS at end MiB | per key B | per version B | per key B (heap) | per version B (heap) | per version B (disk) |")
print("|---|---:|---:|---:|---:|---:|---:|")
for s in systems if passes > 0 else []:
    first, last, empty = rows[(s, 1)], rows[(s, passes)], rows[(s, 0)]
    versions = (passes - 1) * keys
    per_key = (first["rss"] - empty["rss"]) / keys
    per_version = (last["rss"] - first["rss"]) / versions if versions else float("nan")
    heap_version = (last["heap"] - first["heap"]) / versions if versions and last["heap"] and first["heap"] else None
    heap_key = (first["heap"] - empty["heap"]) / keys if first["heap"] and empty["heap"] else None
    disk_version = (last["disk"] - first["disk"]) / versions if versions else None
    fmt = lambda v: "" if v is None else f"{v:.0f}"
    print(f"| {s} | {mib(last['rss'])} | {per_key:.0f} | {per_version:.0f} | {fmt(heap_key)} | {fmt(heap_version)} | {fmt(disk_version)} |")
if len(systems) == 2 and passes > 0:
    print()
    print(f"Arbiter / etcd RSS at the end: {rows[('arbiter', passes)]['rss'] / rows[('etcd', passes)]['rss']:.2f}x")
PY
  for pass in $(seq 1 "$PASSES"); do
    if [ -f "$OUT/raw/arbiter-pass$pass-types.md" ]; then
      { echo; echo "## Arbiter's managed heap after pass $pass: top types"; echo; head -14 "$OUT/raw/arbiter-pass$pass-types.md"; } >>"$OUT/results.md"
    fi
  done
}

# REPORT_ONLY=DIR: write DIR/results.md again from its raw/ files, run nothing.
if [ -n "${REPORT_ONLY:-}" ]; then
  OUT=$REPORT_ONLY
  write_report
  exit 0
fi

ensure_packages etcd etcd-server etcd-client
ensure_packages etcdctl etcd-server etcd-client
if [ ! -x "$GCDUMP" ] && ! command -v dotnet-gcdump >/dev/null; then
  log "installing dotnet-gcdump (dotnet tool install -g dotnet-gcdump)"
  dotnet tool install -g dotnet-gcdump >/dev/null
fi
[ -x "$GCDUMP" ] || GCDUMP=$(command -v dotnet-gcdump)

build_bench_tools
mkdir -p "$OUT/raw"

rss_kib() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
# VmRSS in KiB once two reads SETTLE_MS apart differ by less than 1 MiB.
settled_rss_kib() {
  local pid=$1 last now
  last=$(rss_kib "$pid")
  for _ in $(seq 1 30); do
    sleep "$(python3 -c "print($SETTLE_MS / 1000)")"
    now=$(rss_kib "$pid")
    if [ $((now > last ? now - last : last - now)) -lt 1024 ]; then
      echo "$now"
      return
    fi
    last=$now
  done
  echo "$now"
}

ETCD_URL="" ARBITER_URL=""
for system in $SYSTEMS; do
  case "$system" in
    etcd)
      ETCD_PORT=$(free_port)
      ETCD_PEER_PORT=$(free_port)
      ETCD_URL=http://127.0.0.1:$ETCD_PORT
      etcd --name bench --data-dir "$WORK/etcd" \
        --listen-client-urls "$ETCD_URL" --advertise-client-urls "$ETCD_URL" \
        --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
        --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
        --initial-cluster "bench=http://127.0.0.1:$ETCD_PEER_PORT" >"$OUT/etcd.log" 2>&1 &
      ETCD_PID=$!
      wait_endpoint_ready "$ETCD_URL" "$ETCD_PID" 100
      ;;
    arbiter)
      ARBITER_URL=http://127.0.0.1:$(free_port)
      # shellcheck disable=SC2086 # ARBITER_ENV and ARBITER_ARGS are lists of words
      env $ARBITER_ENV dotnet "$ARBITER_DLL" serve --data-dir "$WORK/arbiter" --listen-client-urls "$ARBITER_URL" \
        --log-level warn $ARBITER_ARGS >"$OUT/arbiter.log" 2>&1 &
      ARBITER_PID=$!
      wait_endpoint_ready "$ARBITER_URL" "$ARBITER_PID" 100
      ;;
    *) log "unknown system '$system' (etcd, arbiter)"; exit 2 ;;
  esac
done

{
  echo "## Machine and run"
  echo
  echo "| | |"
  echo "|---|---|"
  echo "| date (UTC) | $(date -u +%Y-%m-%dT%H:%M:%SZ) |"
  echo "| commit | $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src || echo ' (+ uncommitted changes in src/)') |"
  echo "| CPU | $(lscpu | sed -n 's/^Model name: *//p' | head -1), $(nproc) cores available |"
  echo "| memory | $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo) |"
  echo "| etcd | $(etcd --version | head -1) |"
  echo "| .NET | $(dotnet --version) |"
  echo "| Arbiter environment | ${ARBITER_ENV:-(none: as shipped)} |"
  echo "| Arbiter serve flags | ${ARBITER_ARGS:-(none)} |"
  echo "| experiment | $KEYS keys x $VALUE_BYTES B values, $PASSES passes (pass 1 writes, the others overwrite every key), $CLIENTS clients, no compaction |"
  echo "| load average at start | $(cut -d' ' -f1-3 /proc/loadavg) |"
} >"$OUT/machine.md"

# One TSV row per (system, pass): system pass rss_kib rss_after_gc_kib heap_bytes disk_bytes seconds
ROWS=$OUT/raw/rows.tsv
: >"$ROWS"
measure() { # system pid url pass seconds
  local system=$1 pid=$2 url=$3 pass=$4 seconds=$5 rss after_gc="" heap="" disk
  rss=$(settled_rss_kib "$pid")
  # Where the resident pages are: anonymous (heaps), file-backed (mapped binaries, bbolt's file), shared (.NET's W^X code mapping).
  grep -E '^(VmRSS|RssAnon|RssFile|RssShmem):' "/proc/$pid/status" >"$OUT/raw/status-$system-pass$pass.txt"
  disk=$(du -sb "$WORK/$system" | cut -f1)
  if [ "$system" = arbiter ]; then
    # A gcdump forces a full blocking GC; its report names the heap's size and top types.
    "$GCDUMP" collect -p "$pid" -o "$OUT/raw/arbiter-pass$pass.gcdump" >/dev/null
    "$GCDUMP" report "$OUT/raw/arbiter-pass$pass.gcdump" >"$OUT/raw/arbiter-pass$pass-types.txt"
    heap=$(awk '/GC Heap bytes/ {gsub(",", "", $1); print $1; exit}' "$OUT/raw/arbiter-pass$pass-types.txt")
    # The full report is thousands of lines; the top 60 types by bytes are kept.
    top_types "$OUT/raw/arbiter-pass$pass-types.txt" 60 >"$OUT/raw/arbiter-pass$pass-types.md"
    rm "$OUT/raw/arbiter-pass$pass-types.txt"
    after_gc=$(settled_rss_kib "$pid")
  else
    heap=$(curl -s "$url/metrics" | awk '/^go_memstats_heap_inuse_bytes/ {printf "%.0f", $2}')
  fi
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$system" "$pass" "$rss" "$after_gc" "$heap" "$disk" "$seconds" >>"$ROWS"
  log "$system pass $pass: RSS $((rss / 1024)) MiB${after_gc:+ ($((after_gc / 1024)) MiB after a full GC)}, heap $((${heap:-0} / 1048576)) MiB, disk $((disk / 1048576)) MiB, ${seconds} s"
}

url_of() { if [ "$1" = etcd ]; then echo "$ETCD_URL"; else echo "$ARBITER_URL"; fi; }
pid_of() { if [ "$1" = etcd ]; then echo "$ETCD_PID"; else echo "$ARBITER_PID"; fi; }

for system in $SYSTEMS; do
  measure "$system" "$(pid_of "$system")" "$(url_of "$system")" 0 0
done
for pass in $(seq 1 "$PASSES"); do
  for system in $SYSTEMS; do
    started=$(date +%s.%N)
    if ! dotnet "$BENCH_DLL" run --workload fill --total "$KEYS" --key-space "$KEYS" --value-size "$VALUE_BYTES" \
      --clients "$CLIENTS" --connections 4 --warmup 0 --endpoints "$(url_of "$system")" --label "$system" \
      --quiet --out "$OUT/raw/fill-$system-pass$pass.json" >/dev/null; then
      log "$system pass $pass reported errors (see $OUT/raw/fill-$system-pass$pass.json)"
    fi
    seconds=$(python3 -c "import time; print(round(time.time() - $started, 1))")
    measure "$system" "$(pid_of "$system")" "$(url_of "$system")" "$pass" "$seconds"
  done
done
echo "| load average at end | $(cut -d' ' -f1-3 /proc/loadavg) |" >>"$OUT/machine.md"

write_report
# The dumps are large; the type reports stay.
rm -f "$OUT"/raw/*.gcdump
log "done: $OUT/results.md"
