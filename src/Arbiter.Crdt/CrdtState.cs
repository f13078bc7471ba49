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

        var store = DotStore.Join(left.Store, left.Context, right.Store, right.Context);
        return new CausalState(left.Type, store, left.Context.Union(right.Context));
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

    public CausalState(CrdtType type, DotStore store, CausalContext context)
    {
        Type = type;
        Store = store;
        Context = context;
    }

    public override CrdtType Type { get; }

    public DotStore Store { get; }

    public CausalContext Context { get; }

    public override bool IsEmpty => Store.IsEmpty && Context.IsEmpty;

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
