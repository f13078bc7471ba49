#!/usr/bin/env bash
# 3 members 100/1000; writers on all members; SIGSTOP leader 5 s; SIGCONT; stop writers; watch revisions.
DLL=${ARBITER_DLL:-/work/main/src/Arbiter.Cli/bin/Release/net10.0/arbiter.dll}
rm -rf ${WORKDIR:-/tmp/flap}/d; mkdir -p ${WORKDIR:-/tmp/flap}/d
IC="m1=http://127.0.0.1:${PP:-2380}1,m2=http://127.0.0.1:${PP:-2380}2,m3=http://127.0.0.1:${PP:-2380}3"
declare -A pid
for i in 1 2 3; do
  dotnet $DLL serve --name m$i --data-dir ${WORKDIR:-/tmp/flap}/d/m$i --listen-client-urls http://127.0.0.1:${CP:-2370}$i --advertise-client-urls http://127.0.0.1:${CP:-2370}$i \
   --initial-advertise-peer-urls http://127.0.0.1:${PP:-2380}$i --listen-peer-urls http://127.0.0.1:${PP:-2380}$i --initial-cluster $IC --initial-cluster-state new \
   --heartbeat-interval 100 --election-timeout 1000 --log-level info > ${WORKDIR:-/tmp/flap}/m$i.log 2>&1 &
  pid[$i]=$!
done
sleep 4
E=http://127.0.0.1:${CP:-2370}1,http://127.0.0.1:${CP:-2370}2,http://127.0.0.1:${CP:-2370}3
leader=""; for a in 1 2 3 4 5 6 7 8 9 10; do leader=$(ETCDCTL_API=3 etcdctl --endpoints=$E endpoint status -w json 2>/dev/null | python3 -c "import json,sys; d=json.load(sys.stdin); print([x['Endpoint'][-1] for x in d if x['Status']['header']['member_id']==x['Status'].get('leader')][0])" 2>/dev/null); [ -n "$leader" ] && break; sleep 1; done
echo "leader m$leader"
wp=()
for i in 1 2 3; do ( n=0; while :; do ETCDCTL_API=3 etcdctl --endpoints=http://127.0.0.1:${CP:-2370}$i --command-timeout=3s put w$i-$n v >/dev/null 2>&1; n=$((n+1)); done ) & wp+=($!); done
sleep 3
kill -STOP ${pid[$leader]}; echo "stopped m$leader at $(date +%T.%N)"
sleep 5
kill -CONT ${pid[$leader]}; echo "continued at $(date +%T.%N)"
sleep 2
for p in ${wp[@]}; do pkill -P $p; kill $p; done 2>/dev/null
echo "writers stopped $(date +%T)"
for t in 1 2; do
  echo "t=$t $(ETCDCTL_API=3 etcdctl --endpoints=$E endpoint status -w json 2>/dev/null | python3 -c "import json,sys; d=json.load(sys.stdin); print([(x['Endpoint'][-1], x['Status']['header']['revision'], x['Status']['raftIndex'], x['Status']['leader']%1000) for x in d])")"
  sleep 3
done
for i in 1 2 3; do ETCDCTL_API=3 etcdctl --endpoints=http://127.0.0.1:${CP:-2370}$i get "" --prefix --consistency=s -w json > ${WORKDIR:-/tmp/flap}/dump$i.json; ETCDCTL_API=3 etcdctl --endpoints=http://127.0.0.1:${CP:-2370}$i endpoint hashkv -w json >> ${WORKDIR:-/tmp/flap}/hash.txt 2>&1; done
kill ${pid[@]}; wait 2>/dev/null
