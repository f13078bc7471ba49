#!/usr/bin/env bash
# Publishes the arbiter command for production members: linux-x64, ReadyToRun (every assembly,
# NuGet dependencies included, precompiled to native code, so a start JITs little), framework-
# dependent (runs on the installed .NET 10 runtime).
#   scripts/publish.sh            -> artifacts/arbiter-linux-x64/arbiter (and arbiter.dll)
# Environment:
#   ARBITER_PUBLISH_DIR=DIR        where to publish (default artifacts/arbiter-linux-x64)
#   ARBITER_RID=RID                another runtime identifier, e.g. linux-arm64 (default linux-x64)
# Run it as: artifacts/arbiter-linux-x64/arbiter serve …   (or: dotnet artifacts/arbiter-linux-x64/arbiter.dll serve …)
# Why: a restarted member spends most of its start in the JIT; ReadyToRun cuts its CPU to serving
# by about a third (docs/operations.md "Start-up time"; bench/startup.sh measures it).
set -euo pipefail
cd "$(dirname "$0")/.."
rid="${ARBITER_RID:-linux-x64}"
out="${ARBITER_PUBLISH_DIR:-artifacts/arbiter-$rid}"
dotnet publish src/Arbiter.Cli/Arbiter.Cli.csproj -c Release -r "$rid" --self-contained false \
  -p:PublishReadyToRun=true -warnaserror -nologo -v quiet -o "$out"
echo "[publish.sh] $out/arbiter ($(du -sh "$out" | cut -f1), ReadyToRun, $rid, needs the .NET 10 runtime)"
