using System.Collections.Immutable;
using Arbiter.Protocol.Crdt;

namespace Arbiter.Crdt.Causal;

/// <summary>
/// A dot store (Almeida, Shoker, Baquero): the part of a causal CRDT's state that names live
/// events by their dots. Paired with a causal context, one join rule serves every type: a dot
/// survives if both sides have it, or if one side has it and the other has not seen it.
/// </summary>
internal abstract class DotStore
{
    private int _sizeBytes = -1;

    public abstract bool IsEmpty { get; }

    /// <summary>The size of this store's encoding (the body of a CrdtStateStore message), in bytes; computed once.</summary>
    public int SizeBytes
    {
        get
        {
            if (_sizeBytes < 0)
            {
                _sizeBytes = StateSize.Store(this);
            }

            return _sizeBytes;
        }
    }

    /// <summary>Whether any dot of the store is in <paramref name="context"/> (a join with a side that has seen it may drop it).</summary>
    public abstract bool AnyDotIn(CausalContext context);

    /// <summary>Whether any dot of the store is in <paramref name="dots"/>.</summary>
    public bool AnyDotIn(HashSet<Dot> dots)
    {
        foreach (var dot in AllDots())
        {
            if (dots.Contains(dot))
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>Every dot in the store, nested stores included.</summary>
    public abstract IEnumerable<Dot> AllDots();

    public abstract DotStore EmptyOfSameKind();

    /// <summary>This store without any dot of <paramref name="replicas"/> (nested stores left empty are dropped); the same instance if it holds none.</summary>
    public abstract DotStore Without(IReadOnlySet<ulong> replicas);

    /// <summary>The join of (<paramref name="left"/>, <paramref name="leftContext"/>) and (<paramref name="right"/>, <paramref name="rightContext"/>); both stores of one kind.</summary>
    public static DotStore Join(DotStore left, CausalContext leftContext, DotStore right, CausalContext rightContext) =>
        (left, right) switch
        {
            (DotSet l, DotSet r) => DotSet.Join(l, leftContext, r, rightContext),
            (DotFun l, DotFun r) => DotFun.Join(l, leftContext, r, rightContext),
            (DotMap l, DotMap r) => DotMap.Join(l, leftContext, r, rightContext),
            _ => throw new CrdtException($"cannot join a {left.GetType().Name} with a {right.GetType().Name}: the states have different shapes"),
        };

    /// <summary>The empty store a key of <paramref name="type"/> starts from.</summary>
    public static DotStore EmptyFor(CrdtType type) => type switch
    {
        CrdtType.GCounter or CrdtType.PnCounter or CrdtType.LwwRegister or CrdtType.MvRegister => DotFun.Empty,
        CrdtType.Flag => DotSet.Empty,
        CrdtType.OrSet or CrdtType.OrMap => DotMap.Empty,
        _ => throw new CrdtException($"unknown CRDT type {(int)type}"),
    };
}

/// <summary>A set of dots (enable-wins flag; the per-element store of an OR-set).</summary>
internal sealed class DotSet : DotStore
{
    public static readonly DotSet Empty = new(ImmutableSortedSet<Dot>.Empty);

    public DotSet(ImmutableSortedSet<Dot> dots) => Dots = dots;

    public ImmutableSortedSet<Dot> Dots { get; }

    public override bool IsEmpty => Dots.IsEmpty;

    public override IEnumerable<Dot> AllDots() => Dots;

    public override DotStore EmptyOfSameKind() => Empty;

    public override DotStore Without(IReadOnlySet<ulong> replicas)
    {
        if (!Dots.Any(dot => replicas.Contains(dot.Replica)))
        {
            return this;
        }

        var dots = Dots.Except(Dots.Where(dot => replicas.Contains(dot.Replica)));
        return dots.IsEmpty ? Empty : new DotSet(dots);
    }

    public override bool AnyDotIn(CausalContext context)
    {
        foreach (var dot in Dots)
        {
            if (context.Contains(dot))
            {
                return true;
            }
        }

        return false;
    }

    public static DotSet Join(DotSet left, CausalContext leftContext, DotSet right, CausalContext rightContext)
    {
        // Starts from the left side and changes only what the right side removes or adds, so an
        // unchanged store is returned as is (with its cached size).
        var result = left.Dots.ToBuilder();
        foreach (var dot in left.Dots)
        {
            if (!right.Dots.Contains(dot) && rightContext.Contains(dot))
            {
                result.Remove(dot);
            }
        }

        foreach (var dot in right.Dots)
        {
            if (!leftContext.Contains(dot))
            {
                result.Add(dot);
            }
        }

        var dots = result.ToImmutable();
        return dots.IsEmpty ? Empty : ReferenceEquals(dots, left.Dots) ? left : new DotSet(dots);
    }
}

/// <summary>A map from dots to payloads (counters' running totals, register values).</summary>
internal sealed class DotFun : DotStore
{
    public static readonly DotFun Empty = new(ImmutableSortedDictionary<Dot, DotPayload>.Empty);

    public DotFun(ImmutableSortedDictionary<Dot, DotPayload> entries) => Entries = entries;

    public ImmutableSortedDictionary<Dot, DotPayload> Entries { get; }

    public override bool IsEmpty => Entries.IsEmpty;

    public override IEnumerable<Dot> AllDots() => Entries.Keys;

    public override DotStore EmptyOfSameKind() => Empty;

    public override DotStore Without(IReadOnlySet<ulong> replicas)
    {
        if (!Entries.Keys.Any(dot => replicas.Contains(dot.Replica)))
        {
            return this;
        }

        var entries = Entries.RemoveRange(Entries.Keys.Where(dot => replicas.Contains(dot.Replica)).ToList());
        return entries.IsEmpty ? Empty : new DotFun(entries);
    }

    public override bool AnyDotIn(CausalContext context)
    {
        foreach (var dot in Entries.Keys)
        {
            if (context.Contains(dot))
            {
                return true;
            }
        }

        return false;
    }

    public static DotFun Join(DotFun left, CausalContext leftContext, DotFun right, CausalContext rightContext)
    {
        var result = left.Entries.ToBuilder();
        foreach (var (dot, payload) in left.Entries)
        {
            if (right.Entries.TryGetValue(dot, out var other))
            {
                // One dot names one event, so both sides hold the same payload; should they not
                // (a bug elsewhere), the larger one is kept on every replica alike.
                if (other.CompareTo(payload) > 0)
                {
                    result[dot] = other;
                }
            }
            else if (rightContext.Contains(dot))
            {
                result.Remove(dot);
            }
        }

        foreach (var (dot, payload) in right.Entries)
        {
            if (!left.Entries.ContainsKey(dot) && !leftContext.Contains(dot))
            {
                result[dot] = payload;
            }
        }

        var entries = result.ToImmutable();
        return entries.IsEmpty ? Empty : ReferenceEquals(entries, left.Entries) ? left : new DotFun(entries);
    }
}

/// <summary>A map from keys to nested dot stores (the OR-set's elements, the OR-map's fields).</summary>
internal sealed class DotMap : DotStore
{
    public static readonly DotMap Empty = new(ImmutableSortedDictionary<MapKey, DotStore>.Empty);

    private int _bodySizeBytes;

    public DotMap(ImmutableSortedDictionary<MapKey, DotStore> entries)
        : this(entries, -1)
    {
    }

    private DotMap(ImmutableSortedDictionary<MapKey, DotStore> entries, int bodySizeBytes)
    {
        Entries = entries;
        _bodySizeBytes = bodySizeBytes;
    }

    /// <summary>Never holds an empty nested store.</summary>
    public ImmutableSortedDictionary<MapKey, DotStore> Entries { get; }

    /// <summary>The size of the encoded CrdtStateDotMap body; a join carries it over from its left side, adjusted by the entries it changed.</summary>
    public int BodySizeBytes
    {
        get
        {
            if (_bodySizeBytes < 0)
            {
                _bodySizeBytes = StateSize.DotMapBody(this);
            }

            return _bodySizeBytes;
        }
    }

    public override bool IsEmpty => Entries.IsEmpty;

    public override IEnumerable<Dot> AllDots() => Entries.Values.SelectMany(store => store.AllDots());

    public override DotStore EmptyOfSameKind() => Empty;

    public override DotStore Without(IReadOnlySet<ulong> replicas)
    {
        ImmutableSortedDictionary<MapKey, DotStore>.Builder? result = null;
        foreach (var (key, nested) in Entries)
        {
            var stripped = nested.Without(replicas);
            if (ReferenceEquals(stripped, nested))
            {
                continue;
            }

            result ??= Entries.ToBuilder();
            if (stripped.IsEmpty)
            {
                result.Remove(key);
            }
            else
            {
                result[key] = stripped;
            }
        }

        if (result is null)
        {
            return this;
        }

        return result.Count == 0 ? Empty : new DotMap(result.ToImmutable());
    }

    public override bool AnyDotIn(CausalContext context)
    {
        foreach (var nested in Entries.Values)
        {
            if (nested.AnyDotIn(context))
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>The most dots a right-hand context may name for <see cref="Join"/> to list the dots it removes instead of testing every left-hand dot against it.</summary>
    private const int RemovedDotsListedMax = 256;

    public static DotMap Join(DotMap left, CausalContext leftContext, DotMap right, CausalContext rightContext)
    {
        // A small right side (a delta) names few dots: list those it has seen but does not hold
        // (the only left-hand dots the join can drop). If there are none, only the keys the right
        // side holds can change, and the left side's other keys are not even visited.
        var removed = RemovedDots(right, rightContext);
        var result = left.Entries.ToBuilder();
        int bodySizeBytes = left.BodySizeBytes;
        IEnumerable<KeyValuePair<MapKey, DotStore>> visited = removed is { Count: 0 }
            ? right.Entries.Where(entry => left.Entries.ContainsKey(entry.Key)).Select(entry => new KeyValuePair<MapKey, DotStore>(entry.Key, left.Entries[entry.Key]))
            : left.Entries;
        foreach (var (key, leftStore) in visited)
        {
            DotStore joined;
            if (right.Entries.TryGetValue(key, out var rightStore))
            {
                joined = DotStore.Join(leftStore, leftContext, rightStore, rightContext);
            }
            else if (removed is null ? leftStore.AnyDotIn(rightContext) : leftStore.AnyDotIn(removed))
            {
                joined = DotStore.Join(leftStore, leftContext, leftStore.EmptyOfSameKind(), rightContext);
            }
            else
            {
                // The right side has neither this key nor seen any of its dots: it stays as is.
                continue;
            }

            if (joined.IsEmpty)
            {
                result.Remove(key);
                bodySizeBytes -= StateSize.DotMapEntry(key, leftStore);
            }
            else if (!ReferenceEquals(joined, leftStore))
            {
                result[key] = joined;
                bodySizeBytes += StateSize.DotMapEntry(key, joined) - StateSize.DotMapEntry(key, leftStore);
            }
        }

        foreach (var (key, rightStore) in right.Entries)
        {
            if (!left.Entries.ContainsKey(key))
            {
                var joined = DotStore.Join(rightStore.EmptyOfSameKind(), leftContext, rightStore, rightContext);
                if (!joined.IsEmpty)
                {
                    result[key] = joined;
                    bodySizeBytes += StateSize.DotMapEntry(key, joined);
                }
            }
        }

        var entries = result.ToImmutable();
        return entries.IsEmpty ? Empty : ReferenceEquals(entries, left.Entries) ? left : new DotMap(entries, bodySizeBytes);
    }

    /// <summary>The dots <paramref name="context"/> has seen that <paramref name="store"/> does not hold, or null if the context names too many to list.</summary>
    private static HashSet<Dot>? RemovedDots(DotMap store, CausalContext context)
    {
        ulong named = (ulong)context.Cloud.Count;
        foreach (ulong seq in context.Versions.Values)
        {
            named += seq;
            if (named > RemovedDotsListedMax)
            {
                return null;
            }
        }

        if (named > RemovedDotsListedMax)
        {
            return null;
        }

        var held = new HashSet<Dot>(store.AllDots());
        var removed = new HashSet<Dot>();
        foreach (var (replica, max) in context.Versions)
        {
            for (ulong seq = 1; seq <= max; seq++)
            {
                var dot = new Dot(replica, seq);
                if (!held.Contains(dot))
                {
                    removed.Add(dot);
                }
            }
        }

        foreach (var dot in context.Cloud)
        {
            if (!held.Contains(dot))
            {
                removed.Add(dot);
            }
        }

        return removed;
    }
}
