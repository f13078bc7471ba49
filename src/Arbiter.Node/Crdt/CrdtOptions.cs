using Arbiter.Crdt;

namespace Arbiter.Node.Crdt;

/// <summary>How a member's CRDT replica (the eventual tier) runs; see docs/crdt.md.</summary>
public sealed record CrdtOptions
{
    /// <summary>Limits on one CRDT value (element sizes, elements per set, siblings per register…).</summary>
    public CrdtLimits Limits { get; init; } = new();

    /// <summary>CRDT keys one replica holds at most; an update that would create one more fails.</summary>
    public int KeysMax { get; init; } = 10_000;

    /// <summary>Longest CRDT key, in bytes of UTF-8.</summary>
    public int KeySizeBytesMax { get; init; } = 1024;

    /// <summary>
    /// Largest accepted offset of another clock ahead of this member's, in ms (CockroachDB's
    /// <c>--max-offset</c>): a peer's deltas or a client's causal token stamped further ahead are
    /// refused and logged as an alarm, never trusted.
    /// </summary>
    public int ClockOffsetMsMax { get; init; } = 500;

    /// <summary>How often deltas are pushed to the other members when there are new ones, in ms.</summary>
    public int GossipIntervalMs { get; init; } = 100;

    /// <summary>How often each member compares digests with every other member and repairs what differs, in ms.</summary>
    public int RepairIntervalMs { get; init; } = 2000;

    /// <summary>Deltas kept in memory for gossip; a member further behind is repaired from digests instead.</summary>
    public int DeltaBufferEntriesMax { get; init; } = 20_000;

    /// <summary>Deltas per gossip message.</summary>
    public int DeltasPerBatchMax { get; init; } = 1000;

    /// <summary>How long a majority or all write or read waits for the other replicas when the request names no timeout, in ms.</summary>
    public int DefaultTimeoutMs { get; init; } = 5000;

    /// <summary>Longest timeout a request may ask for, in ms.</summary>
    public int TimeoutMsMax { get; init; } = 60_000;

    /// <summary>How long one call to another member may take before it counts as unreachable, in ms.</summary>
    public int PeerCallTimeoutMs { get; init; } = 2000;

    /// <summary>Records in the replica's log between snapshots of its whole state.</summary>
    public int SnapshotEveryRecords { get; init; } = 20_000;

    /// <summary>Most records made durable by one fsync (group commit).</summary>
    public int BatchRecordsMax { get; init; } = 4096;
}
