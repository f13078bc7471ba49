using Arbiter.Core.Mvcc;
using Google.Protobuf;

namespace Arbiter.Core.Transactions;

/// <summary>
/// A half-open key span [Start, End) in etcd's notation: an empty range_end is the single key,
/// range_end "\0" is every key from Start on (End = null).
/// </summary>
/// <param name="Start">The first key.</param>
/// <param name="End">One past the last key, or null for "to the end of the keyspace".</param>
internal readonly record struct KeySpan(ByteString Start, ByteString? End)
{
    /// <summary>The span etcd's (key, range_end) pair denotes.</summary>
    public static KeySpan FromEtcd(ByteString key, ByteString rangeEnd)
    {
        if (rangeEnd.IsEmpty)
        {
            return new KeySpan(key, ByteString.CopyFrom([.. key.Span, 0]));
        }

        return rangeEnd.Length == 1 && rangeEnd[0] == 0 ? new KeySpan(key, null) : new KeySpan(key, rangeEnd);
    }

    /// <summary>Whether the two spans share a key.</summary>
    public bool Overlaps(KeySpan other) =>
        (other.End is null || KeyComparer.CompareKeys(Start, other.End) < 0)
        && (End is null || KeyComparer.CompareKeys(other.Start, End) < 0);

    /// <summary>Whether every key of <paramref name="inner"/> is in this span.</summary>
    public bool Covers(KeySpan inner) =>
        KeyComparer.CompareKeys(Start, inner.Start) <= 0
        && (End is null || (inner.End is not null && KeyComparer.CompareKeys(inner.End, End) <= 0));
}
