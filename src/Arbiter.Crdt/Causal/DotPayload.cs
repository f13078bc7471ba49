namespace Arbiter.Crdt.Causal;

/// <summary>
/// What a <see cref="DotFun"/> keeps under one dot. Counters use <see cref="Increments"/> and
/// <see cref="Decrements"/> (the replica's running totals when it minted the dot); registers use
/// <see cref="Value"/> and, for LWW, <see cref="Stamp"/>. Fields a type does not use stay zero.
/// </summary>
internal sealed class DotPayload : IComparable<DotPayload>, IEquatable<DotPayload>
{
    private readonly byte[] _value;

    public DotPayload(ulong increments, ulong decrements, Hlc stamp, ReadOnlySpan<byte> value)
    {
        Increments = increments;
        Decrements = decrements;
        Stamp = stamp;
        _value = value.ToArray();
    }

    public static DotPayload Counter(ulong increments, ulong decrements) => new(increments, decrements, Hlc.Zero, []);

    public static DotPayload Register(Hlc stamp, ReadOnlySpan<byte> value) => new(0, 0, stamp, value);

    public ulong Increments { get; }

    public ulong Decrements { get; }

    public Hlc Stamp { get; }

    public ReadOnlySpan<byte> Value => _value;

    public int CompareTo(DotPayload? other)
    {
        if (other is null)
        {
            return 1;
        }

        int c = Increments.CompareTo(other.Increments);
        if (c == 0)
        {
            c = Decrements.CompareTo(other.Decrements);
        }

        if (c == 0)
        {
            c = Stamp.CompareTo(other.Stamp);
        }

        return c != 0 ? c : Value.SequenceCompareTo(other.Value);
    }

    public bool Equals(DotPayload? other) => other is not null && CompareTo(other) == 0;

    public override bool Equals(object? obj) => obj is DotPayload other && Equals(other);

    public override int GetHashCode()
    {
        var hash = default(HashCode);
        hash.Add(Increments);
        hash.Add(Decrements);
        hash.Add(Stamp);
        hash.AddBytes(_value);
        return hash.ToHashCode();
    }
}
