using Google.Protobuf;

namespace Arbiter.Crdt.Causal;

/// <summary>
/// The size of a state's encoding (crdt_state.proto, as <see cref="StateCodec"/> writes it),
/// computed without encoding: stores cache their own size and share unchanged nested stores
/// between versions, so checking <see cref="CrdtLimits.StateSizeBytesMax"/> after an update does
/// not re-encode the state. Every field number is below 16, so every tag is one byte. A property
/// test holds this equal to the encoder's output.
/// </summary>
internal static class StateSize
{
    private const int TagBytes = 1;

    public static int State(CausalState state) =>
        TagBytes + CodedOutputStream.ComputeUInt32Size(StateCodec.FormatVersion)
        + TagBytes + CodedOutputStream.ComputeEnumSize((int)state.Type)
        + Message(Context(state.Context))
        + Message(state.Store.SizeBytes)
        + Pruned(state);

    /// <summary>The packed repeated pruned_replicas field (absent when empty).</summary>
    private static int Pruned(CausalState state)
    {
        if (state.Pruned.IsEmpty)
        {
            return 0;
        }

        int body = 0;
        foreach (ulong replica in state.Pruned)
        {
            body += CodedOutputStream.ComputeUInt64Size(replica);
        }

        return Message(body);
    }

    /// <summary>The body of a CrdtStateStore: its one kind, always written.</summary>
    public static int Store(DotStore store) => store switch
    {
        DotSet set => Message(DotSetBody(set)),
        DotFun fun => Message(DotFunBody(fun)),
        DotMap map => Message(map.BodySizeBytes),
        _ => throw new InvalidOperationException($"unknown dot store {store.GetType().Name}"),
    };

    private static int Message(int bodyBytes) => TagBytes + CodedOutputStream.ComputeLengthSize(bodyBytes) + bodyBytes;

    private static int Dot(ulong replica, ulong seq) =>
        (replica != 0 ? TagBytes + CodedOutputStream.ComputeUInt64Size(replica) : 0)
        + (seq != 0 ? TagBytes + CodedOutputStream.ComputeUInt64Size(seq) : 0);

    private static int Context(CausalContext context)
    {
        int bytes = 0;
        foreach (var (replica, seq) in context.Versions)
        {
            bytes += Message(Dot(replica, seq));
        }

        foreach (var dot in context.Cloud)
        {
            bytes += Message(Dot(dot.Replica, dot.Seq));
        }

        return bytes;
    }

    private static int DotSetBody(DotSet set)
    {
        int bytes = 0;
        foreach (var dot in set.Dots)
        {
            bytes += Message(Dot(dot.Replica, dot.Seq));
        }

        return bytes;
    }

    private static int DotFunBody(DotFun fun)
    {
        int bytes = 0;
        foreach (var (dot, payload) in fun.Entries)
        {
            int entry = Message(Dot(dot.Replica, dot.Seq));
            if (payload.Increments != 0)
            {
                entry += TagBytes + CodedOutputStream.ComputeUInt64Size(payload.Increments);
            }

            if (payload.Decrements != 0)
            {
                entry += TagBytes + CodedOutputStream.ComputeUInt64Size(payload.Decrements);
            }

            if (payload.Stamp != Hlc.Zero)
            {
                int stamp = (payload.Stamp.WallMs != 0 ? TagBytes + CodedOutputStream.ComputeInt64Size(payload.Stamp.WallMs) : 0)
                    + (payload.Stamp.Logical != 0 ? TagBytes + CodedOutputStream.ComputeUInt32Size(payload.Stamp.Logical) : 0);
                entry += Message(stamp);
            }

            if (payload.Value.Length != 0)
            {
                entry += Message(payload.Value.Length);
            }

            bytes += Message(entry);
        }

        return bytes;
    }

    public static int DotMapBody(DotMap map)
    {
        int bytes = 0;
        foreach (var (key, nested) in map.Entries)
        {
            bytes += DotMapEntry(key, nested);
        }

        return bytes;
    }

    /// <summary>One CrdtStateDotMapEntry field of a CrdtStateDotMap, tag and length included.</summary>
    public static int DotMapEntry(MapKey key, DotStore nested)
    {
        int entry = key.Bytes.Length != 0 ? Message(key.Bytes.Length) : 0;
        if (key.Type != Protocol.Crdt.CrdtType.Unspecified)
        {
            entry += TagBytes + CodedOutputStream.ComputeEnumSize((int)key.Type);
        }

        entry += Message(nested.SizeBytes);
        return Message(entry);
    }
}
