using Arbiter.Protocol.Etcd;
using Google.Protobuf;
using static Arbiter.Core.Tests.Harness;
using SortOrder = Arbiter.Protocol.Etcd.RangeRequest.Types.SortOrder;
using SortTarget = Arbiter.Protocol.Etcd.RangeRequest.Types.SortTarget;

namespace Arbiter.Core.Tests;

public class RangeTests
{
    private static Harness Abc()
    {
        var h = new Harness();
        h.Put("b", "x"); // rev 2
        h.Put("a", "z"); // rev 3
        h.Put("c", "y"); // rev 4
        h.Put("a", "w"); // rev 5
        h.Put("ab", "v"); // rev 6
        return h;
    }

    private static List<string> Keys(RangeResponse r) => [.. r.Kvs.Select(kv => S(kv.Key))];

    [Fact]
    public void RangeEndForms()
    {
        var h = Abc();
        Assert.Equal(["a"], Keys(h.Get("a")));
        Assert.Equal(["a", "ab", "b"], Keys(h.Get("a", "c")));
        Assert.Equal(["a", "ab"], Keys(h.Sm.Range(new RangeRequest { Key = B("a"), RangeEnd = Prefix("a") })));
        Assert.Equal(["b", "c"], Keys(h.Sm.Range(new RangeRequest { Key = B("b"), RangeEnd = ByteString.CopyFrom(0) })));
        Assert.Equal(["a", "ab", "b", "c"], Keys(h.Sm.Range(new RangeRequest { Key = ByteString.CopyFrom(0), RangeEnd = ByteString.CopyFrom(0) })));
        Assert.Empty(Keys(h.Get("c", "a"))); // end before start: nothing
        Assert.Empty(Keys(h.Get("zz")));
    }

    [Fact]
    public void KeysCompareAsUnsignedBytes()
    {
        var h = new Harness();
        h.Apply(new Protocol.Internal.Command { Put = new PutRequest { Key = ByteString.CopyFrom(0xFF), Value = B("hi") } });
        h.Put("a", "lo");
        var all = h.Sm.Range(new RangeRequest { Key = ByteString.CopyFrom(0), RangeEnd = ByteString.CopyFrom(0) });
        Assert.Equal([(byte)'a', (byte)0xFF], all.Kvs.Select(kv => kv.Key[0]));
    }

    [Fact]
    public void LimitKeepsFullCountAndSetsMore()
    {
        var h = Abc();
        var r = h.Sm.Range(new RangeRequest { Key = B("a"), RangeEnd = B("z"), Limit = 2 });
        Assert.Equal(["a", "ab"], Keys(r));
        Assert.Equal(4, r.Count);
        Assert.True(r.More);
        r = h.Sm.Range(new RangeRequest { Key = B("a"), RangeEnd = B("z"), Limit = 4 });
        Assert.False(r.More);
        Assert.Equal(4, r.Count);
    }

    [Fact]
    public void CountOnlyAndKeysOnly()
    {
        var h = Abc();
        var r = h.Sm.Range(new RangeRequest { Key = B("a"), RangeEnd = B("z"), CountOnly = true });
        Assert.Empty(r.Kvs);
        Assert.Equal(4, r.Count);
        r = h.Sm.Range(new RangeRequest { Key = B("a"), RangeEnd = B("z"), KeysOnly = true });
        Assert.All(r.Kvs, kv => Assert.True(kv.Value.IsEmpty));
        Assert.Equal("w", h.Value("a")); // the stored value is untouched
    }

    [Fact]
    public void HistoricalRevisions()
    {
        var h = Abc();
        Assert.Equal("z", S(h.Get("a", revision: 4).Kvs.Single().Value));
        Assert.Empty(h.Get("a", revision: 2).Kvs);
        Assert.Equal(6, h.Get("a", revision: 4).Header.Revision); // header is the current revision
        AssertThrows(EtcdError.FutureRevision, () => h.Get("a", revision: 7));
        h.Compact(4);
        AssertThrows(EtcdError.Compacted, () => h.Get("a", revision: 3));
        Assert.Equal("z", S(h.Get("a", revision: 4).Kvs.Single().Value)); // the compact revision itself is readable
    }

    [Fact]
    public void SortTargetWithoutOrderSortsAscending()
    {
        var h = Abc();
        // mod revisions: a=5, ab=6, b=2, c=4
        var r = h.Sm.Range(new RangeRequest { Key = B("a"), RangeEnd = B("z"), SortTarget = SortTarget.Mod });
        Assert.Equal(["b", "c", "a", "ab"], Keys(r));
        r = h.Sm.Range(new RangeRequest { Key = B("a"), RangeEnd = B("z"), SortTarget = SortTarget.Mod, SortOrder = SortOrder.Descend });
        Assert.Equal(["ab", "a", "c", "b"], Keys(r));
        r = h.Sm.Range(new RangeRequest { Key = B("a"), RangeEnd = B("z"), SortTarget = SortTarget.Key, SortOrder = SortOrder.Descend });
        Assert.Equal(["c", "b", "ab", "a"], Keys(r));
        r = h.Sm.Range(new RangeRequest { Key = B("a"), RangeEnd = B("z"), SortTarget = SortTarget.Value });
        Assert.Equal(["ab", "a", "b", "c"], Keys(r));
    }

    [Fact]
    public void SortTiesKeepKeyOrderBothWays()
    {
        var h = Abc();
        // versions: a=2, ab=1, b=1, c=1
        var r = h.Sm.Range(new RangeRequest { Key = B("a"), RangeEnd = B("z"), SortTarget = SortTarget.Version, SortOrder = SortOrder.Ascend });
        Assert.Equal(["ab", "b", "c", "a"], Keys(r));
        r = h.Sm.Range(new RangeRequest { Key = B("a"), RangeEnd = B("z"), SortTarget = SortTarget.Version, SortOrder = SortOrder.Descend });
        Assert.Equal(["a", "ab", "b", "c"], Keys(r));
    }

    [Fact]
    public void SortThenLimit()
    {
        var h = Abc();
        var r = h.Sm.Range(new RangeRequest { Key = B("a"), RangeEnd = B("z"), SortTarget = SortTarget.Create, SortOrder = SortOrder.Descend, Limit = 1 });
        Assert.Equal(["ab"], Keys(r));
        Assert.True(r.More);
        Assert.Equal(4, r.Count);
    }

    [Fact]
    public void FiltersPruneKvsButNotCount()
    {
        var h = Abc();
        // etcd 3.4 applies min/max filters after fetching; count stays the number of keys in range.
        var r = h.Sm.Range(new RangeRequest { Key = B("a"), RangeEnd = B("z"), MinModRevision = 5 });
        Assert.Equal(["a", "ab"], Keys(r));
        Assert.Equal(4, r.Count);
        Assert.False(r.More);
        r = h.Sm.Range(new RangeRequest { Key = B("a"), RangeEnd = B("z"), MaxCreateRevision = 3, Limit = 1 });
        Assert.Equal(["a"], Keys(r));
        Assert.True(r.More); // a and b pass the filter; more is judged after filtering
        r = h.Sm.Range(new RangeRequest { Key = B("a"), RangeEnd = B("z"), MinCreateRevision = 4, MaxModRevision = 4 });
        Assert.Equal(["c"], Keys(r));
    }

    [Fact]
    public void InvalidRequestsThrow()
    {
        var sm = new StateMachine();
        AssertThrows(EtcdError.EmptyKey, () => sm.Range(new RangeRequest()));
        AssertThrows(CoreErrors.InvalidSortOrder, () => sm.Range(new RangeRequest { Key = B("a"), SortOrder = (SortOrder)7 }));
        AssertThrows(CoreErrors.InvalidSortTarget, () => sm.Range(new RangeRequest { Key = B("a"), SortTarget = (SortTarget)9 }));
    }

    [Fact]
    public void DeletedKeysDisappearButHistoryRemains()
    {
        var h = Abc();
        h.Delete("a", Prefix("a").ToStringUtf8()); // rev 7 deletes a, ab
        Assert.Equal(["b", "c"], Keys(h.Get("a", "z")));
        Assert.Equal(["a", "ab", "b", "c"], Keys(h.Get("a", "z", revision: 6)));
        Assert.Equal(2, h.Get("a", "z").Count);
    }
}

public class RangeQuirkTests
{
    [Fact]
    public void NonKeyTargetWithOrderNoneSortsOnlyTheFirstLimitPlusOneKeys()
    {
        // etcd 3.4 decides "fetch everything" from the request's sort_order (NONE here) before it
        // defaults the order to ASCEND for a non-KEY target: it fetches limit+1 keys in key order,
        // sorts those, then cuts to the limit.
        var h = new Harness();
        h.Put("c", "1"); // mod 2
        h.Put("b", "1"); // mod 3
        h.Put("a", "1"); // mod 4
        var r = h.Sm.Range(new RangeRequest { Key = Harness.B("a"), RangeEnd = Harness.B("z"), Limit = 1, SortTarget = RangeRequest.Types.SortTarget.Mod });
        Assert.Equal("b", Harness.S(r.Kvs.Single().Key)); // of {a, b}, b has the lower mod; c (mod 2) is never seen
        Assert.True(r.More);
        r = h.Sm.Range(new RangeRequest { Key = Harness.B("a"), RangeEnd = Harness.B("z"), Limit = 1, SortTarget = RangeRequest.Types.SortTarget.Mod, SortOrder = RangeRequest.Types.SortOrder.Ascend });
        Assert.Equal("c", Harness.S(r.Kvs.Single().Key));
    }
}
