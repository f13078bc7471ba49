using System.Collections.Immutable;
using System.Text;
using Arbiter.Crdt.Causal;
using Arbiter.Protocol.Crdt;
using Arbiter.Protocol.Internal;
using Google.Protobuf;

namespace Arbiter.Crdt;

/// <summary>
/// The delta mutators: one operation, applied by one replica, gives the delta-state that carries
/// exactly its effect. The caller joins the delta into its state and ships the same delta to its
/// peers. Pure: the dots a mutation mints are numbered from the state's own causal context (the
/// highest seq seen for the replica, plus one), and the stamp is passed in.
/// </summary>
public static class CrdtMutator
{
    /// <summary>
    /// The delta of applying <paramref name="operation"/> to <paramref name="current"/> as
    /// <paramref name="replica"/> at <paramref name="stamp"/>: a state of the same type (the bottom
    /// state if the operation changes nothing). <paramref name="stamp"/> is used by LWW registers
    /// only; the caller takes it from its <see cref="HybridLogicalClock"/> after observing
    /// <see cref="CrdtState.MaxStamp"/> and the client's causal token.
    /// </summary>
    /// <exception cref="CrdtException">
    /// The operation does not fit the key's type (or a map field's type), the type is unknown, a
    /// G-counter delta is negative, a counter would overflow, an element, field or value is over
    /// its size limit, a set, register or map would exceed its limit, an MV context is malformed, a
    /// map is nested too deep, or the state would exceed <see cref="CrdtLimits.StateSizeBytesMax"/>.
    /// Nothing is returned and nothing changes.
    /// </exception>
    public static CrdtState Apply(CrdtState current, CrdtOperation operation, ReplicaId replica, Hlc stamp, CrdtLimits limits) =>
        Apply(current, operation, replica, stamp, limits, out _);

    /// <summary>
    /// As <see cref="Apply(CrdtState, CrdtOperation, ReplicaId, Hlc, CrdtLimits)"/>, and also gives
    /// <paramref name="next"/> = <paramref name="current"/> joined with the delta (computed anyway
    /// to check the state's size), so the caller need not join again.
    /// </summary>
    /// <exception cref="CrdtException">As the other overload; nothing is returned and nothing changes.</exception>
    public static CrdtState Apply(CrdtState current, CrdtOperation operation, ReplicaId replica, Hlc stamp, CrdtLimits limits, out CrdtState next)
    {
        ArgumentNullException.ThrowIfNull(current);
        ArgumentNullException.ThrowIfNull(operation);
        ArgumentNullException.ThrowIfNull(limits);
        var state = (CausalState)current;
        if (state.Pruned.Contains(replica.Value))
        {
            throw new CrdtException($"replica {replica} has been pruned from this key (its member was removed from the cluster and its contributions folded into a survivor's); refused");
        }

        var mutation = new Mutation(state.Context, replica, stamp, limits);
        var store = mutation.Mutate(state.Type, state.Store, operation, mapDepth: 0, where: "");

        // The delta carries the key's pruned markers, so that a replica that receives it before the
        // pruning's own delta still drops the departed replicas' dots (this replica's totals may
        // already include their folded contributions).
        var delta = new CausalState(state.Type, store, CausalContext.FromDots(mutation.Seen), state.Pruned);
        if (delta.Store.IsEmpty && delta.Context.IsEmpty)
        {
            next = current;
            return CausalState.EmptyOf(state.Type);
        }

        var after = current.Join(delta);
        int sizeBytes = after.SizeBytes;
        if (sizeBytes > limits.StateSizeBytesMax)
        {
            throw new CrdtException($"the key's state would grow to {sizeBytes} bytes, over the limit of {limits.StateSizeBytesMax} (StateSizeBytesMax); refused");
        }

        next = after;
        return delta;
    }

    /// <summary>One operation's work: mints dots and collects the delta's causal context.</summary>
    private sealed class Mutation
    {
        private readonly ulong _replica;
        private readonly Hlc _stamp;
        private readonly CrdtLimits _limits;
        private ulong _nextSeq;

        public Mutation(CausalContext context, ReplicaId replica, Hlc stamp, CrdtLimits limits)
        {
            _replica = replica.Value;
            _stamp = stamp;
            _limits = limits;
            ulong max = context.MaxSeq(replica.Value);
            _nextSeq = max == ulong.MaxValue
                ? throw new CrdtException($"replica {replica} has used every dot of this key; refused")
                : max + 1;
        }

        /// <summary>The dots the delta's causal context covers: the new ones and the ones it replaces.</summary>
        public List<Dot> Seen { get; } = [];

        public DotStore Mutate(CrdtType type, DotStore store, CrdtOperation operation, int mapDepth, string where)
        {
            var kind = operation.OpCase;
            bool fits = kind switch
            {
                CrdtOperation.OpOneofCase.CounterAdd => type is CrdtType.GCounter or CrdtType.PnCounter,
                CrdtOperation.OpOneofCase.SetAdd or CrdtOperation.OpOneofCase.SetRemove => type == CrdtType.OrSet,
                CrdtOperation.OpOneofCase.RegisterAssign => type is CrdtType.LwwRegister or CrdtType.MvRegister,
                CrdtOperation.OpOneofCase.FlagAssign => type == CrdtType.Flag,
                CrdtOperation.OpOneofCase.MapUpdate or CrdtOperation.OpOneofCase.MapRemove => type == CrdtType.OrMap,
                _ => throw new CrdtException($"the operation{where} is empty: set one of counter_add, set_add, set_remove, register_assign, flag_assign, map_update, map_remove"),
            };
            if (!CrdtNames.IsKnown(type))
            {
                throw new CrdtException($"unknown CRDT type {CrdtNames.Of(type)}{where}");
            }

            if (!fits)
            {
                throw new CrdtException($"{CrdtNames.Of(kind)} does not apply to a {CrdtNames.Of(type)}{where}");
            }

            return kind switch
            {
                CrdtOperation.OpOneofCase.CounterAdd => CounterAdd(type, (DotFun)store, operation.CounterAdd.Delta, where),
                CrdtOperation.OpOneofCase.SetAdd => SetAdd((DotMap)store, operation.SetAdd.Elements, where),
                CrdtOperation.OpOneofCase.SetRemove => SetRemove((DotMap)store, operation.SetRemove.Elements, where),
                CrdtOperation.OpOneofCase.RegisterAssign when type == CrdtType.LwwRegister => LwwAssign((DotFun)store, operation.RegisterAssign, where),
                CrdtOperation.OpOneofCase.RegisterAssign => MvAssign((DotFun)store, operation.RegisterAssign, where),
                CrdtOperation.OpOneofCase.FlagAssign => FlagAssign((DotSet)store, operation.FlagAssign.Enabled),
                CrdtOperation.OpOneofCase.MapUpdate => MapUpdate((DotMap)store, operation.MapUpdate, mapDepth + 1, where),
                _ => MapRemove((DotMap)store, operation.MapRemove.Fields, mapDepth + 1, where),
            };
        }

        private Dot NextDot()
        {
            var dot = new Dot(_replica, _nextSeq);
            _nextSeq = _nextSeq == ulong.MaxValue
                ? throw new CrdtException($"replica {_replica} has used every dot of this key; refused")
                : _nextSeq + 1;
            Seen.Add(dot);
            return dot;
        }

        private DotStore CounterAdd(CrdtType type, DotFun store, long delta, string where)
        {
            if (type == CrdtType.GCounter && delta < 0)
            {
                throw new CrdtException($"a G_COUNTER only grows{where}: delta {delta} refused (use a PN_COUNTER to decrement)");
            }

            if (delta == 0)
            {
                return store.EmptyOfSameKind();
            }

            Int128 total = ValueRenderer.CounterValue(store);
            Int128 after = total + delta;
            if (after > long.MaxValue || after < long.MinValue)
            {
                throw new CrdtException($"the counter{where} would overflow a signed 64-bit value ({total} + {delta}); refused");
            }

            Int128 increments = 0;
            Int128 decrements = 0;
            foreach (var (dot, payload) in store.Entries)
            {
                if (dot.Replica == _replica)
                {
                    increments += payload.Increments;
                    decrements += payload.Decrements;
                    Seen.Add(dot);
                }
            }

            if (delta > 0)
            {
                increments += delta;
            }
            else
            {
                decrements -= (Int128)delta;
            }

            if (increments > ulong.MaxValue || decrements > ulong.MaxValue)
            {
                throw new CrdtException($"the counter{where}: this replica's running total would overflow; refused");
            }

            var dotNew = NextDot();
            return new DotFun(ImmutableSortedDictionary<Dot, DotPayload>.Empty.Add(dotNew, DotPayload.Counter((ulong)increments, (ulong)decrements)));
        }

        private SortedSet<MapKey> Elements(IReadOnlyCollection<ByteString> elements, string noun, string where)
        {
            if (elements.Count > _limits.ElementsPerOperationMax)
            {
                throw new CrdtException($"one operation names {elements.Count} {noun}s{where}, over the limit of {_limits.ElementsPerOperationMax} (ElementsPerOperationMax)");
            }

            var keys = new SortedSet<MapKey>();
            foreach (var element in elements)
            {
                if (element.Length > _limits.ElementSizeBytesMax)
                {
                    throw new CrdtException($"a {noun} of {element.Length} bytes{where} is over the limit of {_limits.ElementSizeBytesMax} (ElementSizeBytesMax)");
                }

                keys.Add(new MapKey(element.Span, CrdtType.Unspecified));
            }

            return keys;
        }

        private DotMap SetAdd(DotMap store, IReadOnlyCollection<ByteString> elements, string where)
        {
            var keys = Elements(elements, "set element", where);
            int added = keys.Count(key => !store.Entries.ContainsKey(key));
            if (store.Entries.Count + added > _limits.ElementsPerSetMax)
            {
                throw new CrdtException($"the set{where} would hold {store.Entries.Count + added} elements, over the limit of {_limits.ElementsPerSetMax} (ElementsPerSetMax)");
            }

            var result = ImmutableSortedDictionary.CreateBuilder<MapKey, DotStore>();
            foreach (var key in keys)
            {
                if (store.Entries.TryGetValue(key, out var existing))
                {
                    Seen.AddRange(existing.AllDots());
                }

                result[key] = new DotSet(ImmutableSortedSet.Create(NextDot()));
            }

            return result.Count == 0 ? DotMap.Empty : new DotMap(result.ToImmutable());
        }

        private DotMap SetRemove(DotMap store, IReadOnlyCollection<ByteString> elements, string where)
        {
            foreach (var key in Elements(elements, "set element", where))
            {
                if (store.Entries.TryGetValue(key, out var existing))
                {
                    Seen.AddRange(existing.AllDots());
                }
            }

            return DotMap.Empty;
        }

        private void CheckValueSize(ByteString value, string where)
        {
            if (value.Length > _limits.RegisterValueSizeBytesMax)
            {
                throw new CrdtException($"a register value of {value.Length} bytes{where} is over the limit of {_limits.RegisterValueSizeBytesMax} (RegisterValueSizeBytesMax)");
            }
        }

        private DotFun LwwAssign(DotFun store, RegisterAssign assign, string where)
        {
            CheckValueSize(assign.Value, where);
            if (!assign.Context.IsEmpty)
            {
                throw new CrdtException($"a context applies to MV_REGISTER writes only{where}; an LWW_REGISTER write carries none (order it with the causal token instead)");
            }

            Seen.AddRange(store.Entries.Keys);
            var dot = NextDot();
            return new DotFun(ImmutableSortedDictionary<Dot, DotPayload>.Empty.Add(dot, DotPayload.Register(_stamp, assign.Value.Span)));
        }

        private DotFun MvAssign(DotFun store, RegisterAssign assign, string where)
        {
            CheckValueSize(assign.Value, where);
            var covered = ReadMvContext(assign.Context, where);
            int kept = store.Entries.Keys.Count(dot => !covered.Contains(dot));
            if (kept + 1 > _limits.SiblingsPerRegisterMax)
            {
                throw new CrdtException($"the register{where} would hold {kept + 1} siblings, over the limit of {_limits.SiblingsPerRegisterMax} (SiblingsPerRegisterMax): read it and write with the read's context to resolve them");
            }

            Seen.AddRange(covered);
            var dot = NextDot();
            return new DotFun(ImmutableSortedDictionary<Dot, DotPayload>.Empty.Add(dot, DotPayload.Register(Hlc.Zero, assign.Value.Span)));
        }

        private HashSet<Dot> ReadMvContext(ByteString context, string where)
        {
            if (context.IsEmpty)
            {
                return [];
            }

            if (context.Length > _limits.MvContextSizeBytesMax)
            {
                throw new CrdtException($"an MV_REGISTER context of {context.Length} bytes{where} is over the limit of {_limits.MvContextSizeBytesMax} (MvContextSizeBytesMax)");
            }

            CrdtMvReadContext record;
            try
            {
                record = CrdtMvReadContext.Parser.ParseFrom(context);
            }
            catch (InvalidProtocolBufferException e)
            {
                throw new CrdtException($"malformed MV_REGISTER context{where}: pass back the context of a read unchanged ({e.Message})", e);
            }

            if (record.FormatVersion != StateCodec.FormatVersion)
            {
                throw new CrdtException($"malformed MV_REGISTER context{where}: format version {record.FormatVersion} is not known; pass back the context of a read unchanged");
            }

            if (record.Dots.Count == 0)
            {
                throw new CrdtException($"malformed MV_REGISTER context{where}: it names no siblings; pass back the context of a read unchanged");
            }

            var dots = new HashSet<Dot>();
            foreach (var dot in record.Dots)
            {
                dots.Add(StateCodec.DecodeDot(dot, $"MV_REGISTER context{where}"));
            }

            return dots;
        }

        private DotSet FlagAssign(DotSet store, bool enabled)
        {
            Seen.AddRange(store.Dots);
            return enabled ? new DotSet(ImmutableSortedSet.Create(NextDot())) : DotSet.Empty;
        }

        private void CheckDepth(int mapDepth, string where)
        {
            if (mapDepth > _limits.NestingDepthMax)
            {
                throw new CrdtException($"the operation{where} passes through {mapDepth} maps, over the limit of {_limits.NestingDepthMax} (NestingDepthMax)");
            }
        }

        private DotMap MapUpdate(DotMap store, MapUpdate update, int mapDepth, string where)
        {
            CheckDepth(mapDepth, where);
            if (update.Field.Length > _limits.ElementSizeBytesMax)
            {
                throw new CrdtException($"a map field of {update.Field.Length} bytes{where} is over the limit of {_limits.ElementSizeBytesMax} (ElementSizeBytesMax)");
            }

            string fieldWhere = $" in field {Describe(update.Field)}{where}";
            if (!CrdtNames.IsKnown(update.Type))
            {
                throw new CrdtException($"map_update{fieldWhere} names {(update.Type == CrdtType.Unspecified ? "no type" : "an unknown type " + CrdtNames.Of(update.Type))}");
            }

            if (update.Operation is null)
            {
                throw new CrdtException($"map_update{fieldWhere} carries no operation");
            }

            var key = new MapKey(update.Field.Span, update.Type);
            foreach (var existing in store.Entries.Keys)
            {
                if (existing.Bytes.SequenceEqual(key.Bytes) && existing.Type != key.Type)
                {
                    throw new CrdtException($"field {Describe(update.Field)}{where} holds a {CrdtNames.Of(existing.Type)}; a field keeps one type ({CrdtNames.Of(update.Type)} refused)");
                }
            }

            bool present = store.Entries.TryGetValue(key, out var nested);
            if (!present && store.Entries.Count + 1 > _limits.FieldsPerMapMax)
            {
                throw new CrdtException($"the map{where} would hold {store.Entries.Count + 1} fields, over the limit of {_limits.FieldsPerMapMax} (FieldsPerMapMax)");
            }

            var nestedDelta = Mutate(update.Type, nested ?? DotStore.EmptyFor(update.Type), update.Operation, mapDepth, fieldWhere);
            return nestedDelta.IsEmpty
                ? DotMap.Empty
                : new DotMap(ImmutableSortedDictionary<MapKey, DotStore>.Empty.Add(key, nestedDelta));
        }

        private DotMap MapRemove(DotMap store, IReadOnlyCollection<ByteString> fields, int mapDepth, string where)
        {
            CheckDepth(mapDepth, where);
            var names = Elements(fields, "map field", where);
            foreach (var (key, nested) in store.Entries)
            {
                if (names.Contains(new MapKey(key.Bytes, CrdtType.Unspecified)))
                {
                    Seen.AddRange(nested.AllDots());
                }
            }

            return DotMap.Empty;
        }

        private static string Describe(ByteString field)
        {
            const int shownBytesMax = 64;
            var bytes = field.Span;
            bool printable = true;
            foreach (byte b in bytes)
            {
                printable &= b is >= 0x20 and < 0x7f;
            }

            string shown = printable
                ? "\"" + Encoding.ASCII.GetString(bytes[..Math.Min(bytes.Length, shownBytesMax)]) + "\""
                : "0x" + Convert.ToHexString(bytes[..Math.Min(bytes.Length, shownBytesMax)]);
            return bytes.Length > shownBytesMax ? shown + "…" : shown;
        }
    }
}
