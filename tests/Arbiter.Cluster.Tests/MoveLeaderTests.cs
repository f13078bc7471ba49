using System.Diagnostics;
using Arbiter.Compatibility.Tests.Etcdctl;
using Arbiter.Compatibility.Tests.Fixtures;
using Arbiter.Protocol.Etcd;
using Grpc.Core;

namespace Arbiter.Cluster.Tests;

/// <summary>MoveLeader (etcdctl move-leader): sent to the leader, leadership ends at the target; Status agrees everywhere.</summary>
public sealed class MoveLeaderTests(ITestOutputHelper output)
{
    [Fact]
    public async Task Etcdctl_move_leader_ends_at_the_target_under_load_and_status_agrees()
    {
        await using var run = await ClusterUnderLoad.StartAsync(3, "move/", acksFirst: 30);
        var (cluster, writer) = run;
        var members = cluster.Running.ToList();

        // Each follower in turn becomes the target.
        for (var move = 0; move < 2; move++)
        {
            var (leader, target, result) = await MoveLeaderWithEtcdctlAsync(cluster, members);
            if (result.ExitCode != 0)
            {
                output.WriteLine(cluster.Logs);
            }

            result.EnsureSuccess();
            Assert.Contains($"Leadership transferred from {leader.MemberId:x} to {target.MemberId:x}", result.Stdout, StringComparison.Ordinal);
            Assert.Same(target, await cluster.WaitForLeaderAsync(ClusterKit.ConvergeTimeout));
            await writer.WaitForAcksAsync(20, ClusterKit.ConvergeTimeout);
        }

        await run.StopAndCheckAsync(output);

        // Quiet cluster: every member reports the same leader and term, and the same raft indexes once applied.
        var final = await cluster.WaitForLeaderAsync(ClusterKit.ConvergeTimeout);
        var seen = string.Empty;
        await ClusterKit.WaitUntilAsync(
            "Status agrees on every member",
            ClusterKit.ConvergeTimeout,
            async () =>
            {
                var statuses = new List<(string Name, StatusResponse Status)>();
                foreach (var member in members)
                {
                    statuses.Add((member.Name, await ClusterKit.StatusAsync(member)));
                }

                seen = string.Join(", ", statuses.Select(s => $"{s.Name}: leader {s.Status.Leader:x} term {s.Status.RaftTerm} index {s.Status.RaftIndex} applied {s.Status.RaftAppliedIndex}"));
                var first = statuses[0].Status;
                return statuses.TrueForAll(s =>
                    s.Status.Leader == final.MemberId && s.Status.RaftTerm == first.RaftTerm && s.Status.Header.RaftTerm == first.RaftTerm
                    && s.Status.RaftIndex == first.RaftIndex && s.Status.RaftAppliedIndex == first.RaftIndex);
            },
            () => seen,
            cluster);
        output.WriteLine($"{writer.Acked.Count} acknowledged writes during two moves; {writer.Failures.Count} failed attempts");
        output.WriteLine(string.Join("\n", cluster.Logs.Split('\n').Where(l => l.Contains("Leadership moved", StringComparison.Ordinal) || l.Contains("to resign", StringComparison.Ordinal))));
    }

    [Fact]
    public async Task Move_leader_sent_to_a_follower_or_to_an_unknown_member_is_refused()
    {
        await using var cluster = await ArbiterCluster.StartAsync(3);
        var leader = await cluster.WaitForLeaderAsync(ClusterKit.ConvergeTimeout);
        var follower = cluster.Running.First(m => m != leader);

        var notLeader = await Assert.ThrowsAsync<RpcException>(() => ClusterKit.CallAsync(follower, c =>
            new Maintenance.MaintenanceClient(c).MoveLeaderAsync(new MoveLeaderRequest { TargetID = leader.MemberId }, deadline: DateTime.UtcNow.AddSeconds(30)).ResponseAsync));
        Assert.Equal("etcdserver: not leader", notLeader.Status.Detail);

        // On two busy cores an election can happen on its own between finding the leader and
        // asking it; "not leader" then means the question reached a former leader: ask the new one.
        RpcException unknown;
        var deadline = DateTime.UtcNow + ClusterKit.ConvergeTimeout;
        while (true)
        {
            var asked = leader;
            unknown = await Assert.ThrowsAsync<RpcException>(() => ClusterKit.CallAsync(asked, c =>
                new Maintenance.MaintenanceClient(c).MoveLeaderAsync(new MoveLeaderRequest { TargetID = 0x1234 }, deadline: DateTime.UtcNow.AddSeconds(30)).ResponseAsync));
            if (unknown.Status.Detail != "etcdserver: not leader" || DateTime.UtcNow > deadline)
            {
                break;
            }

            output.WriteLine($"{asked.Name} was no longer the leader when asked; asking the new one");
            leader = await cluster.WaitForLeaderAsync(ClusterKit.ConvergeTimeout);
            follower = cluster.Running.First(m => m != leader);
        }

        Assert.Equal("etcdserver: bad leader transferee", unknown.Status.Detail);

        // etcdctl looks for the leader among its endpoints itself.
        var etcdctl = new EtcdctlRunner(follower.Endpoint);
        var viaFollower = await etcdctl.RunAsync("move-leader", $"{leader.MemberId:x}");
        output.WriteLine(viaFollower.ToString());
        Assert.NotEqual(0, viaFollower.ExitCode);
        Assert.Contains("no leader endpoint given", viaFollower.Stderr, StringComparison.Ordinal);

        // Nothing moved.
        Assert.Same(leader, await cluster.WaitForLeaderAsync(ClusterKit.ConvergeTimeout));
    }

    /// <summary>
    /// Runs <c>etcdctl move-leader</c> from the current leader to a follower. A leader that steps
    /// down by itself between etcdctl's Status call and its MoveLeader call (an election on a
    /// loaded machine) answers "etcdserver: not leader", as etcd does; that attempt is repeated
    /// against the new leader, at most twice.
    /// </summary>
    private async Task<(ArbiterClusterMember Leader, ArbiterClusterMember Target, EtcdctlResult Result)> MoveLeaderWithEtcdctlAsync(ArbiterCluster cluster, IReadOnlyList<ArbiterClusterMember> members)
    {
        for (var attempt = 1; ; attempt++)
        {
            var leader = await cluster.WaitForLeaderAsync(ClusterKit.ConvergeTimeout);
            var target = members.First(m => m != leader);
            var clock = Stopwatch.StartNew();
            var result = await new EtcdctlRunner(leader.Endpoint).RunAsync("move-leader", $"{target.MemberId:x}");
            output.WriteLine($"{result} ({clock.ElapsedMilliseconds} ms)");
            if (attempt < 3 && result.ExitCode != 0 && result.Stderr.Contains("etcdserver: not leader", StringComparison.Ordinal))
            {
                continue;
            }

            return (leader, target, result);
        }
    }
}
