using Arbiter.Crdt.Causal;
using Arbiter.Protocol.Crdt;
using Arbiter.Protocol.Internal;
using Google.Protobuf;

namespace Arbiter.Crdt;

/// <summary>Turns a dot store into the value a reader sees (<see cref="CrdtValue"/>), in a deterministic order.</summary>
internal static class ValueRenderer
{
    public static CrdtValue Render(CrdtType type, DotStore store)
    {
        var value = new CrdtValue { Type = type };
        switch (type)
        {
            case CrdtType.GCounter or CrdtType.PnCounter:
                value.Counter = CounterValue((DotFun)store);
                break;
            case CrdtType.OrSet:
                var set = new CrdtSetValue();
                set.Elements.AddRange(((DotMap)store).Entries.Keys.Select(key => ByteString.CopyFrom(key.Bytes)));
                value.Set = set;
                break;
            case CrdtType.LwwRegister:
                value.Lww = LwwValue((DotFun)store);
                break;
            case CrdtType.MvRegister:
                value.Mv = MvValue((DotFun)store);
                break;
            case CrdtType.Flag:
                value.Flag = !store.IsEmpty;
                break;
            case CrdtType.OrMap:
                var map = new CrdtMapValue();
                foreach (var (key, nested) in ((DotMap)store).Entries)
                {
                    map.Entries.Add(new CrdtMapEntry { Field = ByteString.CopyFrom(key.Bytes), Value = Render(key.Type, nested) });
                }

                value.Map = map;
                break;
            default:
                throw new CrdtException($"unknown CRDT type {CrdtNames.Of(type)}");
        }

        return value;
    }

    /// <summary>The sum of every replica's running totals, saturated to the range of a signed 64-bit integer.</summary>
    public static long CounterValue(DotFun store)
    {
        Int128 total = 0;
        foreach (var payload in store.Entries.Values)
        {
            total += payload.Increments;
            total -= payload.Decrements;
        }

        return total > long.MaxValue ? long.MaxValue : total < long.MinValue ? long.MinValue : (long)total;
    }

    /// <summary>The entry with the highest (stamp, replica id, seq): LWW's winner.</summary>
    public static KeyValuePair<Dot, DotPayload>? LwwWinner(DotFun store)
    {
        KeyValuePair<Dot, DotPayload>? winner = null;
        foreach (var entry in store.Entries)
        {
            if (winner is not { } best
                || entry.Value.Stamp > best.Value.Stamp
                || (entry.Value.Stamp == best.Value.Stamp && entry.Key.CompareTo(best.Key) > 0))
            {
                winner = entry;
            }
        }

        return winner;
    }

    private static CrdtLwwValue LwwValue(DotFun store) =>
        LwwWinner(store) is { } winner
            ? new CrdtLwwValue { Assigned = true, Value = ByteString.CopyFrom(winner.Value.Value), Stamp = winner.Value.Stamp.ToTimestamp() }
            : new CrdtLwwValue { Assigned = false };

    private static CrdtMvValue MvValue(DotFun store)
    {
        var mv = new CrdtMvValue();
        var siblings = new SortedSet<byte[]>(ByteComparer.Instance);
        foreach (var payload in store.Entries.Values)
        {
            siblings.Add(payload.Value.ToArray());
        }

        mv.Siblings.AddRange(siblings.Select(ByteString.CopyFrom));
        if (!store.IsEmpty)
        {
            var context = new CrdtMvReadContext { FormatVersion = StateCodec.FormatVersion };
            context.Dots.AddRange(store.Entries.Keys.Select(StateCodec.EncodeDot));
            mv.Context = context.ToByteString();
        }

        return mv;
    }
}

/// <summary>Orders byte strings lexicographically (unsigned; a prefix first).</summary>
internal sealed class ByteComparer : IComparer<byte[]>
{
    public static readonly ByteComparer Instance = new();

    public int Compare(byte[]? x, byte[]? y) => x.AsSpan().SequenceCompareTo(y);
}
