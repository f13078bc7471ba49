using System.Globalization;

namespace Arbiter.Crdt.Causal;

/// <summary>A dot: the <see cref="Seq"/>-th event of replica <see cref="Replica"/> (Seq &gt;= 1). Ordered by replica, then sequence.</summary>
internal readonly record struct Dot(ulong Replica, ulong Seq) : IComparable<Dot>
{
    public int CompareTo(Dot other)
    {
        int byReplica = Replica.CompareTo(other.Replica);
        return byReplica != 0 ? byReplica : Seq.CompareTo(other.Seq);
    }

    public override string ToString() => string.Create(CultureInfo.InvariantCulture, $"({Replica},{Seq})");
}
