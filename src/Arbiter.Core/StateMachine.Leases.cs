using Arbiter.Core.Mvcc;
using Arbiter.Protocol.Etcd;
using Arbiter.Protocol.Internal;
using Arbiter.Protocol.Mvcc;

namespace Arbiter.Core;

public sealed partial class StateMachine
{
    private readonly SortedDictionary<long, Lease> _leases = [];
    private readonly SortedSet<(long DeadlineMs, long Id)> _leaseDeadlines = [];

    /// <summary>The earliest lease deadline in the proposer's clock (ms), or null when there are no leases.</summary>
    public long? NextLeaseDeadlineMs => _leaseDeadlines.Count == 0 ? null : _leaseDeadlines.Min.DeadlineMs;

    /// <summary>Number of live leases.</summary>
    public int LeaseCount => _leases.Count;

    /// <summary>
    /// TimeToLive of a lease at <paramref name="nowMs"/> (TTL = -1 when unknown, as etcd). The TTL is
    /// the remaining time in whole seconds truncated toward zero (etcd: int64(remaining.Seconds())).
    /// </summary>
    public LeaseTimeToLiveResponse LeaseTimeToLive(LeaseTimeToLiveRequest request, long nowMs)
    {
        ArgumentNullException.ThrowIfNull(request);
        var response = new LeaseTimeToLiveResponse { Header = Header(_revision), ID = request.ID };
        if (!_leases.TryGetValue(request.ID, out var lease))
        {
            response.TTL = -1;
            return response;
        }

        response.TTL = (lease.DeadlineMs - nowMs) / 1000;
        response.GrantedTTL = lease.TtlSeconds;
        if (request.Keys)
        {
            foreach (var record in lease.Keys)
            {
                response.Keys.Add(record.Key);
            }
        }

        return response;
    }

    /// <summary>Every live lease id, ascending.</summary>
    public LeaseLeasesResponse LeaseLeases()
    {
        var response = new LeaseLeasesResponse { Header = Header(_revision) };
        foreach (var id in _leases.Keys)
        {
            response.Leases.Add(new LeaseStatus { ID = id });
        }

        return response;
    }

    private LeaseGrantResponse ApplyLeaseGrant(long index, long timeMs, LeaseGrantRequest request)
    {
        ThrowIfInvalid(RequestValidator.Validate(request, Limits));
        ThrowIfCorrupt();
        if (IsAlarmActive(AlarmType.Nospace))
        {
            throw new EtcdException(EtcdError.NoSpace);
        }

        var id = request.ID;
        if (id == 0)
        {
            // Deterministic choice: splitmix64 of the log index, probing forward until free.
            var probe = (ulong)index;
            do
            {
                id = (long)(SplitMix64.Mix(probe++) & long.MaxValue);
            }
            while (id == 0 || _leases.ContainsKey(id));
        }
        else if (_leases.ContainsKey(id))
        {
            throw new EtcdException(EtcdError.LeaseExists);
        }

        CheckQuota(LeaseOverheadBytes);

        // etcd raises short (zero and negative included) TTLs to the minimum.
        var ttl = Math.Max(request.TTL, Limits.LeaseTtlSecondsMin);
        var lease = new Lease(id, ttl);
        _leases.Add(id, lease);
        SetDeadline(lease, DeadlineFor(timeMs, ttl));
        _sizeBytes += LeaseOverheadBytes;
        return new LeaseGrantResponse { Header = Header(_revision), ID = id, TTL = ttl };
    }

    private LeaseRevokeResponse ApplyLeaseRevoke(LeaseRevokeRequest request, List<Event> events)
    {
        ThrowIfCorrupt();
        if (!_leases.TryGetValue(request.ID, out var lease))
        {
            throw new EtcdException(EtcdError.LeaseNotFound);
        }

        Revoke(lease, events, Transactions.TransactionErrors.ReasonLeaseRevoked);
        return new LeaseRevokeResponse { Header = Header(_revision) };
    }

    /// <summary>
    /// Renews to the full TTL from the command's time. As in etcd, a lease already past its deadline
    /// cannot be renewed (it is about to be revoked): LeaseNotFound.
    /// </summary>
    private LeaseKeepAliveResponse ApplyLeaseKeepAlive(long timeMs, LeaseKeepAliveRequest request)
    {
        if (!_leases.TryGetValue(request.ID, out var lease) || lease.DeadlineMs <= timeMs)
        {
            throw new EtcdException(EtcdError.LeaseNotFound);
        }

        SetDeadline(lease, DeadlineFor(timeMs, lease.TtlSeconds));
        return new LeaseKeepAliveResponse { Header = Header(_revision), ID = lease.Id, TTL = lease.TtlSeconds };
    }

    /// <summary>
    /// Revokes leases whose deadline is at or before the command's time: the earliest deadlines first
    /// (at most the limit), each in its own revision, in ascending id order.
    /// </summary>
    private LeaseExpireResult ApplyLeaseExpire(long timeMs, LeaseExpire request, List<Event> events)
    {
        var max = Math.Max(1, Limits.LeasesExpiredPerCommandMax);
        if (request.LeasesMax > 0)
        {
            max = Math.Min(max, request.LeasesMax);
        }

        var due = new List<long>();
        foreach (var (deadlineMs, id) in _leaseDeadlines)
        {
            if (deadlineMs > timeMs || due.Count >= max)
            {
                break;
            }

            due.Add(id);
        }

        due.Sort();
        var result = new LeaseExpireResult();
        foreach (var id in due)
        {
            Revoke(_leases[id], events, Transactions.TransactionErrors.ReasonLeaseExpired);
            result.ExpiredLeaseIds.Add(id);
        }

        return result;
    }

    private LeasePromoteResult ApplyLeasePromote(long timeMs, LeasePromote promote)
    {
        _lockTable?.SkipIdentifiers(promote.TxnIdentifierGap);
        foreach (var lease in _leases.Values)
        {
            SetDeadline(lease, DeadlineFor(timeMs, lease.TtlSeconds));
        }

        _lockTable?.Promote(timeMs);
        return new LeasePromoteResult { LeasesRenewed = _leases.Count };
    }

    private static long DeadlineFor(long timeMs, long ttlSeconds)
    {
        // TTLs are bounded (9e9 s), so only absurd clocks could overflow; saturate rather than wrap.
        var ttlMs = ttlSeconds > long.MaxValue / 1000 ? long.MaxValue : ttlSeconds * 1000;
        return timeMs > long.MaxValue - ttlMs ? long.MaxValue : timeMs + ttlMs;
    }

    private void SetDeadline(Lease lease, long deadlineMs)
    {
        _leaseDeadlines.Remove((lease.DeadlineMs, lease.Id));
        lease.DeadlineMs = deadlineMs;
        _leaseDeadlines.Add((deadlineMs, lease.Id));
    }

    /// <summary>
    /// Aborts the lease's transactions (releasing their locks), deletes its keys (sorted) in one
    /// revision, then forgets the lease: all in the one command that revokes or expires it.
    /// </summary>
    private void Revoke(Lease lease, List<Event> events, string reason)
    {
        _lockTable?.AbortLease(lease.Id, reason);
        var ctx = BeginWrite(events);
        foreach (var record in lease.Keys.ToArray())
        {
            DeleteKey(ctx, record);
        }

        if (lease.Keys.Count != 0)
        {
            throw new InvalidOperationException("A revoked lease still has keys.");
        }

        _leases.Remove(lease.Id);
        _leaseDeadlines.Remove((lease.DeadlineMs, lease.Id));
        _sizeBytes -= LeaseOverheadBytes;
        Commit(ctx);
    }

    private void AttachLease(KeyRecord record, long leaseId)
    {
        _leases[leaseId].Keys.Add(record);
        record.LeaseId = leaseId;
    }

    private void DetachLease(KeyRecord record)
    {
        if (record.LeaseId == 0)
        {
            return;
        }

        if (!_leases.TryGetValue(record.LeaseId, out var lease) || !lease.Keys.Remove(record))
        {
            throw new InvalidOperationException("A key points at a lease that does not hold it.");
        }

        record.LeaseId = 0;
    }

    /// <summary>A lease: TTL as granted (after clamping), deadline in the proposer's clock, attached keys.</summary>
    private sealed class Lease(long id, long ttlSeconds)
    {
        public long Id { get; } = id;

        public long TtlSeconds { get; } = ttlSeconds;

        public long DeadlineMs { get; set; }

        public SortedSet<KeyRecord> Keys { get; } = new(KeyComparer.Instance);
    }

    // ---- Alarms ----

    private readonly SortedSet<(AlarmType Type, ulong MemberId)> _alarms = [];

    /// <summary>Active alarms, ordered by type then member id.</summary>
    public IReadOnlyList<AlarmMember> Alarms => [.. _alarms.Select(a => new AlarmMember { Alarm = a.Type, MemberID = a.MemberId })];

    // Alarms are few; a linear scan without allocation is cheaper than a tree view on every write.
    private bool IsAlarmActive(AlarmType type)
    {
        if (_alarms.Count == 0)
        {
            return false;
        }

        foreach (var (t, _) in _alarms)
        {
            if (t == type)
            {
                return true;
            }
        }

        return false;
    }

    private void ThrowIfCorrupt()
    {
        if (IsAlarmActive(AlarmType.Corrupt))
        {
            throw new EtcdException(CoreErrors.Corrupt);
        }
    }

    private void ActivateAlarm(ulong memberId, AlarmType type) => _alarms.Add((type, memberId));

    private AlarmResponse ApplyAlarm(AlarmRequest request)
    {
        var response = new AlarmResponse { Header = Header(_revision) };
        switch (request.Action)
        {
            case AlarmRequest.Types.AlarmAction.Get:
                foreach (var (type, member) in _alarms)
                {
                    if (request.Alarm == AlarmType.None || request.Alarm == type)
                    {
                        response.Alarms.Add(new AlarmMember { Alarm = type, MemberID = member });
                    }
                }

                break;
            case AlarmRequest.Types.AlarmAction.Activate:
                ActivateAlarm(request.MemberID, request.Alarm);
                response.Alarms.Add(new AlarmMember { Alarm = request.Alarm, MemberID = request.MemberID });
                break;
            case AlarmRequest.Types.AlarmAction.Deactivate:
                if (_alarms.Remove((request.Alarm, request.MemberID)))
                {
                    response.Alarms.Add(new AlarmMember { Alarm = request.Alarm, MemberID = request.MemberID });
                }

                break;
            default:
                throw new EtcdException(CoreErrors.InvalidAlarmAction);
        }

        return response;
    }
}
