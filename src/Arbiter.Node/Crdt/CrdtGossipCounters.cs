namespace Arbiter.Node.Crdt;

/// <summary>What the eventual tier's anti-entropy moves, by kind of message.</summary>
internal enum CrdtGossipKind
{
    /// <summary>Delta batches pushed to a member (gossip rounds and majority/all writes).</summary>
    Delta,

    /// <summary>The acknowledgements of delta batches.</summary>
    Ack,

    /// <summary>Digests sent for comparison.</summary>
    Digest,

    /// <summary>Full states exchanged by a digest repair (the answer, the states pushed back, their acknowledgements).</summary>
    Repair,
}

/// <summary>
/// Bytes of anti-entropy traffic this member started (its requests and the answers it received; the
/// protobuf messages, without gRPC and HTTP/2 framing), and updates applied here. Summed over the
/// members, every byte is counted once: each call is started by exactly one member.
/// </summary>
internal sealed class CrdtGossipCounters
{
    private readonly long[] _bytes = new long[4];
    private long _updates;

    /// <summary>Local updates applied (the denominator of bytes per update).</summary>
    public long Updates => Interlocked.Read(ref _updates);

    public long BytesOf(CrdtGossipKind kind) => Interlocked.Read(ref _bytes[(int)kind]);

    public void Add(CrdtGossipKind kind, int bytes) => Interlocked.Add(ref _bytes[(int)kind], bytes);

    public void Update() => Interlocked.Increment(ref _updates);
}
