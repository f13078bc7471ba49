using Arbiter.Client;
using Arbiter.Node;
using Arbiter.Protocol.Etcd;
using Arbiter.Protocol.Mvcc;
using Arbiter.Server.Tests.Infrastructure;
using Google.Protobuf;

namespace Arbiter.Server.Tests;

/// <summary>Lease expiry driven by a manual clock: deterministic, no waiting on real TTLs.</summary>
public sealed class LeaseExpiryTests
{
    private static ByteString B(string s) => ByteString.CopyFromUtf8(s);

    [Fact]
    public async Task ExpiredLeaseDeletesItsKeysInOneRevision()
    {
        var clock = new ManualClock();
        await using var backend = await Backend.StartAsync(overGrpc: false, new NodeOptions { Clock = clock, LeaseCheckIntervalMsMax = 20 });
        var client = backend.Client;
        var lease = await client.LeaseGrantAsync(new LeaseGrantRequest { ID = 42, TTL = 5 });
        Assert.Equal(5, lease.TTL);
        await client.PutAsync(new PutRequest { Key = B("l/a"), Value = B("1"), Lease = 42 });
        await client.PutAsync(new PutRequest { Key = B("l/b"), Value = B("2"), Lease = 42 });

        await using var session = client.OpenWatch();
        await using var responses = session.ReadAllAsync().GetAsyncEnumerator();
        await session.CreateAsync(new WatchCreateRequest { Key = B("l/"), RangeEnd = B("l0") });
        Assert.True(await responses.MoveNextAsync());

        clock.Advance(TimeSpan.FromSeconds(4));
        var ttl = await client.LeaseTimeToLiveAsync(new LeaseTimeToLiveRequest { ID = 42, Keys = true });
        Assert.InRange(ttl.TTL, 0, 1);
        Assert.Equal(2, ttl.Keys.Count);

        clock.Advance(TimeSpan.FromSeconds(2));
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        Assert.True(await responses.MoveNextAsync().AsTask().WaitAsync(cts.Token));
        var deletes = responses.Current.Events;
        Assert.Equal(2, deletes.Count);
        Assert.All(deletes, e => Assert.Equal(Event.Types.EventType.Delete, e.Type));
        Assert.Single(deletes.Select(e => e.Kv.ModRevision).Distinct());

        var gone = await client.LeaseTimeToLiveAsync(new LeaseTimeToLiveRequest { ID = 42 });
        Assert.Equal(-1, gone.TTL);
        var keepAlive = await client.LeaseKeepAliveOnceAsync(new LeaseKeepAliveRequest { ID = 42 });
        Assert.Equal(0, keepAlive.TTL);
    }

    [Fact]
    public async Task KeepAliveRenewsToFullTtl()
    {
        var clock = new ManualClock();
        await using var backend = await Backend.StartAsync(overGrpc: false, new NodeOptions { Clock = clock, LeaseCheckIntervalMsMax = 20 });
        var client = backend.Client;
        await client.LeaseGrantAsync(new LeaseGrantRequest { ID = 7, TTL = 10 });
        clock.Advance(TimeSpan.FromSeconds(8));
        var renewed = await client.LeaseKeepAliveOnceAsync(new LeaseKeepAliveRequest { ID = 7 });
        Assert.Equal(10, renewed.TTL);
        clock.Advance(TimeSpan.FromSeconds(8));
        var ttl = await client.LeaseTimeToLiveAsync(new LeaseTimeToLiveRequest { ID = 7 });
        Assert.InRange(ttl.TTL, 1, 2);
        Assert.Equal(10, ttl.GrantedTTL);
    }

    [Fact]
    public async Task ServerChosenLeaseIdsArePositiveAndDistinct()
    {
        await using var backend = await Backend.StartAsync(overGrpc: true);
        var ids = new HashSet<long>();
        for (var i = 0; i < 20; i++)
        {
            var lease = await backend.Client.LeaseGrantAsync(new LeaseGrantRequest { TTL = 60 });
            Assert.True(lease.ID > 0);
            Assert.True(ids.Add(lease.ID));
        }

        var listed = await backend.Client.LeaseLeasesAsync();
        Assert.Equal(ids.Order(), listed.Leases.Select(l => l.ID).Order());
    }
}
