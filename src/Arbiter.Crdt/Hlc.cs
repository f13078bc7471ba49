using System.Globalization;
using Arbiter.Protocol.Crdt;

namespace Arbiter.Crdt;

/// <summary>
/// A hybrid logical clock timestamp (Kulkarni et al.): the largest wall-clock time seen, in
/// milliseconds since the Unix epoch, and a logical counter that orders events within one
/// millisecond. Compared like a wall-clock timestamp: by <see cref="WallMs"/>, then <see cref="Logical"/>.
/// </summary>
/// <param name="WallMs">Wall-clock milliseconds since the Unix epoch (the l of the paper).</param>
/// <param name="Logical">The logical counter (the c of the paper).</param>
public readonly record struct Hlc(long WallMs, uint Logical) : IComparable<Hlc>
{
    /// <summary>The smallest timestamp (0, 0): what an absent causal token means.</summary>
    public static Hlc Zero => default;

    /// <inheritdoc />
    public int CompareTo(Hlc other)
    {
        int byWall = WallMs.CompareTo(other.WallMs);
        return byWall != 0 ? byWall : Logical.CompareTo(other.Logical);
    }

    /// <summary>Whether <paramref name="left"/> orders before <paramref name="right"/>.</summary>
    public static bool operator <(Hlc left, Hlc right) => left.CompareTo(right) < 0;

    /// <summary>Whether <paramref name="left"/> orders after <paramref name="right"/>.</summary>
    public static bool operator >(Hlc left, Hlc right) => left.CompareTo(right) > 0;

    /// <summary>Whether <paramref name="left"/> orders before or equals <paramref name="right"/>.</summary>
    public static bool operator <=(Hlc left, Hlc right) => left.CompareTo(right) <= 0;

    /// <summary>Whether <paramref name="left"/> orders after or equals <paramref name="right"/>.</summary>
    public static bool operator >=(Hlc left, Hlc right) => left.CompareTo(right) >= 0;

    /// <summary>The larger of two timestamps.</summary>
    public static Hlc Max(Hlc left, Hlc right) => left >= right ? left : right;

    /// <summary>This timestamp as the wire message.</summary>
    public HlcTimestamp ToTimestamp() => new() { WallMs = WallMs, Logical = Logical };

    /// <summary>The timestamp a wire message carries; an absent message is <see cref="Zero"/>.</summary>
    public static Hlc FromTimestamp(HlcTimestamp? timestamp) =>
        timestamp is null ? Zero : new Hlc(timestamp.WallMs, timestamp.Logical);

    /// <inheritdoc />
    public override string ToString() =>
        string.Create(CultureInfo.InvariantCulture, $"{WallMs}.{Logical}");
}
