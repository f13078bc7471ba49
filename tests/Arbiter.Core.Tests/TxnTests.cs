using Arbiter.Protocol.Etcd;
using Arbiter.Protocol.Internal;
using Google.Protobuf;
using static Arbiter.Core.Tests.Harness;
using Result = Arbiter.Protocol.Etcd.Compare.Types.CompareResult;
using Target = Arbiter.Protocol.Etcd.Compare.Types.CompareTarget;

namespace Arbiter.Core.Tests;

public class TxnTests
{
    [Fact]
    public void TxnIsOneRevisionAndReadsSeeEarlierWrites()
    {
        var h = new Harness();
        h.Put("a", "0"); // rev 2
        var txn = new TxnRequest();
        txn.Success.Add(OpGet("a"));
        txn.Success.Add(OpPut("a", "1"));
        txn.Success.Add(OpGet("a"));
        txn.Success.Add(OpPut("b", "2"));
        txn.Success.Add(OpDelete("nothing"));
        var r = h.Txn(txn);
        Assert.True(r.Succeeded);
        Assert.Equal(3, r.Header.Revision);
        Assert.Equal(3, h.Sm.Revision);
        // Inner headers as etcd fills them: a range before any write sees the old revision.
        Assert.Equal(2, r.Responses[0].ResponseRange.Header.Revision);
        Assert.Equal("0", S(r.Responses[0].ResponseRange.Kvs[0].Value));
        Assert.Equal(3, r.Responses[1].ResponsePut.Header.Revision);
        Assert.Equal(3, r.Responses[2].ResponseRange.Header.Revision);
        Assert.Equal("1", S(r.Responses[2].ResponseRange.Kvs[0].Value));
        Assert.Equal(3, r.Responses[4].ResponseDeleteRange.Header.Revision); // changes pending → write revision
        Assert.Equal(2, h.LastEvents.Count);
        Assert.All(h.LastEvents, e => Assert.Equal(3, e.Kv.ModRevision));
    }

    [Fact]
    public void ReadOnlyOrNoOpTxnDoesNotAdvanceRevision()
    {
        var h = new Harness();
        h.Put("a", "0");
        var txn = new TxnRequest();
        txn.Success.Add(OpDelete("zz"));
        var r = h.Txn(txn);
        Assert.Equal(2, r.Header.Revision);
        Assert.Equal(2, r.Responses[0].ResponseDeleteRange.Header.Revision);
        Assert.Equal(2, h.Sm.Revision);

        var ro = new TxnRequest();
        ro.Success.Add(OpGet("a"));
        Assert.True(StateMachine.IsReadOnlyTxn(ro));
        Assert.Equal("0", S(h.Sm.ReadOnlyTxn(ro).Responses[0].ResponseRange.Kvs[0].Value));
    }

    [Fact]
    public void ComparesChooseTheBranch()
    {
        var h = new Harness();
        h.Put("a", "x");
        var txn = new TxnRequest();
        txn.Compare.Add(CmpValue("a", Result.Equal, "x"));
        txn.Compare.Add(CmpVersion("a", Result.Greater, 0));
        txn.Success.Add(OpPut("ok", "1"));
        txn.Failure.Add(OpPut("fail", "1"));
        Assert.True(h.Txn(txn).Succeeded);
        Assert.Equal("1", h.Value("ok"));

        txn.Compare[0] = CmpValue("a", Result.NotEqual, "x");
        Assert.False(h.Txn(txn).Succeeded);
        Assert.Equal("1", h.Value("fail"));
    }

    [Theory]
    [InlineData(Target.Version, Result.Equal, true)]
    [InlineData(Target.Create, Result.Equal, true)]
    [InlineData(Target.Mod, Result.Equal, true)]
    [InlineData(Target.Lease, Result.Equal, true)]
    [InlineData(Target.Version, Result.Less, false)]
    [InlineData(Target.Value, Result.Equal, false)]
    [InlineData(Target.Value, Result.NotEqual, false)]
    public void MissingKeyComparesAsZeroExceptValueWhichFails(Target target, Result result, bool expected)
    {
        var h = new Harness();
        var compare = new Compare { Key = B("missing"), Target = target, Result = result };
        switch (target)
        {
            case Target.Version: compare.Version = 0; break;
            case Target.Create: compare.CreateRevision = 0; break;
            case Target.Mod: compare.ModRevision = 0; break;
            case Target.Lease: compare.Lease = 0; break;
            case Target.Value: compare.Value = B(""); break;
        }

        var txn = new TxnRequest();
        txn.Compare.Add(compare);
        Assert.Equal(expected, h.Txn(txn).Succeeded);
    }

    [Fact]
    public void RangeCompareRequiresEveryKeyToMatch()
    {
        var h = new Harness();
        h.Put("k1", "a");
        h.Put("k2", "a");
        var txn = new TxnRequest();
        txn.Compare.Add(new Compare { Key = B("k"), RangeEnd = Prefix("k"), Target = Target.Value, Result = Result.Equal, Value = B("a") });
        Assert.True(h.Txn(txn).Succeeded);
        h.Put("k3", "b");
        Assert.False(h.Txn(txn).Succeeded);
        var cmpMod = new TxnRequest();
        cmpMod.Compare.Add(new Compare { Key = B("k"), RangeEnd = Prefix("k"), Target = Target.Mod, Result = Result.Less, ModRevision = 5 });
        Assert.True(h.Txn(cmpMod).Succeeded); // mods 2, 3, 4: all below 5
        cmpMod.Compare[0].ModRevision = 4;
        Assert.False(h.Txn(cmpMod).Succeeded); // k3's mod 4 is not below 4
    }

    [Fact]
    public void TargetUnionMismatchCountsAsZero()
    {
        var h = new Harness();
        h.Put("a", "x");
        var txn = new TxnRequest();
        // target MOD but the union carries a version: etcd compares mod_revision with 0.
        txn.Compare.Add(new Compare { Key = B("a"), Target = Target.Mod, Result = Result.Greater, Version = 100 });
        Assert.True(h.Txn(txn).Succeeded);
    }

    [Fact]
    public void NestedTxnComparesSeeThePreTxnStateAndInnerHeaderIsEmpty()
    {
        var h = new Harness();
        h.Put("a", "1"); // rev 2
        var inner = new TxnRequest();
        inner.Compare.Add(CmpValue("a", Result.Equal, "1")); // still "1" before the txn
        inner.Success.Add(OpPut("inner", "yes"));
        inner.Failure.Add(OpPut("inner", "no"));
        var outer = new TxnRequest();
        outer.Success.Add(OpPut("a", "2"));
        outer.Success.Add(OpTxn(inner));
        var r = h.Txn(outer);
        Assert.Equal("yes", h.Value("inner"));
        var nested = r.Responses[1].ResponseTxn;
        Assert.True(nested.Succeeded);
        Assert.NotNull(nested.Header);
        Assert.Equal(0, nested.Header.Revision);
        Assert.Equal(3, nested.Responses[0].ResponsePut.Header.Revision);
        Assert.Equal(3, r.Header.Revision);
    }

    [Fact]
    public void LeaseIsCheckedForEveryPutBeforeAnythingIsApplied()
    {
        var h = new Harness();
        var inner = new TxnRequest();
        inner.Success.Add(OpPut("c", "3", lease: 99));
        var txn = new TxnRequest();
        txn.Success.Add(OpPut("a", "1"));
        txn.Success.Add(OpTxn(inner));
        AssertError(EtcdError.LeaseNotFound, h.Error(new Command { Txn = txn }));
        Assert.Equal(1, h.Sm.Revision);
        Assert.Null(h.Value("a"));
        Assert.Empty(h.LastEvents);
    }

    [Fact]
    public void LeaseInTheUnchosenBranchIsNotChecked()
    {
        var h = new Harness();
        var txn = new TxnRequest();
        txn.Success.Add(OpPut("a", "1"));
        txn.Failure.Add(OpPut("b", "1", lease: 99));
        Assert.True(h.Txn(txn).Succeeded);
    }

    [Fact]
    public void RangeRevisionsInsideTxnAreChecked()
    {
        var h = new Harness();
        h.Put("a", "1");
        var txn = new TxnRequest();
        txn.Success.Add(OpPut("a", "2"));
        txn.Success.Add(new RequestOp { RequestRange = new RangeRequest { Key = B("a"), Revision = 3 } });
        AssertError(EtcdError.FutureRevision, h.Error(new Command { Txn = txn }));
        Assert.Equal(2, h.Sm.Revision);
        h.Put("a", "3");
        h.Compact(3);
        var old = new TxnRequest();
        old.Success.Add(new RequestOp { RequestRange = new RangeRequest { Key = B("a"), Revision = 2 } });
        AssertError(EtcdError.Compacted, h.Error(new Command { Txn = old }));
    }

    [Fact]
    public void IgnoreValuePutAfterGteDeleteIsRefusedNotHalfApplied()
    {
        var h = new Harness();
        h.Put("b", "1");
        var txn = new TxnRequest();
        txn.Success.Add(new RequestOp { RequestDeleteRange = new DeleteRangeRequest { Key = B("a"), RangeEnd = ByteString.CopyFrom(0) } });
        txn.Success.Add(new RequestOp { RequestPut = new PutRequest { Key = B("b"), IgnoreValue = true } });
        Assert.Null(RequestValidator.Validate(txn, new CoreLimits())); // etcd's duplicate check misses "\0" ends
        AssertError(EtcdError.KeyNotFound, h.Error(new Command { Txn = txn }));
        Assert.Equal("1", h.Value("b"));
    }

    [Fact]
    public void PutThenDeleteToEndInOneTxnIsAllowedLikeEtcd()
    {
        var h = new Harness();
        var txn = new TxnRequest();
        txn.Success.Add(OpPut("b", "1"));
        txn.Success.Add(new RequestOp { RequestDeleteRange = new DeleteRangeRequest { Key = B("a"), RangeEnd = ByteString.CopyFrom(0) } });
        var r = h.Txn(txn);
        Assert.Equal(1, r.Responses[1].ResponseDeleteRange.Deleted);
        Assert.Null(h.Value("b"));
        Assert.Equal(2, h.Sm.Revision);
        Assert.Equal(2, h.LastEvents.Count);
        var again = h.ReadEventsAll();
        Assert.Equal(2, again.Count);
    }
}

internal static class HarnessHistoryExtensions
{
    public static List<Protocol.Mvcc.Event> ReadEventsAll(this Harness h) => [.. h.Sm.ReadEvents(1, int.MaxValue).Events];
}
