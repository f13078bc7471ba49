#!/usr/bin/env bash
# usage: loop.sh LABEL DLLDIR N CP PP
LABEL=$1; DLLDIR=$2; N=$3; CP=$4; PP=$5
OUT=/tmp/div/$LABEL; mkdir -p $OUT
for n in $(seq 1 $N); do
  W=$OUT/run$n; rm -rf $W; mkdir -p $W
  ARBITER_DLL=$DLLDIR/arbiter.dll CP=$CP PP=$PP WORKDIR=$W bash "$(dirname "$0")/leader-stop-divergence.sh" > $W/script.out 2>&1
  hashes=$(grep -o '"hash":[0-9]*' $W/hash.txt | sort -u | wc -l)
  revs=$(grep -o '"revision":[0-9]*' $W/hash.txt | tr '\n' ' ')
  members=$(grep -c '"hash"' $W/hash.txt)
  if [ "$members" != 3 ]; then verdict=INCOMPLETE; elif [ "$hashes" = 1 ]; then verdict=AGREE; else verdict=DIVERGED; fi
  echo "$LABEL run $n $(date +%T) $verdict members=$members $revs $(grep '^leader' $W/script.out)" | tee -a $OUT/summary.txt
  [ "$verdict" = AGREE ] && rm -rf $W/d
done
