#!/usr/bin/env bash
# Alternating rounds at the one-client hotspot (8 accounts): each Arbiter family with the SDK's
# transaction session (default) and with it off (-unary), next to etcd's STM and PostgreSQL.
# Odd rounds run the session first, even rounds unary first.
set -euo pipefail
cd "$(dirname "$0")/../../.."
OUT_ROOT=${OUT_ROOT:-$(dirname "$0")}
for round in 1 2 3 4; do
  if (( round % 2 == 1 )); then
    families=pessimistic,pessimistic-unary,postgres,optimistic,optimistic-unary,stm,stm-unary,etcd-stm
  else
    families=pessimistic-unary,pessimistic,postgres,optimistic-unary,optimistic,stm-unary,stm,etcd-stm
  fi
  OUT="$OUT_ROOT/round$round" DURATION_S=8 CLIENT_COUNTS=1 ACCOUNTS=8 FAMILIES=$families DEADLOCK_ROUNDS=0 bench/transactions.sh
done
