using Arbiter.Protocol.Etcd;
using Arbiter.Protocol.Internal;
using Arbiter.Protocol.Transactions;
using Google.Protobuf;
using static Arbiter.Core.Tests.Harness;

namespace Arbiter.Core.Tests.Transactions;

/// <summary>Transaction commands as one-liners over a <see cref="Harness"/>.</summary>
internal sealed class TxnDriver(Harness h)
{
    public Harness H { get; } = h;

    public StateMachine Sm => H.Sm;

    public long Lease(long ttlSeconds = 60) => H.Grant(ttlSeconds).ID;

    public CommandResult BeginResult(long lease, long timeLimitMs = 0, long age = 0, bool snapshot = false) =>
        H.Apply(new Command { TxnBegin = new BeginRequest { Lease = lease, TimeLimitMs = timeLimitMs, Age = age, Snapshot = snapshot } });

    public long Begin(long lease, long timeLimitMs = 0, long age = 0) => Ok(BeginResult(lease, timeLimitMs, age)).TxnBegin.TxnId;

    public CommandResult LockResult(long txn, string key, string? rangeEnd = null, bool exclusive = true, bool nowait = false, long timeoutMs = 0) =>
        H.Apply(new Command
        {
            TxnLock = new LockRequest
            {
                TxnId = txn,
                Key = B(key),
                RangeEnd = rangeEnd is null ? ByteString.Empty : B(rangeEnd),
                Mode = exclusive ? LockMode.Exclusive : LockMode.Shared,
                WaitPolicy = nowait ? WaitPolicy.Nowait : WaitPolicy.Block,
                WaitTimeoutMs = timeoutMs,
            },
        });

    /// <summary>One lock command with several targets (key, or key and range end; X unless shared).</summary>
    public CommandResult LockManyResult(long txn, LockTarget[] targets, bool nowait = false, long timeoutMs = 0)
    {
        var request = new LockRequest
        {
            TxnId = txn,
            Key = targets[0].Key,
            RangeEnd = targets[0].RangeEnd,
            Mode = targets[0].Mode,
            WaitPolicy = nowait ? WaitPolicy.Nowait : WaitPolicy.Block,
            WaitTimeoutMs = timeoutMs,
        };
        request.More.AddRange(targets.Skip(1));
        return H.Apply(new Command { TxnLock = request });
    }

    /// <summary>A Begin carrying lock targets.</summary>
    public CommandResult BeginLockedResult(long lease, LockTarget[] targets, bool nowait = false, long timeoutMs = 0, long age = 0)
    {
        var request = new BeginRequest { Lease = lease, Age = age, LockWaitPolicy = nowait ? WaitPolicy.Nowait : WaitPolicy.Block, LockWaitTimeoutMs = timeoutMs };
        request.Locks.AddRange(targets);
        return H.Apply(new Command { TxnBegin = request });
    }

    public static LockTarget X(string key, string? rangeEnd = null) => LockTarget.Exclusive(key, rangeEnd);

    public static LockTarget Sh(string key, string? rangeEnd = null) => LockTarget.Shared(key, rangeEnd);

    /// <summary>Two transactions on one lease, the older holding X on "A" and the younger X on "B": the start of every two-cycle.</summary>
    public (long Older, long Younger) OlderHoldsAYoungerHoldsB()
    {
        var lease = Lease();
        var older = Begin(lease);
        var younger = Begin(lease);
        Granted(older, "A");
        Granted(younger, "B");
        return (older, younger);
    }

    /// <summary>Lock and expect a grant; returns the fencing token.</summary>
    public long Granted(long txn, string key, string? rangeEnd = null, bool exclusive = true)
    {
        var r = Ok(LockResult(txn, key, rangeEnd, exclusive)).TxnLock;
        Assert.True(r.Granted, $"txn {txn} lock on {key} was queued, expected a grant");
        return r.FencingToken;
    }

    /// <summary>Lock and expect to queue; returns the request's sequence.</summary>
    public long Queued(long txn, string key, string? rangeEnd = null, bool exclusive = true, long timeoutMs = 0)
    {
        var r = Ok(LockResult(txn, key, rangeEnd, exclusive, timeoutMs: timeoutMs)).TxnLock;
        Assert.False(r.Granted, $"txn {txn} lock on {key} was granted, expected to queue");
        return r.Sequence;
    }

    public CommandResult CommitResult(long txn, params RequestOp[] writes)
    {
        var request = new CommitRequest { TxnId = txn };
        request.Writes.AddRange(writes);
        return H.Apply(new Command { TxnCommit = request });
    }

    public CommitResponse Commit(long txn, params RequestOp[] writes) => Ok(CommitResult(txn, writes)).TxnCommit;

    public CommandResult AbortResult(long txn) => H.Apply(new Command { TxnAbort = new AbortRequest { TxnId = txn } });

    public TxnTimersResult Timers() => Ok(H.Apply(new Command { TxnTimers = new TxnTimers() })).TxnTimers;

    public CommandResult Optimistic(long readRevision, (string Key, string? End)[] reads, RequestOp[] writes, string? idempotencyKey = null)
    {
        var request = new OptimisticCommitRequest { ReadRevision = readRevision, IdempotencyKey = idempotencyKey is null ? ByteString.Empty : B(idempotencyKey) };
        request.Reads.AddRange(reads.Select(r => new KeyRange { Key = B(r.Key), RangeEnd = r.End is null ? ByteString.Empty : B(r.End) }));
        request.Writes.AddRange(writes);
        return H.Apply(new Command { TxnOptimisticCommit = request });
    }

    /// <summary>The outcome of a queued request now: null while waiting, the token once granted; throws when it ended.</summary>
    public long? WaitState(long txn, long sequence) => Sm.LockWaitState(txn, sequence);

    public static TransactionError Detail(CommandResult result)
    {
        Assert.Equal(CommandResult.ResultOneofCase.Error, result.ResultCase);
        Assert.NotNull(result.Error.Transaction);
        return result.Error.Transaction;
    }

    public static EtcdException WaitFails(Func<long?> state) => Assert.Throws<EtcdException>(() => state());
}
