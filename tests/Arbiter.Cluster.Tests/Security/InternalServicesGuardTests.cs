using Arbiter.Compatibility.Tests.Fixtures;
using Arbiter.Protocol.Auth;
using Arbiter.Protocol.Crdt;
using Arbiter.Protocol.Etcd;
using Arbiter.Protocol.Internal;
using Google.Protobuf;
using Grpc.Core;
using Grpc.Net.Client;

namespace Arbiter.Cluster.Tests.Security;

/// <summary>
/// The member-to-member services on the client port (<c>arbiter.internal.v1</c>) without peer TLS:
/// a raw gRPC client that reaches the client port calls them as a member would — a forwarded
/// proposal claiming to be root, CRDT anti-entropy reads and pushes, a snapshot image fetch — with
/// no credential and with a made-up one. Each gets PERMISSION_DENIED and nothing is applied, on a
/// single node and on a 3-member cluster, with auth on; members' own forwarding keeps working.
/// Before the peer secret existed every one of these calls succeeded (the propose wrote as root).
/// </summary>
public sealed class InternalServicesGuardTests(ITestOutputHelper output)
{
    private static readonly TimeSpan CallTimeout = TimeSpan.FromSeconds(30);

    /// <summary>A credential of the right shape (base64url of 32 bytes) that no cluster has.</summary>
    private const string MadeUpCredential = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";

    [Fact]
    public async Task A_single_node_refuses_internal_calls_without_the_peer_credential()
    {
        await using var server = new ArbiterProcess("guard-single", ["--bcrypt-cost", "4"]);
        await server.StartAsync();
        try
        {
            using var channel = GrpcChannel.ForAddress(server.Endpoint, ServerFixture.ChannelOptions);
            await EnableAuthAsync(channel);
            var root = await TokenAsync(channel, "root");
            await new Arbiter.Protocol.Crdt.Crdt.CrdtClient(channel).UpdateAsync(Increment("c/likes", 5), new Metadata { { "token", root } }, DateTime.UtcNow.Add(CallTimeout));

            await AssertInternalCallsRefusedAsync(channel, "the single node");

            // Nothing was applied: the key the forged proposal wrote is absent, the counter unchanged.
            Assert.Equal(0, await CountAsync(channel, root, "stolen"));
            var counter = await new Arbiter.Protocol.Crdt.Crdt.CrdtClient(channel).GetAsync(new CrdtGetRequest { Key = "c/likes" }, new Metadata { { "token", root } }, DateTime.UtcNow.Add(CallTimeout));
            Assert.Equal(5, counter.Value.Counter);
        }
        catch
        {
            output.WriteLine(server.Log);
            throw;
        }
    }

    [Fact]
    public async Task A_cluster_refuses_internal_calls_without_the_peer_credential_and_members_still_forward()
    {
        await using var cluster = await ArbiterCluster.StartAsync(3, new ClusterSettings { ExtraArguments = ["--bcrypt-cost", "4"] });
        try
        {
            var leader = await cluster.WaitForLeaderAsync(TimeSpan.FromSeconds(60));
            var follower = cluster.Members.First(m => m != leader);
            using var leaderChannel = leader.OpenChannel();
            using var followerChannel = follower.OpenChannel();
            await EnableAuthAsync(leaderChannel);

            // Members forward with the credential: a write through a follower reaches the leader.
            var root = await TokenAsync(followerChannel, "root");
            await ClusterKit.WaitUntilAsync("a write through a follower succeeds", ClusterKit.ConvergeTimeout, async () =>
            {
                await new KV.KVClient(followerChannel).PutAsync(new PutRequest { Key = ClusterKit.Bytes("via-follower"), Value = ClusterKit.Bytes("v") }, new Metadata { { "token", root } }, DateTime.UtcNow.Add(CallTimeout));
                return true;
            });

            await AssertInternalCallsRefusedAsync(leaderChannel, "the leader");
            await AssertInternalCallsRefusedAsync(followerChannel, "a follower");

            // Nothing was applied, on any member (a linearizable read on each).
            foreach (var member in cluster.Members)
            {
                using var channel = member.OpenChannel();
                Assert.Equal(0, await CountAsync(channel, root, "stolen"));
                Assert.Equal(1, await CountAsync(channel, root, "via-follower"));
            }
        }
        catch
        {
            output.WriteLine(cluster.Logs.Length > 20_000 ? cluster.Logs[^20_000..] : cluster.Logs);
            throw;
        }
    }

    /// <summary>
    /// Every kind of internal call, as an outsider on the client port: refused with
    /// PERMISSION_DENIED, without a credential and with a made-up one. A made-up credential may
    /// first get UNAVAILABLE (a member that has not applied the secret yet): polled until refused.
    /// </summary>
    private async Task AssertInternalCallsRefusedAsync(GrpcChannel channel, string where)
    {
        var calls = new (string Name, Func<Metadata, Task> Call)[]
        {
            ("Peer.Propose (a put as root)", headers => new Peer.PeerClient(channel).ProposeAsync(ForgedPut(), headers, DateTime.UtcNow.Add(CallTimeout)).ResponseAsync),
            ("Peer.ReadIndex", headers => new Peer.PeerClient(channel).ReadIndexAsync(new ReadIndexRequest(), headers, DateTime.UtcNow.Add(CallTimeout)).ResponseAsync),
            ("Peer.Standby", headers => new Peer.PeerClient(channel).StandbyAsync(new StandbyRequest { DurationMs = 60_000 }, headers, DateTime.UtcNow.Add(CallTimeout)).ResponseAsync),
            ("Peer.LogPosition", headers => new Peer.PeerClient(channel).LogPositionAsync(new LogPositionRequest(), headers, DateTime.UtcNow.Add(CallTimeout)).ResponseAsync),
            ("CrdtPeer.Repair (every CRDT's state)", headers => new CrdtPeer.CrdtPeerClient(channel).RepairAsync(new CrdtDigest(), headers, DateTime.UtcNow.Add(CallTimeout)).ResponseAsync),
            ("CrdtPeer.ReadState", headers => new CrdtPeer.CrdtPeerClient(channel).ReadStateAsync(new CrdtReadStateRequest { Key = "c/likes" }, headers, DateTime.UtcNow.Add(CallTimeout)).ResponseAsync),
            ("CrdtPeer.PushDeltas", headers => new CrdtPeer.CrdtPeerClient(channel).PushDeltasAsync(new CrdtDeltaBatch { SenderReplica = 42 }, headers, DateTime.UtcNow.Add(CallTimeout)).ResponseAsync),
            ("Peer.FetchSnapshotImage", headers => FetchImageAsync(channel, headers)),
        };
        foreach (var (name, call) in calls)
        {
            var none = await Assert.ThrowsAsync<RpcException>(() => call(new Metadata()));
            Assert.True(none.StatusCode == StatusCode.PermissionDenied, $"{name} on {where} without a credential: {none.StatusCode} {none.Status.Detail}");
            await ClusterKit.WaitUntilAsync($"{name} on {where} with a made-up credential is refused", ClusterKit.ConvergeTimeout, async () =>
            {
                try
                {
                    await call(new Metadata { { "arbiter-peer-credential", MadeUpCredential } });
                    throw new Xunit.Sdk.XunitException($"{name} on {where} with a made-up credential succeeded");
                }
                catch (RpcException e) when (e.StatusCode == StatusCode.Unavailable)
                {
                    return false;
                }
                catch (RpcException e)
                {
                    Assert.True(e.StatusCode == StatusCode.PermissionDenied, $"{name} on {where} with a made-up credential: {e.StatusCode} {e.Status.Detail}");
                    return true;
                }
            });
            output.WriteLine($"{where}: {name} refused ({none.Status.Detail})");
        }
    }

    /// <summary>Asks for the image of every plausible recent snapshot; it must be refused before anything is sent.</summary>
    private static async Task FetchImageAsync(GrpcChannel channel, Metadata headers)
    {
        using var call = new Peer.PeerClient(channel).FetchSnapshotImage(new FetchSnapshotImageRequest { Index = 1, Term = 1 }, headers, DateTime.UtcNow.Add(CallTimeout));
        await foreach (var _ in call.ResponseStream.ReadAllAsync())
        {
        }
    }

    private static Command ForgedPut() => new()
    {
        RequestId = (ulong)Random.Shared.NextInt64(1, long.MaxValue),
        AuthUser = "root",
        AuthRevision = ulong.MaxValue,
        Put = new PutRequest { Key = ClusterKit.Bytes("stolen"), Value = ClusterKit.Bytes("by an outsider") },
    };

    private static CrdtUpdateRequest Increment(string key, long delta) => new()
    {
        Key = key,
        Type = CrdtType.PnCounter,
        Operation = new CrdtOperation { CounterAdd = new CounterAdd { Delta = delta } },
    };

    private static async Task EnableAuthAsync(GrpcChannel channel)
    {
        var auth = new Auth.AuthClient(channel);
        var deadline = DateTime.UtcNow.Add(CallTimeout);
        await auth.UserAddAsync(new AuthUserAddRequest { Name = "root", Password = "pw" }, deadline: deadline);
        await auth.UserGrantRoleAsync(new AuthUserGrantRoleRequest { User = "root", Role = "root" }, deadline: deadline);
        await auth.AuthEnableAsync(new AuthEnableRequest(), deadline: deadline);
    }

    private static async Task<string> TokenAsync(GrpcChannel channel, string user) =>
        (await new Auth.AuthClient(channel).AuthenticateAsync(new AuthenticateRequest { Name = user, Password = "pw" }, deadline: DateTime.UtcNow.Add(CallTimeout))).Token;

    private static async Task<long> CountAsync(GrpcChannel channel, string token, string key) =>
        (await new KV.KVClient(channel).RangeAsync(new RangeRequest { Key = ByteString.CopyFromUtf8(key), CountOnly = true }, new Metadata { { "token", token } }, DateTime.UtcNow.Add(CallTimeout))).Count;
}
