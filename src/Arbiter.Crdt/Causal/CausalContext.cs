using System.Collections.Immutable;

namespace Arbiter.Crdt.Causal;

/// <summary>
/// The set of dots a state has seen, compressed as a version vector (every seq up to N for each
/// replica) plus a dot cloud (dots seen beyond a gap). Always normalized: a cloud dot is neither
/// covered by the vector nor the next one after it, so equal sets have equal representations.
/// </summary>
internal sealed class CausalContext
{
    public static readonly CausalContext Empty = new(
        ImmutableSortedDictionary<ulong, ulong>.Empty, ImmutableSortedSet<Dot>.Empty);

    private CausalContext(ImmutableSortedDictionary<ulong, ulong> versions, ImmutableSortedSet<Dot> cloud)
    {
        Versions = versions;
        Cloud = cloud;
    }

    /// <summary>Replica to the highest seq seen with no gap below it (never 0).</summary>
    public ImmutableSortedDictionary<ulong, ulong> Versions { get; }

    /// <summary>Dots seen above a gap.</summary>
    public ImmutableSortedSet<Dot> Cloud { get; }

    public bool IsEmpty => Versions.IsEmpty && Cloud.IsEmpty;

    public static CausalContext FromDots(IEnumerable<Dot> dots) => Create([], dots);

    /// <summary>The normalized context of the given vector and dots (a seq of 0 means nothing seen).</summary>
    public static CausalContext Create(IEnumerable<KeyValuePair<ulong, ulong>> versions, IEnumerable<Dot> dots)
    {
        var vector = new SortedDictionary<ulong, ulong>();
        foreach (var (replica, seq) in versions)
        {
            if (seq > 0 && (!vector.TryGetValue(replica, out ulong known) || known < seq))
            {
                vector[replica] = seq;
            }
        }

        var sorted = new SortedSet<Dot>(dots);
        var cloud = ImmutableSortedSet.CreateBuilder<Dot>();
        foreach (var dot in sorted)
        {
            vector.TryGetValue(dot.Replica, out ulong known);
            if (dot.Seq <= known)
            {
                continue;
            }

            if (dot.Seq == known + 1)
            {
                vector[dot.Replica] = dot.Seq;
            }
            else
            {
                cloud.Add(dot);
            }
        }

        // A dot kept in the cloud may have become contiguous with a vector that grew after it
        // was looked at only if it sorted before the dots that grew the vector: impossible, since
        // dots of one replica are visited in ascending seq order.
        return new CausalContext(vector.ToImmutableSortedDictionary(), cloud.ToImmutable());
    }

    public bool Contains(Dot dot) =>
        (Versions.TryGetValue(dot.Replica, out ulong seq) && dot.Seq <= seq) || Cloud.Contains(dot);

    /// <summary>The highest seq of <paramref name="replica"/> seen (0 if none).</summary>
    public ulong MaxSeq(ulong replica)
    {
        Versions.TryGetValue(replica, out ulong max);
        foreach (var dot in Cloud)
        {
            if (dot.Replica == replica && dot.Seq > max)
            {
                max = dot.Seq;
            }
        }

        return max;
    }

    /// <summary>Whether the context names any dot of one of <paramref name="replicas"/>.</summary>
    public bool Mentions(IReadOnlySet<ulong> replicas)
    {
        foreach (ulong replica in Versions.Keys)
        {
            if (replicas.Contains(replica))
            {
                return true;
            }
        }

        foreach (var dot in Cloud)
        {
            if (replicas.Contains(dot.Replica))
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>This context without any dot of <paramref name="replicas"/> (still normalized: other replicas' entries are untouched).</summary>
    public CausalContext Without(IReadOnlySet<ulong> replicas)
    {
        if (replicas.Count == 0 || !Mentions(replicas))
        {
            return this;
        }

        var versions = Versions.RemoveRange(replicas);
        var cloud = Cloud.Except(Cloud.Where(dot => replicas.Contains(dot.Replica)));
        return versions.IsEmpty && cloud.IsEmpty ? Empty : new CausalContext(versions, cloud);
    }

    public CausalContext Union(CausalContext other)
    {
        if (other.IsEmpty || ReferenceEquals(this, other))
        {
            return this;
        }

        if (IsEmpty)
        {
            return other;
        }

        // Fold the smaller context into the larger one, renormalizing only the replicas it touched
        // (a state joining a delta touches one or two), instead of re-sorting everything.
        var (large, small) = Versions.Count + Cloud.Count >= other.Versions.Count + other.Cloud.Count ? (this, other) : (other, this);
        var versions = large.Versions.ToBuilder();
        var cloud = large.Cloud.ToBuilder();
        var touched = new SortedSet<ulong>();
        foreach (var (replica, seq) in small.Versions)
        {
            if (!versions.TryGetValue(replica, out ulong known) || known < seq)
            {
                versions[replica] = seq;
                touched.Add(replica);
            }
        }

        foreach (var dot in small.Cloud)
        {
            if (!(versions.TryGetValue(dot.Replica, out ulong known) && dot.Seq <= known) && cloud.Add(dot))
            {
                touched.Add(dot.Replica);
            }
        }

        foreach (ulong replica in touched)
        {
            versions.TryGetValue(replica, out ulong known);
            var ofReplica = cloud.Where(dot => dot.Replica == replica).ToList();
            foreach (var dot in ofReplica)
            {
                if (dot.Seq <= known)
                {
                    cloud.Remove(dot);
                }
                else if (dot.Seq == known + 1)
                {
                    known = dot.Seq;
                    cloud.Remove(dot);
                }
                else
                {
                    break;
                }
            }

            if (known > 0)
            {
                versions[replica] = known;
            }
        }

        return new CausalContext(versions.ToImmutable(), cloud.ToImmutable());
    }
}
