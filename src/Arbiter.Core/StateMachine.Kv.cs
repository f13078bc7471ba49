using Arbiter.Core.Mvcc;
using Arbiter.Protocol.Etcd;
using Arbiter.Protocol.Mvcc;
using Google.Protobuf;

namespace Arbiter.Core;

public sealed partial class StateMachine
{
    private static readonly ByteString GteRangeEnd = ByteString.CopyFrom(0);

    /// <summary>Records within one revision being written (a put, a delete, a txn, one lease revoke).</summary>
    private sealed class WriteContext(long beginRevision, List<Event> events)
    {
        public long BeginRevision { get; } = beginRevision;

        public long WriteRevision => BeginRevision + 1;

        public int Changes { get; set; }

        /// <summary>The revision reads inside this write see (the pending one once something changed).</summary>
        public long ViewRevision => Changes > 0 ? BeginRevision + 1 : BeginRevision;

        public List<Event> Events { get; } = events;

        public int FirstEventIndex { get; } = events.Count;

        public List<KeyRecord> Records { get; } = [];
    }

    private WriteContext BeginWrite(List<Event> events) => new(_revision, events);

    /// <summary>Ends a write: one new revision if anything changed, recorded in the history.</summary>
    private void Commit(WriteContext ctx)
    {
        if (ctx.BeginRevision != _revision)
        {
            throw new InvalidOperationException("Overlapping writes.");
        }

        if (ctx.Changes == 0)
        {
            return;
        }

        _revision = ctx.WriteRevision;
        var records = System.Runtime.InteropServices.CollectionsMarshal.AsSpan(ctx.Records);
        AppendHistory(_revision, System.Runtime.InteropServices.CollectionsMarshal.AsSpan(ctx.Events)[ctx.FirstEventIndex..], records);
        SpillWritten(_revision, records);
    }

    /// <summary>Keys whose records fall in etcd's [key, range_end) interpretation.</summary>
    private IEnumerable<KeyRecord> RecordsInRange(ByteString key, ByteString rangeEnd)
    {
        if (rangeEnd.IsEmpty)
        {
            var single = _index.Get(key);
            return single == null ? [] : [single];
        }

        return rangeEnd.Equals(GteRangeEnd) ? _index.Range(key, null) : _index.Range(key, rangeEnd);
    }

    private RangeResponse RangeAt(RangeRequest r, long currentRevision)
    {
        var rev = r.Revision;
        if (rev > currentRevision)
        {
            throw new EtcdException(EtcdError.FutureRevision);
        }

        if (rev <= 0)
        {
            rev = currentRevision;
        }

        if (rev < _compactMainRev)
        {
            throw new EtcdException(EtcdError.Compacted);
        }

        var filtered = r.MinModRevision != 0 || r.MaxModRevision != 0 || r.MinCreateRevision != 0 || r.MaxCreateRevision != 0;

        // As etcd: sorting or filtering fetches everything, otherwise one past the limit (for 'more').
        long fetchMax = 0;
        if (r.SortOrder == RangeRequest.Types.SortOrder.None && !filtered && r.Limit > 0 && r.Limit < int.MaxValue)
        {
            fetchMax = r.Limit + 1;
        }

        var kvs = new List<KeyValue>();
        long count = 0;
        if (r.RangeEnd.IsEmpty && !r.CountOnly)
        {
            // Point read: the common case, without an enumerator.
            if (_index.Get(r.Key)?.At(rev) is { } kv)
            {
                count = 1;
                kvs.Add(kv);
            }
        }
        else
        {
            foreach (var record in RecordsInRange(r.Key, r.RangeEnd))
            {
                // A key that is only counted needs no key-value: nothing is read back from a spill.
                if (!filtered && (r.CountOnly || (fetchMax != 0 && kvs.Count >= fetchMax)))
                {
                    count += record.ExistsAt(rev) ? 1 : 0;
                    continue;
                }

                var kv = record.At(rev);
                if (kv == null)
                {
                    continue;
                }

                count++;
                if (!r.CountOnly && (fetchMax == 0 || kvs.Count < fetchMax))
                {
                    kvs.Add(kv);
                }
            }
        }

        // Filters prune fetched kvs only: count stays the number of keys in range (as etcd 3.4).
        if (filtered)
        {
            kvs.RemoveAll(kv =>
                (r.MaxModRevision != 0 && kv.ModRevision > r.MaxModRevision) ||
                (r.MinModRevision != 0 && kv.ModRevision < r.MinModRevision) ||
                (r.MaxCreateRevision != 0 && kv.CreateRevision > r.MaxCreateRevision) ||
                (r.MinCreateRevision != 0 && kv.CreateRevision < r.MinCreateRevision));
        }

        var order = r.SortOrder;
        if (r.SortTarget != RangeRequest.Types.SortTarget.Key && order == RangeRequest.Types.SortOrder.None)
        {
            order = RangeRequest.Types.SortOrder.Ascend;
        }

        if (order != RangeRequest.Types.SortOrder.None && kvs.Count > 1)
        {
            SortKvs(kvs, r.SortTarget, order == RangeRequest.Types.SortOrder.Descend);
        }

        var response = new RangeResponse { Header = Header(currentRevision), Count = count };
        var take = kvs.Count;
        if (r.Limit > 0 && kvs.Count > r.Limit)
        {
            take = (int)r.Limit;
            response.More = true;
        }

        for (var i = 0; i < take; i++)
        {
            var copy = kvs[i].Clone();
            if (r.KeysOnly)
            {
                copy.Value = ByteString.Empty;
            }

            response.Kvs.Add(copy);
        }

        return response;
    }

    /// <summary>
    /// Sorts by target; ties keep ascending key order in both directions. That is what etcd's
    /// sort.Sort gives for small results (insertion sort is stable); for large results Go's order
    /// of ties is unspecified, ours is fixed.
    /// </summary>
    private static void SortKvs(List<KeyValue> kvs, RangeRequest.Types.SortTarget target, bool descending)
    {
        Comparison<KeyValue> byTarget = target switch
        {
            RangeRequest.Types.SortTarget.Version => (a, b) => a.Version.CompareTo(b.Version),
            RangeRequest.Types.SortTarget.Create => (a, b) => a.CreateRevision.CompareTo(b.CreateRevision),
            RangeRequest.Types.SortTarget.Mod => (a, b) => a.ModRevision.CompareTo(b.ModRevision),
            RangeRequest.Types.SortTarget.Value => (a, b) => a.Value.Span.SequenceCompareTo(b.Value.Span),
            _ => (a, b) => KeyComparer.CompareKeys(a.Key, b.Key),
        };
        kvs.Sort((a, b) =>
        {
            var c = byTarget(a, b);
            if (descending)
            {
                c = -c;
            }

            return c != 0 ? c : KeyComparer.CompareKeys(a.Key, b.Key);
        });
    }

    private PutResponse ApplyPut(PutRequest p, List<Event> events)
    {
        ThrowIfInvalid(RequestValidator.Validate(p, Limits));
        ThrowIfCorrupt();
        if (IsAlarmActive(AlarmType.Nospace))
        {
            throw new EtcdException(EtcdError.NoSpace);
        }

        // etcd checks the lease first, then the ignore_* flags.
        if (p.Lease != 0 && !_leases.ContainsKey(p.Lease))
        {
            throw new EtcdException(EtcdError.LeaseNotFound);
        }

        if ((p.IgnoreValue || p.IgnoreLease) && _index.Get(p.Key) is not { IsLive: true })
        {
            throw new EtcdException(EtcdError.KeyNotFound);
        }

        CheckQuota(PutCost(p));
        var ctx = BeginWrite(events);
        var response = Put(ctx, p);
        Commit(ctx);
        return response;
    }

    private DeleteRangeResponse ApplyDeleteRange(DeleteRangeRequest d, List<Event> events)
    {
        ThrowIfInvalid(RequestValidator.Validate(d, Limits));
        ThrowIfCorrupt();
        var ctx = BeginWrite(events);
        var response = DeleteRange(ctx, d);
        Commit(ctx);
        return response;
    }

    /// <summary>A put inside a write; all checks were done by the caller.</summary>
    private PutResponse Put(WriteContext ctx, PutRequest p)
    {
        var record = _index.GetOrAdd(p.Key);
        var prev = record.Latest;
        if ((p.IgnoreValue || p.IgnoreLease) && prev == null)
        {
            throw new InvalidOperationException("ignore_value/ignore_lease put on a missing key passed the checks.");
        }

        var leaseId = p.IgnoreLease ? prev!.Lease : p.Lease;
        if (leaseId != 0 && !_leases.ContainsKey(leaseId))
        {
            throw new InvalidOperationException("Put to a missing lease passed the checks.");
        }

        var rev = ctx.WriteRevision;
        var kv = new KeyValue
        {
            Key = record.Key,
            Value = p.IgnoreValue ? prev!.Value : p.Value,
            CreateRevision = prev?.CreateRevision ?? rev,
            ModRevision = rev,
            Version = (prev?.Version ?? 0) + 1,
            Lease = leaseId,
        };
        var prevBeforeWrite = WatchPrevKv(record, kv, ctx.BeginRevision, prev);
        record.History.Add(new KeyRevision(rev, ctx.Changes++, kv));
        _sizeBytes += VersionSize(record.Key, kv);
        ctx.Records.Add(record);
        ctx.Events.Add(new Event { Type = Event.Types.EventType.Put, Kv = kv, PrevKv = prevBeforeWrite });

        DetachLease(record);
        if (leaseId != 0)
        {
            AttachLease(record, leaseId);
        }

        var response = new PutResponse { Header = Header(rev) };
        if (p.PrevKv && prev != null)
        {
            response.PrevKv = prev.Clone();
        }

        return response;
    }

    /// <summary>A delete-range inside a write.</summary>
    private DeleteRangeResponse DeleteRange(WriteContext ctx, DeleteRangeRequest d)
    {
        var view = ctx.ViewRevision;
        var victims = new List<KeyRecord>();
        foreach (var record in RecordsInRange(d.Key, d.RangeEnd))
        {
            if (record.ExistsAt(view))
            {
                victims.Add(record);
            }
        }

        var response = new DeleteRangeResponse { Deleted = victims.Count };
        foreach (var record in victims)
        {
            var prev = DeleteKey(ctx, record);
            if (d.PrevKv)
            {
                response.PrevKvs.Add(prev.Clone());
            }
        }

        response.Header = Header(victims.Count != 0 || ctx.Changes > 0 ? ctx.WriteRevision : ctx.BeginRevision);
        return response;
    }

    /// <summary>Tombstones a live key; returns the version it had.</summary>
    private KeyValue DeleteKey(WriteContext ctx, KeyRecord record)
    {
        var prev = record.Latest ?? throw new InvalidOperationException("Deleting a key that is not live.");
        var rev = ctx.WriteRevision;
        var prevBeforeWrite = WatchPrevKv(record, null, ctx.BeginRevision, prev);
        record.History.Add(new KeyRevision(rev, ctx.Changes++, null));
        _sizeBytes += TombstoneSize(record.Key);
        ctx.Records.Add(record);
        ctx.Events.Add(new Event
        {
            Type = Event.Types.EventType.Delete,
            Kv = new KeyValue { Key = record.Key, ModRevision = rev },
            PrevKv = prevBeforeWrite,
        });
        DetachLease(record);
        return prev;
    }

    /// <summary>
    /// The prev_kv a watch event carries, as etcd computes it: the key as of the revision before
    /// the write (not an earlier change inside the same txn), and none for a creation (version 1).
    /// Called before the write's version is added; <paramref name="latest"/>, the key's newest
    /// version then, is the answer unless the same txn changed the key already (read back once, not twice).
    /// </summary>
    private static KeyValue? WatchPrevKv(KeyRecord record, KeyValue? put, long revisionBefore, KeyValue? latest) =>
        put is { Version: 1 } ? null
        : record.History.Count == 0 || record.History[^1].Main <= revisionBefore ? latest
        : WatchPrevKv(record, put, revisionBefore);

    /// <summary>The prev_kv of a watch event whose version is in the key's history already (a rebuilt history).</summary>
    private static KeyValue? WatchPrevKv(KeyRecord record, KeyValue? put, long revisionBefore) =>
        put is { Version: 1 } ? null : record.At(revisionBefore);

    private static long VersionSize(ByteString key, KeyValue kv) => VersionSize(key, kv.Value.Length);

    private static long VersionSize(ByteString key, int valueLength) => KvOverheadBytes + key.Length + valueLength;

    private static long TombstoneSize(ByteString key) => KvOverheadBytes + key.Length;

    private static long PutCost(PutRequest p) => KvOverheadBytes + p.Key.Length + p.Value.Length;

    /// <summary>
    /// etcd's quota rule: a write with cost c is refused when size + c ≥ quota. Unlike etcd (which
    /// applies the write and then reports NOSPACE), nothing is applied; the NOSPACE alarm is raised
    /// as etcd's API layer does.
    /// </summary>
    private void CheckQuota(long cost)
    {
        if (cost > 0 && _sizeBytes + cost >= Limits.QuotaBytes)
        {
            ActivateAlarm(0, AlarmType.Nospace);
            throw new EtcdException(EtcdError.NoSpace);
        }
    }
}
