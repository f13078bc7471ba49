using Arbiter.Protocol.Etcd;
using Arbiter.Protocol.Internal;

namespace Arbiter.Core;

/// <summary>
/// The deterministic state machine: MVCC keyspace, leases, and the event history watches read.
/// Same commands in the same order give the same state and results on every replica. No clock,
/// no threads, no I/O, no randomness; not thread-safe (the host serializes access).
/// </summary>
public sealed partial class StateMachine
{
    /// <summary>Creates an empty state machine (revision 1, as etcd starts).</summary>
    public StateMachine(CoreLimits? limits = null)
    {
        Limits = limits ?? new CoreLimits();
        throw new NotImplementedException();
    }

    /// <summary>The limits in force.</summary>
    public CoreLimits Limits { get; }

    /// <summary>The current store revision (1 for an empty store, as in etcd).</summary>
    public long Revision => throw new NotImplementedException();

    /// <summary>The revision the history was last compacted at (0 if never).</summary>
    public long CompactRevision => throw new NotImplementedException();

    /// <summary>The log index of the last applied command (0 if none).</summary>
    public long AppliedIndex => throw new NotImplementedException();

    /// <summary>An estimate of the bytes the state holds (keys, values, history), for Status and the quota.</summary>
    public long SizeBytes => throw new NotImplementedException();

    /// <summary>The earliest lease deadline in the proposer's clock (ms), or null when there are no leases.</summary>
    public long? NextLeaseDeadlineMs => throw new NotImplementedException();

    /// <summary>Applies one command at log <paramref name="index"/>. Never throws for bad input: errors are results.</summary>
    public ApplyOutcome Apply(long index, Command command) => throw new NotImplementedException();

    /// <summary>Serves a Range (outer header's revision filled). Throws <see cref="EtcdException"/>.</summary>
    public RangeResponse Range(RangeRequest request) => throw new NotImplementedException();

    /// <summary>Events with revision ≥ <paramref name="fromRevision"/>, at most about <paramref name="eventsMax"/> (whole revisions). Throws Compacted.</summary>
    public EventHistorySlice ReadEvents(long fromRevision, int eventsMax) => throw new NotImplementedException();

    /// <summary>TimeToLive of a lease at <paramref name="nowMs"/> (TTL = -1 when unknown, as etcd).</summary>
    public LeaseTimeToLiveResponse LeaseTimeToLive(LeaseTimeToLiveRequest request, long nowMs) => throw new NotImplementedException();

    /// <summary>Every live lease id, ascending.</summary>
    public LeaseLeasesResponse LeaseLeases() => throw new NotImplementedException();

    /// <summary>Hash of the key-value history up to <paramref name="revision"/> (0 = current). Throws Compacted/FutureRevision.</summary>
    public KvHash HashKv(long revision) => throw new NotImplementedException();

    /// <summary>Hash of the whole state (keys, history, leases).</summary>
    public uint Hash() => throw new NotImplementedException();

    /// <summary>Writes the whole state (including applied index and remembered request ids) to <paramref name="stream"/>.</summary>
    public void WriteSnapshot(Stream stream) => throw new NotImplementedException();

    /// <summary>Restores a state machine from a stream written by <see cref="WriteSnapshot"/>.</summary>
    public static StateMachine ReadSnapshot(Stream stream, CoreLimits? limits = null) => throw new NotImplementedException();
}
