using Arbiter.Protocol.Etcd;
using Google.Protobuf;
using static Arbiter.Core.Tests.Harness;

namespace Arbiter.Core.Tests;

public class ValidatorTests
{
    private static readonly CoreLimits Limits = new() { TxnOpsMax = 4, KeySizeBytesMax = 16, ValueSizeBytesMax = 32, RequestSizeBytesMax = 150 };

    private static TxnRequest Txn(IEnumerable<RequestOp> success, IEnumerable<RequestOp>? failure = null)
    {
        var t = new TxnRequest();
        t.Success.AddRange(success);
        t.Failure.AddRange(failure ?? []);
        return t;
    }

    [Fact]
    public void TooManyOpsCountsTheWidestOfComparesSuccessFailure()
    {
        var ok = Txn([OpPut("a", ""), OpPut("b", ""), OpPut("c", ""), OpPut("d", "")]);
        Assert.Null(RequestValidator.Validate(ok, Limits));
        var tooMany = Txn([OpPut("a", ""), OpPut("b", ""), OpPut("c", ""), OpPut("d", ""), OpPut("e", "")]);
        Assert.Equal(EtcdError.TooManyOps, RequestValidator.Validate(tooMany, Limits));
        var compares = new TxnRequest();
        for (var i = 0; i < 5; i++)
        {
            compares.Compare.Add(CmpVersion("k" + i, Compare.Types.CompareResult.Equal, 0));
        }

        Assert.Equal(EtcdError.TooManyOps, RequestValidator.Validate(compares, Limits));
    }

    [Fact]
    public void NestedTxnGetsTheRemainingBudget()
    {
        // Outer has 2 ops, so a nested txn may use 4 - 2 = 2.
        var nested = Txn([OpPut("x", ""), OpPut("y", ""), OpPut("z", "")]);
        var outer = Txn([OpPut("a", ""), OpTxn(nested)]);
        Assert.Equal(EtcdError.TooManyOps, RequestValidator.Validate(outer, Limits));
    }

    [Fact]
    public void DuplicatePutsAndPutsInDeletesAreRefused()
    {
        Assert.Equal(EtcdError.DuplicateKey, RequestValidator.Validate(Txn([OpPut("a", "1"), OpPut("a", "2")]), Limits));
        Assert.Equal(EtcdError.DuplicateKey, RequestValidator.Validate(Txn([OpPut("b", "1"), OpDelete("a", "c")]), Limits));
        Assert.Equal(EtcdError.DuplicateKey, RequestValidator.Validate(Txn([OpPut("a", "1"), OpDelete("a")]), Limits));
        Assert.Null(RequestValidator.Validate(Txn([OpPut("c", "1"), OpDelete("a", "c")]), Limits)); // end is exclusive
        Assert.Null(RequestValidator.Validate(Txn([OpDelete("a", "c"), OpDelete("b", "d")]), Limits)); // deletes may overlap
        Assert.Null(RequestValidator.Validate(Txn([OpPut("a", "1")], [OpPut("a", "2")]), Limits)); // branches are separate
    }

    [Fact]
    public void NestedDuplicateRules()
    {
        // A nested txn putting the same key in then and else is fine.
        var bothBranches = Txn([OpPut("k", "1")], [OpPut("k", "2")]);
        Assert.Null(RequestValidator.Validate(Txn([OpTxn(bothBranches)]), Limits));
        // ...but not if the outer level also puts it.
        Assert.Equal(EtcdError.DuplicateKey, RequestValidator.Validate(Txn([OpPut("k", "0"), OpTxn(bothBranches)]), Limits));
        // An outer delete covers nested puts.
        Assert.Equal(EtcdError.DuplicateKey, RequestValidator.Validate(Txn([OpDelete("a", "z"), OpTxn(bothBranches)]), Limits));
        // A nested delete covers outer puts.
        var nestedDelete = Txn([OpDelete("k")]);
        Assert.Equal(EtcdError.DuplicateKey, RequestValidator.Validate(Txn([OpPut("k", "0"), OpTxn(nestedDelete)]), Limits));
        // Two nested txns putting the same key.
        var other = Txn([OpPut("k", "9")]);
        Assert.Equal(EtcdError.DuplicateKey, RequestValidator.Validate(Txn([OpTxn(other), OpTxn(bothBranches)]), Limits));
    }

    [Fact]
    public void EmptyKeysAndEmptyOps()
    {
        Assert.Equal(EtcdError.EmptyKey, RequestValidator.Validate(new RangeRequest(), Limits));
        Assert.Equal(EtcdError.EmptyKey, RequestValidator.Validate(new DeleteRangeRequest(), Limits));
        Assert.Equal(EtcdError.EmptyKey, RequestValidator.Validate(Txn([OpPut("", "1")]), Limits));
        var emptyCompare = new TxnRequest();
        emptyCompare.Compare.Add(new Compare());
        Assert.Equal(EtcdError.EmptyKey, RequestValidator.Validate(emptyCompare, Limits));
        Assert.Equal(EtcdError.KeyNotFound, RequestValidator.Validate(Txn([new RequestOp()]), Limits));
    }

    [Fact]
    public void InvalidEnumsAreInvalidArgument()
    {
        var badResult = new TxnRequest();
        badResult.Compare.Add(new Compare { Key = B("a"), Result = (Compare.Types.CompareResult)9 });
        Assert.Equal(CoreErrors.InvalidCompareResult, RequestValidator.Validate(badResult, Limits));
        var badTarget = new TxnRequest();
        badTarget.Compare.Add(new Compare { Key = B("a"), Target = (Compare.Types.CompareTarget)9 });
        Assert.Equal(CoreErrors.InvalidCompareTarget, RequestValidator.Validate(badTarget, Limits));
        var badSort = Txn([new RequestOp { RequestRange = new RangeRequest { Key = B("a"), SortOrder = (RangeRequest.Types.SortOrder)3 } }]);
        Assert.Equal(CoreErrors.InvalidSortOrder, RequestValidator.Validate(badSort, Limits));
        Assert.Equal(ErrorStatusCode.InvalidArgument, CoreErrors.InvalidSortOrder.StatusCode);
    }

    [Fact]
    public void SizesAreRequestTooLarge()
    {
        Assert.Equal(EtcdError.RequestTooLarge, RequestValidator.Validate(new PutRequest { Key = B(new string('k', 17)) }, Limits));
        Assert.Equal(EtcdError.RequestTooLarge, RequestValidator.Validate(new PutRequest { Key = B("k"), Value = B(new string('v', 33)) }, Limits));
        Assert.Null(RequestValidator.Validate(new PutRequest { Key = B("k"), Value = B(new string('v', 32)) }, Limits));
        var big = Txn(Enumerable.Range(0, 4).Select(i => OpPut("k" + i, new string('v', 30))));
        Assert.Equal(EtcdError.RequestTooLarge, RequestValidator.Validate(big, Limits));
        var nestedBigValue = Txn([OpTxn(Txn([OpPut("k", new string('v', 33))]))]);
        Assert.Equal(EtcdError.RequestTooLarge, RequestValidator.Validate(nestedBigValue, Limits));
    }

    [Fact]
    public void LeaseTtlBounds()
    {
        var limits = new CoreLimits();
        Assert.Null(RequestValidator.Validate(new LeaseGrantRequest { TTL = -5 }, limits));
        Assert.Null(RequestValidator.Validate(new LeaseGrantRequest { TTL = 9_000_000_000 }, limits));
        Assert.Equal(EtcdError.LeaseTtlTooLarge, RequestValidator.Validate(new LeaseGrantRequest { TTL = 9_000_000_001 }, limits));
    }

    [Fact]
    public void ValidationErrorsAreResultsNotExceptions()
    {
        var h = new Harness(new StateMachine(Limits));
        AssertError(EtcdError.DuplicateKey, h.Error(new Protocol.Internal.Command { Txn = Txn([OpPut("a", "1"), OpPut("a", "2")]) }));
        AssertError(EtcdError.RequestTooLarge, h.Error(new Protocol.Internal.Command { Put = new PutRequest { Key = ByteString.CopyFrom(new byte[17]) } }));
        Assert.Equal(1, h.Sm.Revision);
    }
}
