using Arbiter.Protocol.Election;
using Arbiter.Protocol.Etcd;
using Arbiter.Server.Tests.Infrastructure;
using Google.Protobuf;
using Grpc.Core;
using Grpc.Net.Client;
using LockClient = Arbiter.Protocol.Lock.Lock.LockClient;
using LockRequest = Arbiter.Protocol.Lock.LockRequest;
using UnlockRequest = Arbiter.Protocol.Lock.UnlockRequest;

namespace Arbiter.Server.Tests;

/// <summary>The v3lock and v3election services over real gRPC on loopback.</summary>
public sealed class LockElectionServiceTests : IAsyncLifetime
{
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(10);
    private Backend _backend = null!;
    private GrpcChannel _channel = null!;

    public async Task InitializeAsync()
    {
        _backend = await Backend.StartAsync(overGrpc: true);
        _channel = GrpcChannel.ForAddress(_backend.Endpoint!);
    }

    public async Task DisposeAsync()
    {
        _channel.Dispose();
        await _backend.DisposeAsync();
    }

    private static ByteString B(string s) => ByteString.CopyFromUtf8(s);

    [Fact]
    public async Task SecondLockerWaitsForTheFirstAndGetsALargerFencingToken()
    {
        var client = _backend.Client;
        var lease1 = await client.LeaseGrantAsync(new LeaseGrantRequest { TTL = 60 });
        var lease2 = await client.LeaseGrantAsync(new LeaseGrantRequest { TTL = 60 });
        var locks = new LockClient(_channel);

        var first = await locks.LockAsync(new LockRequest { Name = B("mylock"), Lease = lease1.ID });
        var second = locks.LockAsync(new LockRequest { Name = B("mylock"), Lease = lease2.ID }).ResponseAsync;

        // The waiter's key is queued behind the holder's.
        await Eventually.TrueAsync(async () => (await client.RangeAsync(new RangeRequest { Key = B("mylock/"), RangeEnd = B("mylock0"), CountOnly = true })).Count == 2, Deadline, "second waiter queued");
        Assert.False(second.IsCompleted);

        await locks.UnlockAsync(new UnlockRequest { Key = first.Key });
        var granted = await second.WaitAsync(Deadline);
        var holder = await client.RangeAsync(new RangeRequest { Key = granted.Key });
        var firstRevision = first.Header.Revision;
        Assert.True(holder.Kvs[0].CreateRevision > firstRevision);
    }

    [Fact]
    public async Task LockWithUnknownLeaseFails()
    {
        var locks = new LockClient(_channel);
        var e = await Assert.ThrowsAsync<RpcException>(() => locks.LockAsync(new LockRequest { Name = B("x"), Lease = 12345 }).ResponseAsync);
        // etcd 3.4's v3lock answers Unknown with the text (its lock server reaches the KV through
        // clientv3); checked against a real etcd by GatewayDifferentialTests.LockAndUnlock.
        Assert.Equal(StatusCode.Unknown, e.StatusCode);
        Assert.Equal("etcdserver: requested lease not found", e.Status.Detail);
    }

    [Fact]
    public async Task ElectionCampaignObserveProclaimResign()
    {
        var client = _backend.Client;
        var election = new Election.ElectionClient(_channel);
        var lease1 = await client.LeaseGrantAsync(new LeaseGrantRequest { TTL = 60 });
        var lease2 = await client.LeaseGrantAsync(new LeaseGrantRequest { TTL = 60 });

        var leader = (await election.CampaignAsync(new CampaignRequest { Name = B("e"), Lease = lease1.ID, Value = B("one") })).Leader;
        using var observe = election.Observe(new LeaderRequest { Name = B("e") });
        using var cts = new CancellationTokenSource(Deadline);
        Assert.True(await observe.ResponseStream.MoveNext(cts.Token));
        Assert.Equal("one", observe.ResponseStream.Current.Kv.Value.ToStringUtf8());

        var second = election.CampaignAsync(new CampaignRequest { Name = B("e"), Lease = lease2.ID, Value = B("two") }).ResponseAsync;
        await election.ProclaimAsync(new ProclaimRequest { Leader = leader, Value = B("one-bis") });
        Assert.True(await observe.ResponseStream.MoveNext(cts.Token));
        Assert.Equal("one-bis", observe.ResponseStream.Current.Kv.Value.ToStringUtf8());
        Assert.False(second.IsCompleted);

        await election.ResignAsync(new ResignRequest { Leader = leader });
        var next = await second.WaitAsync(Deadline);
        Assert.True(await observe.ResponseStream.MoveNext(cts.Token));
        Assert.Equal("two", observe.ResponseStream.Current.Kv.Value.ToStringUtf8());
        var current = await election.LeaderAsync(new LeaderRequest { Name = B("e") });
        Assert.Equal(next.Leader.Key, current.Kv.Key);

        var stale = await Assert.ThrowsAsync<RpcException>(() => election.ProclaimAsync(new ProclaimRequest { Leader = leader, Value = B("x") }).ResponseAsync);
        Assert.Equal("election: not leader", stale.Status.Detail);
    }

    [Fact]
    public async Task HasLeaderMetadataIsAcceptedOnAHealthyNode()
    {
        var kv = new KV.KVClient(_channel);
        var headers = new Metadata { { "hasleader", "true" } };
        var response = await kv.RangeAsync(new RangeRequest { Key = B("any") }, headers);
        Assert.Equal(_backend.Node.MemberId, response.Header.MemberId);
        Assert.NotEqual(0UL, response.Header.ClusterId);
    }
}
