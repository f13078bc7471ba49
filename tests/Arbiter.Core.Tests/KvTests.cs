using Arbiter.Protocol.Etcd;
using Arbiter.Protocol.Internal;
using Arbiter.Protocol.Mvcc;
using static Arbiter.Core.Tests.Harness;

namespace Arbiter.Core.Tests;

public class KvTests
{
    [Fact]
    public void FreshStoreIsAtRevisionOne()
    {
        var sm = new StateMachine();
        Assert.Equal(1, sm.Revision);
        Assert.Equal(0, sm.CompactRevision);
        Assert.Equal(0, sm.AppliedIndex);
        Assert.Equal(1, sm.Range(new RangeRequest { Key = B("a") }).Header.Revision);
    }

    [Fact]
    public void PutsAdvanceRevisionAndTrackVersions()
    {
        var h = new Harness();
        Assert.Equal(2, h.Put("a", "1").Header.Revision);
        Assert.Equal(3, h.Put("a", "2").Header.Revision);
        var kv = h.Get("a").Kvs.Single();
        Assert.Equal((2L, 3L, 2L), (kv.CreateRevision, kv.ModRevision, kv.Version));
        Assert.Equal("2", S(kv.Value));
    }

    [Fact]
    public void DeleteResetsVersionAndRePutGetsNewCreateRevision()
    {
        var h = new Harness();
        h.Put("a", "1");
        var del = h.Delete("a");
        Assert.Equal(1, del.Deleted);
        Assert.Equal(3, del.Header.Revision);
        h.Put("a", "2");
        var kv = h.Get("a").Kvs.Single();
        Assert.Equal((4L, 4L, 1L), (kv.CreateRevision, kv.ModRevision, kv.Version));
    }

    [Fact]
    public void DeleteOfNothingDoesNotAdvanceRevision()
    {
        var h = new Harness();
        h.Put("a", "1");
        var del = h.Delete("zzz");
        Assert.Equal(0, del.Deleted);
        Assert.Equal(2, del.Header.Revision);
        Assert.Equal(2, h.Sm.Revision);
        Assert.Empty(h.LastEvents);
    }

    [Fact]
    public void PutReturnsPrevKvOnlyWhenAsked()
    {
        var h = new Harness();
        Assert.Null(h.Put("a", "1", prevKv: true).PrevKv);
        Assert.Equal("1", S(h.Put("a", "2", prevKv: true).PrevKv.Value));
        Assert.Null(h.Put("a", "3").PrevKv);
    }

    [Fact]
    public void IgnoreValueAndIgnoreLeaseKeepTheOldOnes()
    {
        var h = new Harness();
        var lease = h.Grant(100, 7).ID;
        h.Put("a", "v", lease);
        Ok(h.Apply(new Command { Put = new PutRequest { Key = B("a"), IgnoreValue = true, IgnoreLease = true } }));
        var kv = h.Get("a").Kvs.Single();
        Assert.Equal(("v", 7L, 2L), (S(kv.Value), kv.Lease, kv.Version));
        Ok(h.Apply(new Command { Put = new PutRequest { Key = B("a"), Value = B("w"), IgnoreLease = true } }));
        kv = h.Get("a").Kvs.Single();
        Assert.Equal(("w", 7L), (S(kv.Value), kv.Lease));
    }

    [Fact]
    public void IgnoreValueOnMissingKeyIsKeyNotFound()
    {
        var h = new Harness();
        AssertError(EtcdError.KeyNotFound, h.Error(new Command { Put = new PutRequest { Key = B("a"), IgnoreValue = true } }));
        AssertError(EtcdError.ValueProvided, h.Error(new Command { Put = new PutRequest { Key = B("a"), Value = B("x"), IgnoreValue = true } }));
        AssertError(EtcdError.LeaseProvided, h.Error(new Command { Put = new PutRequest { Key = B("a"), Lease = 5, IgnoreLease = true } }));
        AssertError(EtcdError.EmptyKey, h.Error(new Command { Put = new PutRequest { Value = B("x") } }));
        Assert.Equal(1, h.Sm.Revision);
    }

    [Fact]
    public void PutWithUnknownLeaseIsLeaseNotFound()
    {
        var h = new Harness();
        AssertError(EtcdError.LeaseNotFound, h.Error(new Command { Put = new PutRequest { Key = B("a"), Lease = 42 } }));
        Assert.Equal(1, h.Sm.Revision);
    }

    [Fact]
    public void DeleteRangeReturnsPrevKvsInKeyOrder()
    {
        var h = new Harness();
        h.Put("b", "2");
        h.Put("a", "1");
        h.Put("c", "3");
        var del = h.Delete("a", "c", prevKv: true);
        Assert.Equal(2, del.Deleted);
        Assert.Equal(["a", "b"], del.PrevKvs.Select(kv => S(kv.Key)));
        Assert.Equal(5, del.Header.Revision);
        Assert.Equal(2, h.LastEvents.Count);
        Assert.All(h.LastEvents, e => Assert.Equal(Event.Types.EventType.Delete, e.Type));
        Assert.All(h.LastEvents, e => Assert.Equal(5, e.Kv.ModRevision));
    }

    [Fact]
    public void EventsCarryPrevKv()
    {
        var h = new Harness();
        h.Put("a", "1");
        Assert.Null(h.LastEvents.Single().PrevKv);
        h.Put("a", "2");
        var e = h.LastEvents.Single();
        Assert.Equal(Event.Types.EventType.Put, e.Type);
        Assert.Equal("1", S(e.PrevKv.Value));
        h.Delete("a");
        e = h.LastEvents.Single();
        Assert.Equal(Event.Types.EventType.Delete, e.Type);
        Assert.Equal(4, e.Kv.ModRevision);
        Assert.Equal("a", S(e.Kv.Key));
        Assert.True(e.Kv.Value.IsEmpty);
        Assert.Equal("2", S(e.PrevKv.Value));
    }

    [Fact]
    public void AppliedIndexMustIncrease()
    {
        var sm = new StateMachine();
        sm.Apply(5, new Command { Put = new PutRequest { Key = B("a") } });
        Assert.Equal(5, sm.AppliedIndex);
        Assert.Throws<InvalidOperationException>(() => sm.Apply(5, new Command { Put = new PutRequest { Key = B("a") } }));
    }

    [Fact]
    public void EmptyCommandIsAnError()
    {
        var h = new Harness();
        AssertError(CoreErrors.EmptyCommand, h.Error(new Command()));
    }
}
