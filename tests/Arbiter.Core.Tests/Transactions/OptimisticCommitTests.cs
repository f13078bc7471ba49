using Arbiter.Protocol.Etcd;
using static Arbiter.Core.Tests.Harness;
using Kind = Arbiter.Protocol.Transactions.TransactionError.Types.Kind;

namespace Arbiter.Core.Tests.Transactions;

/// <summary>Optimistic commits validated against the MVCC history: read ranges, inserts, deletes, idempotency.</summary>
public class OptimisticCommitTests
{
    private readonly TxnDriver _t = new(new Harness());

    private long Seed()
    {
        _t.H.Put("acct/1", "100");
        _t.H.Put("acct/2", "100");
        _t.H.Put("other", "x");
        return _t.Sm.Revision;
    }

    [Theory]
    [InlineData("update")]
    [InlineData("insert")]
    [InlineData("delete")]
    public void AChangeInsideAReadRangeFailsTheCommitAndNamesTheKey(string change)
    {
        var readRevision = Seed();
        var key = change switch
        {
            "update" => "acct/1",
            "insert" => "acct/3",
            _ => "acct/2",
        };
        if (change == "delete")
        {
            _t.H.Delete(key);
        }
        else
        {
            _t.H.Put(key, "50");
        }

        var changedAt = _t.Sm.Revision;
        var r = _t.Optimistic(readRevision, [("acct/", "acct0")], [OpPut("acct/1", "0")]);
        var detail = TxnDriver.Detail(r);
        Assert.Equal(Kind.Conflict, detail.Kind);
        Assert.Equal(key, S(detail.Key));
        Assert.Equal(changedAt, detail.Revision);
        Assert.Equal((int)ErrorStatusCode.Aborted, r.Error.StatusCode);
        Assert.Contains(key, r.Error.Message, StringComparison.Ordinal);
        Assert.Equal(changedAt, _t.Sm.Revision);
        Assert.Equal(1, _t.Sm.TransactionStatus().Counters.OptimisticConflicts);
    }

    [Fact]
    public void ChangesOutsideTheReadRangesDoNotConflict()
    {
        var readRevision = Seed();
        _t.H.Put("other", "y");
        _t.H.Put("acct0", "edge");      // just past the range end
        _t.H.Put("acct.", "before");    // just before the range start
        var ok = Harness.Ok(_t.Optimistic(readRevision, [("acct/", "acct0"), ("zzz", null)], [OpPut("acct/1", "90"), OpPut("acct/2", "110")])).TxnOptimisticCommit;
        Assert.Equal(_t.Sm.Revision, ok.Revision);
        Assert.Equal("90", _t.H.Value("acct/1"));
        Assert.Equal(2, _t.H.LastEvents.Count);
    }

    [Fact]
    public void ARetriedCommitWithItsIdempotencyKeyAppliesOnce()
    {
        var readRevision = Seed();
        var first = Harness.Ok(_t.Optimistic(readRevision, [("acct/1", null)], [OpPut("acct/1", "101")], "transfer-42")).TxnOptimisticCommit;
        var revision = _t.Sm.Revision;
        // The client never saw the answer (timeout, leader change) and sends the same commit again:
        // without the key it would now conflict (acct/1 changed); with it, the first result comes back.
        var again = Harness.Ok(_t.Optimistic(readRevision, [("acct/1", null)], [OpPut("acct/1", "101")], "transfer-42")).TxnOptimisticCommit;
        Assert.True(again.Duplicate);
        Assert.Equal(first.Revision, again.Revision);
        Assert.Equal(revision, _t.Sm.Revision);
        Assert.Equal(Kind.Conflict, TxnDriver.Detail(_t.Optimistic(readRevision, [("acct/1", null)], [OpPut("acct/1", "101")])).Kind);
    }

    [Fact]
    public void AWriteUnderAnotherTransactionsLockIsRefused()
    {
        var readRevision = Seed();
        var lease = _t.Lease();
        var holder = _t.Begin(lease);
        _t.Granted(holder, "acct/1", exclusive: false);
        var r = _t.Optimistic(readRevision, [], [OpPut("acct/1", "0")]);
        Assert.Equal(Kind.LockBusy, TxnDriver.Detail(r).Kind);
        Assert.Equal("100", _t.H.Value("acct/1"));
    }

    [Fact]
    public void BadReadRevisionsAndRangesAreRefused()
    {
        var readRevision = Seed();
        AssertError(EtcdError.FutureRevision, _t.Optimistic(readRevision + 5, [], [OpPut("a", "b")]).Error);
        Assert.Contains("read_revision", _t.Optimistic(0, [], [OpPut("a", "b")]).Error.Message, StringComparison.Ordinal);
        Assert.Contains("inverted", _t.Optimistic(readRevision, [("b", "a")], []).Error.Message, StringComparison.Ordinal);
        AssertError(EtcdError.EmptyKey, _t.Optimistic(readRevision, [("", null)], []).Error);
        Assert.Contains("idempotency_key", _t.Optimistic(readRevision, [], [], new string('x', 65)).Error.Message, StringComparison.Ordinal);
        _t.H.Put("acct/1", "1");
        _t.H.Compact(_t.Sm.Revision);
        AssertError(EtcdError.Compacted, _t.Optimistic(readRevision, [], [OpPut("a", "b")]).Error);
        Assert.Null(_t.H.Value("a"));
    }
}
