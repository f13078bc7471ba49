#!/usr/bin/env bash
# Snapshot catch-up with a large state (docs/operations.md, "Snapshot transfer"): 3 members, a
# follower killed, KEYS keys of VALUE bytes written twice through the other two (the leader
# snapshots every SNAP entries), then the follower restarted: prints how long until all three
# members show the same revision (or the revisions after WAIT polls).
# Needs: dotnet build -c Release of src/Arbiter.Cli and bench/Arbiter.Bench; etcdctl.
# Usage: KEYS=4000 VALUE=8192 bench/snapshot-catchup.sh      (about 35 MB of state)
ROOT=$(cd "$(dirname "$0")/.." && pwd)
DLL=${ARBITER_DLL:-$ROOT/src/Arbiter.Cli/bin/Release/net10.0/arbiter.dll}
BENCH=$ROOT/bench/Arbiter.Bench/bin/Release/net10.0/arbiter-bench.dll
W=${WORKDIR:-/tmp/bigsnap}; rm -rf $W; mkdir -p $W/d
CP=${CP:-2470}; PP=${PP:-2480}; KEYS=${KEYS:-4000}; VALUE=${VALUE:-8192}
IC="m1=http://127.0.0.1:${PP}1,m2=http://127.0.0.1:${PP}2,m3=http://127.0.0.1:${PP}3"
start() { dotnet $DLL serve --name m$1 --data-dir $W/d/m$1 --listen-client-urls http://127.0.0.1:${CP}$1 --advertise-client-urls http://127.0.0.1:${CP}$1 \
   --initial-advertise-peer-urls http://127.0.0.1:${PP}$1 --listen-peer-urls http://127.0.0.1:${PP}$1 --initial-cluster $IC --initial-cluster-state new \
   --heartbeat-interval 100 --election-timeout 1000 --snapshot-count ${SNAP:-1000} --log-level info >> $W/m$1.log 2>&1 & echo $!; }
declare -A pid
for i in 1 2 3; do pid[$i]=$(start $i); done
E=http://127.0.0.1:${CP}1,http://127.0.0.1:${CP}2,http://127.0.0.1:${CP}3
for a in $(seq 1 30); do ETCDCTL_API=3 etcdctl --endpoints=http://127.0.0.1:${CP}1 put probe x >/dev/null 2>&1 && break; sleep 1; done
# stop a follower (not the leader)
leader=$(ETCDCTL_API=3 etcdctl --endpoints=$E endpoint status -w json 2>/dev/null | python3 -c "import json,sys; d=json.load(sys.stdin); print([x['Endpoint'][-1] for x in d if x['Status']['header']['member_id']==x['Status'].get('leader')][0])")
f=1; [ "$leader" = 1 ] && f=2
echo "leader m$leader, stopping follower m$f"; kill -9 ${pid[$f]}
others=$(for i in 1 2 3; do [ $i != $f ] && printf "http://127.0.0.1:${CP}$i,"; done); others=${others%,}
dotnet $BENCH run --endpoints $others --workload put --clients 16 --total $((KEYS*2)) --key-space $KEYS --value-size $VALUE --warmup 0 --quiet > $W/bench.log 2>&1
echo "wrote; leader status:"; ETCDCTL_API=3 etcdctl --endpoints=http://127.0.0.1:${CP}$leader endpoint status -w table
ls -la $W/d/m$leader/member/snap/
t0=$(date +%s.%N); pid[$f]=$(start $f)
for a in $(seq 1 ${WAIT:-90}); do
  r=$(ETCDCTL_API=3 etcdctl --endpoints=$E endpoint status -w json 2>/dev/null | python3 -c "import json,sys; d=json.load(sys.stdin); print(' '.join(str(x['Status']['header']['revision']) for x in d))")
  set -- $r; if [ $# = 3 ] && [ "$1" = "$2" ] && [ "$2" = "$3" ]; then echo "caught up after $(echo "$(date +%s.%N) - $t0" | bc) s: $r"; break; fi
  sleep 1
done
echo "final revisions: $r"
grep -c "Installing snapshot" $W/m$leader.log; grep -E "Installed Raft snapshot|truncated|Timeout occurred" $W/m$f.log | tail -5
pkill -f "$W/d/m" ; wait 2>/dev/null
