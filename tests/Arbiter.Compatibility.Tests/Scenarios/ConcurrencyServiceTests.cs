using Arbiter.Compatibility.Tests.Fixtures;
using Arbiter.Protocol.Election;
using Arbiter.Protocol.Etcd;
using Arbiter.Protocol.Lock;
using Google.Protobuf;
using Grpc.Core;

namespace Arbiter.Compatibility.Tests.Scenarios;

/// <summary>
/// The server-side v3lock and v3election services (what jetcd and others call), plus grpc.health.v1.
/// </summary>
public abstract class ConcurrencyServiceTests(ServerFixture target, ITestOutputHelper output) : ScenarioBase(target, output)
{
    private static readonly Marshaller<byte[]> Bytes = Marshallers.Create(b => b, b => b);
    private static long _nextLeaseId = 0x6000_0000;

    private Arbiter.Protocol.Lock.Lock.LockClient Locks => new(Target.Invoker);

    private Arbiter.Protocol.Election.Election.ElectionClient Elections => new(Target.Invoker);

    [Fact]
    public Task LockIsExclusiveAndPassesToTheNextWaiter() => Guard(async () =>
    {
        var name = ByteString.CopyFromUtf8(Prefix + "lock");
        var first = await GrantAsync();
        var second = await GrantAsync();

        var held = await Locks.LockAsync(new LockRequest { Name = name, Lease = first }, deadline: Soon());
        // The lock key is name + "/" + lease id in hex (etcd's concurrency.Mutex).
        Assert.Equal($"{Prefix}lock/{first:x}", held.Key.ToStringUtf8());

        using var waiting = Locks.LockAsync(new LockRequest { Name = name, Lease = second }, deadline: Soon());
        await WaitUntilAsync(async () => (await CountAsync(Prefix + "lock/")) == 2, Deadline, "waiter's key");
        Assert.False(waiting.ResponseAsync.IsCompleted, "second locker got the lock while the first held it");

        var heldCreateRevision = await CreateRevisionAsync(held.Key);
        await Locks.UnlockAsync(new UnlockRequest { Key = held.Key });
        var next = await waiting.ResponseAsync;
        Assert.Equal($"{Prefix}lock/{second:x}", next.Key.ToStringUtf8());
        // Fencing: the new holder's key was created after the old one.
        Assert.True(await CreateRevisionAsync(next.Key) > heldCreateRevision);
        await Locks.UnlockAsync(new UnlockRequest { Key = next.Key });
        Assert.Equal(0, await CountAsync(Prefix + "lock/"));
    });

    [Fact]
    public Task RevokingTheHoldersLeaseReleasesTheLock() => Guard(async () =>
    {
        var name = ByteString.CopyFromUtf8(Prefix + "lease-lock");
        var first = await GrantAsync();
        var second = await GrantAsync();
        await Locks.LockAsync(new LockRequest { Name = name, Lease = first }, deadline: Soon());
        using var waiting = Locks.LockAsync(new LockRequest { Name = name, Lease = second }, deadline: Soon());
        await WaitUntilAsync(async () => (await CountAsync(Prefix + "lease-lock/")) == 2, Deadline, "waiter's key");

        await Target.Lease.LeaseRevokeAsync(new LeaseRevokeRequest { ID = first });
        Assert.Equal($"{Prefix}lease-lock/{second:x}", (await waiting.ResponseAsync).Key.ToStringUtf8());
        await Target.Lease.LeaseRevokeAsync(new LeaseRevokeRequest { ID = second });
    });

    [Fact]
    public Task ElectionCampaignProclaimObserveResign() => Guard(async () =>
    {
        var name = ByteString.CopyFromUtf8(Prefix + "election");
        var noLeader = await Assert.ThrowsAsync<RpcException>(() => Elections.LeaderAsync(new LeaderRequest { Name = name }, deadline: Soon()).ResponseAsync);
        Assert.Equal((StatusCode.Unknown, "election: no leader"), (noLeader.StatusCode, noLeader.Status.Detail));

        var firstLease = await GrantAsync();
        var secondLease = await GrantAsync();
        var first = (await Elections.CampaignAsync(new CampaignRequest { Name = name, Lease = firstLease, Value = Utf8("v1") }, deadline: Soon())).Leader;
        Assert.Equal((name, $"{Prefix}election/{firstLease:x}", firstLease), (first.Name, first.Key.ToStringUtf8(), first.Lease));
        Assert.Equal("v1", (await Elections.LeaderAsync(new LeaderRequest { Name = name })).Kv.Value.ToStringUtf8());

        using var observe = Elections.Observe(new LeaderRequest { Name = name }, deadline: Soon());
        Assert.Equal("v1", (await NextAsync(observe)).Kv.Value.ToStringUtf8());

        await Elections.ProclaimAsync(new ProclaimRequest { Leader = first, Value = Utf8("v1b") });
        Assert.Equal("v1b", (await NextAsync(observe)).Kv.Value.ToStringUtf8());
        Assert.Equal("v1b", (await Elections.LeaderAsync(new LeaderRequest { Name = name })).Kv.Value.ToStringUtf8());

        using var campaign = Elections.CampaignAsync(new CampaignRequest { Name = name, Lease = secondLease, Value = Utf8("v2") }, deadline: Soon());
        await WaitUntilAsync(async () => (await CountAsync(Prefix + "election/")) == 2, Deadline, "second candidate's key");
        Assert.False(campaign.ResponseAsync.IsCompleted, "second candidate won while the first led");

        await Elections.ResignAsync(new ResignRequest { Leader = first });
        var second = (await campaign.ResponseAsync).Leader;
        Assert.Equal($"{Prefix}election/{secondLease:x}", second.Key.ToStringUtf8());
        var observed = await NextAsync(observe);
        Assert.Equal((second.Key, "v2"), (observed.Kv.Key, observed.Kv.Value.ToStringUtf8()));

        var notLeader = await Assert.ThrowsAsync<RpcException>(() => Elections.ProclaimAsync(new ProclaimRequest { Leader = first, Value = Utf8("stale") }).ResponseAsync);
        Assert.Equal((StatusCode.Unknown, "election: not leader"), (notLeader.StatusCode, notLeader.Status.Detail));
        Assert.Equal("v2", (await Elections.LeaderAsync(new LeaderRequest { Name = name })).Kv.Value.ToStringUtf8());

        await Target.Lease.LeaseRevokeAsync(new LeaseRevokeRequest { ID = firstLease });
        await Target.Lease.LeaseRevokeAsync(new LeaseRevokeRequest { ID = secondLease });
    });

    [Fact]
    public Task GrpcHealthReportsServing() => Guard(async () =>
    {
        // grpc.health.v1 by hand (no health client package here): HealthCheckRequest{service=""} is empty,
        // HealthCheckResponse{status=SERVING} is field 1 = 1.
        var method = new Method<byte[], byte[]>(MethodType.Unary, "grpc.health.v1.Health", "Check", Bytes, Bytes);
        var serving = await Target.Channel.CreateCallInvoker().AsyncUnaryCall(method, null, new CallOptions(deadline: Soon()), []);
        Assert.Equal(new byte[] { 0x08, 0x01 }, serving);

        var unknown = await Assert.ThrowsAsync<RpcException>(async () =>
            await Target.Channel.CreateCallInvoker().AsyncUnaryCall(method, null, new CallOptions(deadline: Soon()), [0x0a, 0x03, (byte)'n', (byte)'o', (byte)'p']));
        Assert.Equal((StatusCode.NotFound, "unknown service"), (unknown.StatusCode, unknown.Status.Detail));
    });

    private static DateTime Soon() => DateTime.UtcNow.AddSeconds(30);

    private static ByteString Utf8(string text) => ByteString.CopyFromUtf8(text);

    private static async Task<LeaderResponse> NextAsync(AsyncServerStreamingCall<LeaderResponse> observe)
    {
        using var timeout = new CancellationTokenSource(Deadline);
        Assert.True(await observe.ResponseStream.MoveNext(timeout.Token), "observe stream ended");
        return observe.ResponseStream.Current;
    }

    private async Task<long> GrantAsync()
    {
        var id = Interlocked.Increment(ref _nextLeaseId);
        await Target.Lease.LeaseGrantAsync(new LeaseGrantRequest { ID = id, TTL = 120 });
        return id;
    }

    private async Task<long> CountAsync(string prefix)
    {
        var key = ByteString.CopyFromUtf8(prefix);
        return (await Target.Kv.RangeAsync(new RangeRequest { Key = key, RangeEnd = Differential.OpGenerator.PrefixEnd(key), CountOnly = true })).Count;
    }

    private async Task<long> CreateRevisionAsync(ByteString key) =>
        (await Target.Kv.RangeAsync(new RangeRequest { Key = key })).Kvs.Single().CreateRevision;
}

[Trait("Target", "Etcd")]
public sealed class ConcurrencyServiceTestsOnEtcd(EtcdFixture target, ITestOutputHelper output)
    : ConcurrencyServiceTests(target, output), IClassFixture<EtcdFixture>;

[Trait("Target", "Arbiter")]
public sealed class ConcurrencyServiceTestsOnArbiter(ArbiterFixture target, ITestOutputHelper output)
    : ConcurrencyServiceTests(target, output), IClassFixture<ArbiterFixture>;

[Trait("Target", "ArbiterCluster")]
[Collection(ArbiterClusterCollection.Name)]
public sealed class ConcurrencyServiceTestsOnArbiterCluster(ArbiterClusterFixture target, ITestOutputHelper output)
    : ConcurrencyServiceTests(target, output);
