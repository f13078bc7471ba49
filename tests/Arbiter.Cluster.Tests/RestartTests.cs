using System.Diagnostics;
using Arbiter.Compatibility.Tests.Fixtures;
using Arbiter.Protocol.Etcd;

namespace Arbiter.Cluster.Tests;

/// <summary>Every member killed at once (a power cut) and restarted: nothing acknowledged is lost.</summary>
public sealed class RestartTests(ITestOutputHelper output)
{
    private const string Prefix = "restart/";

    /// <param name="snapshotCount">20 000: restart replays the whole log; 25: restore a snapshot, then replay the rest.</param>
    /// <param name="logPagesBefore">The members' <c>--raft-log-pages</c> until the power cut.</param>
    /// <param name="logPagesAfter">Their <c>--raft-log-pages</c> after it: the log's files are the same either way.</param>
    [Theory]
    [InlineData(20_000, "memory", "memory")]
    [InlineData(25, "memory", "memory")]
    [InlineData(20_000, "mapped", "memory")]
    [InlineData(25, "memory", "mapped")]
    public async Task Killing_every_member_at_once_keeps_all_acknowledged_data(int snapshotCount, string logPagesBefore, string logPagesAfter)
    {
        var clock = Stopwatch.StartNew();
        await using var cluster = await ArbiterCluster.StartAsync(3, new ClusterSettings { SnapshotCount = snapshotCount }, beforeStart: (_, member) =>
        {
            member.OwnArguments = ["--raft-log-pages", logPagesBefore];
            return Task.CompletedTask;
        });
        var writers = new Writers(cluster, Prefix, 3, clock);
        await using (writers)
        {
            await writers.WaitForAcksAsync(100, TimeSpan.FromSeconds(30));

            // Kill while writes are in flight: whatever was acknowledged must survive.
            await Task.WhenAll(cluster.Members.Select(m => m.KillAsync()));
        }

        var acked = writers.Acked.ToList();
        output.WriteLine($"{acked.Count} writes acknowledged before the power cut (last revision {acked.Max(w => w.Revision)})");

        foreach (var member in cluster.Members)
        {
            member.OwnArguments = ["--raft-log-pages", logPagesAfter];
        }

        var restartedAt = clock.Elapsed;
        await Task.WhenAll(cluster.Members.Select(m => m.StartAsync(isRestart: true)));
        var leader = await cluster.WaitForLeaderAsync(TimeSpan.FromSeconds(60));
        output.WriteLine($"all restarted; {leader.Name} leads after {(clock.Elapsed - restartedAt).TotalMilliseconds:F0} ms");

        var (revision, _) = await ClusterKit.WaitConvergedAsync(cluster, acked.Max(w => w.Revision));
        await ClusterKit.AssertAllPresentAsync(cluster, Prefix, acked, output);
        await ClusterKit.AssertHashKvEqualAsync(cluster, revision, output);
        ClusterKit.WriteSnapshotActivity(cluster, output);

        // And the cluster takes writes again, above every revision acknowledged before. Right after
        // a full restart a second election can still follow the first (seen at load 30 in CI: the
        // put answered "possibly due to previous leader failure"), so the put is repeated on the
        // leader-loss answers, as a client does; it is idempotent here.
        var follower = await cluster.FollowerAsync();
        using var channel = follower.OpenChannel();
        var put = await ClusterKit.RetryOnLeaderLossAsync("put after the restart", () => new KV.KVClient(channel).PutAsync(
            new PutRequest { Key = ClusterKit.Bytes("restart-after"), Value = ClusterKit.Bytes("v") },
            deadline: DateTime.UtcNow.AddSeconds(30)).ResponseAsync, output);
        Assert.True(put.Header.Revision > revision, $"write after restart got revision {put.Header.Revision}, not above {revision}");
    }
}
