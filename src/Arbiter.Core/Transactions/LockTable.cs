using Arbiter.Protocol.Internal;
using Arbiter.Protocol.Transactions;
using Google.Protobuf;

namespace Arbiter.Core.Transactions;

/// <summary>
/// The lock table of strict two-phase locking, part of the replicated state: open transactions,
/// their S/X locks on keys and half-open ranges, FIFO wait queues and the finished transactions
/// remembered for late callers. Deterministic like the rest of the core: time arrives as an
/// argument (the command's time), order comes from sequence numbers, never from hashing.
/// </summary>
/// <remarks>
/// <para><b>Conflicts.</b> Two requests of different transactions conflict when their spans overlap
/// and at least one is exclusive.</para>
/// <para><b>Grants (FIFO).</b> A request is granted when no other transaction holds a conflicting
/// grant and no earlier conflicting request of another transaction is still waiting. After every
/// release the waiting requests are examined in sequence order, so grant order is deterministic.</para>
/// <para><b>Upgrades.</b> A request from a transaction that already holds a grant overlapping the
/// requested span (an S→X upgrade, or widening) does not queue behind waiters: it waits only for
/// other holders. Two holders of S that both upgrade wait for each other; that is a cycle, and
/// deadlock detection breaks it at once. No separate update (U) mode is needed.</para>
/// <para><b>Deadlocks.</b> A transaction waits for at most one request at a time, and only a
/// waiting transaction has outgoing wait-for edges, so a cycle can only be closed by a transaction
/// starting to wait. At that moment the wait-for graph is searched exactly (depth-first) for a
/// path back to the requester; a cycle is broken by aborting its youngest transaction (highest
/// age, then highest id). A retried transaction passes its first attempt's age, so it grows older
/// and eventually wins.</para>
/// <para>Operations cost O(entries) (a scan of the table), bounded by the limits; the table is
/// small next to the keyspace.</para>
/// </remarks>
internal sealed class LockTable
{
    private readonly CoreLimits _limits;
    private readonly Func<long> _revision;
    private readonly SortedDictionary<long, TransactionRecord> _txns = [];
    private readonly List<Entry> _entries = [];
    private readonly Dictionary<long, FinishedTransaction> _finished = [];
    private readonly Queue<long> _finishedOrder = new();
    private readonly Dictionary<ByteString, OptimisticCommitResponse> _remembered = [];
    private readonly Queue<ByteString> _rememberedOrder = new();
    private long _lastTxnId;
    private long _lastSequence;
    private long _lastFencingToken;

    public LockTable(CoreLimits limits, Func<long> revision)
    {
        _limits = limits;
        _revision = revision;
    }

    /// <summary>What a waiting lock request has come to.</summary>
    public enum WaitOutcome
    {
        /// <summary>Still queued.</summary>
        Waiting,
        /// <summary>Granted (token set).</summary>
        Granted,
        /// <summary>Ended without a grant (error set).</summary>
        Failed,
    }

    public TransactionCounters Counters { get; private set; } = new();

    public int OpenCount => _txns.Count;

    /// <summary>Locks granted and lock requests queued, counted now (a read; nothing changes).</summary>
    public (int Held, int Waiting) CountLocks()
    {
        var held = 0;
        foreach (var e in _entries)
        {
            if (e.Proto.Granted)
            {
                held++;
            }
        }

        return (held, _entries.Count - held);
    }

    public bool IsEmpty => _txns.Count == 0 && _entries.Count == 0 && _finished.Count == 0 && _remembered.Count == 0 && _lastTxnId == 0 && _lastFencingToken == 0;

    /// <summary>The earliest time-based event (time limit or lock-wait timeout), or null.</summary>
    public long? NextDeadlineMs
    {
        get
        {
            long? next = null;
            foreach (var txn in _txns.Values)
            {
                next = next is { } n ? Math.Min(n, txn.DeadlineMs) : txn.DeadlineMs;
            }

            foreach (var e in _entries)
            {
                if (!e.Proto.Granted)
                {
                    next = next is { } n ? Math.Min(n, e.Proto.WaitDeadlineMs) : e.Proto.WaitDeadlineMs;
                }
            }

            return next;
        }
    }

    /// <summary>The lowest revision an open snapshot transaction reads at, or null.</summary>
    public long? MinSnapshotRevision
    {
        get
        {
            long? min = null;
            foreach (var txn in _txns.Values)
            {
                if (txn.Snapshot)
                {
                    min = min is { } m ? Math.Min(m, txn.SnapshotRevision) : txn.SnapshotRevision;
                }
            }

            return min;
        }
    }

    // ---- Commands ----

    public BeginResponse Begin(BeginRequest request, long nowMs, long? leaseDeadlineMs, int openOnLease)
    {
        if (Repeated(request) is { } earlier)
        {
            return Answer(earlier);
        }

        ValidateBegin(request, nowMs, leaseDeadlineMs, openOnLease);
        var id = _lastTxnId + 1;
        _lastTxnId = id;
        var limitMs = request.TimeLimitMs == 0 ? _limits.TransactionTimeLimitMsDefault : request.TimeLimitMs;
        var txn = new TransactionRecord
        {
            TxnId = id,
            Age = request.Age == 0 ? id : request.Age,
            Lease = request.Lease,
            TimeLimitMs = limitMs,
            DeadlineMs = Saturate(nowMs, limitMs),
            Snapshot = request.Snapshot,
            SnapshotRevision = request.Snapshot ? _revision() : 0,
            BeginKey = request.IdempotencyKey,
        };
        _txns.Add(id, txn);
        Counters.Begun++;
        if (request.Age != 0)
        {
            Counters.Retried++;
        }

        return Answer(txn);
    }

    private static BeginResponse Answer(TransactionRecord txn) =>
        new() { TxnId = txn.TxnId, Age = txn.Age, TimeLimitMs = txn.TimeLimitMs, SnapshotRevision = txn.SnapshotRevision };

    /// <summary>The open transaction a repeated Begin (same idempotency key and lease) names, or null.</summary>
    private TransactionRecord? Repeated(BeginRequest request)
    {
        if (request.IdempotencyKey.Length > _limits.IdempotencyKeySizeBytesMax)
        {
            throw new EtcdException(TransactionErrors.Invalid($"idempotency_key is longer than {_limits.IdempotencyKeySizeBytesMax} bytes"));
        }

        if (request.IdempotencyKey.IsEmpty)
        {
            return null;
        }

        foreach (var txn in _txns.Values)
        {
            if (txn.Lease == request.Lease && txn.BeginKey.Equals(request.IdempotencyKey))
            {
                return txn;
            }
        }

        return null;
    }

    /// <summary>The checks of a Begin (changes nothing).</summary>
    private void ValidateBegin(BeginRequest request, long nowMs, long? leaseDeadlineMs, int openOnLease)
    {
        if (request.Lease == 0)
        {
            throw new EtcdException(TransactionErrors.Invalid("a transaction needs a lease (lease is 0)"));
        }

        if (request.TimeLimitMs < 0 || request.TimeLimitMs > _limits.TransactionTimeLimitMsMax)
        {
            throw new EtcdException(TransactionErrors.Invalid($"time_limit_ms must be between 0 and {_limits.TransactionTimeLimitMsMax}"));
        }

        var id = _lastTxnId + 1;
        if (request.Age < 0 || request.Age > id)
        {
            throw new EtcdException(TransactionErrors.Invalid("age must be 0 or the age of an earlier attempt"));
        }

        if (leaseDeadlineMs is not { } deadline || deadline <= nowMs)
        {
            throw new EtcdException(EtcdError.LeaseNotFound);
        }

        if (openOnLease >= _limits.TransactionsPerLeaseMax)
        {
            throw new EtcdException(TransactionErrors.LimitReached($"too many open transactions on lease {request.Lease} (limit {_limits.TransactionsPerLeaseMax})"));
        }

        if (_txns.Count >= _limits.TransactionsOpenMax)
        {
            throw new EtcdException(TransactionErrors.LimitReached($"too many open transactions (limit {_limits.TransactionsOpenMax})"));
        }
    }

    /// <summary>Open transactions bound to <paramref name="lease"/>.</summary>
    public int CountOnLease(long lease)
    {
        var count = 0;
        foreach (var txn in _txns.Values)
        {
            if (txn.Lease == lease)
            {
                count++;
            }
        }

        return count;
    }

    /// <summary>
    /// Applies a Lock command: its targets in order (see <see cref="LockTargets"/>). Every target is
    /// checked before anything changes; then targets are granted in order up to the first that
    /// must wait, which queues (BLOCK) as a single lock does, or (NOWAIT) nothing is granted.
    /// </summary>
    public LockResult Lock(LockRequest request, long nowMs)
    {
        ThrowIfInvalid(LockTargets.Validate(request, _limits));
        var txn = RequireOpen(request.TxnId);
        if (txn.Snapshot)
        {
            throw new EtcdException(TransactionErrors.Invalid("a snapshot transaction takes no locks"));
        }

        var targets = Prepare(LockTargets.Of(request));
        var plan = PlanLocks(txn.TxnId, targets, request.WaitPolicy);
        return ExecuteLocks(txn, targets, plan, request.WaitTimeoutMs, nowMs);
    }

    /// <summary>
    /// Applies a Begin that carries lock targets: the transaction opens and takes them in the same
    /// command. A refused target (or NOWAIT and a busy one) opens nothing.
    /// </summary>
    public TxnBeginResult BeginLocked(BeginRequest request, long nowMs, long? leaseDeadlineMs, int openOnLease)
    {
        ThrowIfInvalid(LockTargets.Validate(request, _limits));
        var targets = Prepare(request.Locks);
        if (Repeated(request) is { } earlier)
        {
            // The same Begin again (its answer was lost): its transaction, its locks re-attached.
            var again = ExecuteLocks(earlier, targets, PlanLocks(earlier.TxnId, targets, request.LockWaitPolicy), request.LockWaitTimeoutMs, nowMs);
            var answer = Answer(earlier);
            if (again.Granted)
            {
                answer.FencingTokens.AddRange(again.FencingTokens);
            }

            return new TxnBeginResult { Begin = answer, Lock = again };
        }

        ValidateBegin(request, nowMs, leaseDeadlineMs, openOnLease);

        // Planned against the id the transaction will get: it holds nothing yet.
        var plan = PlanLocks(_lastTxnId + 1, targets, request.LockWaitPolicy);
        var begin = Begin(request, nowMs, leaseDeadlineMs, openOnLease);
        var result = ExecuteLocks(_txns[begin.TxnId], targets, plan, request.LockWaitTimeoutMs, nowMs);
        if (result.Granted)
        {
            begin.FencingTokens.AddRange(result.FencingTokens);
        }

        return new TxnBeginResult { Begin = begin, Lock = result };
    }

    /// <summary>
    /// Walks the targets as they would be applied without changing anything: which are held already
    /// (or repeat an earlier target), which would be granted, and where the walk stops (a target
    /// that must wait, or a waiting request being re-attached). Throws what the request is refused
    /// for: the transaction waits for another lock, the lock limit, NOWAIT and a busy target, too
    /// many waiters.
    /// </summary>
    private LockPlan PlanLocks(long txnId, List<Target> targets, WaitPolicy policy)
    {
        Entry? waiting = null;
        var entries = 0;
        var own = new List<Entry>();
        foreach (var e in _entries)
        {
            if (e.Proto.TxnId != txnId)
            {
                continue;
            }

            entries++;
            if (e.Proto.Granted)
            {
                own.Add(e);
            }
            else
            {
                waiting = e;
            }
        }

        // The lock limit counts every target that would need an entry of its own.
        var added = 0;
        for (var i = 0; i < targets.Count; i++)
        {
            if (HeldBy(own, targets[i]) is null && EarlierCovering(targets, i) < 0 && !(waiting is not null && IsSame(waiting, targets[i])))
            {
                added++;
            }
        }

        if (added > 0 && entries + added > _limits.LocksPerTransactionMax)
        {
            throw new EtcdException(TransactionErrors.LimitReached($"too many locks in transaction {txnId} (limit {_limits.LocksPerTransactionMax})"));
        }

        var steps = new List<Step>(targets.Count);
        for (var i = 0; i < targets.Count; i++)
        {
            var t = targets[i];
            if (HeldBy(own, t) is { } held)
            {
                // Already held (as strong or stronger): the same grant, the same token.
                steps.Add(new Step(StepKind.Held, held, -1));
                continue;
            }

            if (EarlierCovering(targets, i) is var same and >= 0)
            {
                steps.Add(new Step(StepKind.SameAs, null, same));
                continue;
            }

            if (waiting is not null)
            {
                if (IsSame(waiting, t))
                {
                    // A caller re-attaching (its first call was cut off, e.g. by a leader change).
                    return new LockPlan(steps, StopKind.Reattach, waiting);
                }

                throw new EtcdException(TransactionErrors.NotAllowed($"transaction {txnId} already waits for a lock"));
            }

            if (FirstBlocker(txnId, t, own, targets, steps) is not { } blocker)
            {
                steps.Add(new Step(StepKind.Grant, null, -1));
                continue;
            }

            if (policy == WaitPolicy.Nowait)
            {
                // All or none: nothing of the request has been applied yet.
                Counters.LockBusy++;
                throw new EtcdException(TransactionErrors.LockBusy(txnId, t.Key, t.RangeEnd, blocker.Proto.TxnId));
            }

            var waiters = 0;
            foreach (var e in _entries)
            {
                if (!e.Proto.Granted && e.Span.Overlaps(t.Span))
                {
                    waiters++;
                }
            }

            if (waiters >= _limits.WaitersPerLockMax)
            {
                throw new EtcdException(TransactionErrors.LimitReached($"too many waiters on {TransactionErrors.Describe(t.Key, t.RangeEnd)} (limit {_limits.WaitersPerLockMax})"));
            }

            return new LockPlan(steps, StopKind.Queue, null);
        }

        return new LockPlan(steps, StopKind.None, null);
    }

    /// <summary>Applies a plan: grants its steps in order, then queues (with deadlock detection) where it stops.</summary>
    private LockResult ExecuteLocks(TransactionRecord txn, List<Target> targets, LockPlan plan, long waitTimeoutMs, long nowMs)
    {
        var result = new LockResult();
        var created = new Entry?[plan.Steps.Count];
        for (var i = 0; i < plan.Steps.Count; i++)
        {
            var step = plan.Steps[i];
            var entry = step.Kind switch
            {
                StepKind.Held => step.Held!,
                StepKind.SameAs => created[step.SameAs]!,
                _ => NewEntry(txn, targets[i], waitTimeoutMs, nowMs),
            };
            if (step.Kind == StepKind.Grant)
            {
                _lastSequence++;
                _entries.Add(entry);
                Grant(entry);
            }

            created[i] = entry;
            result.FencingTokens.Add(entry.Proto.FencingToken);
            if (i == 0)
            {
                result.Sequence = entry.Proto.Sequence;
            }
        }

        result.FencingToken = result.FencingTokens.Count > 0 ? result.FencingTokens[0] : 0;
        switch (plan.Stop)
        {
            case StopKind.None:
                result.Granted = true;
                return result;
            case StopKind.Reattach:
                result.Sequence = plan.Waiting!.Proto.Sequence;
                return result;
        }

        var waiting = NewEntry(txn, targets[plan.Steps.Count], waitTimeoutMs, nowMs);
        _lastSequence++;
        _entries.Add(waiting);

        // The new wait edges may close cycles through the requester: break each at its youngest.
        while (!waiting.Proto.Granted && FindCycle(txn.TxnId) is { } cycle)
        {
            Counters.Deadlocks++;
            var victim = cycle.Select(e => _txns[e.TxnId]).MaxBy(t => (t.Age, t.TxnId))!;
            var error = TransactionErrors.Deadlock(victim.TxnId, cycle);
            AbortCore(victim, error);
            if (victim.TxnId == txn.TxnId)
            {
                // Nothing of the request remains (the transaction is aborted); the error says why.
                throw new EtcdException(error);
            }
        }

        if (waiting.Proto.Granted && plan.Steps.Count + 1 == targets.Count)
        {
            // A victim's abort granted the last target at once.
            result.FencingTokens.Add(waiting.Proto.FencingToken);
            result.FencingToken = result.FencingTokens[0];
            result.Sequence = plan.Steps.Count == 0 ? waiting.Proto.Sequence : result.Sequence;
            result.Granted = true;
            return result;
        }

        // Queued (or granted by a victim's abort with targets left): the caller waits on the
        // sequence, which answers the grant, and then asks for the rest.
        result.Sequence = waiting.Proto.Sequence;
        return result;
    }

    /// <summary>
    /// Checks a commit may apply: the transaction is open (or committed: its remembered result is
    /// returned in <paramref name="remembered"/>), not waiting, its lease alive, and every write
    /// under an exclusive lock it holds. Aborts the transaction if its lease is past its deadline.
    /// </summary>
    public TransactionRecord? PrepareCommit(CommitRequest request, long nowMs, long? leaseDeadlineMs, out CommitResponse? remembered)
    {
        remembered = null;
        if (!_txns.TryGetValue(request.TxnId, out var txn))
        {
            if (_finished.TryGetValue(request.TxnId, out var finished) && finished.Commit is { } commit)
            {
                remembered = commit.Clone();
                return null;
            }

            RequireOpen(request.TxnId);
            throw new InvalidOperationException("unreachable");
        }

        if (leaseDeadlineMs is not { } deadline || deadline <= nowMs)
        {
            var error = TransactionErrors.Aborted(txn.TxnId, TransactionErrors.ReasonLeaseExpired);
            AbortCore(txn, error);
            throw new EtcdException(error);
        }

        var spans = new List<KeySpan>();
        foreach (var op in request.Writes)
        {
            switch (op.RequestCase)
            {
                case Protocol.Etcd.RequestOp.RequestOneofCase.RequestPut:
                    spans.Add(KeySpan.FromEtcd(op.RequestPut.Key, ByteString.Empty));
                    break;
                case Protocol.Etcd.RequestOp.RequestOneofCase.RequestDeleteRange:
                    if (op.RequestDeleteRange.Key.IsEmpty)
                    {
                        throw new EtcdException(EtcdError.EmptyKey);
                    }

                    spans.Add(KeySpan.FromEtcd(op.RequestDeleteRange.Key, op.RequestDeleteRange.RangeEnd));
                    break;
                default:
                    throw new EtcdException(TransactionErrors.Invalid("a transaction commit takes only put and delete_range writes"));
            }
        }

        if (txn.Snapshot && spans.Count > 0)
        {
            throw new EtcdException(TransactionErrors.Invalid("a snapshot transaction cannot write"));
        }

        foreach (var e in _entries)
        {
            if (e.Proto.TxnId == txn.TxnId && !e.Proto.Granted)
            {
                throw new EtcdException(TransactionErrors.NotAllowed($"transaction {txn.TxnId} is waiting for a lock"));
            }
        }

        foreach (var span in spans)
        {
            var covered = false;
            foreach (var e in _entries)
            {
                if (e.Proto.TxnId == txn.TxnId && e.Proto.Mode == LockMode.Exclusive && e.Span.Covers(span))
                {
                    covered = true;
                    break;
                }
            }

            if (!covered)
            {
                throw new EtcdException(TransactionErrors.NotAllowed(
                    $"transaction {txn.TxnId} writes {TransactionErrors.Describe(span.Start, span.End is null ? ByteString.CopyFrom(0) : span.End)} without an exclusive lock on it"));
            }
        }

        return txn;
    }

    /// <summary>Ends a committed transaction: releases its locks and remembers the result.</summary>
    public void FinishCommit(TransactionRecord txn, CommitResponse response)
    {
        Counters.Committed++;
        Release(txn, new FinishedTransaction { TxnId = txn.TxnId, Commit = response.Clone() });
    }

    /// <summary>Rolls back an open transaction (idempotent for one that already ended).</summary>
    public void Rollback(long txnId)
    {
        if (_txns.TryGetValue(txnId, out var txn))
        {
            AbortCore(txn, TransactionErrors.Aborted(txnId, TransactionErrors.ReasonRollback));
            return;
        }

        if (!_finished.ContainsKey(txnId))
        {
            throw new EtcdException(TransactionErrors.Unknown(txnId));
        }
    }

    /// <summary>Aborts every transaction past its time limit and times out every lock wait past its timeout.</summary>
    public TxnTimersResult RunTimers(long nowMs)
    {
        var result = new TxnTimersResult();
        foreach (var txn in _txns.Values.Where(t => t.DeadlineMs <= nowMs).ToList())
        {
            Counters.Expired++;
            AbortCore(txn, TransactionErrors.Aborted(txn.TxnId, TransactionErrors.ReasonTimeLimit));
            result.ExpiredTxnIds.Add(txn.TxnId);
        }

        var timedOut = _entries.Where(e => !e.Proto.Granted && e.Proto.WaitDeadlineMs <= nowMs).ToList();
        foreach (var e in timedOut)
        {
            Counters.LockTimeouts++;
            _entries.Remove(e);
            _txns[e.Proto.TxnId].TimedOutSequence = e.Proto.Sequence;
            result.TimedOutSequences.Add(e.Proto.Sequence);
        }

        if (timedOut.Count > 0)
        {
            GrantPass();
        }

        return result;
    }

    /// <summary>Aborts the transactions bound to a lease that is being revoked or expired.</summary>
    public void AbortLease(long lease, string reason)
    {
        foreach (var txn in _txns.Values.Where(t => t.Lease == lease).ToList())
        {
            if (reason == TransactionErrors.ReasonLeaseExpired)
            {
                Counters.Expired++;
            }

            AbortCore(txn, TransactionErrors.Aborted(txn.TxnId, reason));
        }
    }

    /// <summary>Restarts every time limit and lock-wait timeout in full from <paramref name="nowMs"/> (a new clock measures them).</summary>
    public void Promote(long nowMs)
    {
        foreach (var txn in _txns.Values)
        {
            txn.DeadlineMs = Saturate(nowMs, txn.TimeLimitMs);
        }

        foreach (var e in _entries)
        {
            if (!e.Proto.Granted)
            {
                e.Proto.WaitDeadlineMs = Saturate(nowMs, e.Proto.WaitTimeoutMs);
            }
        }
    }

    /// <summary>The last transaction id, lock request sequence and fencing token handed out (all 0 before the first Begin).</summary>
    public (long TxnId, long Sequence, long FencingToken) LastIdentifiers => (_lastTxnId, _lastSequence, _lastFencingToken);

    /// <summary>
    /// Moves the last transaction id, lock request sequence and fencing token on by
    /// <paramref name="gap"/> each, if any transaction was ever begun (a table never used stays
    /// empty): numbers handed out by commands a power loss took from the log are not handed out again.
    /// </summary>
    public void SkipIdentifiers(long gap)
    {
        if (gap <= 0 || _lastTxnId == 0)
        {
            return;
        }

        _lastTxnId = checked(_lastTxnId + gap);
        _lastSequence = checked(_lastSequence + gap);
        _lastFencingToken = checked(_lastFencingToken + gap);
    }

    /// <summary>The lease an open transaction is bound to, or 0.</summary>
    public long LeaseOf(long txnId) => _txns.TryGetValue(txnId, out var txn) ? txn.Lease : 0;

    /// <summary>The open transaction holding a lock that overlaps <paramref name="span"/>, or 0.</summary>
    public long HolderOf(KeySpan span)
    {
        foreach (var e in _entries)
        {
            if (e.Proto.Granted && e.Span.Overlaps(span))
            {
                return e.Proto.TxnId;
            }
        }

        return 0;
    }

    public OptimisticCommitResponse? RememberedCommit(ByteString idempotencyKey) =>
        _remembered.TryGetValue(idempotencyKey, out var response) ? response : null;

    public void RememberCommit(ByteString idempotencyKey, OptimisticCommitResponse response)
    {
        _remembered[idempotencyKey] = response.Clone();
        _rememberedOrder.Enqueue(idempotencyKey);
        while (_rememberedOrder.Count > Math.Max(0, _limits.IdempotencyKeysRememberedMax))
        {
            _remembered.Remove(_rememberedOrder.Dequeue());
        }
    }

    // ---- Queries ----

    /// <summary>Where a lock request that was queued stands now.</summary>
    public (WaitOutcome Outcome, long FencingToken, EtcdError? Error) WaitState(long txnId, long sequence)
    {
        foreach (var e in _entries)
        {
            if (e.Proto.Sequence == sequence)
            {
                return e.Proto.Granted ? (WaitOutcome.Granted, e.Proto.FencingToken, null) : (WaitOutcome.Waiting, 0, null);
            }
        }

        if (_txns.TryGetValue(txnId, out var txn))
        {
            return txn.TimedOutSequence == sequence
                ? (WaitOutcome.Failed, 0, TransactionErrors.LockTimeout(txnId, ByteString.Empty, ByteString.Empty))
                : (WaitOutcome.Failed, 0, TransactionErrors.NotAllowed($"lock request {sequence} of transaction {txnId} is gone"));
        }

        try
        {
            RequireOpen(txnId);
        }
        catch (EtcdException e)
        {
            return (WaitOutcome.Failed, 0, e.Error);
        }

        throw new InvalidOperationException("unreachable");
    }

    /// <summary>
    /// Open transactions, every lock entry and the counters. With <paramref name="nowMs"/> (a
    /// reader's clock, never a command's) each transaction also says how long it has been open and
    /// what is left of its time limit and of its lease (<paramref name="leaseDeadlineMs"/>: a
    /// lease's deadline, null if it is gone); without, those stay 0 and the answer is a pure
    /// function of the state.
    /// </summary>
    public TransactionStatusResponse Status(long? nowMs = null, Func<long, long?>? leaseDeadlineMs = null)
    {
        var response = new TransactionStatusResponse { Counters = Counters.Clone() };
        foreach (var txn in _txns.Values)
        {
            var info = new TransactionInfo { TxnId = txn.TxnId, Age = txn.Age, Lease = txn.Lease, Snapshot = txn.Snapshot, SnapshotRevision = txn.SnapshotRevision, TimeLimitMs = txn.TimeLimitMs };
            if (nowMs is { } now)
            {
                // The deadline is the time limit counted from Begin (or from the last leader change).
                info.TimeLeftMs = Math.Clamp(txn.DeadlineMs - now, 0, txn.TimeLimitMs);
                info.OpenMs = txn.TimeLimitMs - info.TimeLeftMs;
                info.LeaseRemainingMs = leaseDeadlineMs?.Invoke(txn.Lease) is { } leaseDeadline ? Math.Max(0, leaseDeadline - now) : -1;
            }
            foreach (var e in _entries)
            {
                if (e.Proto.TxnId == txn.TxnId)
                {
                    if (e.Proto.Granted)
                    {
                        info.LocksHeld++;
                    }
                    else
                    {
                        info.WaitsFor.AddRange(Blockers(e).Select(b => b.Proto.TxnId).Distinct().Order());
                    }
                }
            }

            response.Transactions.Add(info);
        }

        foreach (var e in _entries)
        {
            response.Locks.Add(new LockInfo
            {
                TxnId = e.Proto.TxnId,
                Key = e.Proto.Key,
                RangeEnd = e.Proto.RangeEnd,
                Mode = e.Proto.Mode,
                Granted = e.Proto.Granted,
                FencingToken = e.Proto.FencingToken,
                Sequence = e.Proto.Sequence,
            });
        }

        return response;
    }

    /// <summary>The transactions each waiting transaction waits for (the wait-for graph), for checks.</summary>
    public IReadOnlyDictionary<long, long[]> WaitForGraph()
    {
        var graph = new SortedDictionary<long, long[]>();
        foreach (var e in _entries)
        {
            if (!e.Proto.Granted)
            {
                graph[e.Proto.TxnId] = [.. Blockers(e).Select(b => b.Proto.TxnId).Distinct().Order()];
            }
        }

        return graph;
    }

    // ---- Snapshot ----

    public TransactionTableImage Capture()
    {
        var image = new TransactionTableImage
        {
            LastTxnId = _lastTxnId,
            LastSequence = _lastSequence,
            LastFencingToken = _lastFencingToken,
            Counters = Counters.Clone(),
        };
        image.Transactions.AddRange(_txns.Values.Select(t => t.Clone()));
        image.Entries.AddRange(_entries.Select(e => e.Proto.Clone()));
        image.Finished.AddRange(_finishedOrder.Select(id => _finished[id].Clone()));
        image.Idempotency.AddRange(_rememberedOrder.Select(k => new RememberedCommit { IdempotencyKey = k, Response = _remembered[k].Clone() }));
        return image;
    }

    public void Restore(TransactionTableImage image)
    {
        _lastTxnId = image.LastTxnId;
        _lastSequence = image.LastSequence;
        _lastFencingToken = image.LastFencingToken;
        Counters = image.Counters?.Clone() ?? new TransactionCounters();
        foreach (var txn in image.Transactions)
        {
            _txns.Add(txn.TxnId, txn.Clone());
        }

        foreach (var e in image.Entries)
        {
            if (!_txns.ContainsKey(e.TxnId))
            {
                throw new InvalidDataException("A lock entry belongs to a transaction the snapshot lacks.");
            }

            _entries.Add(new Entry(e.Clone(), KeySpan.FromEtcd(e.Key, e.RangeEnd)));
        }

        foreach (var f in image.Finished)
        {
            _finished[f.TxnId] = f.Clone();
            _finishedOrder.Enqueue(f.TxnId);
        }

        foreach (var r in image.Idempotency)
        {
            _remembered[r.IdempotencyKey] = r.Response.Clone();
            _rememberedOrder.Enqueue(r.IdempotencyKey);
        }
    }

    /// <summary>Checks the table's invariants; throws <see cref="InvalidOperationException"/> on the first broken one.</summary>
    public void Verify()
    {
        for (var i = 0; i < _entries.Count; i++)
        {
            var e = _entries[i];
            Check(_txns.TryGetValue(e.Proto.TxnId, out var txn) && !txn.Snapshot, "a lock entry of a transaction that is not open");
            Check(i == 0 || _entries[i - 1].Proto.Sequence < e.Proto.Sequence, "lock entries out of sequence order");
            Check(e.Proto.Sequence <= _lastSequence, "a sequence above the last issued");
            Check(!e.Proto.Granted || (e.Proto.FencingToken > 0 && e.Proto.FencingToken <= _lastFencingToken), "a grant without a valid fencing token");
            for (var j = 0; j < i; j++)
            {
                var other = _entries[j];
                Check(!(e.Proto.Granted && other.Proto.Granted && Conflicts(e, other)), "two conflicting grants");
                Check(e.Proto.Granted || other.Proto.Granted || other.Proto.TxnId != e.Proto.TxnId, "a transaction waits for two locks");
            }

            Check(e.Proto.Granted || FirstBlocker(e) is not null, "a waiting request that could be granted");
        }

        foreach (var txn in _txns.Keys)
        {
            Check(FindCycle(txn) is null, "a wait-for cycle survived");
        }

        Check(_finishedOrder.Count == _finished.Count, "finished ids and records differ");
        Check(_rememberedOrder.Count == _remembered.Count, "idempotency keys and results differ");
    }

    // ---- Internals ----

    private static void ThrowIfInvalid(EtcdError? error)
    {
        if (error is not null)
        {
            throw new EtcdException(error);
        }
    }

    private static bool IsSame(Entry entry, Target target) =>
        entry.Proto.Key.Equals(target.Key) && entry.Proto.RangeEnd.Equals(target.RangeEnd) && entry.Proto.Mode == target.Mode;

    private static List<Target> Prepare(IEnumerable<LockTarget> targets) =>
        [.. targets.Select(t => new Target(t.Key, t.RangeEnd, t.Mode, KeySpan.FromEtcd(t.Key, t.RangeEnd)))];

    /// <summary>The transaction's grant that already covers the target as strongly, or null.</summary>
    private static Entry? HeldBy(List<Entry> own, Target target)
    {
        foreach (var e in own)
        {
            if (e.Span.Covers(target.Span) && e.Proto.Mode >= target.Mode)
            {
                return e;
            }
        }

        return null;
    }

    /// <summary>The index of an earlier target of the same request that covers target <paramref name="index"/> as strongly, or -1.</summary>
    private static int EarlierCovering(List<Target> targets, int index)
    {
        for (var j = 0; j < index; j++)
        {
            if (targets[j].Span.Covers(targets[index].Span) && targets[j].Mode >= targets[index].Mode)
            {
                return j;
            }
        }

        return -1;
    }

    /// <summary>
    /// What a new request for <paramref name="target"/> would wait for, given that the planned
    /// grants of the same request (<paramref name="steps"/>) are the transaction's too: like
    /// <see cref="FirstBlocker(Entry)"/> for an entry not in the table yet.
    /// </summary>
    private Entry? FirstBlocker(long txnId, Target target, List<Entry> own, List<Target> targets, List<Step> steps)
    {
        var skipQueue = own.Any(e => e.Span.Overlaps(target.Span));
        for (var i = 0; !skipQueue && i < steps.Count; i++)
        {
            skipQueue = steps[i].Kind == StepKind.Grant && targets[i].Span.Overlaps(target.Span);
        }

        foreach (var e in _entries)
        {
            if (e.Proto.TxnId == txnId || !e.Span.Overlaps(target.Span)
                || (e.Proto.Mode != LockMode.Exclusive && target.Mode != LockMode.Exclusive))
            {
                continue;
            }

            if (e.Proto.Granted || !skipQueue)
            {
                return e;
            }
        }

        return null;
    }

    private Entry NewEntry(TransactionRecord txn, Target target, long waitTimeoutMs, long nowMs)
    {
        var timeoutMs = waitTimeoutMs == 0 ? _limits.LockWaitTimeoutMsDefault : waitTimeoutMs;
        return new Entry(new LockEntry
        {
            Sequence = _lastSequence + 1,
            TxnId = txn.TxnId,
            Key = target.Key,
            RangeEnd = target.RangeEnd,
            Mode = target.Mode,
            WaitTimeoutMs = timeoutMs,
            WaitDeadlineMs = Saturate(nowMs, timeoutMs),
        }, target.Span);
    }

    /// <summary>The open transaction, or the error that says why it is not open.</summary>
    private TransactionRecord RequireOpen(long txnId)
    {
        if (_txns.TryGetValue(txnId, out var txn))
        {
            return txn;
        }

        if (_finished.TryGetValue(txnId, out var finished))
        {
            if (finished.Commit is not null)
            {
                throw new EtcdException(TransactionErrors.Aborted(txnId, TransactionErrors.ReasonCommitted));
            }

            var abort = finished.Abort;
            throw new EtcdException(abort.Kind == TransactionError.Types.Kind.Deadlock
                ? TransactionErrors.Deadlock(txnId, abort.Cycle)
                : TransactionErrors.Aborted(txnId, abort.Reason));
        }

        throw new EtcdException(TransactionErrors.Unknown(txnId));
    }

    private static bool Conflicts(Entry a, Entry b) =>
        a.Proto.TxnId != b.Proto.TxnId
        && (a.Proto.Mode == LockMode.Exclusive || b.Proto.Mode == LockMode.Exclusive)
        && a.Span.Overlaps(b.Span);

    /// <summary>Whether the entry's transaction holds a grant overlapping it (then it does not queue behind waiters).</summary>
    private bool HoldsOverlap(Entry entry)
    {
        foreach (var e in _entries)
        {
            if (e.Proto.Granted && e.Proto.TxnId == entry.Proto.TxnId && e.Span.Overlaps(entry.Span))
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>Entries the given (not yet granted) entry must wait for, in sequence order.</summary>
    private IEnumerable<Entry> Blockers(Entry entry)
    {
        var skipQueue = HoldsOverlap(entry);
        foreach (var e in _entries)
        {
            if (ReferenceEquals(e, entry) || !Conflicts(e, entry))
            {
                continue;
            }

            if (e.Proto.Granted || (!skipQueue && e.Proto.Sequence < entry.Proto.Sequence))
            {
                yield return e;
            }
        }
    }

    private Entry? FirstBlocker(Entry entry)
    {
        // A new entry is not in the list yet and has the highest sequence: every waiter is earlier.
        var isNew = entry.Proto.Sequence > _lastSequence;
        var skipQueue = HoldsOverlap(entry);
        foreach (var e in _entries)
        {
            if (ReferenceEquals(e, entry) || !Conflicts(e, entry))
            {
                continue;
            }

            if (e.Proto.Granted || (!skipQueue && (isNew || e.Proto.Sequence < entry.Proto.Sequence)))
            {
                return e;
            }
        }

        return null;
    }

    private void Grant(Entry entry)
    {
        entry.Proto.Granted = true;
        entry.Proto.WaitDeadlineMs = 0;
        _lastFencingToken = Math.Max(_lastFencingToken + 1, _revision());
        entry.Proto.FencingToken = _lastFencingToken;
        Counters.Grants++;
    }

    /// <summary>Grants, in sequence order, every waiting request nothing blocks any more.</summary>
    private void GrantPass()
    {
        foreach (var e in _entries)
        {
            if (!e.Proto.Granted && FirstBlocker(e) is null)
            {
                Grant(e);
            }
        }
    }

    private void AbortCore(TransactionRecord txn, EtcdError error)
    {
        Counters.Aborted++;
        Release(txn, new FinishedTransaction { TxnId = txn.TxnId, Abort = error.Transaction!.Clone() });
    }

    private void Release(TransactionRecord txn, FinishedTransaction finished)
    {
        _entries.RemoveAll(e => e.Proto.TxnId == txn.TxnId);
        _txns.Remove(txn.TxnId);
        _finished[txn.TxnId] = finished;
        _finishedOrder.Enqueue(txn.TxnId);
        while (_finishedOrder.Count > Math.Max(0, _limits.TransactionsFinishedRememberedMax))
        {
            _finished.Remove(_finishedOrder.Dequeue());
        }

        GrantPass();
    }

    /// <summary>
    /// An exact depth-first search of the wait-for graph for a path from <paramref name="start"/>
    /// back to itself. Returns the cycle as edges (who waits for what, held by whom), starting at
    /// <paramref name="start"/>, or null. Neighbours are visited in ascending id order, so the cycle
    /// found is the same on every replica.
    /// </summary>
    private List<CycleEdge>? FindCycle(long start)
    {
        var waiting = new Dictionary<long, Entry>();
        foreach (var e in _entries)
        {
            if (!e.Proto.Granted)
            {
                waiting[e.Proto.TxnId] = e;
            }
        }

        if (!waiting.ContainsKey(start))
        {
            return null;
        }

        var visited = new HashSet<long> { start };
        var path = new List<long> { start };
        var stack = new Stack<IEnumerator<long>>();
        stack.Push(Successors(start).GetEnumerator());
        while (stack.Count > 0)
        {
            var it = stack.Peek();
            if (!it.MoveNext())
            {
                it.Dispose();
                stack.Pop();
                path.RemoveAt(path.Count - 1);
                continue;
            }

            var next = it.Current;
            if (next == start)
            {
                var cycle = new List<CycleEdge>(path.Count);
                for (var i = 0; i < path.Count; i++)
                {
                    var w = waiting[path[i]].Proto;
                    cycle.Add(new CycleEdge { TxnId = w.TxnId, Key = w.Key, RangeEnd = w.RangeEnd, Mode = w.Mode, WaitsForTxnId = i + 1 < path.Count ? path[i + 1] : start });
                }

                foreach (var open in stack)
                {
                    open.Dispose();
                }

                return cycle;
            }

            if (waiting.ContainsKey(next) && visited.Add(next))
            {
                path.Add(next);
                stack.Push(Successors(next).GetEnumerator());
            }
        }

        return null;

        IEnumerable<long> Successors(long txnId) => Blockers(waiting[txnId]).Select(b => b.Proto.TxnId).Distinct().Order();
    }

    private static long Saturate(long nowMs, long durationMs) => nowMs > long.MaxValue - durationMs ? long.MaxValue : nowMs + durationMs;

    private static void Check(bool condition, string what)
    {
        if (!condition)
        {
            throw new InvalidOperationException("Lock table invariant broken: " + what + ".");
        }
    }

    /// <summary>One lock target with its span computed once.</summary>
    private readonly record struct Target(ByteString Key, ByteString RangeEnd, LockMode Mode, KeySpan Span);

    private enum StepKind
    {
        /// <summary>The transaction holds it already (as strongly): its token is answered.</summary>
        Held,
        /// <summary>An earlier target of the same request covers it: that one's token.</summary>
        SameAs,
        /// <summary>Granted by this command.</summary>
        Grant,
    }

    private enum StopKind
    {
        /// <summary>Every target is granted.</summary>
        None,
        /// <summary>The next target queues.</summary>
        Queue,
        /// <summary>The next target is the transaction's waiting request (a repeated call).</summary>
        Reattach,
    }

    /// <summary>One planned target (Held: the grant; SameAs: the earlier target's index).</summary>
    private sealed record Step(StepKind Kind, Entry? Held, int SameAs);

    /// <summary>The steps up to where the walk stops, and why it stops (with the waiting request for a re-attach).</summary>
    private sealed record LockPlan(List<Step> Steps, StopKind Stop, Entry? Waiting);

    /// <summary>A lock entry with its span computed once.</summary>
    private sealed class Entry(LockEntry proto, KeySpan span)
    {
        public LockEntry Proto { get; } = proto;

        public KeySpan Span { get; } = span;
    }
}
