namespace Arbiter.Core.Mvcc;

/// <summary>
/// Keeps the key-values of the versions written last readable from memory after they were spilled,
/// up to a byte budget, oldest let go first. Every version goes to the spill when it is written, so
/// the keyspace's newest versions do not sit on the managed heap either; this cache is what keeps
/// a hot key's reads, compares and overwrites from reading the spill back.
/// </summary>
/// <remarks>
/// Only the state's writer calls <see cref="Add"/> (under the write lock); readers see a cached
/// key-value through <see cref="StoredVersion.Load"/>. The budget is small on purpose: what stays
/// long on the managed heap is promoted and dies in its oldest generation, which is what makes the
/// process's memory grow past its live data.
/// </remarks>
internal sealed class RecentVersions(long sizeBytesMax)
{
    // The message, two ByteString wrappers and their arrays, beyond the serialized bytes.
    private const int ObjectOverheadBytes = 160;

    private readonly Queue<StoredVersion.SpilledVersion> _order = new();
    private long _sizeBytes;

    /// <summary>The budget: the estimated heap bytes of the cached key-values.</summary>
    public long SizeBytesMax { get; } = sizeBytesMax;

    /// <summary>The estimated heap bytes cached now.</summary>
    public long SizeBytes => _sizeBytes;

    /// <summary>Key-values cached now.</summary>
    public int Count => _order.Count;

    public void Add(StoredVersion.SpilledVersion spilled, Protocol.Mvcc.KeyValue kv)
    {
        var cost = spilled.Length + ObjectOverheadBytes;
        if (cost > SizeBytesMax)
        {
            return;
        }

        spilled.Cached = kv;
        _order.Enqueue(spilled);
        _sizeBytes += cost;
        while (_sizeBytes > SizeBytesMax)
        {
            var oldest = _order.Dequeue();
            oldest.Cached = null;
            _sizeBytes -= oldest.Length + ObjectOverheadBytes;
        }
    }
}
