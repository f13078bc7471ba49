using System.Diagnostics;
using Arbiter.Compatibility.Tests.Fixtures;

namespace Arbiter.Cluster.Tests;

/// <summary>
/// Members that fall behind (stopped, or wiped) catch up from the leader, by snapshot install when
/// the log they need is compacted away; every member recovers from its own disk (snapshot + log).
/// </summary>
public sealed class SnapshotCatchUpTests(ITestOutputHelper output)
{
    private static readonly TimeSpan Converge = ClusterKit.ConvergeTimeout;

    /// <summary>A small snapshot interval so that a few hundred writes compact the log several times.</summary>
    private static readonly ClusterSettings SmallSnapshots = new() { SnapshotCount = 50 };

    [Fact]
    public async Task Wiped_member_restarted_as_existing_catches_up_by_snapshot()
    {
        await using var cluster = await ArbiterCluster.StartAsync(3, SmallSnapshots);
        var leader = await cluster.WaitForLeaderAsync(Converge);
        var victim = cluster.Running.First(m => m != leader);
        var others = cluster.Running.Where(m => m != victim).ToList();
        await using var writer = new Writers(cluster, "wipe/", targets: () => others, rotate: true);
        await writer.WaitForAcksAsync(30, Converge);

        await victim.StopAsync(TimeSpan.FromSeconds(30));
        await writer.WaitForAcksAsync(250, Converge);
        victim.WipeData();

        // The same member (same peer URL, so the same id in the configuration) on an empty disk.
        victim.InitialClusterState = "existing";
        var logBefore = victim.Log.Length;
        var clock = Stopwatch.StartNew();
        await victim.StartAsync(isRestart: true);
        await StopWritingAndCheckConvergedAsync(cluster, writer, "wipe/", $"wiped {victim.Name}", clock);

        Assert.Contains("Installed Raft snapshot", victim.Log[logBefore..], StringComparison.Ordinal);
        await ClusterKit.WaitJoinedAsync(cluster, victim, Converge);
    }

    [Fact]
    public async Task Wiped_member_removed_and_added_again_catches_up_by_snapshot()
    {
        await using var cluster = await ArbiterCluster.StartAsync(3, SmallSnapshots);
        var leader = await cluster.WaitForLeaderAsync(Converge);
        var victim = cluster.Running.First(m => m != leader);
        var others = cluster.Running.Where(m => m != victim).ToList();
        await using var writer = new Writers(cluster, "readd/", targets: () => others, rotate: true);
        await writer.WaitForAcksAsync(30, Converge);

        await cluster.RemoveMemberAsync(leader, victim);
        await writer.WaitForAcksAsync(250, Converge);
        victim.WipeData();

        // etcd's way back for a member that lost its disk: remove, add again, start as existing.
        using (var channel = leader.OpenChannel())
        {
            var request = new Protocol.Etcd.MemberAddRequest();
            request.PeerURLs.Add(victim.PeerUrl);
            await new Protocol.Etcd.Cluster.ClusterClient(channel).MemberAddAsync(request, deadline: DateTime.UtcNow.AddSeconds(30));
        }

        victim.InitialClusterState = "existing";
        var logBefore = victim.Log.Length;
        var clock = Stopwatch.StartNew();
        await victim.StartAsync(isRestart: true);
        await ClusterKit.WaitJoinedAsync(cluster, victim, Converge);
        await StopWritingAndCheckConvergedAsync(cluster, writer, "readd/", $"re-added {victim.Name}", clock);

        Assert.Contains("Installed Raft snapshot", victim.Log[logBefore..], StringComparison.Ordinal);
    }

    [Fact]
    public async Task Stopped_member_catches_up_after_restart()
    {
        await using var cluster = await ArbiterCluster.StartAsync(3, SmallSnapshots);
        var leader = await cluster.WaitForLeaderAsync(Converge);
        var victim = cluster.Running.First(m => m != leader);
        var others = cluster.Running.Where(m => m != victim).ToList();
        await using var writer = new Writers(cluster, "lag/", targets: () => others, rotate: true);
        await writer.WaitForAcksAsync(30, Converge);

        await victim.KillAsync();
        await writer.WaitForAcksAsync(200, Converge);
        var logBefore = victim.Log.Length;
        var clock = Stopwatch.StartNew();
        await victim.StartAsync(isRestart: true);
        await StopWritingAndCheckConvergedAsync(cluster, writer, "lag/", $"{victim.Name}", clock);
    }

    [Fact]
    public async Task Every_member_recovers_from_its_own_disk()
    {
        await using var run = await ClusterUnderLoad.StartAsync(3, "disk/", acksFirst: 180, SmallSnapshots);
        var cluster = run.Cluster;
        var members = cluster.Running.ToList();
        await run.Writer.StopAsync();

        // A put the writer cancelled on stopping may already be in the leader's log and commit after
        // a first convergence (seen once in CI: 182 before, 183 after the restarts). A write
        // acknowledged after the stop commits behind anything appended before it.
        var leader = await cluster.WaitForLeaderAsync(Converge);
        var barrier = await ClusterKit.CallAsync(leader, c => new Protocol.Etcd.KV.KVClient(c).PutAsync(
            new Protocol.Etcd.PutRequest { Key = ClusterKit.Bytes("disk-barrier"), Value = ClusterKit.Bytes("1") }, deadline: DateTime.UtcNow.AddSeconds(30)).ResponseAsync);
        var (before, _) = await ClusterKit.WaitConvergedAsync(cluster, revisionMin: barrier.Header.Revision);

        // One by one (the others keep a quorum): a clean stop and a kill -9 both come back from disk.
        foreach (var (member, index) in members.Select((m, i) => (m, i)))
        {
            if (index % 2 == 0)
            {
                await member.StopAsync(TimeSpan.FromSeconds(30));
            }
            else
            {
                await member.KillAsync();
            }

            var logBefore = member.Log.Length;
            await member.StartAsync(isRestart: true);
            Assert.Contains("Installed Raft snapshot", member.Log[logBefore..], StringComparison.Ordinal);
        }

        // All down at once, then all up: nobody can catch up from anyone; each has its own disk only.
        await Task.WhenAll(members.Select(m => m.StopAsync(TimeSpan.FromSeconds(30))));
        await Task.WhenAll(members.Select(m => m.StartAsync(isRestart: true)));
        await cluster.WaitForLeaderAsync(Converge);
        var (after, _) = await ClusterKit.WaitConvergedAsync(cluster);
        Assert.Equal(before, after);
        await ClusterKit.AssertAllPresentAsync(cluster, "disk/", run.Writer.Acked.ToList(), output);
        output.WriteLine($"{run.Writer.Acked.Count} writes; revision {after} after restarts");
    }

    /// <summary>
    /// A member that missed a large state (tens of MB) catches up. DotNext ships a snapshot inside
    /// one InstallSnapshot request bounded by the Raft request timeout (250 ms here), so before the
    /// image was fetched apart a 33 MB state never installed (the leader resent it 1,382 times in a
    /// minute); and a follower whose install completed after its request timed out was sent the
    /// same snapshot forever. The log's files are 1 MiB: with DotNext's 4 KiB default a follower
    /// receiving 80 MB of log held 20,000 open files and failed with "Too many open files".
    /// Soak: in the clean-clone CI of 2026-12-03 (7d48bf8) the install completed, its answer was
    /// lost, and the leader resent the snapshot; the follower, refusing it, also stopped hearing a
    /// leader (DotNext does not reset its election timer on a refused install), so its request for a
    /// newer snapshot (RefreshSnapshot, through the leader) failed with "no leader" for the whole
    /// minute. Next step: send that request to every member when no leader is known.
    /// </summary>
    [Fact]
    [Trait("Category", "Soak")]
    public async Task Stopped_member_catches_up_on_a_large_state()
    {
        const int keyCount = 1200, valueSizeBytes = 16 * 1024; // about 20 MB of state, 40 MB of log
        await using var cluster = await ArbiterCluster.StartAsync(3, new ClusterSettings { SnapshotCount = 300 });
        var leader = await cluster.WaitForLeaderAsync(Converge);
        var victim = cluster.Running.First(m => m != leader);
        await victim.KillAsync();
        var alive = cluster.Running.ToList();

        var value = Google.Protobuf.ByteString.CopyFrom(new byte[valueSizeBytes]);
        var written = 0;
        await Parallel.ForEachAsync(Enumerable.Range(0, 2 * keyCount), new ParallelOptions { MaxDegreeOfParallelism = 8 }, async (i, token) =>
        {
            var member = alive[i % alive.Count];
            using var channel = member.OpenChannel();
            var kv = new Protocol.Etcd.KV.KVClient(channel);
            var request = new Protocol.Etcd.PutRequest { Key = Google.Protobuf.ByteString.CopyFromUtf8($"big/{i % keyCount:D5}"), Value = value };
            for (var attempt = 0; ; attempt++)
            {
                try
                {
                    await kv.PutAsync(request, deadline: DateTime.UtcNow.AddSeconds(30), cancellationToken: token);
                    Interlocked.Increment(ref written);
                    return;
                }
                catch (Grpc.Core.RpcException e) when (attempt < 5 && e.StatusCode is Grpc.Core.StatusCode.Unavailable or Grpc.Core.StatusCode.DeadlineExceeded)
                {
                    // a leader change under the load: the put is idempotent, write it again
                }
            }
        });

        // Converged means at the revision the live members reached: the restarted member answers
        // with its own old revision (1) until it catches up, and every member agrees at revision 1.
        var reached = (await ClusterKit.StatusAsync(alive[0])).Header.Revision;
        var clock = Stopwatch.StartNew();
        var logBefore = victim.Log.Length;
        await victim.StartAsync(isRestart: true);
        var (revision, _) = await ClusterKit.WaitConvergedAsync(cluster, reached);
        output.WriteLine($"{written} puts of {valueSizeBytes} B; {victim.Name} converged {clock.ElapsedMilliseconds} ms after start at revision {revision}");

        var log = victim.Log[logBefore..];
        Assert.Contains("fetched and parsed", log, StringComparison.Ordinal);
        Assert.Contains("Installed Raft snapshot", log, StringComparison.Ordinal);
        Assert.DoesNotContain("Too many open files", log, StringComparison.Ordinal);
        foreach (var member in cluster.Running)
        {
            var logFiles = Directory.GetFiles(Path.Combine(member.DataDir, "member", "raft", "data")).Length;
            output.WriteLine($"{member.Name}: {logFiles} Raft log data files");
            Assert.True(logFiles < 200, $"{member.Name} keeps its Raft log in {logFiles} files");
        }
    }

    /// <summary>After a member (re)started: a few more writes, then every member converges and holds every acknowledged write.</summary>
    private async Task StopWritingAndCheckConvergedAsync(ArbiterCluster cluster, Writers writer, string prefix, string what, Stopwatch clock)
    {
        await writer.WaitForAcksAsync(30, Converge);
        await writer.StopAsync();
        var (revision, _) = await ClusterKit.WaitConvergedAsync(cluster);
        output.WriteLine($"{what} converged {clock.ElapsedMilliseconds} ms after start at revision {revision}");
        await ClusterKit.AssertAllPresentAsync(cluster, prefix, writer.Acked.ToList(), output);
    }
}
