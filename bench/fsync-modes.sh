#!/usr/bin/env bash
# How much an fsync of a small append costs on this disk, by how the file is prepared: plain
# appends (Arbiter's WAL before it preallocated: every write extends the file, so every fsync
# also commits metadata) versus a preallocated file and fdatasync (what etcd's WAL and Arbiter's
# WAL do now).
# Usage: bench/fsync-modes.sh [dir] [samples]   (dir defaults to bench/, on the repository's disk)
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=${1:-bench}
SAMPLES=${2:-2000}
python3 - "$DIR" "$SAMPLES" <<'PY'
import ctypes, os, statistics, sys, time
directory, n = sys.argv[1], int(sys.argv[2])
libc = ctypes.CDLL("libc.so.6", use_errno=True)
def run(mode):
    path = os.path.join(directory, ".fsync-modes-probe")
    if os.path.exists(path):
        os.remove(path)
    fd = os.open(path, os.O_CREAT | os.O_WRONLY)
    try:
        if mode.startswith("preallocated"):
            os.posix_fallocate(fd, 0, 64 << 20)
            os.fsync(fd)
        sync = os.fdatasync if mode.endswith("fdatasync") else os.fsync
        record, offset, samples = b"x" * 300, 0, []
        for _ in range(n):
            started = time.perf_counter()
            os.pwrite(fd, record, offset)
            offset += len(record)
            sync(fd)
            samples.append((time.perf_counter() - started) * 1e6)
    finally:
        os.close(fd)
        os.remove(path)
    samples.sort()
    pick = lambda q: samples[min(n - 1, int(n * q))]
    print(f"| {mode} | {pick(0.5):.0f} | {pick(0.9):.0f} | {pick(0.99):.0f} | {statistics.mean(samples):.0f} |")
print(f"300-byte append + sync, {n} samples each, in {os.path.abspath(directory)}")
print()
print("| mode | p50 µs | p90 µs | p99 µs | mean µs |")
print("|---|---:|---:|---:|---:|")
for rep in range(2):
    for mode in ["append + fsync", "append + fdatasync", "preallocated + fsync", "preallocated + fdatasync"]:
        run(mode)
PY
