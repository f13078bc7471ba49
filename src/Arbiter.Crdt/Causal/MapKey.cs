using Arbiter.Protocol.Crdt;

namespace Arbiter.Crdt.Causal;

/// <summary>
/// A key of a <see cref="DotMap"/>: a set element (type unspecified) or a map field with the type
/// of its nested CRDT. Ordered by bytes (unsigned, shorter first on a common prefix), then type.
/// </summary>
internal sealed class MapKey : IComparable<MapKey>, IEquatable<MapKey>
{
    private readonly byte[] _bytes;

    /// <summary>A key over a copy of <paramref name="bytes"/>.</summary>
    public MapKey(ReadOnlySpan<byte> bytes, CrdtType type)
    {
        _bytes = bytes.ToArray();
        Type = type;
    }

    public ReadOnlySpan<byte> Bytes => _bytes;

    public CrdtType Type { get; }

    public int CompareTo(MapKey? other)
    {
        if (other is null)
        {
            return 1;
        }

        int byBytes = Bytes.SequenceCompareTo(other.Bytes);
        return byBytes != 0 ? byBytes : ((int)Type).CompareTo((int)other.Type);
    }

    public bool Equals(MapKey? other) => other is not null && CompareTo(other) == 0;

    public override bool Equals(object? obj) => obj is MapKey other && Equals(other);

    public override int GetHashCode()
    {
        var hash = default(HashCode);
        hash.AddBytes(_bytes);
        hash.Add(Type);
        return hash.ToHashCode();
    }
}
