using Arbiter.Protocol.Etcd;
using Arbiter.Protocol.Internal;
using Arbiter.Protocol.Mvcc;
using static Arbiter.Core.Tests.Harness;

namespace Arbiter.Core.Tests;

public class LeaseTests
{
    [Fact]
    public void GrantClampsShortTtlsAndRefusesTakenIds()
    {
        var h = new Harness();
        var g = h.Grant(1, 10);
        Assert.Equal((10L, 2L), (g.ID, g.TTL));
        Assert.Equal(2, h.Grant(-3, 11).TTL);
        Assert.Equal(2, h.Grant(0, 12).TTL);
        AssertError(EtcdError.LeaseExists, h.Error(new Command { LeaseGrant = new LeaseGrantRequest { ID = 10, TTL = 5 } }));
        AssertError(EtcdError.LeaseTtlTooLarge, h.Error(new Command { LeaseGrant = new LeaseGrantRequest { TTL = 9_000_000_001 } }));
        Assert.Equal([10L, 11L, 12L], h.Sm.LeaseLeases().Leases.Select(l => l.ID));
    }

    [Fact]
    public void IdZeroGetsADeterministicPositiveId()
    {
        var a = new Harness();
        var b = new Harness();
        var idA = a.Grant(10).ID;
        Assert.True(idA > 0);
        Assert.Equal(idA, b.Grant(10).ID);
        Assert.NotEqual(idA, a.Grant(10).ID);
    }

    [Fact]
    public void RevokeDeletesAllKeysInOneRevision()
    {
        var h = new Harness();
        var id = h.Grant(10, 5).ID;
        h.Put("b", "1", id); // rev 2
        h.Put("a", "1", id); // rev 3
        h.Put("c", "1");     // rev 4
        var r = h.Revoke(id);
        Assert.Equal(5, r.Header.Revision);
        Assert.Equal(["a", "b"], h.LastEvents.Select(e => S(e.Kv.Key)));
        Assert.All(h.LastEvents, e => Assert.Equal(Event.Types.EventType.Delete, e.Type));
        Assert.Null(h.Value("a"));
        Assert.Equal("1", h.Value("c"));
        AssertError(EtcdError.LeaseNotFound, h.Error(new Command { LeaseRevoke = new LeaseRevokeRequest { ID = id } }));
    }

    [Fact]
    public void RevokeWithoutKeysKeepsTheRevision()
    {
        var h = new Harness();
        var id = h.Grant(10).ID;
        Assert.Equal(1, h.Revoke(id).Header.Revision);
        Assert.Empty(h.LastEvents);
    }

    [Fact]
    public void MovingAKeyBetweenLeasesDetachesIt()
    {
        var h = new Harness();
        h.Grant(10, 1);
        h.Grant(10, 2);
        h.Put("k", "v", 1);
        h.Put("k", "v", 2);
        Assert.Empty(h.Sm.LeaseTimeToLive(new LeaseTimeToLiveRequest { ID = 1, Keys = true }, h.TimeMs).Keys);
        h.Revoke(1);
        Assert.Equal("v", h.Value("k"));
        h.Put("k", "w"); // no lease: detached from 2
        h.Revoke(2);
        Assert.Equal("w", h.Value("k"));
    }

    [Fact]
    public void TimeToLiveTruncatesTowardZero()
    {
        var h = new Harness { TimeMs = 10_000 };
        h.Grant(10, 1); // deadline 20_000
        h.Put("b", "1", 1);
        h.Put("a", "1", 1);
        var ttl = h.Sm.LeaseTimeToLive(new LeaseTimeToLiveRequest { ID = 1, Keys = true }, 10_500);
        Assert.Equal((9L, 10L), (ttl.TTL, ttl.GrantedTTL));
        Assert.Equal(["a", "b"], ttl.Keys.Select(S));
        Assert.Equal(0, h.Sm.LeaseTimeToLive(new LeaseTimeToLiveRequest { ID = 1 }, 20_900).TTL);
        Assert.Empty(h.Sm.LeaseTimeToLive(new LeaseTimeToLiveRequest { ID = 1 }, 0).Keys);
        Assert.Equal(-1, h.Sm.LeaseTimeToLive(new LeaseTimeToLiveRequest { ID = 99 }, 0).TTL);
    }

    [Fact]
    public void KeepAliveRenewsFromCommandTime()
    {
        var h = new Harness { TimeMs = 1_000 };
        h.Grant(10, 1); // deadline 11_000
        Assert.Equal(11_000, h.Sm.NextLeaseDeadlineMs);
        h.TimeMs = 5_000;
        Assert.Equal(10, h.KeepAlive(1).TTL);
        Assert.Equal(15_000, h.Sm.NextLeaseDeadlineMs);
        AssertError(EtcdError.LeaseNotFound, h.Error(new Command { LeaseKeepAlive = new LeaseKeepAliveRequest { ID = 2 } }));
        h.TimeMs = 15_000; // at the deadline the lease is expired and cannot be renewed
        AssertError(EtcdError.LeaseNotFound, h.Error(new Command { LeaseKeepAlive = new LeaseKeepAliveRequest { ID = 1 } }));
    }

    [Fact]
    public void ExpireRevokesDueLeasesEachInItsOwnRevisionAscendingById()
    {
        var h = new Harness { TimeMs = 0 };
        h.Grant(5, 30);
        h.Grant(3, 20);
        h.Grant(100, 10);
        h.Put("k30", "v", 30); // rev 2
        h.Put("k20", "v", 20); // rev 3
        h.TimeMs = 2_999;
        Assert.Empty(h.Expire().ExpiredLeaseIds);
        h.TimeMs = 5_000;
        var result = h.Expire();
        Assert.Equal([20L, 30L], result.ExpiredLeaseIds);
        Assert.Equal([(4L, "k20"), (5L, "k30")], h.LastEvents.Select(e => (e.Kv.ModRevision, S(e.Kv.Key))));
        Assert.Equal([10L], h.Sm.LeaseLeases().Leases.Select(l => l.ID));
    }

    [Fact]
    public void ExpireHonoursTheLimit()
    {
        var h = new Harness(new StateMachine(new CoreLimits { LeasesExpiredPerCommandMax = 2 })) { TimeMs = 0 };
        for (var id = 1; id <= 5; id++)
        {
            h.Grant(10 - id, id); // lease 5 has the earliest deadline
        }

        h.TimeMs = 100_000;
        Assert.Equal([4L, 5L], h.Expire().ExpiredLeaseIds);
        Assert.Equal([3L], h.Expire(max: 1).ExpiredLeaseIds);
        Assert.Equal(2, h.Sm.LeaseCount);
    }

    [Fact]
    public void PromoteRenewsEveryLeaseFromCommandTime()
    {
        var h = new Harness { TimeMs = 0 };
        h.Grant(5, 1);
        h.Grant(50, 2);
        h.TimeMs = 1_000_000;
        var r = Ok(h.Apply(new Command { LeasePromote = new LeasePromote() })).LeasePromote;
        Assert.Equal(2, r.LeasesRenewed);
        Assert.Equal(1_005_000, h.Sm.NextLeaseDeadlineMs);
        Assert.Equal(50, h.Sm.LeaseTimeToLive(new LeaseTimeToLiveRequest { ID = 2 }, 1_000_000).TTL);
    }
}

public class LeaseIdChoiceTests
{
    [Fact]
    public void IdZeroProbesPastTakenIds()
    {
        var probe = new Harness();
        probe.Apply(new Command { Put = new PutRequest { Key = B("x") } }); // index 1
        var wouldGet = probe.Grant(10).ID;                                     // index 2

        var h = new Harness();
        h.Grant(10, wouldGet); // index 1 takes the id index 2 would choose
        var chosen = h.Grant(10).ID;
        Assert.NotEqual(wouldGet, chosen);
        Assert.True(chosen > 0);
    }
}
