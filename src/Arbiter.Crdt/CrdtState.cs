using System.Collections.Immutable;
using Arbiter.Crdt.Causal;
using Arbiter.Protocol.Crdt;

namespace Arbiter.Crdt;

/// <summary>
/// The state of one CRDT key, or a delta of it (a delta is a state too): immutable, with value
/// equality (same type, same dots, same causal context). States of one type form a
/// join-semilattice: <see cref="Join"/> is commutative, associative and idempotent, so replicas
/// that have joined the same states are equal whatever the order, duplication or batching.
/// </summary>
public abstract class CrdtState : IEquatable<CrdtState>
{
    private byte[]? _encoded;

    private protected CrdtState()
    {
    }

    /// <summary>The key's type; fixed for the key's life.</summary>
    public abstract CrdtType Type { get; }

    /// <summary>Whether this is the bottom state of its type: no dots and an empty causal context (a delta that changes nothing).</summary>
    public abstract bool IsEmpty { get; }

    /// <summary>The highest hybrid logical clock stamp held anywhere in the state (LWW registers, nested ones included); <see cref="Hlc.Zero"/> if none. A writer observes it before stamping an LWW write.</summary>
    public abstract Hlc MaxStamp { get; }

    /// <summary>
    /// The departed replicas whose contributions to this key were folded into a surviving replica's
    /// (<see cref="CrdtPruning.Prune(CrdtState, ReplicaId, ReplicaId, out CrdtState)"/>), ascending.
    /// The state holds no dot of theirs, and a join drops any that the other side still carries.
    /// </summary>
    public IReadOnlyList<ReplicaId> PrunedReplicas => ((CausalState)this).Pruned.Select(replica => new ReplicaId(replica)).ToList();

    /// <summary>Every replica whose dots the state holds or has seen (store and causal context), ascending; the pruned markers are not included.</summary>
    public IReadOnlyList<ReplicaId> Replicas
    {
        get
        {
            var state = (CausalState)this;
            var replicas = new SortedSet<ulong>(state.Context.Versions.Keys);
            replicas.UnionWith(state.Context.Cloud.Select(dot => dot.Replica));
            replicas.UnionWith(state.Store.AllDots().Select(dot => dot.Replica));
            return replicas.Select(replica => new ReplicaId(replica)).ToList();
        }
    }

    /// <summary>The size of <see cref="ToBytes"/>, in bytes (computed without encoding the state).</summary>
    public int SizeBytes => _encoded?.Length ?? StateSize.State((CausalState)this);

    private byte[] Encoded => _encoded ??= StateCodec.Encode((CausalState)this);

    /// <summary>The bottom state of <paramref name="type"/> (a key that has never been updated).</summary>
    /// <exception cref="CrdtException">The type is unspecified or unknown.</exception>
    public static CrdtState Empty(CrdtType type) => CausalState.EmptyOf(type);

    /// <summary>The least upper bound of this state and <paramref name="other"/>.</summary>
    /// <exception cref="CrdtException">The states are of different types.</exception>
    public CrdtState Join(CrdtState other)
    {
        ArgumentNullException.ThrowIfNull(other);
        var left = (CausalState)this;
        var right = (CausalState)other;
        if (left.Type != right.Type)
        {
            throw new CrdtException($"cannot join a {CrdtNames.Of(left.Type)} state with a {CrdtNames.Of(right.Type)} state");
        }

        if (right.IsEmpty || ReferenceEquals(left, right))
        {
            return left;
        }

        if (left.IsEmpty)
        {
            return right;
        }

        // A side that has pruned a replica the other has not makes the other drop that replica's
        // dots first: its contribution lives on in the pruning survivor's dots (see CrdtPruning).
        var pruned = left.Pruned.Union(right.Pruned);
        left = left.Without(pruned);
        right = right.Without(pruned);
        var store = DotStore.Join(left.Store, left.Context, right.Store, right.Context);
        return new CausalState(left.Type, store, left.Context.Union(right.Context), pruned);
    }

    /// <summary>
    /// This state with <paramref name="replicas"/> retired: their dots dropped from the store and
    /// the context, and their pruned markers too. Only for replicas whose pruning every member has
    /// finished, where every member retires them from every state it holds and receives from then
    /// on (in a cluster, a fact of the Raft log); the state then no longer names them at all.
    /// </summary>
    public CrdtState Retire(IReadOnlyCollection<ReplicaId> replicas)
    {
        ArgumentNullException.ThrowIfNull(replicas);
        var state = (CausalState)this;
        if (replicas.Count == 0)
        {
            return state;
        }

        var set = replicas.Select(replica => replica.Value).ToHashSet();
        var pruned = state.Pruned.Except(set);
        var store = state.Store.Without(set);
        var context = state.Context.Without(set);
        return ReferenceEquals(store, state.Store) && ReferenceEquals(context, state.Context) && pruned.Count == state.Pruned.Count
            ? state
            : CausalState.Create(state.Type, store, context, pruned);
    }

    /// <summary>The value a reader sees, in a deterministic order (set elements and map fields sorted by bytes).</summary>
    public CrdtValue ToValue() => ValueRenderer.Render(Type, ((CausalState)this).Store);

    /// <summary>The deterministic, versioned encoding: equal states give equal bytes, so digests of the bytes can be compared.</summary>
    public byte[] ToBytes() => (byte[])Encoded.Clone();

    /// <summary>The state <paramref name="bytes"/> encode (the output of <see cref="ToBytes"/>).</summary>
    /// <exception cref="CrdtException">The bytes are not a well-formed state of a known version.</exception>
    public static CrdtState FromBytes(ReadOnlySpan<byte> bytes) => StateCodec.Decode(bytes);

    /// <inheritdoc />
    public bool Equals(CrdtState? other) =>
        other is not null && (ReferenceEquals(this, other) || (Type == other.Type && Encoded.AsSpan().SequenceEqual(other.Encoded)));

    /// <inheritdoc />
    public override bool Equals(object? obj) => obj is CrdtState other && Equals(other);

    /// <inheritdoc />
    public override int GetHashCode()
    {
        var hash = default(HashCode);
        hash.AddBytes(Encoded);
        return hash.ToHashCode();
    }

    /// <inheritdoc />
    public override string ToString() => $"{CrdtNames.Of(Type)} {ToValue()}";
}

/// <summary>The one implementation of <see cref="CrdtState"/>: a dot store and a causal context.</summary>
internal sealed class CausalState : CrdtState
{
    private static readonly Dictionary<CrdtType, CausalState> Empties = Enum.GetValues<CrdtType>()
        .Where(CrdtNames.IsKnown)
        .ToDictionary(type => type, type => new CausalState(type, DotStore.EmptyFor(type), CausalContext.Empty));

    public CausalState(CrdtType type, DotStore store, CausalContext context, ImmutableSortedSet<ulong>? pruned = null)
    {
        Type = type;
        Store = store;
        Context = context;
        Pruned = pruned ?? ImmutableSortedSet<ulong>.Empty;
    }

    public override CrdtType Type { get; }

    public DotStore Store { get; }

    public CausalContext Context { get; }

    /// <summary>Departed replicas folded into survivors (never holds a replica the store or context names).</summary>
    public ImmutableSortedSet<ulong> Pruned { get; }

    public override bool IsEmpty => Store.IsEmpty && Context.IsEmpty && Pruned.IsEmpty;

    /// <summary>The state of these parts, or the shared bottom state when they are all empty.</summary>
    public static CausalState Create(CrdtType type, DotStore store, CausalContext context, ImmutableSortedSet<ulong> pruned) =>
        store.IsEmpty && context.IsEmpty && pruned.IsEmpty ? EmptyOf(type) : new CausalState(type, store, context, pruned);

    /// <summary>This state without any dot of <paramref name="replicas"/> (its pruned markers unchanged).</summary>
    public CausalState Without(ImmutableSortedSet<ulong> replicas)
    {
        if (replicas.IsEmpty || (ReferenceEquals(replicas, Pruned) || replicas.SetEquals(Pruned)))
        {
            return this;
        }

        var store = Store.Without(replicas);
        var context = Context.Without(replicas);
        return ReferenceEquals(store, Store) && ReferenceEquals(context, Context) ? this : new CausalState(Type, store, context, Pruned);
    }

    public override Hlc MaxStamp => MaxStampOf(Store);

    public static CausalState EmptyOf(CrdtType type) =>
        Empties.TryGetValue(type, out var empty) ? empty : throw new CrdtException($"unknown CRDT type {CrdtNames.Of(type)}");

    private static Hlc MaxStampOf(DotStore store) => store switch
    {
        DotFun fun => fun.Entries.Values.Aggregate(Hlc.Zero, (max, payload) => Hlc.Max(max, payload.Stamp)),
        DotMap map => map.Entries.Values.Aggregate(Hlc.Zero, (max, nested) => Hlc.Max(max, MaxStampOf(nested))),
        _ => Hlc.Zero,
    };
}
