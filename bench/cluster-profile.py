#!/usr/bin/env python3
"""Where a cluster's writes go, per measured cell: bench/compare.sh (MEMBERS=3) scrapes every member's
/metrics and /proc CPU time before and after each cell into raw/<cell>.m<i>.{before,after}; this
turns the differences into bench/results/<run>/profile.md.

Usage: bench/cluster-profile.py RESULTS_DIR
Per cell and system: revisions written (MVCC revision delta), Raft entries committed (leader's
proposals_committed delta), writes per entry, log fsyncs per member and their mean duration, and
CPU per write on each member. The deltas cover the cell's warm-up too (its per-second figures use
the same window). Arbiter's leader flush happens inside DotNext and is not in its fsync metric;
a follower's flush before it answers AppendEntries is, as is every etcd member's WAL fsync.
"""
import glob
import json
import os
import re
import sys

SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+([-+0-9.eEInfa]+)$')


def metrics(path):
    """name -> summed value over label sets, plus the raw labelled lines."""
    out = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            m = SAMPLE.match(line.strip())
            if not m:
                continue
            name, labels, value = m.group(1), m.group(2) or "", float(m.group(3))
            out[name] = out.get(name, 0.0) + value
            out[name + labels] = value
    return out


def side(cell, member, when):
    prom = f"{cell}.m{member}.{when}.prom"
    info = f"{cell}.m{member}.{when}.json"
    return metrics(prom), json.load(open(info, encoding="utf-8"))


def member_deltas(cell, member):
    before, info_before = side(cell, member, "before")
    after, info_after = side(cell, member, "after")

    def delta(name):
        return after.get(name, 0.0) - before.get(name, 0.0)

    return {
        "leader": after.get("etcd_server_is_leader", 0.0) == 1.0,
        "committed": delta("etcd_server_proposals_committed_total"),
        "revision": delta("etcd_debugging_mvcc_current_revision"),
        "fsyncs": delta("etcd_disk_wal_fsync_duration_seconds_count"),
        "fsync_s": delta("etcd_disk_wal_fsync_duration_seconds_sum"),
        # Forwarding calls the leader served: one per write (Propose) or one per batch of a follower's writes (ProposeBatch).
        "forwarded": delta('grpc_server_started_total{grpc_method="Propose",grpc_service="arbiter.internal.v1.Peer",grpc_type="unary"}')
        + delta('grpc_server_started_total{grpc_method="ProposeBatch",grpc_service="arbiter.internal.v1.Peer",grpc_type="unary"}'),
        "cpu_s": info_after["cpuS"] - info_before["cpuS"],
        "wall_s": info_after["wallS"] - info_before["wallS"],
    }


def main():
    run = sys.argv[1]
    cells = sorted({re.sub(r"\.m\d\.(before|after)\.(prom|json)$", "", p) for p in glob.glob(os.path.join(run, "raw", "*.m1.before.prom"))})
    rows = []
    for cell in cells:
        members = [member_deltas(cell, i) for i in (1, 2, 3)]
        leader = next((m for m in members if m["leader"]), None)
        if leader is None:
            continue
        wall = leader["wall_s"]
        writes = max(m["revision"] for m in members)
        entries = leader["committed"]
        order = [leader] + [m for m in members if m is not leader]
        fsyncs = " / ".join(f"{m['fsyncs'] / wall:.0f}" for m in order)
        fsync_ms = " / ".join(f"{(1000 * m['fsync_s'] / m['fsyncs']) if m['fsyncs'] else 0:.2f}" for m in order)
        cpu = " / ".join(f"{(1e6 * m['cpu_s'] / writes) if writes else 0:.0f}" for m in order)
        forwarded = sum(m["forwarded"] for m in members)
        name = os.path.basename(cell)
        if writes < 50:
            # A read or watch cell: only the readiness writes landed in it.
            rows.append(f"| {name} | {writes / wall:.0f} | {entries / wall:.0f} | – | – | {fsyncs} | – | – |")
            continue
        rows.append(
            f"| {name} | {writes / wall:.0f} | {entries / wall:.0f} | {(writes / entries) if entries else 0:.1f} | "
            f"{(forwarded / writes) if writes else 0:.2f} | {fsyncs} | {fsync_ms} | {cpu} |")

    with open(os.path.join(run, "profile.md"), "w", encoding="utf-8") as f:
        f.write("## Where the writes went (per cell, from every member's /metrics and /proc)\n\n")
        f.write("Columns with three figures are leader / follower / follower. Deltas span the cell's warm-up and measured time.\n")
        f.write("Arbiter's fsync figures on the leader are 0: DotNext flushes the leader's log itself and that flush is not in the metric.\n\n")
        f.write("| cell | revisions/s | Raft entries/s | writes per entry | forwarding calls per write | log fsyncs/s | fsync mean ms | CPU µs per write |\n")
        f.write("|---|---:|---:|---:|---:|---|---|---|\n")
        f.write("\n".join(rows) + "\n")


if __name__ == "__main__":
    main()
