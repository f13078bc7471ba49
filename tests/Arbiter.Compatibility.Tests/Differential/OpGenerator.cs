using Arbiter.Protocol.Etcd;
using Google.Protobuf;

namespace Arbiter.Compatibility.Tests.Differential;

/// <summary>What the generator knows of the store (taken from the reference server's answers).</summary>
public sealed class ModelState
{
    public long Revision { get; set; } = 1;

    public long CompactedRevision { get; set; }
}

/// <summary>
/// Seeded generator of etcd requests over a small keyspace under "d/", so that ops collide often.
/// Invalid requests (duplicate keys, >128 ops, compacted/future revisions, unknown leases) are mixed in
/// on purpose: errors are compared as carefully as successes.
/// </summary>
public sealed class OpGenerator(int seed)
{
    public const string KeyPrefix = "d/";

    /// <summary>Client-chosen lease ids, so both servers name leases alike. TTLs are long: nothing expires mid-run.</summary>
    public static readonly long[] LeaseIds = [1, 2, 3, 0x7000, 0x1234_5678_9abc];

    private static readonly string[] Keys = ["a", "aa", "ab", "b", "b/1", "b/2", "c", "c/x", "d", "e"];
    private static readonly string[] Values = ["", "0", "1", "10", "2", "v", "vv", "x", "y", "zzz"];
    private readonly Random _random = new(seed);

    /// <summary>Compactions only after the watches have certainly caught up with the setup history.</summary>
    public int CompactionsAfterOp { get; init; } = 30;

    public IMessage Next(int index, ModelState state)
    {
        var roll = _random.Next(100);
        return roll switch
        {
            < 25 => NextRange(state),
            < 45 => NextPut(),
            < 53 => NextDelete(),
            < 73 => WithoutCrashingEtcd(NextTxn(state, depth: 0)),
            < 76 when index >= CompactionsAfterOp => NextCompact(state),
            < 81 => new LeaseGrantRequest { ID = Pick(LeaseIds), TTL = _random.Next(300, 3600) },
            < 85 => new LeaseRevokeRequest { ID = Pick(LeaseIds) },
            < 91 => new LeaseTimeToLiveRequest { ID = Pick(LeaseIds), Keys = Chance(50) },
            < 94 => new LeaseLeasesRequest(),
            _ => new LeaseKeepAliveRequest { ID = Pick(LeaseIds) },
        };
    }

    public static ByteString Key(string name) => ByteString.CopyFromUtf8(KeyPrefix + name);

    /// <summary>The end of the prefix range for <paramref name="prefix"/> (last byte + 1).</summary>
    public static ByteString PrefixEnd(ByteString prefix)
    {
        var bytes = prefix.ToByteArray();
        bytes[^1]++;
        return ByteString.CopyFrom(bytes);
    }

    private RangeRequest NextRange(ModelState state)
    {
        var request = new RangeRequest();
        SetInterval(out var key, out var rangeEnd, allowAll: true);
        request.Key = key;
        request.RangeEnd = rangeEnd;
        if (Chance(30))
        {
            request.Limit = _random.Next(1, 5);
        }

        if (Chance(35))
        {
            request.Revision = Revision(state);
        }

        if (Chance(40))
        {
            request.SortOrder = (RangeRequest.Types.SortOrder)_random.Next(3);
            request.SortTarget = (RangeRequest.Types.SortTarget)_random.Next(5);
        }

        request.Serializable = Chance(20);
        request.KeysOnly = Chance(20);
        request.CountOnly = Chance(15);
        if (Chance(15))
        {
            request.MinModRevision = _random.Next(0, (int)state.Revision + 1);
        }

        if (Chance(15))
        {
            request.MaxModRevision = _random.Next(0, (int)state.Revision + 1);
        }

        if (Chance(15))
        {
            request.MinCreateRevision = _random.Next(0, (int)state.Revision + 1);
        }

        if (Chance(15))
        {
            request.MaxCreateRevision = _random.Next(0, (int)state.Revision + 1);
        }

        return request;
    }

    private PutRequest NextPut(string? keyName = null)
    {
        var request = new PutRequest { Key = Key(keyName ?? Pick(Keys)), Value = ByteString.CopyFromUtf8(Pick(Values)), PrevKv = Chance(50) };
        if (Chance(25))
        {
            // Mostly ids from the pool (which may or may not exist right now), sometimes one never granted.
            request.Lease = Chance(85) ? Pick(LeaseIds) : 0x0bad;
        }

        if (Chance(8))
        {
            request.IgnoreValue = true;
            if (Chance(75))
            {
                request.Value = ByteString.Empty;
            }
        }

        if (Chance(8))
        {
            request.IgnoreLease = true;
            if (Chance(75))
            {
                request.Lease = 0;
            }
        }

        return request;
    }

    private DeleteRangeRequest NextDelete()
    {
        SetInterval(out var key, out var rangeEnd, allowAll: false);
        return new DeleteRangeRequest { Key = key, RangeEnd = rangeEnd, PrevKv = Chance(50) };
    }

    /// <summary>
    /// etcd 3.4 panics (the process dies) when a txn deletes a key and then puts it with ignore_value or
    /// ignore_lease: the put fails at apply time with "key not found". A reference that crashes cannot
    /// answer, so such txns keep their deletes and lose the ignore flags.
    /// </summary>
    private static TxnRequest WithoutCrashingEtcd(TxnRequest txn)
    {
        var ops = Flatten(txn).ToList();
        if (ops.Any(op => op.RequestDeleteRange != null))
        {
            foreach (var put in ops.Where(op => op.RequestPut != null).Select(op => op.RequestPut))
            {
                put.IgnoreValue = false;
                put.IgnoreLease = false;
            }
        }

        return txn;
    }

    private static IEnumerable<RequestOp> Flatten(TxnRequest txn) =>
        txn.Success.Concat(txn.Failure).SelectMany(op => op.RequestTxn != null ? Flatten(op.RequestTxn).Prepend(op) : [op]);

    private TxnRequest NextTxn(ModelState state, int depth)
    {
        var request = new TxnRequest();
        if (depth == 0 && Chance(2))
        {
            // Over the limit of 128 operations per branch.
            request.Success.AddRange(Enumerable.Range(0, 129).Select(_ => new RequestOp { RequestRange = new RangeRequest { Key = Key("a") } }));
            return request;
        }

        var compares = _random.Next(0, 4);
        for (var i = 0; i < compares; i++)
        {
            request.Compare.Add(NextCompare(state));
        }

        request.Success.AddRange(NextOps(state, depth));
        request.Failure.AddRange(NextOps(state, depth));
        return request;
    }

    private List<RequestOp> NextOps(ModelState state, int depth)
    {
        // Puts mostly go to distinct keys so that not every txn is a duplicate-key error.
        var distinct = Chance(75);
        var unused = Keys.OrderBy(_ => _random.Next()).ToList();
        var count = _random.Next(0, 5);
        var ops = new List<RequestOp>();
        for (var i = 0; i < count; i++)
        {
            var roll = _random.Next(100);
            if (roll < 30)
            {
                var range = NextRange(state);
                ops.Add(new RequestOp { RequestRange = range });
            }
            else if (roll < 75)
            {
                string? keyName = null;
                if (distinct && unused.Count > 0)
                {
                    keyName = unused[^1];
                    unused.RemoveAt(unused.Count - 1);
                }

                ops.Add(new RequestOp { RequestPut = NextPut(keyName) });
            }
            else if (roll < 90 || depth >= 2)
            {
                var delete = NextDelete();
                if (distinct)
                {
                    // A single-key delete of a key no put in this branch uses.
                    var keyName = unused.Count > 0 ? unused[0] : "zz";
                    unused.Remove(keyName);
                    delete = new DeleteRangeRequest { Key = Key(keyName), PrevKv = delete.PrevKv };
                }

                ops.Add(new RequestOp { RequestDeleteRange = delete });
            }
            else
            {
                ops.Add(new RequestOp { RequestTxn = NextTxn(state, depth + 1) });
            }
        }

        return ops;
    }

    private Compare NextCompare(ModelState state)
    {
        var compare = new Compare
        {
            Key = Key(Pick(Keys)),
            Result = (Compare.Types.CompareResult)_random.Next(4),
            Target = (Compare.Types.CompareTarget)_random.Next(5),
        };
        if (Chance(20))
        {
            compare.RangeEnd = Chance(50) ? PrefixEnd(compare.Key) : ByteString.CopyFrom(0);
        }

        switch (compare.Target)
        {
            case Compare.Types.CompareTarget.Version:
                compare.Version = _random.Next(0, 4);
                break;
            case Compare.Types.CompareTarget.Create:
                compare.CreateRevision = _random.Next(0, (int)state.Revision + 2);
                break;
            case Compare.Types.CompareTarget.Mod:
                compare.ModRevision = _random.Next(0, (int)state.Revision + 2);
                break;
            case Compare.Types.CompareTarget.Value:
                compare.Value = ByteString.CopyFromUtf8(Pick(Values));
                break;
            default:
                compare.Lease = Chance(30) ? 0 : Pick(LeaseIds);
                break;
        }

        return compare;
    }

    private CompactionRequest NextCompact(ModelState state)
    {
        var roll = _random.Next(100);
        long revision;
        if (roll < 60 && state.Revision > state.CompactedRevision)
        {
            revision = _random.NextInt64(state.CompactedRevision + 1, state.Revision + 1);
        }
        else if (roll < 80)
        {
            revision = _random.NextInt64(0, state.CompactedRevision + 1);
        }
        else
        {
            revision = state.Revision + _random.Next(1, 5);
        }

        return new CompactionRequest { Revision = revision, Physical = Chance(50) };
    }

    /// <summary>A revision around the store's history: compacted, current, or in the future.</summary>
    private long Revision(ModelState state) => _random.Next(100) switch
    {
        < 15 => _random.NextInt64(-1, state.CompactedRevision + 1),
        < 85 => _random.NextInt64(Math.Max(1, state.CompactedRevision), state.Revision + 1),
        _ => state.Revision + _random.Next(1, 4),
    };

    /// <summary>Single key, prefix, [a, b) (sometimes reversed), from-key ("\0"), or every key.</summary>
    private void SetInterval(out ByteString key, out ByteString rangeEnd, bool allowAll)
    {
        var roll = _random.Next(100);
        key = Key(Pick(Keys));
        rangeEnd = ByteString.Empty;
        if (roll < 40)
        {
            return;
        }

        if (roll < 65)
        {
            rangeEnd = PrefixEnd(key);
        }
        else if (roll < 85)
        {
            rangeEnd = Key(Pick(Keys));
        }
        else if (roll < 93 || !allowAll)
        {
            rangeEnd = ByteString.CopyFrom(0);
        }
        else
        {
            key = ByteString.CopyFrom(0);
            rangeEnd = ByteString.CopyFrom(0);
        }
    }

    private bool Chance(int percent) => _random.Next(100) < percent;

    private T Pick<T>(T[] items) => items[_random.Next(items.Length)];
}
