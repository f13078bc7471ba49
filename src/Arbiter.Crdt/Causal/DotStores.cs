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
    public abstract bool IsEmpty { get; }

    /// <summary>Every dot in the store, nested stores included.</summary>
    public abstract IEnumerable<Dot> AllDots();

    public abstract DotStore EmptyOfSameKind();

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

    public static DotSet Join(DotSet left, CausalContext leftContext, DotSet right, CausalContext rightContext)
    {
        var result = ImmutableSortedSet.CreateBuilder<Dot>();
        foreach (var dot in left.Dots)
        {
            if (right.Dots.Contains(dot) || !rightContext.Contains(dot))
            {
                result.Add(dot);
            }
        }

        foreach (var dot in right.Dots)
        {
            if (!leftContext.Contains(dot))
            {
                result.Add(dot);
            }
        }

        return result.Count == 0 ? Empty : new DotSet(result.ToImmutable());
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

    public static DotFun Join(DotFun left, CausalContext leftContext, DotFun right, CausalContext rightContext)
    {
        var result = ImmutableSortedDictionary.CreateBuilder<Dot, DotPayload>();
        foreach (var (dot, payload) in left.Entries)
        {
            if (right.Entries.TryGetValue(dot, out var other))
            {
                // One dot names one event, so both sides hold the same payload; should they not
                // (a bug elsewhere), the larger one is kept on every replica alike.
                result[dot] = payload.CompareTo(other) >= 0 ? payload : other;
            }
            else if (!rightContext.Contains(dot))
            {
                result[dot] = payload;
            }
        }

        foreach (var (dot, payload) in right.Entries)
        {
            if (!left.Entries.ContainsKey(dot) && !leftContext.Contains(dot))
            {
                result[dot] = payload;
            }
        }

        return result.Count == 0 ? Empty : new DotFun(result.ToImmutable());
    }
}

/// <summary>A map from keys to nested dot stores (the OR-set's elements, the OR-map's fields).</summary>
internal sealed class DotMap : DotStore
{
    public static readonly DotMap Empty = new(ImmutableSortedDictionary<MapKey, DotStore>.Empty);

    public DotMap(ImmutableSortedDictionary<MapKey, DotStore> entries) => Entries = entries;

    /// <summary>Never holds an empty nested store.</summary>
    public ImmutableSortedDictionary<MapKey, DotStore> Entries { get; }

    public override bool IsEmpty => Entries.IsEmpty;

    public override IEnumerable<Dot> AllDots() => Entries.Values.SelectMany(store => store.AllDots());

    public override DotStore EmptyOfSameKind() => Empty;

    public static DotMap Join(DotMap left, CausalContext leftContext, DotMap right, CausalContext rightContext)
    {
        var result = ImmutableSortedDictionary.CreateBuilder<MapKey, DotStore>();
        foreach (var (key, leftStore) in left.Entries)
        {
            var rightStore = right.Entries.TryGetValue(key, out var found) ? found : leftStore.EmptyOfSameKind();
            var joined = DotStore.Join(leftStore, leftContext, rightStore, rightContext);
            if (!joined.IsEmpty)
            {
                result[key] = joined;
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
                }
            }
        }

        return result.Count == 0 ? Empty : new DotMap(result.ToImmutable());
    }
}
