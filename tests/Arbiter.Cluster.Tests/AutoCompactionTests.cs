using Arbiter.Compatibility.Tests.Fixtures;
using Arbiter.Protocol.Etcd;
using Grpc.Core;

namespace Arbiter.Cluster.Tests;

/// <summary>
/// <c>--auto-compaction-retention</c> in a cluster: the leader proposes the compaction and every
/// member compacts; after the leader is killed, the new leader goes on compacting.
/// </summary>
public sealed class AutoCompactionTests(ITestOutputHelper output)
{
    private static readonly TimeSpan CompactedWithin = TimeSpan.FromSeconds(30);

    [Fact]
    public async Task Every_member_compacts_and_a_new_leader_carries_on()
    {
        await using var cluster = await ArbiterCluster.StartAsync(3, new ClusterSettings
        {
            ExtraArguments = ["--auto-compaction-mode", "periodic", "--auto-compaction-retention", "2s"],
        });
        var leader = await cluster.WaitForLeaderAsync(ClusterKit.ConvergeTimeout);

        var before = await PutThreeAsync(leader, "auto/before");
        foreach (var member in cluster.Running)
        {
            await WaitCompactedAsync(cluster, member, "auto/before", before);
        }

        output.WriteLine($"revision {before} compacted on every member; killing leader {leader.Name}");
        await leader.KillAsync();
        var newLeader = await cluster.WaitForLeaderAsync(ClusterKit.ConvergeTimeout);
        var after = await PutThreeAsync(newLeader, "auto/after");
        foreach (var member in cluster.Running)
        {
            await WaitCompactedAsync(cluster, member, "auto/after", after);
        }

        output.WriteLine($"revision {after} compacted on both survivors under {newLeader.Name}");
    }

    /// <summary>Three puts of one key; returns the revision of the first.</summary>
    private static async Task<long> PutThreeAsync(ArbiterClusterMember member, string key)
    {
        long first = 0;
        for (var i = 0; i < 3; i++)
        {
            var value = $"v{i}";
            var put = await LeaderLossRetry.RetryAsync($"put {key}={value}", () => ClusterKit.CallAsync(member, c => new KV.KVClient(c).PutAsync(
                new PutRequest { Key = ClusterKit.Bytes(key), Value = ClusterKit.Bytes(value) }, deadline: DateTime.UtcNow.AddSeconds(30)).ResponseAsync));
            first = first == 0 ? put.Header.Revision : first;
        }

        return first;
    }

    /// <summary>Waits until a serializable read at <paramref name="revision"/> on <paramref name="member"/> is refused as compacted.</summary>
    private static Task<TimeSpan> WaitCompactedAsync(ArbiterCluster cluster, ArbiterClusterMember member, string key, long revision) =>
        ClusterKit.WaitUntilAsync($"revision {revision} compacted on {member.Name}", CompactedWithin, async () =>
        {
            try
            {
                await ClusterKit.CallAsync(member, c => new KV.KVClient(c).RangeAsync(
                    new RangeRequest { Key = ClusterKit.Bytes(key), Revision = revision, Serializable = true }, deadline: DateTime.UtcNow.AddSeconds(10)).ResponseAsync);
                return false;
            }
            catch (RpcException e) when (e.StatusCode == StatusCode.OutOfRange && e.Status.Detail.Contains("compacted", StringComparison.Ordinal))
            {
                return true;
            }
        }, cluster: cluster);
}
