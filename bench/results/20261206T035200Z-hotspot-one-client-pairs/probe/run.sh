#!/usr/bin/env bash
# Builds the two throw-away probes outside the repository (its build rules are not theirs), starts
# a single-node Arbiter and the gRPC echo server, and runs each probe three times.
# Usage: bash run.sh   (from anywhere; needs a Release build of src/Arbiter.Cli)
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../../../.." && pwd)
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT
cp -r "$HERE/transfer-phases" "$HERE/grpc-echo" "$WORK/"
sed -i "s#REPO_ROOT#$REPO#" "$WORK/transfer-phases/txprobe.csproj"
dotnet build "$WORK/transfer-phases" -c Release -nologo -v q >/dev/null
dotnet build "$WORK/grpc-echo" -c Release -nologo -v q >/dev/null

dotnet "$REPO/src/Arbiter.Cli/bin/Release/net10.0/arbiter.dll" serve --data-dir "$WORK/data" \
  --listen-client-urls http://127.0.0.1:23791 --log-level warn >"$WORK/arbiter.log" 2>&1 &
"$WORK/grpc-echo/bin/Release/net10.0/Echo" serve 7701 &
ECHO_PID=$!
sleep 3
for _ in 1 2 3; do "$WORK/transfer-phases/bin/Release/net10.0/txprobe" http://127.0.0.1:23791 10; done
for _ in 1 2 3; do
  for kind in unary duplex; do "$WORK/grpc-echo/bin/Release/net10.0/Echo" client 7701 "$kind" 6 "$ECHO_PID"; done
done
