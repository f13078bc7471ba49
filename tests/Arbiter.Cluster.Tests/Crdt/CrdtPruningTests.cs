using System.Diagnostics;
using Arbiter.Client;
using Arbiter.Client.Crdt;
using Arbiter.Compatibility.Tests.Fixtures;
using Arbiter.Crdt;
using Arbiter.Protocol.Internal;
using Grpc.Core;

namespace Arbiter.Cluster.Tests.Crdt;

/// <summary>
/// Pruning a departed member's CRDT replica on real members: 3 members and a 4th added all update a
/// counter and a set; the 4th is removed (MemberRemove); every remaining member's state of those
/// keys then holds no dot of the 4th's replica, with the values unchanged, and once every member
/// holds the pruning (logged) the replica is retired: no pruned marker is left on any member, and
/// none comes back after a kill -9 and restart (the retirement is in the replica's own log); a
/// member wiped afterwards is rebuilt to the same values, without dots or markers of the departed
/// replica, and its increment counts once.
/// </summary>
public sealed class CrdtPruningTests(ITestOutputHelper output)
{
    private static readonly TimeSpan Converge = ClusterKit.ConvergeTimeout;

    private Grpc.Core.Metadata? _credential;

    [Fact]
    public async Task A_removed_members_replica_is_pruned_from_every_key_on_every_member_without_changing_values()
    {
        var clock = Stopwatch.StartNew();
        await using var cluster = await ArbiterCluster.StartAsync(3);
        var leader = await cluster.WaitForLeaderAsync(Converge);
        var fourth = await cluster.AddMemberAsync(leader);
        await ClusterKit.WaitJoinedAsync(cluster, fourth, Converge);
        output.WriteLine($"4 members at {clock.ElapsedMilliseconds} ms");

        var all = cluster.Running.ToList();
        var expected = 0L;
        var elements = new List<string>();
        for (var i = 0; i < all.Count; i++)
        {
            await using var client = new ArbiterClient(new GrpcArbiterClient(all[i].Endpoint));
            for (var n = 0; n <= i; n++)
            {
                await client.Crdt.Counter("pruned-likes").AddAsync(10 + i);
                expected += 10 + i;
            }

            await client.Crdt.Set("pruned-cart").AddAsync($"from-{all[i].Name}");
            elements.Add($"from-{all[i].Name}");
        }

        elements.Sort(StringComparer.Ordinal);
        var departed = (await ReadStateAsync(fourth, "pruned-likes")).Replica;
        output.WriteLine($"the 4th member {fourth.Name} ({fourth.MemberId:x16}) uses replica {departed:x16}; expecting {expected} likes and {elements.Count} elements");
        await WaitForStatesAsync(all, $"every member holds {expected} likes, {elements.Count} elements and the 4th's dots", (likes, cart) =>
            likes.ToValue().Counter == expected && cart.ToValue().Set.Elements.Count == elements.Count
            && likes.Replicas.Any(r => r.Value == departed) && cart.Replicas.Any(r => r.Value == departed));
        var sizesBefore = await SizesAsync(all[0]);

        clock.Restart();
        var via = all.First(m => m != fourth);
        await cluster.RemoveMemberAsync(via, fourth);
        var remaining = cluster.Running.ToList();
        Assert.Equal(3, remaining.Count);
        output.WriteLine($"removed {fourth.Name} via {via.Name} in {clock.ElapsedMilliseconds} ms");

        // The marker may already be gone (retired) when this looks: no dot of the departed replica is what counts.
        var pruned = await WaitForStatesAsync(remaining, "every remaining member's states hold no dot of the departed replica, and the same values", (likes, cart) =>
            NoDotsOf(likes, departed) && NoDotsOf(cart, departed)
            && likes.ToValue().Counter == expected
            && cart.ToValue().Set.Elements.Select(e => e.ToStringUtf8()).SequenceEqual(elements));
        output.WriteLine($"pruned everywhere {pruned.TotalMilliseconds:F0} ms after the removal");
        Assert.Contains("pruned from", cluster.Logs, StringComparison.Ordinal);

        var retired = await WaitForStatesAsync(remaining, "no member keeps a pruned marker: the departed replica is retired everywhere", (likes, cart) =>
            Retired(likes, departed) && Retired(cart, departed)
            && likes.ToValue().Counter == expected && cart.ToValue().Set.Elements.Count == elements.Count);
        var sizesAfter = await SizesAsync(remaining[0]);
        output.WriteLine($"retired everywhere {retired.TotalMilliseconds:F0} ms after the pruning; encoded sizes (likes, cart) {sizesBefore} bytes before, {sizesAfter} after");
        Assert.Contains("retired: pruned markers dropped", cluster.Logs, StringComparison.Ordinal);

        // Durable: a member killed and restarted replays its log, retirement included, and holds no marker.
        var restarted = remaining.First(m => m != via);
        await restarted.KillAsync();
        await restarted.StartAsync(isRestart: true);
        var likesAfterRestart = await StateAsync(restarted, "pruned-likes");
        Assert.NotNull(likesAfterRestart);
        Assert.True(Retired(likesAfterRestart, departed), $"{restarted.Name} after kill -9: {likesAfterRestart}, pruned [{string.Join(", ", likesAfterRestart.PrunedReplicas)}]");
        Assert.Equal(expected, likesAfterRestart.ToValue().Counter);

        // A member wiped now is rebuilt from its peers: same values, no dot of the departed replica.
        var wiped = remaining.First(m => m != via && m != restarted);
        await wiped.StopAsync(TimeSpan.FromSeconds(30));
        wiped.WipeData();
        wiped.InitialClusterState = "existing";
        await wiped.StartAsync(isRestart: true);
        var rebuilt = await WaitForStatesAsync([wiped], "the wiped member is rebuilt with the retired states", (likes, cart) =>
            Retired(likes, departed) && Retired(cart, departed)
            && likes.ToValue().Counter == expected && cart.ToValue().Set.Elements.Count == elements.Count);
        output.WriteLine($"wiped {wiped.Name} rebuilt in {rebuilt.TotalMilliseconds:F0} ms");

        // And it still counts: an increment on the rebuilt member reaches the others exactly once.
        await using (var client = new ArbiterClient(new GrpcArbiterClient(wiped.Endpoint)))
        {
            await client.Crdt.Counter("pruned-likes").IncrementAsync();
        }

        await WaitForStatesAsync(remaining, "the rebuilt member's increment reaches every member once", (likes, _) => likes.ToValue().Counter == expected + 1 && Retired(likes, departed));
    }

    private static bool NoDotsOf(CrdtState state, ulong departed) => state.Replicas.All(r => r.Value != departed);

    private static bool Retired(CrdtState state, ulong departed) => NoDotsOf(state, departed) && state.PrunedReplicas.Count == 0;

    private async Task<CrdtReadStateResponse> ReadStateAsync(ArbiterClusterMember member, string key)
    {
        _credential ??= await PeerCredentialAsync(member);
        using var channel = member.OpenChannel();
        return await new CrdtPeer.CrdtPeerClient(channel).ReadStateAsync(new CrdtReadStateRequest { Key = key }, _credential, deadline: DateTime.UtcNow.AddSeconds(10));
    }

    /// <summary>
    /// The internal CrdtPeer service answers members only: the test acts as one with the cluster's
    /// peer credential, derived from the secret a backup holds (etcd's Maintenance.Snapshot), as an
    /// operator with the cluster's data could.
    /// </summary>
    private static async Task<Grpc.Core.Metadata> PeerCredentialAsync(ArbiterClusterMember member)
    {
        var path = Path.GetTempFileName();
        try
        {
            using (var channel = member.OpenChannel())
            {
                using var call = new Protocol.Etcd.Maintenance.MaintenanceClient(channel).Snapshot(new Protocol.Etcd.SnapshotRequest(), deadline: DateTime.UtcNow.AddSeconds(30));
                await using var file = File.Create(path);
                await foreach (var chunk in call.ResponseStream.ReadAllAsync())
                {
                    await file.WriteAsync(chunk.Blob.Memory);
                }
            }

            var secret = Node.Backup.SnapshotFile.Read(path).State.PeerSecret;
            return new Grpc.Core.Metadata { { Node.Security.PeerCredential.HeaderName, Node.Security.PeerCredential.Derive(secret) } };
        }
        finally
        {
            File.Delete(path);
        }
    }

    private async Task<CrdtState?> StateAsync(ArbiterClusterMember member, string key)
    {
        var response = await ReadStateAsync(member, key);
        return response.State.IsEmpty ? null : CrdtState.FromBytes(response.State.Span);
    }

    private async Task<string> SizesAsync(ArbiterClusterMember member) =>
        $"({(await StateAsync(member, "pruned-likes"))?.SizeBytes}, {(await StateAsync(member, "pruned-cart"))?.SizeBytes})";

    private async Task<TimeSpan> WaitForStatesAsync(IReadOnlyList<ArbiterClusterMember> members, string what, Func<CrdtState, CrdtState, bool> condition)
    {
        var last = "";
        return await ClusterKit.WaitUntilAsync(what, Converge, async () =>
        {
            foreach (var member in members)
            {
                try
                {
                    var likes = await StateAsync(member, "pruned-likes");
                    var cart = await StateAsync(member, "pruned-cart");
                    last = $"{member.Name}: likes {likes}, replicas [{string.Join(", ", likes?.Replicas ?? [])}], pruned [{string.Join(", ", likes?.PrunedReplicas ?? [])}]; cart {cart}";
                    if (likes is null || cart is null || !condition(likes, cart))
                    {
                        return false;
                    }
                }
                catch (Grpc.Core.RpcException e)
                {
                    last = $"{member.Name}: {e.Status}";
                    return false;
                }
            }

            return true;
        }, () => last);
    }
}
