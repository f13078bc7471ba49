using Arbiter.Core.Auth;
using Arbiter.Core.Mvcc;
using Arbiter.Protocol.Etcd;
using Arbiter.Protocol.Internal;
using Arbiter.Protocol.Mvcc;

namespace Arbiter.Core;

/// <summary>
/// The deterministic state machine: MVCC keyspace, leases, and the event history watches read.
/// Same commands in the same order give the same state and results on every replica. No clock,
/// no threads, no I/O, no randomness; not thread-safe (the host serializes access).
/// </summary>
/// <remarks>
/// Objects handed out (results, events, key-values) must be treated as read-only: key-values inside
/// events are shared with the history. Range responses and remembered results are copies.
/// </remarks>
public sealed partial class StateMachine
{
    /// <summary>Bytes charged per stored key version, on top of key and value (etcd's quota uses 256).</summary>
    internal const long KvOverheadBytes = 256;

    /// <summary>Bytes charged per lease (etcd's quota uses 64).</summary>
    internal const long LeaseOverheadBytes = 64;

    private static readonly IReadOnlyList<Event> NoEvents = [];

    private readonly KeyIndex _index = new();
    private readonly Dictionary<ulong, CommandResult> _rememberedResults = [];
    private readonly Queue<ulong> _rememberedOrder = new();

    private long _revision = 1;

    // etcd starts at -1 ("never compacted"); the public property reports 0 for it.
    private long _compactMainRev = -1;
    private long _appliedIndex;
    private long _sizeBytes;

    // Where versions are paged out (null: all kept in memory).
    private readonly IValueSpill? _valueSpill;

    /// <summary>Creates an empty state machine (revision 1, as etcd starts).</summary>
    /// <param name="limits">The limits in force (defaults when null).</param>
    /// <param name="valueSpill">Where versions are paged out of the managed heap when written; null keeps them all in memory.</param>
    public StateMachine(CoreLimits? limits = null, IValueSpill? valueSpill = null)
    {
        Limits = limits ?? new CoreLimits();
        Auth = new AuthStore(Limits);
        _valueSpill = valueSpill;
    }

    /// <summary>The limits in force.</summary>
    public CoreLimits Limits { get; }

    /// <summary>Where versions are paged out, or null when they are all kept in memory.</summary>
    public IValueSpill? ValueSpill => _valueSpill;

    /// <summary>The current store revision (1 for an empty store, as in etcd).</summary>
    public long Revision => _revision;

    /// <summary>The revision the history was last compacted at (0 if never).</summary>
    public long CompactRevision => Math.Max(0, _compactMainRev);

    /// <summary>The log index of the last applied command (0 if none).</summary>
    public long AppliedIndex => _appliedIndex;

    /// <summary>An estimate of the bytes the state holds (keys, values, history), for Status and the quota.</summary>
    public long SizeBytes => _sizeBytes;

    /// <summary>Number of keys in the index, live or with retained history (for diagnostics).</summary>
    public int KeyCountIndexed => _index.Count;

    /// <summary>
    /// Applies one command at log <paramref name="index"/> (which must exceed <see cref="AppliedIndex"/>).
    /// Never throws for bad input: errors are results. A repeated non-zero request id returns the
    /// remembered result and changes nothing.
    /// </summary>
    public ApplyOutcome Apply(long index, Command command)
    {
        ArgumentNullException.ThrowIfNull(command);
        if (index <= _appliedIndex)
        {
            throw new InvalidOperationException($"Log index {index} is not after the applied index {_appliedIndex}.");
        }

        if (command.RequestId != 0 && _rememberedResults.TryGetValue(command.RequestId, out var remembered))
        {
            _appliedIndex = index;
            return new ApplyOutcome(remembered.Clone(), NoEvents);
        }

        var revisionBefore = _revision;
        var events = new List<Event>();
        CommandResult result;
        try
        {
            result = ApplyCore(index, command, events);
        }
        catch (EtcdException e)
        {
            // Every EtcdException is raised before the first mutation (checked by the invariant below).
            if (_revision != revisionBefore || events.Count != 0)
            {
                throw new InvalidOperationException("A command failed after changing state.", e);
            }

            result = ErrorResult(e.Error);
        }

        CheckInvariantsAfterApply(revisionBefore, events);
        if (command.RequestId != 0)
        {
            Remember(command.RequestId, result.Clone());
        }

        _appliedIndex = index;
        return new ApplyOutcome(result, events.Count == 0 ? NoEvents : events);
    }

    /// <summary>Serves a Range (outer header's revision filled). Throws <see cref="EtcdException"/>.</summary>
    public RangeResponse Range(RangeRequest request)
    {
        ArgumentNullException.ThrowIfNull(request);
        ThrowIfInvalid(RequestValidator.Validate(request, Limits));
        return RangeAt(request, _revision);
    }

    internal static CommandResult ErrorResult(EtcdError error) => new()
    {
        Error = new CommandError { StatusCode = (int)error.StatusCode, Message = error.Message, Transaction = error.Transaction?.Clone() },
    };

    private static void ThrowIfInvalid(EtcdError? error)
    {
        if (error != null)
        {
            throw new EtcdException(error);
        }
    }

    private static ResponseHeader Header(long revision) => new() { Revision = revision };

    private CommandResult ApplyCore(long index, Command command, List<Event> events)
    {
        CheckCommandPermission(command);
        switch (command.OpCase)
        {
            case Command.OpOneofCase.Put:
                return new CommandResult { Put = ApplyPut(command.Put, events) };
            case Command.OpOneofCase.DeleteRange:
                return new CommandResult { DeleteRange = ApplyDeleteRange(command.DeleteRange, events) };
            case Command.OpOneofCase.Txn:
                return new CommandResult { Txn = ApplyTxn(command.Txn, events) };
            case Command.OpOneofCase.Compaction:
                return new CommandResult { Compaction = ApplyCompaction(command.Compaction) };
            case Command.OpOneofCase.LeaseGrant:
                return new CommandResult { LeaseGrant = ApplyLeaseGrant(index, command.TimeMs, command.LeaseGrant) };
            case Command.OpOneofCase.LeaseRevoke:
                return new CommandResult { LeaseRevoke = ApplyLeaseRevoke(command.LeaseRevoke, events) };
            case Command.OpOneofCase.LeaseKeepAlive:
                return new CommandResult { LeaseKeepAlive = ApplyLeaseKeepAlive(command.TimeMs, command.LeaseKeepAlive) };
            case Command.OpOneofCase.LeaseExpire:
                return new CommandResult { LeaseExpire = ApplyLeaseExpire(command.TimeMs, command.LeaseExpire, events) };
            case Command.OpOneofCase.LeasePromote:
                return new CommandResult { LeasePromote = ApplyLeasePromote(command.TimeMs, command.LeasePromote) };
            case Command.OpOneofCase.Alarm:
                return new CommandResult { Alarm = ApplyAlarm(command.Alarm) };
            case Command.OpOneofCase.TxnBegin:
                return command.TxnBegin.Locks.Count == 0
                    ? new CommandResult { TxnBegin = ApplyTxnBegin(command.TimeMs, command.TxnBegin) }
                    : new CommandResult { TxnBeginLocked = ApplyTxnBeginLocked(command.TimeMs, command.TxnBegin) };
            case Command.OpOneofCase.TxnLock:
                return new CommandResult { TxnLock = ApplyTxnLock(command.TimeMs, command.TxnLock) };
            case Command.OpOneofCase.TxnCommit:
                return new CommandResult { TxnCommit = ApplyTxnCommit(command.TimeMs, command.TxnCommit, events) };
            case Command.OpOneofCase.TxnAbort:
                return new CommandResult { TxnAbort = ApplyTxnAbort(command.TimeMs, command.TxnAbort) };
            case Command.OpOneofCase.TxnOptimisticCommit:
                return new CommandResult { TxnOptimisticCommit = ApplyTxnOptimisticCommit(command.TimeMs, command.TxnOptimisticCommit, events) };
            case Command.OpOneofCase.TxnTimers:
                return new CommandResult { TxnTimers = ApplyTxnTimers(command.TimeMs) };
            case Command.OpOneofCase.Auth:
                return new CommandResult { Auth = Auth.Apply(command.Auth, command.AuthUser, index) };
            case Command.OpOneofCase.PeerSecretSet:
                return new CommandResult { PeerSecretSet = ApplyPeerSecretSet(command.PeerSecretSet) };
            case Command.OpOneofCase.CrdtReplica:
                return new CommandResult { CrdtReplica = ApplyCrdtReplica(command.CrdtReplica) };
            case Command.OpOneofCase.MemberAdd:
                return new CommandResult { MemberAdd = ApplyMemberAdd(command.MemberAdd) };
            default:
                throw new EtcdException(CoreErrors.EmptyCommand);
        }
    }

    private void Remember(ulong requestId, CommandResult result)
    {
        _rememberedResults[requestId] = result;
        _rememberedOrder.Enqueue(requestId);
        while (_rememberedOrder.Count > Math.Max(0, Limits.RequestIdsRememberedMax))
        {
            _rememberedResults.Remove(_rememberedOrder.Dequeue());
        }
    }

    private void CheckInvariantsAfterApply(long revisionBefore, List<Event> events)
    {
        if (_revision < revisionBefore)
        {
            throw new InvalidOperationException($"Revision went backwards: {revisionBefore} → {_revision}.");
        }

        if (_revision > revisionBefore && events.Count == 0)
        {
            throw new InvalidOperationException("The revision advanced without any event.");
        }

        if (events.Count > 0 && events[^1].Kv.ModRevision != _revision)
        {
            throw new InvalidOperationException("The last event's revision is not the store revision.");
        }

        if (_sizeBytes < 0)
        {
            throw new InvalidOperationException("Size accounting went negative.");
        }
    }
}

/// <summary>Errors the core reports that are not etcd client errors (or that etcd lacks a check for).</summary>
public static class CoreErrors
{
    /// <summary>A command without an operation.</summary>
    public static readonly EtcdError EmptyCommand = new(ErrorStatusCode.InvalidArgument, "arbiter: command carries no operation");

    /// <summary>The CORRUPT alarm is active (etcd's text and code).</summary>
    public static readonly EtcdError Corrupt = new(ErrorStatusCode.DataLoss, "etcdserver: corrupt cluster");

    /// <summary>A Range with a sort order outside NONE/ASCEND/DESCEND (etcd does not check).</summary>
    public static readonly EtcdError InvalidSortOrder = new(ErrorStatusCode.InvalidArgument, "etcdserver: invalid sort order in range request");

    /// <summary>A Range with a sort target outside KEY/VERSION/CREATE/MOD/VALUE (etcd does not check).</summary>
    public static readonly EtcdError InvalidSortTarget = new(ErrorStatusCode.InvalidArgument, "etcdserver: invalid sort target in range request");

    /// <summary>A Compare with a result outside EQUAL/GREATER/LESS/NOT_EQUAL (etcd does not check).</summary>
    public static readonly EtcdError InvalidCompareResult = new(ErrorStatusCode.InvalidArgument, "etcdserver: invalid compare result in txn request");

    /// <summary>A Compare with a target outside VERSION/CREATE/MOD/VALUE/LEASE (etcd does not check).</summary>
    public static readonly EtcdError InvalidCompareTarget = new(ErrorStatusCode.InvalidArgument, "etcdserver: invalid compare target in txn request");

    /// <summary>A compaction past the revision an open snapshot transaction reads at.</summary>
    public static readonly EtcdError CompactionBlockedBySnapshot = new(ErrorStatusCode.FailedPrecondition, "arbiter: compaction would remove the revision an open snapshot transaction reads at");

    /// <summary>A peer secret that is not <see cref="StateMachine.PeerSecretSizeBytes"/> long.</summary>
    public static readonly EtcdError InvalidPeerSecret = new(ErrorStatusCode.InvalidArgument, "arbiter: a peer secret is 32 bytes");

    /// <summary>An Alarm request with an unknown action.</summary>
    public static readonly EtcdError InvalidAlarmAction = new(ErrorStatusCode.InvalidArgument, "etcdserver: invalid alarm action");
}
