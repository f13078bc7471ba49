using Arbiter.Protocol.Etcd;
using Arbiter.Protocol.Internal;
using Arbiter.Protocol.Transactions;
using static Arbiter.Core.Tests.Harness;
using static Arbiter.Core.Tests.Transactions.TxnDriver;
using Kind = Arbiter.Protocol.Transactions.TransactionError.Types.Kind;

namespace Arbiter.Core.Tests.Transactions;

/// <summary>Lock commands with several targets, and Begin carrying locks, in the core.</summary>
public class MultiTargetLockTests
{
    private readonly TxnDriver _t = new(new Harness());

    private (long Txn, bool Granted)[] Held() =>
        [.. _t.Sm.TransactionStatus().Locks.Select(l => (l.TxnId, l.Granted))];

    [Fact]
    public void SeveralTargetsAreGrantedInOneCommandWithDistinctIncreasingTokens()
    {
        var lease = _t.Lease();
        var a = _t.Begin(lease);
        var index = _t.H.Index;
        var result = Ok(_t.LockManyResult(a, [X("a"), X("b"), Sh("c"), X("r/", "r0")])).TxnLock;
        Assert.Equal(index + 1, _t.H.Index);
        Assert.True(result.Granted);
        Assert.Equal(4, result.FencingTokens.Count);
        Assert.Equal(result.FencingTokens[0], result.FencingToken);
        for (var i = 1; i < result.FencingTokens.Count; i++)
        {
            Assert.True(result.FencingTokens[i] > result.FencingTokens[i - 1], $"tokens must increase: {result}");
        }

        // Targets held already, and a target repeated in the request, answer the existing grant.
        var again = Ok(_t.LockManyResult(a, [X("b"), X("d"), X("d"), Sh("a")])).TxnLock;
        Assert.True(again.Granted);
        Assert.Equal(result.FencingTokens[1], again.FencingTokens[0]);
        Assert.True(again.FencingTokens[1] > result.FencingTokens[3]);
        Assert.Equal(again.FencingTokens[1], again.FencingTokens[2]);
        Assert.Equal(result.FencingTokens[0], again.FencingTokens[3]);
        Assert.Equal(5, _t.Sm.TransactionStatus().Locks.Count);
        _t.Commit(a, OpPut("a", "1"), OpPut("b", "1"), OpPut("d", "1"), OpPut("r/x", "1"));
        _t.Sm.VerifyIntegrity();
    }

    [Fact]
    public void AQueuedMiddleTargetIsGrantedLaterAndTheRestAreTakenThen()
    {
        var lease = _t.Lease();
        var (holder, t) = (_t.Begin(lease), _t.Begin(lease));
        _t.Granted(holder, "b");
        var queued = Ok(_t.LockManyResult(t, [X("a"), X("b"), X("c")])).TxnLock;
        Assert.False(queued.Granted);
        Assert.Single(queued.FencingTokens);   // "a" granted, "b" queued, "c" not tried yet
        Assert.Equal([(holder, true), (t, true), (t, false)], Held());
        Assert.Null(_t.WaitState(t, queued.Sequence));

        // The same call repeated (its first was cut off) re-attaches: "a" answered as held, "b" the same place.
        var reattached = Ok(_t.LockManyResult(t, [X("a"), X("b"), X("c")])).TxnLock;
        Assert.False(reattached.Granted);
        Assert.Equal(queued.Sequence, reattached.Sequence);
        Assert.Equal(queued.FencingTokens, reattached.FencingTokens);
        Assert.Contains("already waits", _t.LockManyResult(t, [X("a"), X("c")]).Error.Message, StringComparison.Ordinal);

        _t.Commit(holder);
        var bToken = _t.WaitState(t, queued.Sequence);
        Assert.NotNull(bToken);
        Assert.True(bToken > queued.FencingTokens[0]);

        // The rest, as the node proposes it next.
        var rest = Ok(_t.LockManyResult(t, [X("c")])).TxnLock;
        Assert.True(rest.Granted);
        Assert.True(rest.FencingTokens[0] > bToken);
        Assert.Equal([(t, true), (t, true), (t, true)], Held());
        _t.Sm.VerifyIntegrity();
    }

    [Fact]
    public void ALockTimeoutOfTheQueuedTargetKeepsTheTargetsGrantedBeforeIt()
    {
        var lease = _t.Lease();
        var (holder, t) = (_t.Begin(lease), _t.Begin(lease));
        _t.Granted(holder, "b");
        var queued = Ok(_t.LockManyResult(t, [X("a"), X("b")], timeoutMs: 500)).TxnLock;
        _t.H.TimeMs += 600;
        _t.Timers();
        Assert.Equal(Kind.LockTimeout, WaitFails(() => _t.WaitState(t, queued.Sequence)).Error.Transaction!.Kind);
        Assert.Equal([(holder, true), (t, true)], Held());
    }

    [Fact]
    public void NowaitIsAllOrNone()
    {
        var lease = _t.Lease();
        var (holder, t) = (_t.Begin(lease), _t.Begin(lease));
        _t.Granted(holder, "c");
        var before = Held();
        var busy = Detail(_t.LockManyResult(t, [X("a"), X("b"), X("c")], nowait: true));
        Assert.Equal(Kind.LockBusy, busy.Kind);
        Assert.Equal("c", S(busy.Key));
        Assert.Equal(before, Held());   // neither "a" nor "b" was kept

        // Own locks never block: t holds S on "x" and asks for X on it and on "y" at once.
        _t.Granted(t, "x", exclusive: false);
        Assert.True(Ok(_t.LockManyResult(t, [X("x"), X("y")], nowait: true)).TxnLock.Granted);

        _t.Commit(holder);
        var all = Ok(_t.LockManyResult(t, [X("a"), X("b"), X("c")], nowait: true)).TxnLock;
        Assert.True(all.Granted);
        Assert.Equal(3, all.FencingTokens.Count);
        _t.Sm.VerifyIntegrity();
    }

    [Fact]
    public void ADeadlockClosedByAMultiTargetRequestAbortsTheYoungest()
    {
        var (older, younger) = _t.OlderHoldsAYoungerHoldsB();
        var olderSeq = _t.Queued(older, "B");

        // The younger takes C, then closes the cycle on A: it is the youngest, so it is the victim,
        // and everything it held (B, and C from the same command) is released.
        var detail = Detail(_t.LockManyResult(younger, [X("C"), X("A")]));
        Assert.Equal(Kind.Deadlock, detail.Kind);
        Assert.Equal(younger, detail.TxnId);
        Assert.Equal([younger, older], detail.Cycle.Select(e => e.TxnId));
        Assert.NotNull(_t.WaitState(older, olderSeq));
        Assert.All(_t.Sm.TransactionStatus().Locks, l => Assert.Equal(older, l.TxnId));

        // The other way round: the older closes the cycle with a multi-target request; the younger
        // is still the victim, and its abort grants the older's last target in the same command.
        var third = _t.Begin(_t.Lease());
        _t.Granted(third, "D");
        var thirdSeq = _t.Queued(third, "A");
        var granted = Ok(_t.LockManyResult(older, [X("E"), X("D")])).TxnLock;
        Assert.True(granted.Granted);
        Assert.Equal(2, granted.FencingTokens.Count);
        Assert.Equal(Kind.Deadlock, WaitFails(() => _t.WaitState(third, thirdSeq)).Error.Transaction!.Kind);
        Assert.Equal(2, _t.Sm.TransactionStatus().Counters.Deadlocks);
        _t.Sm.VerifyIntegrity();
    }

    [Fact]
    public void BadInputInAnyTargetIsRefusedAndNothingChanges()
    {
        var t = new TxnDriver(new Harness(new StateMachine(new CoreLimits { LocksPerTransactionMax = 3 })));
        var lease = t.Lease();
        var a = t.Begin(lease);
        t.Granted(a, "held");
        var hash = t.Sm.Hash();

        AssertError(EtcdError.EmptyKey, t.LockManyResult(a, [X("k"), X("")]).Error);
        var inverted = t.LockManyResult(a, [X("k"), X("j"), X("b", "a")]).Error;
        Assert.Contains("inverted", inverted.Message, StringComparison.Ordinal);
        Assert.Contains("lock target 3 of 3", inverted.Message, StringComparison.Ordinal);
        Assert.Contains("lock mode", t.LockManyResult(a, [X("k"), new LockTarget { Key = B("j"), Mode = (LockMode)9 }]).Error.Message, StringComparison.Ordinal);
        var limit = t.LockManyResult(a, [X("x"), X("y"), X("z")]);
        Assert.Equal((int)ErrorStatusCode.ResourceExhausted, limit.Error.StatusCode);
        Assert.Contains("too many locks", limit.Error.Message, StringComparison.Ordinal);
        Assert.Equal((int)ErrorStatusCode.ResourceExhausted, t.LockManyResult(a, [.. Enumerable.Range(0, 4).Select(i => X($"m{i}"))]).Error.StatusCode);

        // Begin with a bad target opens no transaction.
        AssertError(EtcdError.EmptyKey, t.BeginLockedResult(lease, [X("k"), X("")]).Error);
        Assert.Contains("snapshot", t.H.Apply(new Command { TxnBegin = new BeginRequest { Lease = lease, Snapshot = true, Locks = { X("k") } } }).Error.Message, StringComparison.Ordinal);
        Assert.Equal(hash, t.Sm.Hash());

        // Held targets do not count against the limit: two new ones fit next to "held".
        Assert.True(Ok(t.LockManyResult(a, [X("held"), X("x"), X("y")])).TxnLock.Granted);
        Assert.Equal(a + 1, t.Begin(lease));
        t.Sm.VerifyIntegrity();
    }

    [Fact]
    public void ABeginRepeatedWithItsIdempotencyKeyAnswersTheSameTransaction()
    {
        var lease = _t.Lease();
        var (holder, key) = (_t.Begin(lease), B("begin-1"));
        _t.Granted(holder, "b");
        BeginRequest Request() => new() { Lease = lease, IdempotencyKey = key, Locks = { X("a"), X("b") } };
        var first = Ok(_t.H.Apply(new Command { TxnBegin = Request() })).TxnBeginLocked;
        Assert.False(first.Lock.Granted);

        // The answer was lost (a leader change) and the SDK sends the same Begin again: the same
        // transaction, "a" answered as held, "b" re-attached at its place in the queue.
        var again = Ok(_t.H.Apply(new Command { TxnBegin = Request() })).TxnBeginLocked;
        Assert.Equal(first.Begin.TxnId, again.Begin.TxnId);
        Assert.Equal(first.Lock.Sequence, again.Lock.Sequence);
        Assert.Equal(first.Lock.FencingTokens, again.Lock.FencingTokens);
        Assert.Equal(2, _t.Sm.TransactionStatus().Transactions.Count);

        // Without locks too; another lease, or a transaction that ended, gets a new one.
        var plain = Ok(_t.H.Apply(new Command { TxnBegin = new BeginRequest { Lease = lease, IdempotencyKey = B("begin-2") } })).TxnBegin.TxnId;
        Assert.Equal(plain, Ok(_t.H.Apply(new Command { TxnBegin = new BeginRequest { Lease = lease, IdempotencyKey = B("begin-2") } })).TxnBegin.TxnId);
        Ok(_t.AbortResult(plain));
        Assert.NotEqual(plain, Ok(_t.H.Apply(new Command { TxnBegin = new BeginRequest { Lease = lease, IdempotencyKey = B("begin-2") } })).TxnBegin.TxnId);
        Assert.NotEqual(first.Begin.TxnId, Ok(_t.H.Apply(new Command { TxnBegin = new BeginRequest { Lease = _t.Lease(), IdempotencyKey = key } })).TxnBegin.TxnId);
        Assert.Contains("idempotency_key", _t.H.Apply(new Command { TxnBegin = new BeginRequest { Lease = lease, IdempotencyKey = B(new string('k', 65)) } }).Error.Message, StringComparison.Ordinal);
        _t.Sm.VerifyIntegrity();
    }

    [Fact]
    public void BeginCarryingLocksOpensAndLocksInOneCommand()
    {
        var lease = _t.Lease();
        var index = _t.H.Index;
        var begun = Ok(_t.BeginLockedResult(lease, [X("a"), X("b")])).TxnBeginLocked;
        Assert.Equal(index + 1, _t.H.Index);
        Assert.True(begun.Lock.Granted);
        Assert.Equal(2, begun.Begin.FencingTokens.Count);
        Assert.Equal(begun.Lock.FencingTokens, begun.Begin.FencingTokens);
        var t = begun.Begin.TxnId;
        Assert.Equal([(t, true), (t, true)], Held());

        // A second one queues on "b" after taking "c"; the first commits and it is granted.
        var second = Ok(_t.BeginLockedResult(lease, [X("c"), X("b")])).TxnBeginLocked;
        Assert.False(second.Lock.Granted);
        Assert.Empty(second.Begin.FencingTokens);
        Assert.Single(second.Lock.FencingTokens);
        _t.Commit(t, OpPut("a", "1"), OpPut("b", "1"));
        Assert.NotNull(_t.WaitState(second.Begin.TxnId, second.Lock.Sequence));

        // NOWAIT and a busy target: no transaction is opened (the next Begin gets the next id).
        var busy = Detail(_t.BeginLockedResult(lease, [X("z"), X("b")], nowait: true));
        Assert.Equal(Kind.LockBusy, busy.Kind);
        Assert.Equal([second.Begin.TxnId], _t.Sm.TransactionStatus().Transactions.Select(x => x.TxnId));
        Assert.Equal(second.Begin.TxnId + 1, _t.Begin(lease));
        _t.Sm.VerifyIntegrity();

        // Kept in snapshots like any lock.
        var hash = _t.Sm.Hash();
        using var stream = new MemoryStream();
        _t.Sm.WriteSnapshot(stream);
        stream.Position = 0;
        Assert.Equal(hash, StateMachine.ReadSnapshot(stream).Hash());
    }
}
