using Arbiter.Protocol.Etcd;
using Arbiter.Protocol.Internal;
using Arbiter.Protocol.Mvcc;
using Google.Protobuf;

namespace Arbiter.Core.Tests;

/// <summary>
/// A deliberately naive oracle of etcd's semantics: every version of every key in a dictionary of
/// lists, everything O(n). Compaction only moves the floor (reads below it fail); nothing is dropped.
/// Covers what the random workload generates: valid requests (no duplicate keys), explicit lease ids.
/// </summary>
internal sealed class ReferenceModel
{
    private readonly Dictionary<string, List<(long Rev, KeyValue? Kv)>> _history = new(StringComparer.Ordinal);
    private readonly SortedDictionary<long, (long Ttl, long DeadlineMs)> _leases = [];
    private readonly Dictionary<string, long> _keyLease = new(StringComparer.Ordinal);

    public long Revision { get; private set; } = 1;

    public long CompactMainRev { get; private set; } = -1;

    public List<Event> Events { get; } = [];

    public CoreLimits Limits { get; } = new();

    public IEnumerable<long> LeaseIds => _leases.Keys;

    public static string K(ByteString b) => string.Concat(b.Span.ToArray().Select(x => (char)x));

    public static ByteString Bytes(string k) => ByteString.CopyFrom([.. k.Select(c => (byte)c)]);

    private KeyValue? At(string key, long rev)
    {
        if (!_history.TryGetValue(key, out var list))
        {
            return null;
        }

        KeyValue? found = null;
        foreach (var (r, kv) in list)
        {
            if (r <= rev)
            {
                found = kv;
            }
        }

        return found;
    }

    private static bool InRange(string key, string start, string end)
    {
        if (end.Length == 0)
        {
            return key == start;
        }

        if (end == "\0")
        {
            return string.CompareOrdinal(key, start) >= 0;
        }

        return string.CompareOrdinal(key, start) >= 0 && string.CompareOrdinal(key, end) < 0;
    }

    private List<(string Key, KeyValue Kv)> Live(string start, string end, long rev) =>
        [.. _history.Keys.Where(k => InRange(k, start, end)).OrderBy(k => k, StringComparer.Ordinal)
            .Select(k => (k, At(k, rev))).Where(x => x.Item2 != null).Select(x => (x.k, x.Item2!))];

    public object Range(RangeRequest r, long cur)
    {
        var rev = r.Revision;
        if (rev > cur)
        {
            return EtcdError.FutureRevision;
        }

        if (rev <= 0)
        {
            rev = cur;
        }

        if (rev < CompactMainRev)
        {
            return EtcdError.Compacted;
        }

        var live = Live(K(r.Key), K(r.RangeEnd), rev).Select(x => x.Kv).ToList();
        var response = new RangeResponse { Header = new ResponseHeader { Revision = cur }, Count = live.Count };
        if (r.CountOnly)
        {
            return response;
        }

        // etcd 3.4 quirk: with sort_order NONE (even if a non-KEY target then sorts ascending) and no
        // filters, only the first limit+1 keys in key order are fetched before sorting.
        var filtered = r.MinModRevision != 0 || r.MaxModRevision != 0 || r.MinCreateRevision != 0 || r.MaxCreateRevision != 0;
        if (r.SortOrder == RangeRequest.Types.SortOrder.None && !filtered && r.Limit > 0)
        {
            live = live.Take((int)r.Limit + 1).ToList();
        }

        IEnumerable<KeyValue> kvs = live.Where(kv =>
            (r.MaxModRevision == 0 || kv.ModRevision <= r.MaxModRevision) &&
            (r.MinModRevision == 0 || kv.ModRevision >= r.MinModRevision) &&
            (r.MaxCreateRevision == 0 || kv.CreateRevision <= r.MaxCreateRevision) &&
            (r.MinCreateRevision == 0 || kv.CreateRevision >= r.MinCreateRevision));
        var order = r.SortOrder == RangeRequest.Types.SortOrder.None && r.SortTarget != RangeRequest.Types.SortTarget.Key
            ? RangeRequest.Types.SortOrder.Ascend : r.SortOrder;
        Func<KeyValue, IComparable> key = r.SortTarget switch
        {
            RangeRequest.Types.SortTarget.Version => kv => kv.Version,
            RangeRequest.Types.SortTarget.Create => kv => kv.CreateRevision,
            RangeRequest.Types.SortTarget.Mod => kv => kv.ModRevision,
            RangeRequest.Types.SortTarget.Value => kv => K(kv.Value),
            _ => kv => K(kv.Key),
        };
        var comparer = Comparer<IComparable>.Create((a, b) => a is string sa && b is string sb ? string.CompareOrdinal(sa, sb) : a.CompareTo(b));
        if (order == RangeRequest.Types.SortOrder.Ascend)
        {
            kvs = kvs.OrderBy(key, comparer); // LINQ sorts are stable: ties stay in key order
        }
        else if (order == RangeRequest.Types.SortOrder.Descend)
        {
            kvs = kvs.OrderByDescending(key, comparer);
        }

        var list = kvs.ToList();
        if (r.Limit > 0 && list.Count > r.Limit)
        {
            list = list.Take((int)r.Limit).ToList();
            response.More = true;
        }

        foreach (var kv in list)
        {
            var copy = kv.Clone();
            if (r.KeysOnly)
            {
                copy.Value = ByteString.Empty;
            }

            response.Kvs.Add(copy);
        }

        return response;
    }

    public CommandResult Apply(Command c)
    {
        var result = c.OpCase switch
        {
            Command.OpOneofCase.Put => Put(c.Put),
            Command.OpOneofCase.DeleteRange => Delete(c.DeleteRange),
            Command.OpOneofCase.Txn => Txn(c.Txn),
            Command.OpOneofCase.Compaction => Compact(c.Compaction.Revision),
            Command.OpOneofCase.LeaseGrant => Grant(c.LeaseGrant, c.TimeMs),
            Command.OpOneofCase.LeaseRevoke => RevokeCommand(c.LeaseRevoke.ID),
            Command.OpOneofCase.LeaseKeepAlive => KeepAlive(c.LeaseKeepAlive.ID, c.TimeMs),
            Command.OpOneofCase.LeaseExpire => Expire(c.TimeMs, c.LeaseExpire.LeasesMax),
            Command.OpOneofCase.LeasePromote => Promote(c.TimeMs),
            _ => throw new NotSupportedException(),
        };
        return result;
    }

    private static CommandResult Error(EtcdError e) => new() { Error = new CommandError { StatusCode = (int)e.StatusCode, Message = e.Message } };

    // A write in progress: revision Revision + 1 once anything changed.
    private int _changes;

    private long View => _changes > 0 ? Revision + 1 : Revision;

    private void Begin() => _changes = 0;

    private void End()
    {
        if (_changes > 0)
        {
            Revision++;
        }
    }

    private void WritePut(string key, ByteString value, long lease)
    {
        var prev = At(key, long.MaxValue);
        var rev = Revision + 1;
        var kv = new KeyValue
        {
            Key = Bytes(key),
            Value = value,
            CreateRevision = prev?.CreateRevision ?? rev,
            ModRevision = rev,
            Version = (prev?.Version ?? 0) + 1,
            Lease = lease,
        };
        Append(key, rev, kv);
        Events.Add(new Event { Type = Event.Types.EventType.Put, Kv = kv, PrevKv = prev });
        _keyLease.Remove(key);
        if (lease != 0)
        {
            _keyLease[key] = lease;
        }

        _changes++;
    }

    private KeyValue WriteDelete(string key)
    {
        var prev = At(key, long.MaxValue)!;
        var rev = Revision + 1;
        Append(key, rev, null);
        Events.Add(new Event { Type = Event.Types.EventType.Delete, Kv = new KeyValue { Key = Bytes(key), ModRevision = rev }, PrevKv = prev });
        _keyLease.Remove(key);
        _changes++;
        return prev;
    }

    private void Append(string key, long rev, KeyValue? kv)
    {
        if (!_history.TryGetValue(key, out var list))
        {
            _history[key] = list = [];
        }

        list.Add((rev, kv));
    }

    private CommandResult Put(PutRequest p)
    {
        var key = K(p.Key);
        if (p.Lease != 0 && !_leases.ContainsKey(p.Lease))
        {
            return Error(EtcdError.LeaseNotFound);
        }

        var prev = At(key, long.MaxValue);
        if ((p.IgnoreValue || p.IgnoreLease) && prev == null)
        {
            return Error(EtcdError.KeyNotFound);
        }

        Begin();
        var response = PutOp(p);
        End();
        return new CommandResult { Put = response };
    }

    private PutResponse PutOp(PutRequest p)
    {
        var key = K(p.Key);
        var prev = At(key, long.MaxValue);
        WritePut(key, p.IgnoreValue ? prev!.Value : p.Value, p.IgnoreLease ? prev!.Lease : p.Lease);
        var response = new PutResponse { Header = new ResponseHeader { Revision = Revision + 1 } };
        if (p.PrevKv && prev != null)
        {
            response.PrevKv = prev;
        }

        return response;
    }

    private CommandResult Delete(DeleteRangeRequest d)
    {
        Begin();
        var response = DeleteOp(d);
        End();
        return new CommandResult { DeleteRange = response };
    }

    private DeleteRangeResponse DeleteOp(DeleteRangeRequest d)
    {
        var victims = Live(K(d.Key), K(d.RangeEnd), View);
        var response = new DeleteRangeResponse { Deleted = victims.Count };
        foreach (var (key, _) in victims)
        {
            var prev = WriteDelete(key);
            if (d.PrevKv)
            {
                response.PrevKvs.Add(prev);
            }
        }

        response.Header = new ResponseHeader { Revision = _changes > 0 ? Revision + 1 : Revision };
        return response;
    }

    private bool CompareOne(Compare c)
    {
        var kvs = Live(K(c.Key), K(c.RangeEnd), Revision).Select(x => x.Kv).ToList();
        if (kvs.Count == 0)
        {
            if (c.Target == Compare.Types.CompareTarget.Value)
            {
                return false;
            }

            kvs.Add(new KeyValue());
        }

        return kvs.All(kv =>
        {
            var cmp = c.Target switch
            {
                Compare.Types.CompareTarget.Value => string.CompareOrdinal(K(kv.Value), c.TargetUnionCase == Compare.TargetUnionOneofCase.Value ? K(c.Value) : ""),
                Compare.Types.CompareTarget.Version => kv.Version.CompareTo(c.TargetUnionCase == Compare.TargetUnionOneofCase.Version ? c.Version : 0),
                Compare.Types.CompareTarget.Create => kv.CreateRevision.CompareTo(c.TargetUnionCase == Compare.TargetUnionOneofCase.CreateRevision ? c.CreateRevision : 0),
                Compare.Types.CompareTarget.Mod => kv.ModRevision.CompareTo(c.TargetUnionCase == Compare.TargetUnionOneofCase.ModRevision ? c.ModRevision : 0),
                _ => kv.Lease.CompareTo(c.TargetUnionCase == Compare.TargetUnionOneofCase.Lease ? c.Lease : 0),
            };
            cmp = Math.Sign(cmp);
            return c.Result switch
            {
                Compare.Types.CompareResult.Equal => cmp == 0,
                Compare.Types.CompareResult.NotEqual => cmp != 0,
                Compare.Types.CompareResult.Greater => cmp > 0,
                _ => cmp < 0,
            };
        });
    }

    // Branch choices, decided before anything is applied (etcd evaluates nested compares up front).
    private readonly Dictionary<TxnRequest, bool> _choices = new(ReferenceEqualityComparer.Instance);

    private void Choose(TxnRequest t)
    {
        var ok = t.Compare.All(CompareOne);
        _choices[t] = ok;
        foreach (var op in ok ? t.Success : t.Failure)
        {
            if (op.RequestCase == RequestOp.RequestOneofCase.RequestTxn)
            {
                Choose(op.RequestTxn);
            }
        }
    }

    private IEnumerable<RequestOp> ChosenOps(TxnRequest t)
    {
        foreach (var op in _choices[t] ? t.Success : t.Failure)
        {
            if (op.RequestCase == RequestOp.RequestOneofCase.RequestTxn)
            {
                foreach (var inner in ChosenOps(op.RequestTxn))
                {
                    yield return inner;
                }
            }
            else
            {
                yield return op;
            }
        }
    }

    private CommandResult Txn(TxnRequest t)
    {
        _choices.Clear();
        Choose(t);
        var isWrite = t.Success.Concat(t.Failure).Any(op => op.RequestCase != RequestOp.RequestOneofCase.RequestRange);
        if (isWrite)
        {
            foreach (var op in ChosenOps(t).Where(op => op.RequestCase == RequestOp.RequestOneofCase.RequestPut))
            {
                var p = op.RequestPut;
                if ((p.IgnoreValue || p.IgnoreLease) && At(K(p.Key), Revision) == null)
                {
                    return Error(EtcdError.KeyNotFound);
                }

                if (p.Lease != 0 && !_leases.ContainsKey(p.Lease))
                {
                    return Error(EtcdError.LeaseNotFound);
                }
            }
        }

        foreach (var op in ChosenOps(t).Where(op => op.RequestCase == RequestOp.RequestOneofCase.RequestRange))
        {
            var rev = op.RequestRange.Revision;
            if (rev != 0 && rev > Revision)
            {
                return Error(EtcdError.FutureRevision);
            }

            if (rev != 0 && rev < CompactMainRev)
            {
                return Error(EtcdError.Compacted);
            }
        }

        Begin();
        var response = TxnOps(t);
        End();
        response.Header = new ResponseHeader { Revision = Revision };
        return new CommandResult { Txn = response };
    }

    private TxnResponse TxnOps(TxnRequest t)
    {
        var ok = _choices[t];
        var response = new TxnResponse { Succeeded = ok, Header = new ResponseHeader() };
        foreach (var op in ok ? t.Success : t.Failure)
        {
            response.Responses.Add(op.RequestCase switch
            {
                RequestOp.RequestOneofCase.RequestRange => new ResponseOp { ResponseRange = (RangeResponse)Range(op.RequestRange, View) },
                RequestOp.RequestOneofCase.RequestPut => new ResponseOp { ResponsePut = PutOp(op.RequestPut) },
                RequestOp.RequestOneofCase.RequestDeleteRange => new ResponseOp { ResponseDeleteRange = DeleteOp(op.RequestDeleteRange) },
                _ => new ResponseOp { ResponseTxn = TxnOps(op.RequestTxn) },
            });
        }

        return response;
    }

    private CommandResult Compact(long rev)
    {
        if (rev <= CompactMainRev)
        {
            return Error(EtcdError.Compacted);
        }

        if (rev > Revision)
        {
            return Error(EtcdError.FutureRevision);
        }

        CompactMainRev = rev;
        return new CommandResult { Compaction = new CompactionResponse { Header = new ResponseHeader { Revision = Revision } } };
    }

    private CommandResult Grant(LeaseGrantRequest g, long timeMs)
    {
        if (g.TTL > Limits.LeaseTtlSecondsMax)
        {
            return Error(EtcdError.LeaseTtlTooLarge);
        }

        if (_leases.ContainsKey(g.ID))
        {
            return Error(EtcdError.LeaseExists);
        }

        var ttl = Math.Max(g.TTL, Limits.LeaseTtlSecondsMin);
        _leases[g.ID] = (ttl, timeMs + (ttl * 1000));
        return new CommandResult { LeaseGrant = new LeaseGrantResponse { Header = new ResponseHeader { Revision = Revision }, ID = g.ID, TTL = ttl } };
    }

    private void Revoke(long id)
    {
        Begin();
        foreach (var key in _keyLease.Where(kv => kv.Value == id).Select(kv => kv.Key).OrderBy(k => k, StringComparer.Ordinal).ToList())
        {
            WriteDelete(key);
        }

        _leases.Remove(id);
        End();
    }

    private CommandResult RevokeCommand(long id)
    {
        if (!_leases.ContainsKey(id))
        {
            return Error(EtcdError.LeaseNotFound);
        }

        Revoke(id);
        return new CommandResult { LeaseRevoke = new LeaseRevokeResponse { Header = new ResponseHeader { Revision = Revision } } };
    }

    private CommandResult KeepAlive(long id, long timeMs)
    {
        if (!_leases.TryGetValue(id, out var lease) || lease.DeadlineMs <= timeMs)
        {
            return Error(EtcdError.LeaseNotFound);
        }

        _leases[id] = (lease.Ttl, timeMs + (lease.Ttl * 1000));
        return new CommandResult { LeaseKeepAlive = new LeaseKeepAliveResponse { Header = new ResponseHeader { Revision = Revision }, ID = id, TTL = lease.Ttl } };
    }

    private CommandResult Promote(long timeMs)
    {
        foreach (var id in _leases.Keys.ToList())
        {
            _leases[id] = (_leases[id].Ttl, timeMs + (_leases[id].Ttl * 1000));
        }

        return new CommandResult { LeasePromote = new LeasePromoteResult { LeasesRenewed = _leases.Count } };
    }

    private CommandResult Expire(long timeMs, int max)
    {
        var due = _leases.Where(l => l.Value.DeadlineMs <= timeMs).OrderBy(l => l.Value.DeadlineMs).ThenBy(l => l.Key)
            .Take(max > 0 ? Math.Min(max, Limits.LeasesExpiredPerCommandMax) : Limits.LeasesExpiredPerCommandMax).Select(l => l.Key).Order().ToList();
        var result = new LeaseExpireResult();
        foreach (var id in due)
        {
            Revoke(id);
            result.ExpiredLeaseIds.Add(id);
        }

        return new CommandResult { LeaseExpire = result };
    }

    public LeaseTimeToLiveResponse TimeToLive(long id, long nowMs)
    {
        var response = new LeaseTimeToLiveResponse { Header = new ResponseHeader { Revision = Revision }, ID = id };
        if (!_leases.TryGetValue(id, out var lease))
        {
            response.TTL = -1;
            return response;
        }

        response.TTL = (lease.DeadlineMs - nowMs) / 1000;
        response.GrantedTTL = lease.Ttl;
        response.Keys.AddRange(_keyLease.Where(kv => kv.Value == id).Select(kv => kv.Key).OrderBy(k => k, StringComparer.Ordinal).Select(Bytes));
        return response;
    }

    public bool Exists(string key) => At(key, Revision) != null;
}
