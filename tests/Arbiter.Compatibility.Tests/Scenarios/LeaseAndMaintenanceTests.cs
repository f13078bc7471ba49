using Arbiter.Compatibility.Tests.Fixtures;
using Arbiter.Protocol.Etcd;
using Arbiter.Protocol.Mvcc;
using Google.Protobuf;

namespace Arbiter.Compatibility.Tests.Scenarios;

/// <summary>
/// Leases over time (expiry deletes keys, keep-alives prevent it) and the Maintenance/Cluster answers
/// that tools rely on.
/// </summary>
public abstract class LeaseAndMaintenanceTests(ServerFixture target, ITestOutputHelper output) : ScenarioBase(target, output)
{
    private static long _nextLeaseId = 0x6100_0000;

    [Fact]
    public Task ExpiredLeaseDeletesItsKeysWithDeleteEvents() => Guard(async () =>
    {
        var id = Interlocked.Increment(ref _nextLeaseId);
        var granted = await Target.Lease.LeaseGrantAsync(new LeaseGrantRequest { ID = id, TTL = 2 });
        Assert.Equal(2, granted.TTL);
        await Target.Kv.PutAsync(new PutRequest { Key = Key("k1"), Value = Utf8("v"), Lease = id });
        var revision = (await Target.Kv.PutAsync(new PutRequest { Key = Key("k2"), Value = Utf8("v"), Lease = id })).Header.Revision;

        await using var watch = new WatchStream(Target.Channel);
        await watch.CreateAsync(new WatchCreateRequest { Key = Key(string.Empty), RangeEnd = Key("~"), StartRevision = revision + 1 });
        Assert.True((await watch.ReadAsync(Deadline)).Created);

        // Both deletes arrive in one revision once the lease expires (TTL 2 s; the deadline leaves slack).
        var deletes = await watch.ReadEventsAsync(2, Deadline);
        Assert.All(deletes, e => Assert.Equal(Event.Types.EventType.Delete, e.Type));
        Assert.Equal([Key("k1"), Key("k2")], deletes.Select(e => e.Kv.Key).Order(ByteStringComparer.Instance));
        Assert.Equal(deletes[0].Kv.ModRevision, deletes[1].Kv.ModRevision);

        Assert.Equal(-1, (await Target.Lease.LeaseTimeToLiveAsync(new LeaseTimeToLiveRequest { ID = id })).TTL);
        Assert.Empty((await Target.Kv.RangeAsync(new RangeRequest { Key = Key(string.Empty), RangeEnd = Key("~") })).Kvs);
    });

    [Fact]
    public Task KeepAlivesKeepAShortLeaseAlive() => Guard(async () =>
    {
        var id = Interlocked.Increment(ref _nextLeaseId);
        await Target.Lease.LeaseGrantAsync(new LeaseGrantRequest { ID = id, TTL = 2 });
        await Target.Kv.PutAsync(new PutRequest { Key = Key("kept"), Value = Utf8("v"), Lease = id });

        using var stream = Target.Lease.LeaseKeepAlive(deadline: DateTime.UtcNow.Add(Deadline));
        var until = DateTime.UtcNow.AddSeconds(5);
        while (DateTime.UtcNow < until)
        {
            await stream.RequestStream.WriteAsync(new LeaseKeepAliveRequest { ID = id });
            Assert.True(await stream.ResponseStream.MoveNext(CancellationToken.None));
            Assert.Equal((id, 2L), (stream.ResponseStream.Current.ID, stream.ResponseStream.Current.TTL));
            await Task.Delay(500);
        }

        await stream.RequestStream.CompleteAsync();
        // 5 s is well past the 2 s TTL: only the keep-alives explain the key still being there.
        Assert.Single((await Target.Kv.RangeAsync(new RangeRequest { Key = Key("kept") })).Kvs);
        var timeToLive = await Target.Lease.LeaseTimeToLiveAsync(new LeaseTimeToLiveRequest { ID = id, Keys = true });
        Assert.Equal((2L, Key("kept")), (timeToLive.GrantedTTL, timeToLive.Keys.Single()));
        Assert.InRange(timeToLive.TTL, 0, 2);
        await Target.Lease.LeaseRevokeAsync(new LeaseRevokeRequest { ID = id });
    });

    [Fact]
    public Task StatusMemberListAndAlarms() => Guard(async () =>
    {
        var status = await Target.Maintenance.StatusAsync(new StatusRequest());
        Assert.False(string.IsNullOrEmpty(status.Version));
        Assert.NotEqual(0UL, status.Header.MemberId);
        // A single server leads itself; on a cluster the fixture's endpoint is a follower that knows the leader.
        if (Target.EndpointIsLeader)
        {
            Assert.Equal(status.Header.MemberId, status.Leader);
        }
        else
        {
            Assert.NotEqual(0UL, status.Leader);
            Assert.NotEqual(status.Header.MemberId, status.Leader);
        }

        Assert.True(status.DbSize > 0);
        Assert.True(status.RaftIndex > 0);
        Assert.True(status.RaftTerm > 0);
        Assert.False(status.IsLearner);
        Assert.Empty(status.Errors);

        var members = await new Cluster.ClusterClient(Target.Invoker).MemberListAsync(new MemberListRequest());
        Assert.Equal(Target.ClusterSize, members.Members.Count);
        Assert.Contains(members.Members, m => m.ID == status.Leader);
        var member = Assert.Single(members.Members, m => m.ID == status.Header.MemberId);
        Assert.Equal((status.Header.MemberId, Target.Server.Name, false), (member.ID, member.Name, member.IsLearner));
        Assert.Equal([Target.Endpoint], member.ClientURLs);
        Assert.Equal(status.Header.ClusterId, members.Header.ClusterId);

        var alarms = await Target.Maintenance.AlarmAsync(new AlarmRequest { Action = AlarmRequest.Types.AlarmAction.Get });
        Assert.Empty(alarms.Alarms);

        await Target.Maintenance.DefragmentAsync(new DefragmentRequest());
        Assert.Equal(status.Header.MemberId, (await Target.Maintenance.StatusAsync(new StatusRequest())).Header.MemberId);
    });

    private ByteString Key(string name) => ByteString.CopyFromUtf8(Prefix + name);

    private static ByteString Utf8(string text) => ByteString.CopyFromUtf8(text);

    private sealed class ByteStringComparer : IComparer<ByteString>
    {
        public static readonly ByteStringComparer Instance = new();

        public int Compare(ByteString? x, ByteString? y) => string.CompareOrdinal(x?.ToStringUtf8(), y?.ToStringUtf8());
    }
}

[Trait("Target", "Etcd")]
public sealed class LeaseAndMaintenanceTestsOnEtcd(EtcdFixture target, ITestOutputHelper output)
    : LeaseAndMaintenanceTests(target, output), IClassFixture<EtcdFixture>;

[Trait("Target", "Arbiter")]
public sealed class LeaseAndMaintenanceTestsOnArbiter(ArbiterFixture target, ITestOutputHelper output)
    : LeaseAndMaintenanceTests(target, output), IClassFixture<ArbiterFixture>;

[Trait("Target", "ArbiterCluster")]
[Collection(ArbiterClusterCollection.Name)]
public sealed class LeaseAndMaintenanceTestsOnArbiterCluster(ArbiterClusterFixture target, ITestOutputHelper output)
    : LeaseAndMaintenanceTests(target, output);
