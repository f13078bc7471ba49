#!/usr/bin/env bash
# Issue #17 item 6: fuzzes every target of the client port's untrusted input (tests/Arbiter.Fuzz:
# HTTP/2 edge, HPACK, first-bytes protocol selection, gRPC request decoding + validation + core
# apply, Propose'd commands, the JSON gateway's bodies) from the committed corpus, a million
# inputs each by default, and writes bench/results/<timestamp>-fuzz/{summary.txt,summary.json,
# machine.md} (and <target>-<kind>.bin for a failing input). Exit status 1 if any target failed.
#
# Usage: bench/fuzz.sh                         (1,000,000 inputs per target, a fresh seed)
#   INPUTS=100000 SEED=42 TARGET=http2-edge bench/fuzz.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
INPUTS=${INPUTS:-1000000}
TARGET=${TARGET:-all}
SEED=${SEED:-$(( (RANDOM << 15) | RANDOM ))}
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
OUT=${OUT:-$ROOT/bench/results/$STAMP-fuzz}
mkdir -p "$OUT"

dotnet build tests/Arbiter.Fuzz -c Release -warnaserror >/dev/null
{
  echo "# Machine"
  echo "- date: $(date -u +%FT%TZ)"
  echo "- commit: $(git rev-parse --short HEAD)$(git diff --quiet || echo ' (with local changes)')"
  echo "- cpus: $(nproc); load at start: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "- dotnet: $(dotnet --version)"
  echo "- command: INPUTS=$INPUTS SEED=$SEED TARGET=$TARGET bench/fuzz.sh"
} > "$OUT/machine.md"
set +e
dotnet tests/Arbiter.Fuzz/bin/Release/net10.0/arbiter-fuzz.dll run --target "$TARGET" --inputs "$INPUTS" --seed "$SEED" --corpus tests/fuzz-corpus --out "$OUT"
STATUS=$?
set -e
echo "- load at end: $(cut -d' ' -f1-3 /proc/loadavg)" >> "$OUT/machine.md"
echo "results: $OUT"
exit $STATUS
