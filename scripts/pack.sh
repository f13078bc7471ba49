#!/usr/bin/env bash
# Packs every Arbiter package into a local NuGet feed folder (nothing is published to the public NuGet gallery).
#   scripts/pack.sh                 -> artifacts/feed/*.nupkg and *.snupkg, version from Directory.Build.props
# Environment:
#   ARBITER_FEED=DIR                 the feed folder (default artifacts/feed)
#   ARBITER_VERSION_SUFFIX=SUFFIX    a prerelease suffix, e.g. "ci.42" -> 0.1.0-ci.42
#   ARBITER_REPOSITORY_URL=URL       the RepositoryUrl SourceLink records (default: git remote 'origin')
#   ARBITER_RELEASE=1                a release build: ContinuousIntegrationBuild (pdb paths as /_/)
# Without a suffix or ARBITER_RELEASE it reuses a Release build of the solution (packs, no rebuild).
# Then: dotnet tool install -g Arbiter.Cli --add-source artifacts/feed
#       dotnet add package Arbiter.Recipes --source artifacts/feed
set -euo pipefail
cd "$(dirname "$0")/.."
feed="${ARBITER_FEED:-artifacts/feed}"
mkdir -p "$feed"
feed="$(cd "$feed" && pwd)"
# One version of Arbiter in the feed: an older pack's packages go.
rm -f "$feed"/Arbiter.*.nupkg "$feed"/Arbiter.*.snupkg

props=(-c Release)
if [ "${ARBITER_RELEASE:-}" = "1" ]; then props+=(-p:ArbiterRelease=true); fi
if [ -n "${ARBITER_VERSION_SUFFIX:-}" ]; then props+=("-p:VersionSuffix=${ARBITER_VERSION_SUFFIX}"); fi
if [ -n "${ARBITER_REPOSITORY_URL:-}" ]; then props+=("-p:RepositoryUrl=${ARBITER_REPOSITORY_URL}"); fi

# Library packages, dependencies first (a package's dependencies are packages of the same version).
libraries=(Protocol Core Storage Crdt Node Client Recipes Hosting Embedded)
# One build of the tops covers every library; each pack then reuses it.
dotnet build src/Arbiter.Cli/Arbiter.Cli.csproj "${props[@]}" -warnaserror
dotnet build src/Arbiter.Hosting/Arbiter.Hosting.csproj "${props[@]}" -warnaserror
dotnet build src/Arbiter.Embedded/Arbiter.Embedded.csproj "${props[@]}" -warnaserror
for name in "${libraries[@]}"; do
  dotnet pack "src/Arbiter.${name}/Arbiter.${name}.csproj" "${props[@]}" --no-build -o "$feed" -v quiet -nologo
done
# The server as a .NET tool (ToolCommandName arbiter).
dotnet pack src/Arbiter.Cli/Arbiter.Cli.csproj "${props[@]}" --no-build -o "$feed" -v quiet -nologo
echo "[pack.sh] packages in $feed:"
ls -1 "$feed" | grep -E '\.s?nupkg$'
