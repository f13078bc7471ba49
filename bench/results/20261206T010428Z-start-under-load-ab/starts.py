#!/usr/bin/env python3
"""Per failover run: median ms from a killed member's restart to its 'Raft member started' and 'Now listening' log lines."""
import csv, datetime, statistics, sys, os
def ts(line):
    return datetime.datetime.strptime(line[:23], "%Y-%m-%dT%H:%M:%S.%f").replace(tzinfo=datetime.timezone.utc).timestamp() * 1000
for run in sys.argv[1:]:
    raw = os.path.join(run, "raw"); raft, listen, ready = [], [], []
    for f in csv.DictReader(open(os.path.join(raw, "arbiter-faults.csv"))):
        if f["kind"] != "kill": continue
        heal = int(f["heal_ms"]); lines = open(os.path.join(raw, f"arbiter-m{f['endpoint']}.log"), errors="replace").read().splitlines()
        def first(marker):
            for l in lines:
                if marker in l and l[:4] == "2026" and ts(l) >= heal: return ts(l) - heal
        for lst, m in ((raft, "Raft member http"), (ready, " ready at revision"), (listen, "Now listening")):
            v = first(m)
            if v is not None: lst.append(v)
    arb = [l for l in open(os.path.join(run, "results.md")) if l.startswith("| arbiter | kill")][0].split("|")
    args = [l for l in open(os.path.join(run, "machine.md")) if l.startswith("| arbiter |")][0].strip()
    print(f"{os.path.basename(run)}  raft started {statistics.median(raft):6.0f}  ready {statistics.median(ready):6.0f}  listening {statistics.median(listen):6.0f}  serves again p50/max {arb[12].strip()}  outage p50 {arb[4].strip()}  [{args}]")
