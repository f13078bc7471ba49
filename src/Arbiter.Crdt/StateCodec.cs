using System.Collections.Immutable;
using Arbiter.Crdt.Causal;
using Arbiter.Protocol.Crdt;
using Arbiter.Protocol.Internal;
using Google.Protobuf;

namespace Arbiter.Crdt;

/// <summary>
/// Encodes states as <see cref="CrdtStateRecord"/> (crdt_state.proto) and decodes them with full
/// validation. Deterministic: stores and contexts are sorted collections, written in order, and
/// fields a type does not use are left at their defaults.
/// </summary>
internal static class StateCodec
{
    public const uint FormatVersion = 1;

    /// <summary>The deepest map nesting a decoder accepts (operations are held to CrdtLimits.NestingDepthMax, far lower).</summary>
    public const int DecodeNestingDepthMax = 16;

    public static byte[] Encode(CausalState state)
    {
        var record = new CrdtStateRecord
        {
            FormatVersion = FormatVersion,
            Type = state.Type,
            Context = EncodeContext(state.Context),
            Store = EncodeStore(state.Store),
        };
        record.PrunedReplicas.AddRange(state.Pruned);
        return record.ToByteArray();
    }

    public static CausalState Decode(ReadOnlySpan<byte> bytes)
    {
        CrdtStateRecord record;
        try
        {
            record = CrdtStateRecord.Parser.ParseFrom(bytes);
        }
        catch (InvalidProtocolBufferException e)
        {
            throw new CrdtException($"malformed CRDT state: {e.Message}", e);
        }

        if (record.FormatVersion != FormatVersion)
        {
            throw new CrdtException($"malformed CRDT state: format version {record.FormatVersion} is not known (expected {FormatVersion})");
        }

        if (!CrdtNames.IsKnown(record.Type))
        {
            throw new CrdtException($"malformed CRDT state: unknown type {CrdtNames.Of(record.Type)}");
        }

        var context = DecodeContext(record.Context);
        var store = DecodeStore(record.Type, record.Store, depth: 0);
        foreach (var dot in store.AllDots())
        {
            if (!context.Contains(dot))
            {
                throw new CrdtException($"malformed CRDT state: dot {dot} is in the store but not in the causal context");
            }
        }

        var pruned = ImmutableSortedSet.CreateBuilder<ulong>();
        ulong? previous = null;
        foreach (ulong replica in record.PrunedReplicas)
        {
            if (previous is { } before && replica <= before)
            {
                throw new CrdtException("malformed CRDT state: the pruned replicas are not strictly ascending");
            }

            previous = replica;
            pruned.Add(replica);
        }

        if (pruned.Count > 0)
        {
            var prunedSet = pruned.ToImmutable();
            if (context.Mentions(prunedSet) || store.AllDots().Any(dot => prunedSet.Contains(dot.Replica)))
            {
                throw new CrdtException("malformed CRDT state: it holds dots of a replica it has pruned");
            }
        }

        return CausalState.Create(record.Type, store, context, pruned.ToImmutable());
    }

    public static CrdtStateDot EncodeDot(Dot dot) => new() { Replica = dot.Replica, Seq = dot.Seq };

    public static Dot DecodeDot(CrdtStateDot? dot, string what)
    {
        if (dot is null || dot.Seq == 0)
        {
            throw new CrdtException($"malformed {what}: a dot needs a sequence number of at least 1");
        }

        return new Dot(dot.Replica, dot.Seq);
    }

    private static CrdtStateContext EncodeContext(CausalContext context)
    {
        var record = new CrdtStateContext();
        foreach (var (replica, seq) in context.Versions)
        {
            record.Versions.Add(new CrdtStateDot { Replica = replica, Seq = seq });
        }

        foreach (var dot in context.Cloud)
        {
            record.Cloud.Add(EncodeDot(dot));
        }

        return record;
    }

    private static CausalContext DecodeContext(CrdtStateContext? record)
    {
        if (record is null)
        {
            return CausalContext.Empty;
        }

        var replicas = new HashSet<ulong>();
        var versions = new List<KeyValuePair<ulong, ulong>>();
        foreach (var version in record.Versions)
        {
            if (!replicas.Add(version.Replica))
            {
                throw new CrdtException($"malformed CRDT state: replica {version.Replica} appears twice in the version vector");
            }

            versions.Add(new(version.Replica, version.Seq));
        }

        var cloud = record.Cloud.Select(dot => DecodeDot(dot, "CRDT state context"));
        return CausalContext.Create(versions, cloud);
    }

    private static CrdtStateStore EncodeStore(DotStore store)
    {
        switch (store)
        {
            case DotSet set:
                var setRecord = new CrdtStateDotSet();
                setRecord.Dots.AddRange(set.Dots.Select(EncodeDot));
                return new CrdtStateStore { DotSet = setRecord };
            case DotFun fun:
                var funRecord = new CrdtStateDotFun();
                foreach (var (dot, payload) in fun.Entries)
                {
                    funRecord.Entries.Add(new CrdtStateDotFunEntry
                    {
                        Dot = EncodeDot(dot),
                        Increments = payload.Increments,
                        Decrements = payload.Decrements,
                        Stamp = payload.Stamp == Hlc.Zero ? null : payload.Stamp.ToTimestamp(),
                        Value = ByteString.CopyFrom(payload.Value),
                    });
                }

                return new CrdtStateStore { DotFun = funRecord };
            case DotMap map:
                var mapRecord = new CrdtStateDotMap();
                foreach (var (key, nested) in map.Entries)
                {
                    mapRecord.Entries.Add(new CrdtStateDotMapEntry
                    {
                        Key = ByteString.CopyFrom(key.Bytes),
                        Type = key.Type,
                        Store = EncodeStore(nested),
                    });
                }

                return new CrdtStateStore { DotMap = mapRecord };
            default:
                throw new InvalidOperationException($"unknown dot store {store.GetType().Name}");
        }
    }

    private static DotStore DecodeStore(CrdtType type, CrdtStateStore? record, int depth)
    {
        var empty = DotStore.EmptyFor(type);
        if (record is null || record.KindCase == CrdtStateStore.KindOneofCase.None)
        {
            return empty;
        }

        switch (empty, record.KindCase)
        {
            case (DotSet, CrdtStateStore.KindOneofCase.DotSet):
                var dots = ImmutableSortedSet.CreateBuilder<Dot>();
                foreach (var dot in record.DotSet.Dots)
                {
                    if (!dots.Add(DecodeDot(dot, "CRDT state")))
                    {
                        throw new CrdtException($"malformed CRDT state: dot ({dot.Replica},{dot.Seq}) appears twice");
                    }
                }

                return dots.Count == 0 ? DotSet.Empty : new DotSet(dots.ToImmutable());
            case (DotFun, CrdtStateStore.KindOneofCase.DotFun):
                var entries = ImmutableSortedDictionary.CreateBuilder<Dot, DotPayload>();
                foreach (var entry in record.DotFun.Entries)
                {
                    var dot = DecodeDot(entry.Dot, "CRDT state");
                    if (entries.ContainsKey(dot))
                    {
                        throw new CrdtException($"malformed CRDT state: dot {dot} appears twice");
                    }

                    entries[dot] = DecodePayload(type, entry);
                }

                return entries.Count == 0 ? DotFun.Empty : new DotFun(entries.ToImmutable());
            case (DotMap, CrdtStateStore.KindOneofCase.DotMap):
                if (depth >= DecodeNestingDepthMax)
                {
                    throw new CrdtException($"malformed CRDT state: maps nested deeper than {DecodeNestingDepthMax}");
                }

                var fields = ImmutableSortedDictionary.CreateBuilder<MapKey, DotStore>();
                foreach (var entry in record.DotMap.Entries)
                {
                    DotStore nested;
                    if (type == CrdtType.OrSet)
                    {
                        if (entry.Type != CrdtType.Unspecified)
                        {
                            throw new CrdtException("malformed CRDT state: a set element carries a type");
                        }

                        nested = DecodeStore(CrdtType.Flag, entry.Store, depth + 1);
                    }
                    else
                    {
                        if (!CrdtNames.IsKnown(entry.Type))
                        {
                            throw new CrdtException($"malformed CRDT state: a map field of unknown type {CrdtNames.Of(entry.Type)}");
                        }

                        nested = DecodeStore(entry.Type, entry.Store, depth + 1);
                    }

                    var key = new MapKey(entry.Key.Span, entry.Type);
                    if (fields.ContainsKey(key))
                    {
                        throw new CrdtException("malformed CRDT state: a map key appears twice");
                    }

                    if (!nested.IsEmpty)
                    {
                        fields[key] = nested;
                    }
                }

                return fields.Count == 0 ? DotMap.Empty : new DotMap(fields.ToImmutable());
            default:
                throw new CrdtException($"malformed CRDT state: a {CrdtNames.Of(type)} cannot hold a {record.KindCase} store");
        }
    }

    private static DotPayload DecodePayload(CrdtType type, CrdtStateDotFunEntry entry) => type switch
    {
        CrdtType.GCounter when entry.Decrements != 0 =>
            throw new CrdtException("malformed CRDT state: a G_COUNTER entry with decrements"),
        CrdtType.GCounter or CrdtType.PnCounter => DotPayload.Counter(entry.Increments, entry.Decrements),
        CrdtType.LwwRegister => DotPayload.Register(Hlc.FromTimestamp(entry.Stamp), entry.Value.Span),
        _ => DotPayload.Register(Hlc.Zero, entry.Value.Span),
    };
}
