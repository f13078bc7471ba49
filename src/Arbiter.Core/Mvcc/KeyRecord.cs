using Arbiter.Protocol.Mvcc;
using Google.Protobuf;

namespace Arbiter.Core.Mvcc;

/// <summary>One entry of a key's history: a put or a tombstone.</summary>
/// <param name="Main">The store revision of the change.</param>
/// <param name="Sub">The change's position inside its revision (a txn can change several keys).</param>
/// <param name="Stored">The stored key-value (in memory or spilled), or a tombstone. Shared; never mutated.</param>
internal readonly record struct KeyRevision(long Main, int Sub, StoredVersion Stored)
{
    /// <summary>The key-value, read back from its spill when spilled; null for a tombstone.</summary>
    public KeyValue? LoadKv() => Stored.Load();
}

/// <summary>A key and its retained history (oldest first), plus the lease it is attached to now.</summary>
internal sealed class KeyRecord(ByteString key)
{
    public ByteString Key { get; } = key;

    public List<KeyRevision> History { get; } = [];

    /// <summary>The lease the live key is attached to (0 = none).</summary>
    public long LeaseId { get; set; }

    /// <summary>The newest version, or null when the key is deleted (or has no history).</summary>
    public KeyValue? Latest => History.Count == 0 ? null : History[^1].LoadKv();

    /// <summary>The version visible at <paramref name="revision"/>, or null when absent then.</summary>
    public KeyValue? At(long revision)
    {
        var n = History.Count;
        if (n == 0)
        {
            return null;
        }

        // Fast path: most reads are at the latest revision.
        if (History[n - 1].Main <= revision)
        {
            return History[n - 1].LoadKv();
        }

        int lo = 0, hi = n - 1, found = -1;
        while (lo <= hi)
        {
            var mid = lo + ((hi - lo) >> 1);
            if (History[mid].Main <= revision)
            {
                found = mid;
                lo = mid + 1;
            }
            else
            {
                hi = mid - 1;
            }
        }

        return found < 0 ? null : History[found].LoadKv();
    }
}

/// <summary>Orders byte strings as unsigned bytes, lexicographically (etcd's key order).</summary>
internal sealed class KeyComparer : IComparer<ByteString>, IComparer<KeyRecord>
{
    public static readonly KeyComparer Instance = new();

    public static int CompareKeys(ByteString a, ByteString b) => a.Span.SequenceCompareTo(b.Span);

    public int Compare(ByteString? x, ByteString? y) => CompareKeys(x ?? ByteString.Empty, y ?? ByteString.Empty);

    public int Compare(KeyRecord? x, KeyRecord? y) =>
        CompareKeys(x?.Key ?? ByteString.Empty, y?.Key ?? ByteString.Empty);
}
