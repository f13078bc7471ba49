using System.Collections.Immutable;
using Arbiter.Crdt.Causal;
using Arbiter.Protocol.Crdt;

namespace Arbiter.Crdt;

/// <summary>
/// Pruning a departed replica (Akka.DistributedData's model, made a lattice): one surviving replica
/// folds the departed replica's contributions into dots of its own and marks the key as pruned of
/// it. The pruning is an ordinary delta: it carries the survivor's new dots, the dots they replace,
/// and the pruned marker. A join with a state that carries the marker drops every dot of the
/// departed replica from the other side first, so a late delta or an old full state that still
/// holds them can neither resurrect an element nor count an increment twice. Dropping a fixed set of
/// replicas' dots commutes with the join, so pruned states still form a join-semilattice.
/// </summary>
/// <remarks>
/// Safe only when exactly one survivor prunes a given departed replica of a given key (two
/// survivors would each fold the same contribution) and the survivor holds every update of the
/// departed replica that any replica acknowledged (a dot it has not seen is dropped when the
/// marker reaches it). In a cluster the Raft log names the one survivor, which first exchanges
/// digests with every other member (docs/crdt.md, "Pruning departed replicas").
/// </remarks>
public static class CrdtPruning
{
    /// <summary>
    /// The delta that prunes <paramref name="departed"/> from <paramref name="current"/>, folding its
    /// contributions into <paramref name="survivor"/>'s without changing the key's value, and
    /// <paramref name="next"/> = <paramref name="current"/> joined with it. Counters add the
    /// departed replica's totals to the survivor's; a set element or a flag enabled only by the
    /// departed replica is re-added by the survivor; an MV sibling written by it is re-written by
    /// the survivor with the same value; an LWW register whose entries include one of its is
    /// reduced to the winner, re-written by the survivor with the winner's stamp and value; maps
    /// fold every field. The bottom state if the key names no dot of <paramref name="departed"/>
    /// or is already pruned of it.
    /// </summary>
    /// <exception cref="CrdtException">The survivor is the departed replica or was itself pruned, or the survivor's counter totals would overflow; nothing changes.</exception>
    public static CrdtState Prune(CrdtState current, ReplicaId departed, ReplicaId survivor, out CrdtState next)
    {
        ArgumentNullException.ThrowIfNull(current);
        var state = (CausalState)current;
        if (departed == survivor)
        {
            throw new CrdtException($"replica {departed} cannot be pruned into itself");
        }

        if (state.Pruned.Contains(survivor.Value))
        {
            throw new CrdtException($"replica {survivor} was itself pruned from this key; it cannot take over replica {departed}'s contributions");
        }

        var gone = ImmutableSortedSet.Create(departed.Value);
        if (state.Pruned.Contains(departed.Value) || (!state.Context.Mentions(gone) && !state.Store.AllDots().Any(dot => dot.Replica == departed.Value)))
        {
            next = current;
            return CausalState.EmptyOf(state.Type);
        }

        var fold = new Fold(state.Context, departed.Value, survivor.Value);
        var store = fold.Store(state.Type, state.Store);
        var delta = new CausalState(state.Type, store, CausalContext.FromDots(fold.Seen), state.Pruned.Add(departed.Value));
        next = current.Join(delta);
        return delta;
    }

    /// <summary>One key's fold: mints the survivor's dots and collects the dots the delta covers.</summary>
    private sealed class Fold
    {
        private readonly ulong _departed;
        private readonly ulong _survivor;
        private ulong _nextSeq;

        public Fold(CausalContext context, ulong departed, ulong survivor)
        {
            _departed = departed;
            _survivor = survivor;
            ulong max = context.MaxSeq(survivor);
            _nextSeq = max == ulong.MaxValue
                ? throw new CrdtException($"replica {survivor} has used every dot of this key; cannot prune into it")
                : max + 1;
        }

        /// <summary>The dots the delta's context covers: the new ones and the ones they replace.</summary>
        public List<Dot> Seen { get; } = [];

        public DotStore Store(CrdtType type, DotStore store) => (type, store) switch
        {
            (CrdtType.GCounter or CrdtType.PnCounter, DotFun fun) => Counter(fun),
            (CrdtType.LwwRegister, DotFun fun) => Lww(fun),
            (CrdtType.MvRegister, DotFun fun) => Mv(fun),
            (CrdtType.Flag, DotSet set) => Set(set),
            (CrdtType.OrSet, DotMap map) => Map(map, _ => CrdtType.Flag),
            (CrdtType.OrMap, DotMap map) => Map(map, key => key.Type),
            _ => throw new CrdtException($"a {CrdtNames.Of(type)} cannot hold a {store.GetType().Name}"),
        };

        private Dot NextDot()
        {
            var dot = new Dot(_survivor, _nextSeq);
            _nextSeq = _nextSeq == ulong.MaxValue
                ? throw new CrdtException($"replica {_survivor} has used every dot of this key; cannot prune into it")
                : _nextSeq + 1;
            Seen.Add(dot);
            return dot;
        }

        private DotFun Counter(DotFun store)
        {
            UInt128 increments = 0;
            UInt128 decrements = 0;
            bool departedHolds = false;
            var replaced = new List<Dot>();
            foreach (var (dot, payload) in store.Entries)
            {
                if (dot.Replica == _departed || dot.Replica == _survivor)
                {
                    increments += payload.Increments;
                    decrements += payload.Decrements;
                    departedHolds |= dot.Replica == _departed;
                    if (dot.Replica == _survivor)
                    {
                        replaced.Add(dot);
                    }
                }
            }

            if (!departedHolds)
            {
                return DotFun.Empty;
            }

            Seen.AddRange(replaced);

            if (increments > ulong.MaxValue || decrements > ulong.MaxValue)
            {
                throw new CrdtException($"replica {_survivor}'s counter totals would overflow if replica {_departed}'s were folded into them; not pruned");
            }

            return new DotFun(ImmutableSortedDictionary<Dot, DotPayload>.Empty.Add(NextDot(), DotPayload.Counter((ulong)increments, (ulong)decrements)));
        }

        private DotFun Lww(DotFun store)
        {
            if (!store.Entries.Keys.Any(dot => dot.Replica == _departed) || ValueRenderer.LwwWinner(store) is not { } winner)
            {
                return DotFun.Empty;
            }

            // The winner keeps its stamp and value; the losing entries it now replaces had lost anyway.
            Seen.AddRange(store.Entries.Keys.Where(dot => dot.Replica != _departed));
            return new DotFun(ImmutableSortedDictionary<Dot, DotPayload>.Empty.Add(NextDot(), winner.Value));
        }

        private DotFun Mv(DotFun store)
        {
            var result = ImmutableSortedDictionary.CreateBuilder<Dot, DotPayload>();
            foreach (var (dot, payload) in store.Entries)
            {
                if (dot.Replica == _departed)
                {
                    result[NextDot()] = payload;
                }
            }

            return result.Count == 0 ? DotFun.Empty : new DotFun(result.ToImmutable());
        }

        private DotSet Set(DotSet store)
        {
            // Present through another replica's dot: dropping the departed one's changes nothing.
            if (store.Dots.IsEmpty || store.Dots.Any(dot => dot.Replica != _departed))
            {
                return DotSet.Empty;
            }

            return new DotSet(ImmutableSortedSet.Create(NextDot()));
        }

        private DotMap Map(DotMap store, Func<MapKey, CrdtType> typeOf)
        {
            var result = ImmutableSortedDictionary.CreateBuilder<MapKey, DotStore>();
            foreach (var (key, nested) in store.Entries)
            {
                var folded = Store(typeOf(key), nested);
                if (!folded.IsEmpty)
                {
                    result[key] = folded;
                }
            }

            return result.Count == 0 ? DotMap.Empty : new DotMap(result.ToImmutable());
        }
    }
}
