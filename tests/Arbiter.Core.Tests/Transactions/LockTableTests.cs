using Arbiter.Protocol.Etcd;
using Arbiter.Protocol.Internal;
using Arbiter.Protocol.Transactions;
using static Arbiter.Core.Tests.Harness;
using Kind = Arbiter.Protocol.Transactions.TransactionError.Types.Kind;

namespace Arbiter.Core.Tests.Transactions;

/// <summary>Scenarios of the lock table in the core: grants, queues, deadlocks, timers, leases, commits, bad input.</summary>
public class LockTableTests
{
    private readonly TxnDriver _t = new(new Harness());

    [Fact]
    public void SharedLocksShareExclusiveQueuesInFifoOrder()
    {
        var lease = _t.Lease();
        var (a, b, c, d) = (_t.Begin(lease), _t.Begin(lease), _t.Begin(lease), _t.Begin(lease));
        _t.Granted(a, "k", exclusive: false);
        _t.Granted(b, "k", exclusive: false);
        var cSeq = _t.Queued(c, "k");
        // A later shared request does not overtake the queued exclusive one (FIFO, no starvation of writers).
        var dSeq = _t.Queued(d, "k", exclusive: false);
        _t.Commit(a);
        Assert.Null(_t.WaitState(c, cSeq));
        _t.Commit(b);
        Assert.NotNull(_t.WaitState(c, cSeq));
        Assert.Null(_t.WaitState(d, dSeq));
        _t.Commit(c);
        Assert.NotNull(_t.WaitState(d, dSeq));
        _t.Sm.VerifyIntegrity();
    }

    [Fact]
    public void FencingTokensStrictlyIncreaseAndAreAtLeastTheRevision()
    {
        var lease = _t.Lease();
        _t.H.Put("x", "1");
        _t.H.Put("x", "2");
        var a = _t.Begin(lease);
        var t1 = _t.Granted(a, "k");
        Assert.True(t1 >= _t.Sm.Revision);
        var t2 = _t.Granted(a, "j");
        Assert.True(t2 > t1);
        // Asking again for a lock already held returns the same grant.
        Assert.Equal(t1, _t.Granted(a, "k"));
        _t.Commit(a, OpPut("k", "v"));
        var b = _t.Begin(lease);
        var t3 = _t.Granted(b, "k");
        Assert.True(t3 > t2);
    }

    [Fact]
    public void DeadlockPairAbortsTheYoungestAndNamesTheCycle()
    {
        var (older, younger) = _t.OlderHoldsAYoungerHoldsB();
        var olderSeq = _t.Queued(older, "B");
        // The younger closes the cycle and is its youngest member: it is the victim, at once.
        var detail = TxnDriver.Detail(_t.LockResult(younger, "A"));
        Assert.Equal(Kind.Deadlock, detail.Kind);
        Assert.Equal(younger, detail.TxnId);
        Assert.Equal([younger, older], detail.Cycle.Select(e => e.TxnId));
        Assert.Equal([older, younger], detail.Cycle.Select(e => e.WaitsForTxnId));
        Assert.Equal(["A", "B"], detail.Cycle.Select(e => S(e.Key)));
        // Its locks are released: the older one now holds B.
        Assert.NotNull(_t.WaitState(older, olderSeq));
        Assert.Equal(1, _t.Sm.TransactionStatus().Counters.Deadlocks);
        // The victim's later calls say why it ended.
        Assert.Equal(Kind.Deadlock, TxnDriver.Detail(_t.CommitResult(younger)).Kind);
        _t.Sm.VerifyIntegrity();
    }

    [Fact]
    public void VictimIsTheYoungestEvenWhenAnOlderTransactionClosesTheCycle()
    {
        var (older, younger) = _t.OlderHoldsAYoungerHoldsB();
        var youngerSeq = _t.Queued(younger, "A");
        // The older closes the cycle: the younger (waiting) is aborted; the older gets B at once.
        var r = Ok(_t.LockResult(older, "B")).TxnLock;
        Assert.True(r.Granted);
        var e = TxnDriver.WaitFails(() => _t.WaitState(younger, youngerSeq));
        Assert.Equal(Kind.Deadlock, e.Error.Transaction!.Kind);
        Assert.Equal(ErrorStatusCode.Aborted, e.Error.StatusCode);
        Assert.Contains("deadlock", e.Error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void RetriedTransactionKeepsItsAgeAndWins()
    {
        var lease = _t.Lease();
        var first = _t.Begin(lease);
        var other = _t.Begin(lease);
        Ok(_t.AbortResult(first));
        // The retry is begun after `other` but carries the first attempt's age: `other` is now the younger.
        var retry = _t.Begin(lease, age: first);
        Assert.True(retry > other);
        _t.Granted(retry, "A");
        _t.Granted(other, "B");
        _t.Queued(retry, "B");
        var detail = TxnDriver.Detail(_t.LockResult(other, "A"));
        Assert.Equal(other, detail.TxnId);
        Assert.Equal(Kind.Deadlock, detail.Kind);
    }

    [Fact]
    public void StatusCountsRetriesAndMeasuresOpenTimeOnTheReadersClock()
    {
        var lease = _t.Lease(ttlSeconds: 10);
        _t.H.TimeMs = 5_000;
        var first = _t.Begin(lease, timeLimitMs: 8_000);
        Ok(_t.AbortResult(first));
        var retry = _t.Begin(lease, timeLimitMs: 8_000, age: first);
        _t.Granted(retry, "A");
        var status = _t.Sm.TransactionStatus(nowMs: 7_500);
        Assert.Equal(1, status.Counters.Retried);
        Assert.Equal(2, status.Counters.Begun);
        var info = Assert.Single(status.Transactions);
        Assert.Equal(retry, info.TxnId);
        Assert.Equal(first, info.Age);
        Assert.Equal(8_000, info.TimeLimitMs);
        Assert.Equal(2_500, info.OpenMs);
        Assert.Equal(5_500, info.TimeLeftMs);
        Assert.Equal(1_000 + 10_000 - 7_500, info.LeaseRemainingMs);   // the lease was granted at 1 000 ms with 10 s
        Assert.Equal(1, info.LocksHeld);

        // Without a reader's clock the answer is a pure function of the state (what snapshots compare).
        var pure = _t.Sm.TransactionStatus();
        Assert.Equal(0, pure.Transactions[0].OpenMs);
        Assert.Equal(pure, _t.Sm.TransactionStatus());
    }

    [Fact]
    public void ThreeCycleIsBrokenOnce()
    {
        var lease = _t.Lease();
        var (a, b, c) = (_t.Begin(lease), _t.Begin(lease), _t.Begin(lease));
        _t.Granted(a, "A");
        _t.Granted(b, "B");
        _t.Granted(c, "C");
        var aSeq = _t.Queued(a, "B");
        var bSeq = _t.Queued(b, "C");
        var detail = TxnDriver.Detail(_t.LockResult(c, "A"));
        Assert.Equal(c, detail.TxnId);
        Assert.Equal([c, a, b], detail.Cycle.Select(e => e.TxnId));
        Assert.NotNull(_t.WaitState(b, bSeq));
        Assert.Null(_t.WaitState(a, aSeq));
        _t.Commit(b);
        Assert.NotNull(_t.WaitState(a, aSeq));
        Assert.Equal(1, _t.Sm.TransactionStatus().Counters.Deadlocks);
        _t.Sm.VerifyIntegrity();
    }

    [Fact]
    public void CycleThroughARangeLockIsDetected()
    {
        var lease = _t.Lease();
        var older = _t.Begin(lease);
        var younger = _t.Begin(lease);
        _t.Granted(older, "acct/", "acct0", exclusive: false);   // S on the whole prefix range
        _t.Granted(younger, "x");
        _t.Queued(older, "x");
        // An exclusive lock on one key inside the range waits for the range holder: cycle.
        var detail = TxnDriver.Detail(_t.LockResult(younger, "acct/7"));
        Assert.Equal(Kind.Deadlock, detail.Kind);
        Assert.Equal("acct/7", S(detail.Cycle[0].Key));
        // A lock outside the range does not conflict.
        var third = _t.Begin(lease);
        _t.Granted(third, "acct0");
    }

    [Fact]
    public void UpgradeSkipsTheQueueAndTwoUpgradersDeadlock()
    {
        var lease = _t.Lease();
        var (a, b, c) = (_t.Begin(lease), _t.Begin(lease), _t.Begin(lease));
        _t.Granted(a, "k", exclusive: false);
        var cSeq = _t.Queued(c, "k");
        // a upgrades S→X: it waits only for other holders (none), not for the queued c.
        _t.Granted(a, "k");
        _t.Commit(a);
        Assert.NotNull(_t.WaitState(c, cSeq));
        _t.Commit(c);

        var d = _t.Begin(lease);
        _t.Granted(b, "u", exclusive: false);
        _t.Granted(d, "u", exclusive: false);
        _t.Queued(b, "u");
        var detail = TxnDriver.Detail(_t.LockResult(d, "u"));
        Assert.Equal(Kind.Deadlock, detail.Kind);
        Assert.Equal(d, detail.TxnId);
    }

    [Fact]
    public void NowaitFailsBusyAndLeavesTheTransactionOpen()
    {
        var lease = _t.Lease();
        var (a, b) = (_t.Begin(lease), _t.Begin(lease));
        _t.Granted(a, "k");
        var r = _t.LockResult(b, "k", nowait: true);
        Assert.Equal(Kind.LockBusy, TxnDriver.Detail(r).Kind);
        Assert.Equal((int)ErrorStatusCode.FailedPrecondition, r.Error.StatusCode);
        _t.Granted(b, "other");
        Assert.DoesNotContain(_t.Sm.TransactionStatus().Locks, l => !l.Granted);
    }

    [Fact]
    public void LockWaitTimesOutByTimerCommandAndTheTransactionStaysOpen()
    {
        var lease = _t.Lease();
        var (a, b) = (_t.Begin(lease), _t.Begin(lease));
        _t.Granted(a, "k");
        var seq = _t.Queued(b, "k", timeoutMs: 500);
        Assert.Equal(_t.H.TimeMs + 500, _t.Sm.NextTransactionDeadlineMs);
        _t.H.TimeMs += 499;
        Assert.Empty(_t.Timers().TimedOutSequences);
        _t.H.TimeMs += 1;
        Assert.Equal([seq], _t.Timers().TimedOutSequences);
        var e = TxnDriver.WaitFails(() => _t.WaitState(b, seq));
        Assert.Equal(Kind.LockTimeout, e.Error.Transaction!.Kind);
        Assert.Equal(ErrorStatusCode.DeadlineExceeded, e.Error.StatusCode);
        _t.Granted(b, "j");
        _t.Sm.VerifyIntegrity();
    }

    [Fact]
    public void TimeLimitAbortsAndReleases()
    {
        var lease = _t.Lease();
        var a = _t.Begin(lease, timeLimitMs: 1000);
        var b = _t.Begin(lease);
        _t.Granted(a, "k");
        var seq = _t.Queued(b, "k");
        _t.H.TimeMs += 1000;
        Assert.Equal([a], _t.Timers().ExpiredTxnIds);
        Assert.NotNull(_t.WaitState(b, seq));
        var detail = TxnDriver.Detail(_t.CommitResult(a, OpPut("k", "v")));
        Assert.Equal(Kind.Aborted, detail.Kind);
        Assert.Equal("time limit", detail.Reason);
        Assert.Null(_t.H.Value("k"));
    }

    [Fact]
    public void LeaseExpiryAbortsItsTransactionsAndReleasesTheirLocksInTheSameCommand()
    {
        var shortLease = _t.Lease(ttlSeconds: 5);
        var longLease = _t.Lease();
        var holder = _t.Begin(shortLease);
        var waiter = _t.Begin(longLease);
        _t.Granted(holder, "k");
        var seq = _t.Queued(waiter, "k");
        _t.H.TimeMs += 5000;
        Assert.Single(_t.H.Expire().ExpiredLeaseIds);
        Assert.NotNull(_t.WaitState(waiter, seq));
        var detail = TxnDriver.Detail(_t.CommitResult(holder));
        Assert.Equal("lease expired", detail.Reason);

        var revoked = _t.Begin(longLease);
        _t.Commit(waiter);
        _t.Granted(revoked, "k");
        _t.H.Revoke(longLease);
        Assert.Equal("lease revoked", TxnDriver.Detail(_t.CommitResult(revoked)).Reason);
        Assert.Empty(_t.Sm.TransactionStatus().Locks);
    }

    [Fact]
    public void ALeasePastItsDeadlineCannotCommitEvenBeforeExpiryIsApplied()
    {
        var lease = _t.Lease(ttlSeconds: 5);
        var a = _t.Begin(lease);
        _t.Granted(a, "k");
        _t.H.TimeMs += 5000;
        var detail = TxnDriver.Detail(_t.CommitResult(a, OpPut("k", "v")));
        Assert.Equal("lease expired", detail.Reason);
        Assert.Null(_t.H.Value("k"));
    }

    [Fact]
    public void CommitAppliesAllWritesInOneRevisionAndIsRepeatable()
    {
        var lease = _t.Lease();
        _t.H.Put("gone", "x");
        var a = _t.Begin(lease);
        _t.Granted(a, "acct/", "acct0");
        _t.Granted(a, "gone");
        var before = _t.Sm.Revision;
        var commit = _t.Commit(a, OpPut("acct/1", "90"), OpPut("acct/2", "110"), OpDelete("gone"));
        Assert.Equal(before + 1, commit.Revision);
        Assert.Equal(before + 1, _t.Sm.Revision);
        Assert.Equal(3, _t.H.LastEvents.Count);
        Assert.Empty(_t.Sm.TransactionStatus().Locks);
        // Repeating the commit (an ambiguous outcome retried) returns the first result, applies nothing.
        Assert.Equal(commit, _t.Commit(a, OpPut("acct/1", "90"), OpPut("acct/2", "110"), OpDelete("gone")));
        Assert.Equal(before + 1, _t.Sm.Revision);
    }

    [Fact]
    public void CommitRefusesWritesWithoutAnExclusiveLock()
    {
        var lease = _t.Lease();
        var a = _t.Begin(lease);
        _t.Granted(a, "k", exclusive: false);
        var r = _t.CommitResult(a, OpPut("k", "v"));
        Assert.Equal((int)ErrorStatusCode.FailedPrecondition, r.Error.StatusCode);
        Assert.Contains("without an exclusive lock", r.Error.Message, StringComparison.Ordinal);
        Assert.Null(_t.H.Value("k"));
        // Nothing half-applied: still open, still holding its lock.
        _t.Granted(a, "k");
        _t.Commit(a, OpPut("k", "v"));
        Assert.Equal("v", _t.H.Value("k"));
    }

    [Fact]
    public void BadInputIsRefusedWithClearErrorsAndNothingChanges()
    {
        var lease = _t.Lease();
        var a = _t.Begin(lease);
        var hash = _t.Sm.Hash();
        Assert.Equal(Kind.UnknownTransaction, TxnDriver.Detail(_t.LockResult(999, "k")).Kind);
        Assert.Equal(Kind.UnknownTransaction, TxnDriver.Detail(_t.CommitResult(999)).Kind);
        Assert.Equal(Kind.UnknownTransaction, TxnDriver.Detail(_t.AbortResult(999)).Kind);
        AssertError(EtcdError.EmptyKey, _t.LockResult(a, "").Error);
        Assert.Contains("inverted", _t.LockResult(a, "b", "a").Error.Message, StringComparison.Ordinal);
        Assert.Contains("inverted", _t.LockResult(a, "b", "b").Error.Message, StringComparison.Ordinal);
        Assert.Contains("wait_timeout_ms", _t.LockResult(a, "k", timeoutMs: -1).Error.Message, StringComparison.Ordinal);
        Assert.Contains("wait_timeout_ms", _t.LockResult(a, "k", timeoutMs: long.MaxValue).Error.Message, StringComparison.Ordinal);
        Assert.Contains("time_limit_ms", _t.BeginResult(lease, timeLimitMs: long.MaxValue).Error.Message, StringComparison.Ordinal);
        Assert.Contains("lease", _t.BeginResult(0).Error.Message, StringComparison.Ordinal);
        AssertError(EtcdError.LeaseNotFound, _t.BeginResult(12345).Error);
        Assert.Contains("age", _t.BeginResult(lease, age: 1_000_000).Error.Message, StringComparison.Ordinal);
        Assert.Contains("only put and delete_range", _t.CommitResult(a, OpGet("k")).Error.Message, StringComparison.Ordinal);
        var mode = _t.H.Apply(new Command { TxnLock = new LockRequest { TxnId = a, Key = B("k"), Mode = (LockMode)7 } });
        Assert.Contains("lock mode", mode.Error.Message, StringComparison.Ordinal);
        Assert.Equal(hash, _t.Sm.Hash());

        Ok(_t.AbortResult(a));
        var afterAbort = TxnDriver.Detail(_t.CommitResult(a, OpPut("k", "v")));
        Assert.Equal(Kind.Aborted, afterAbort.Kind);
        Assert.Equal("rollback", afterAbort.Reason);
        Assert.Null(_t.H.Value("k"));
        _t.Sm.VerifyIntegrity();
    }

    [Fact]
    public void TooManyLocksIsRefused()
    {
        var t = new TxnDriver(new Harness(new StateMachine(new CoreLimits { LocksPerTransactionMax = 3 })));
        var lease = t.Lease();
        var a = t.Begin(lease);
        t.Granted(a, "1");
        t.Granted(a, "2");
        t.Granted(a, "3");
        var r = t.LockResult(a, "4");
        Assert.Equal((int)ErrorStatusCode.ResourceExhausted, r.Error.StatusCode);
        Assert.Contains("too many locks", r.Error.Message, StringComparison.Ordinal);
        Assert.Equal(3, t.Sm.TransactionStatus().Locks.Count);
    }

    [Fact]
    public void ReattachingToAQueuedRequestKeepsItsPlace()
    {
        var lease = _t.Lease();
        var (a, b, c) = (_t.Begin(lease), _t.Begin(lease), _t.Begin(lease));
        _t.Granted(a, "k");
        var bSeq = _t.Queued(b, "k");
        _t.Queued(c, "k");
        // b's first call was cut off (e.g. a leader change); calling again returns the same request.
        Assert.Equal(bSeq, _t.Queued(b, "k"));
        var other = _t.LockResult(b, "j");
        Assert.Contains("already waits", other.Error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void SnapshotRoundTripKeepsLocksWaitersAndFinishedTransactions()
    {
        var lease = _t.Lease();
        var (a, b, c) = (_t.Begin(lease), _t.Begin(lease), _t.Begin(lease, timeLimitMs: 5000));
        _t.Granted(a, "k", exclusive: false);
        var bSeq = _t.Queued(b, "k");
        _t.Granted(c, "r/", "r0");
        Ok(_t.Optimistic(_t.Sm.Revision, [], [OpPut("z", "1")], "idem-1"));
        var d = _t.Begin(lease);
        Ok(_t.AbortResult(d));

        using var stream = new MemoryStream();
        _t.Sm.WriteSnapshot(stream);
        stream.Position = 0;
        var restored = new TxnDriver(new Harness(StateMachine.ReadSnapshot(stream)));
        Assert.Equal(_t.Sm.Hash(), restored.Sm.Hash());
        Assert.Equal(_t.Sm.TransactionStatus(), restored.Sm.TransactionStatus());
        restored.Sm.VerifyIntegrity();

        // Both continue identically.
        foreach (var t in new[] { _t, restored })
        {
            t.H.TimeMs = _t.H.TimeMs;
            t.Commit(a);
            Assert.NotNull(t.WaitState(b, bSeq));
            Assert.Equal("rollback", TxnDriver.Detail(t.CommitResult(d)).Reason);
            Assert.True(Ok(t.Optimistic(2, [], [OpPut("z", "1")], "idem-1")).TxnOptimisticCommit.Duplicate);
        }

        Assert.Equal(_t.Sm.Hash(), restored.Sm.Hash());
    }

    [Fact]
    public void SnapshotTransactionPinsItsRevisionAgainstCompaction()
    {
        var lease = _t.Lease();
        _t.H.Put("a", "1");
        var snap = Ok(_t.BeginResult(lease, snapshot: true)).TxnBegin;
        Assert.Equal(_t.Sm.Revision, snap.SnapshotRevision);
        _t.H.Put("a", "2");
        AssertError(CoreErrors.CompactionBlockedBySnapshot, _t.H.Error(new Command { Compaction = new CompactionRequest { Revision = _t.Sm.Revision } }));
        Assert.Equal("1", Harness.S(_t.H.Get("a", revision: snap.SnapshotRevision).Kvs[0].Value));
        Assert.Contains("no locks", _t.LockResult(snap.TxnId, "a").Error.Message, StringComparison.Ordinal);
        _t.Commit(snap.TxnId);
        _t.H.Compact(_t.Sm.Revision);
    }
}
