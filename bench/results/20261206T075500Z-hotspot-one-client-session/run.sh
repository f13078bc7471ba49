#!/usr/bin/env bash
# Four alternating rounds of the one-client hotspot (8 accounts) with the SDK's transaction session
# on (the default): Arbiter's families against PostgreSQL and etcd's STM. Odd rounds measure
# Arbiter first, even rounds the others first.
set -euo pipefail
cd "$(dirname "$0")/../../.."
OUT_ROOT=${OUT_ROOT:-$(dirname "$0")}
for round in 1 2 3 4; do
  if (( round % 2 == 1 )); then
    families=pessimistic,postgres,optimistic,stm,etcd-stm
  else
    families=etcd-stm,stm,optimistic,postgres,pessimistic
  fi
  OUT="$OUT_ROOT/round$round" DURATION_S=8 CLIENT_COUNTS=1 ACCOUNTS=8 FAMILIES=$families DEADLOCK_ROUNDS=0 bench/transactions.sh
done
