using System.Diagnostics;
using Arbiter.Cluster.Tests.Faults;
using Arbiter.Compatibility.Tests.Fixtures;
using Arbiter.Core;
using Arbiter.Protocol.Etcd;
using Grpc.Core;

namespace Arbiter.Cluster.Tests;

/// <summary>
/// Issue #12: three members with etcd's default timing (heartbeat 100 ms, election 1000 ms) and
/// writers through the members that survive, while the leader is killed, stopped for longer than
/// the election timeout, or cut off, and while a follower is cut off and healed. Writes through the
/// surviving majority must resume; failed writes must fail with etcd's errors before the client's
/// deadline (which is set below the server's 7 s request timeout, so a request left hanging on a
/// lost leader shows as DeadlineExceeded); a healed member must rejoin without a new election; no
/// acknowledged write may be missing afterwards. The outage (fault → first acknowledged write sent
/// after it) is printed, not asserted: the machine is shared, timing belongs to bench/failover.sh.
/// </summary>
// Quarantined to Category=Soak on 2026-12-03 and again on 2026-12-04 (writes sent through the
// survivors hung until the client's deadline; outages up to 18 s). The cause was a new leader's
// requests spinning on thread-pool threads until its first entry of the term committed, which
// starved that very commit (RaftCommandLog.WaitForWriteBarrierAsync). Every write sent is now
// judged, including those still in flight when the writers stop.
public sealed class LeaderLossTests(ITestOutputHelper output)
{
    private const int WriterCount = 4;
    private const string Prefix = "leader-loss/";

    /// <summary>Longer than any answer a member should give during leader loss, shorter than the server's request timeout (7 s).</summary>
    private static readonly TimeSpan ClientDeadline = TimeSpan.FromSeconds(6);

    /// <summary>How long the fault lasts where it is healed: three election timeouts.</summary>
    private static readonly TimeSpan FaultDuration = TimeSpan.FromSeconds(3);

    private static readonly TimeSpan ResumeTimeout = TimeSpan.FromSeconds(60);

    private static readonly ClusterSettings EtcdTiming = new() { HeartbeatIntervalMs = 100, ElectionTimeoutMs = 1000 };

    /// <summary>
    /// How long a failed write may take to fail: the survivors learn of the leader loss within about
    /// an election timeout and a half (failures took up to 2.2 s in 14 runs); a hanging write is answered
    /// only shortly before the client's deadline (<see cref="Arbiter.Node.CallDeadline"/>), so it fails this.
    /// </summary>
    private static readonly TimeSpan PromptFailureMax = TimeSpan.FromSeconds(4.5);

    /// <summary>Shorter than the election timeout: the survivor still forwards to the stopped leader when it nears.</summary>
    private static readonly TimeSpan ShortDeadline = TimeSpan.FromMilliseconds(800);

    /// <summary>The etcd errors a write may fail with while the leader is lost.</summary>
    private static readonly string[] LeaderLossErrors = [.. EtcdError.LeaderLoss.Select(e => e.Message)];

    [Fact]
    public async Task Leader_killed_writes_resume_through_the_majority_and_the_restarted_member_serves_soon()
    {
        await using var cluster = await ArbiterCluster.StartAsync(3, EtcdTiming);
        await RunLeaderFaultAsync(
            cluster,
            "SIGKILL",
            async leader =>
            {
                await leader.KillAsync();
                return async () =>
                {
                    var restart = Stopwatch.StartNew();
                    await leader.StartAsync(isRestart: true);
                    var started = restart.Elapsed;
                    var firstWrite = await FirstWriteThroughAsync(leader);
                    output.WriteLine(
                        $"restarted {leader.Name}: process answering after {started.TotalMilliseconds:F0} ms, " +
                        $"first write through it acknowledged {firstWrite.TotalMilliseconds:F0} ms after the start");
                };
            });
    }

    [Fact]
    public async Task Leader_stopped_longer_than_the_election_timeout_writes_resume_and_it_rejoins_without_an_election()
    {
        await using var cluster = await ArbiterCluster.StartAsync(3, EtcdTiming);
        await RunLeaderFaultAsync(
            cluster,
            "SIGSTOP",
            leader =>
            {
                leader.Signal("STOP");
                var probe = ShortDeadlinePutAsync(cluster.Running.First(m => m != leader));
                return Task.FromResult<Func<Task>>(async () =>
                {
                    leader.Signal("CONT");
                    await probe;
                });
            });
    }

    /// <summary>
    /// DotNext counts a (pre-)vote only after every member answered or timed out, and a new leader's
    /// first round also waits for every member, so without
    /// <see cref="Arbiter.Node.Cluster.SilentLeaderWatch{TMember}"/> a stopped leader holds up each of
    /// the three steps for the whole peer request timeout. Slow timing makes that unmistakable:
    /// election timeout 5 s (a follower campaigns 5–7.5 s after the last heartbeat), peer request
    /// timeout 4.9 s. Without the watch the survivors agree on a leader at the earliest
    /// 5 + 2 × 4.9 = 14.8 s after the stop (pre-vote and vote; the first round comes after they
    /// agree); with it, at most about 7.5 s plus two quarter-heartbeats (125 ms each). The bound
    /// leaves a loaded machine 5 s more than that, and a run without the watch a further 1.8 s below
    /// its earliest.
    /// </summary>
    [Fact]
    public async Task A_stopped_leader_does_not_hold_up_the_election_for_the_peer_request_timeout()
    {
        var slow = EtcdTiming with { HeartbeatIntervalMs = 500, ElectionTimeoutMs = 5000, ExtraArguments = ["--peer-request-timeout", "4900"] };
        var bound = TimeSpan.FromSeconds(13);
        await using var cluster = await ArbiterCluster.StartAsync(3, slow);
        var leader = await cluster.WaitForLeaderAsync(TimeSpan.FromSeconds(60));
        var termBefore = (await ClusterKit.StatusAsync(leader)).RaftTerm;
        var survivors = cluster.Running.Where(m => m != leader).ToList();
        var clock = Stopwatch.StartNew();
        leader.Signal("STOP");
        try
        {
            var newLeader = await ClusterKit.WaitForAgreedLeaderAsync(survivors, bound);
            var newTerm = (await ClusterKit.StatusAsync(newLeader)).RaftTerm;
            output.WriteLine($"SIGSTOP of leader {leader.Name} (term {termBefore}), peer request timeout 4900 ms: {newLeader.Name} leads in term {newTerm}, agreed {clock.ElapsedMilliseconds} ms after the stop");
            Assert.True(newTerm > termBefore, $"new leader {newLeader.Name} in term {newTerm}, not above {termBefore}");
        }
        catch (Exception)
        {
            output.WriteLine($"no leader agreed {clock.ElapsedMilliseconds} ms after the stop");
            output.WriteLine(cluster.Logs);
            throw;
        }
        finally
        {
            leader.Signal("CONT");
        }
    }

    [IptablesFact]
    public async Task Leader_isolated_writes_resume_through_the_majority_and_it_rejoins_without_an_election()
    {
        await using var cluster = await ArbiterCluster.StartAsync(3, EtcdTiming with { RunMembersAsSeparateUsers = true });
        await RunLeaderFaultAsync(
            cluster,
            "isolated",
            leader =>
            {
                var partition = IptablesPartition.Isolate(leader, cluster.Running.Where(m => m != leader));
                output.WriteLine(partition.ToString());
                return Task.FromResult<Func<Task>>(() =>
                {
                    partition.Dispose();
                    return Task.CompletedTask;
                });
            });
    }

    [IptablesFact]
    public async Task Follower_isolated_then_healed_rejoins_without_an_election_and_writes_never_stop()
    {
        var clock = Stopwatch.StartNew();
        await using var cluster = await ArbiterCluster.StartAsync(3, EtcdTiming with { RunMembersAsSeparateUsers = true });
        var leader = await cluster.WaitForLeaderAsync(TimeSpan.FromSeconds(30));
        var follower = cluster.Running.First(m => m != leader);
        var majority = cluster.Running.Where(m => m != follower).ToList();
        var writers = new Writers(cluster, Prefix, WriterCount, clock, () => majority, rotate: true, callDeadline: ClientDeadline);
        await using (writers)
        {
            await writers.WaitForAcksAsync(20, ResumeTimeout);
            var termBefore = (await ClusterKit.StatusAsync(leader)).RaftTerm;
            TimeSpan cutAt;
            using (var partition = IptablesPartition.Isolate(follower, majority))
            {
                cutAt = clock.Elapsed;
                output.WriteLine(partition.ToString());
                await Task.Delay(FaultDuration);
                await writers.WaitForAcksAsync(WriterCount * 5, ResumeTimeout);
            }

            var healedAt = clock.Elapsed;
            await writers.WaitForAcksAsync(WriterCount * 5, ResumeTimeout);
            await ClusterKit.WaitConvergedAsync(cluster, writers.Acked.Max(w => w.Revision));
            var longestGap = LongestAckGap(writers, cutAt, clock.Elapsed);
            output.WriteLine($"follower {follower.Name} cut off for {(healedAt - cutAt).TotalMilliseconds:F0} ms; longest gap between acknowledged writes meanwhile and after healing: {longestGap.TotalMilliseconds:F0} ms");

            await AssertSameLeaderAndTermAsync(cluster.Running.ToList(), leader, termBefore, "after the follower was healed");
        }

        await AssertWritesAsync(cluster, writers);
    }

    /// <summary>Runs one leader fault; on a failure the members' logs go to the test output (what a hung write waited on is in them).</summary>
    private async Task RunLeaderFaultAsync(ArbiterCluster cluster, string fault, Func<ArbiterClusterMember, Task<Func<Task>>> inject)
    {
        try
        {
            await RunLeaderFaultCoreAsync(cluster, fault, inject);
            if (Environment.GetEnvironmentVariable("ARBITER_TEST_PRINT_LOGS") == "1")
            {
                output.WriteLine(cluster.Logs);
            }
        }
        catch (Exception)
        {
            output.WriteLine(cluster.Logs);
            throw;
        }
    }

    /// <summary>
    /// Faults the leader (<paramref name="inject"/> returns how to heal it), measures the outage on
    /// writers through the other two members, heals, and checks that the healed member rejoins
    /// under the new leader without a new election and that every acknowledged write is everywhere.
    /// </summary>
    private async Task RunLeaderFaultCoreAsync(ArbiterCluster cluster, string fault, Func<ArbiterClusterMember, Task<Func<Task>>> inject)
    {
        var clock = Stopwatch.StartNew();
        var leader = await cluster.WaitForLeaderAsync(TimeSpan.FromSeconds(30));
        var termBefore = (await ClusterKit.StatusAsync(leader)).RaftTerm;
        var survivors = cluster.Running.Where(m => m != leader).ToList();
        var writers = new Writers(cluster, Prefix, WriterCount, clock, () => survivors, rotate: true, callDeadline: ClientDeadline);
        ArbiterClusterMember newLeader;
        ulong newTerm;
        await using (writers)
        {
            await writers.WaitForAcksAsync(20, ResumeTimeout);
            var heal = await inject(leader);
            var faultAt = clock.Elapsed;
            var faultWallClock = DateTime.UtcNow;
            await writers.WaitForAcksAsync(WriterCount * 5, ResumeTimeout);
            var firstWrite = writers.FirstAckSentAfter(faultAt);
            Assert.NotNull(firstWrite);
            newLeader = await ClusterKit.WaitForAgreedLeaderAsync(survivors, ResumeTimeout);
            newTerm = (await ClusterKit.StatusAsync(newLeader)).RaftTerm;
            output.WriteLine(
                $"{fault} of leader {leader.Name} (term {termBefore}): writes through {string.Join(", ", survivors.Select(m => m.Name))} " +
                $"resumed after {(firstWrite.Value - faultAt).TotalMilliseconds:F0} ms (outage); new leader {newLeader.Name} in term {newTerm}");
            Assert.True(newTerm > termBefore, $"new leader {newLeader.Name} in term {newTerm}, not above {termBefore}");

            // The fault lasts longer than the election timeout, then is healed.
            var healAt = faultAt + FaultDuration;
            if (clock.Elapsed < healAt)
            {
                await Task.Delay(healAt - clock.Elapsed);
            }

            await heal();
            await writers.WaitForAcksAsync(WriterCount * 5, ResumeTimeout);

            // Every write sent is judged: the writers stop sending and the writes in flight end by
            // themselves (answered, failed, or run into the client's deadline).
            await writers.DrainAsync();
            output.WriteLine($"fault at {faultWallClock:HH:mm:ss.fff} UTC (test clock {faultAt.TotalMilliseconds:F0} ms)");
            WriteFailures(writers, faultAt);
        }

        // Writers stopped: every member, the healed one included, reaches the same revision and
        // HashKV (while writes go on, three members are rarely at the same revision at once), under
        // the same leader and term as before the heal.

        await ClusterKit.WaitConvergedAsync(cluster, writers.Acked.Max(w => w.Revision));
        await AssertSameLeaderAndTermAsync(cluster.Running.ToList(), newLeader, newTerm, $"after {leader.Name} ({fault}) came back");
        await AssertWritesAsync(cluster, writers);
    }

    /// <summary>Every write sent after the fault that failed did so with one of etcd's leader-loss errors, none by running into the client's deadline.</summary>
    private void WriteFailures(Writers writers, TimeSpan faultAt)
    {
        var failed = writers.FailedCalls.ToList();
        foreach (var group in failed.GroupBy(f => $"{f.StatusCode} \"{f.Detail}\""))
        {
            var durations = group.Select(f => (f.FailedAt - f.SentAt).TotalMilliseconds).Order().ToList();
            output.WriteLine($"{group.Count()} write(s) failed with {group.Key} after {durations[0]:F0}–{durations[^1]:F0} ms");
        }

        foreach (var f in failed.Where(f => f.SentAt >= faultAt))
        {
            output.WriteLine($"  {f.Key} via {f.Via}: sent {(f.SentAt - faultAt).TotalMilliseconds:F0} ms after the fault, {f.StatusCode} \"{f.Detail}\" after {(f.FailedAt - f.SentAt).TotalMilliseconds:F0} ms");
        }

        output.WriteLine($"{writers.Acked.Count} writes acknowledged, {failed.Count} failed, first failure {(failed.Count == 0 ? "-" : $"{(failed.Min(f => f.SentAt) - faultAt).TotalMilliseconds:F0} ms")} after the fault");
        // A write already in flight to the leader when it was lost has an unknown outcome; like etcd
        // (which holds such a proposal until its request timeout), it may run into the client's
        // deadline. Every write sent after the fault must fail promptly with etcd's errors.
        var inFlightAtFault = failed.Where(f => f.SentAt < faultAt).ToList();
        output.WriteLine($"{inFlightAtFault.Count} failed write(s) were in flight at the fault: {string.Join("; ", inFlightAtFault.Select(f => $"{f.StatusCode} after {(f.FailedAt - f.SentAt).TotalMilliseconds:F0} ms"))}");
        Assert.All(failed.Where(f => f.SentAt >= faultAt), f => Assert.True(
            f.StatusCode == StatusCode.Unavailable && LeaderLossErrors.Contains(f.Detail) && f.FailedAt - f.SentAt < PromptFailureMax,
            $"{f.Key} via {f.Via} failed with {f.StatusCode} \"{f.Detail}\" after {(f.FailedAt - f.SentAt).TotalMilliseconds:F0} ms, not promptly with one of etcd's leader-loss errors"));
    }

    /// <summary>
    /// A put sent through a survivor right after the leader stopped, with a client deadline shorter
    /// than the election timeout: the survivor is still forwarding it to the stopped leader when the
    /// deadline nears, and must answer with etcd's error before it (as etcd's server answers when
    /// the call's context ends), not leave the client to run into its own deadline.
    /// </summary>
    private async Task ShortDeadlinePutAsync(ArbiterClusterMember survivor)
    {
        using var channel = survivor.OpenChannel();
        var sent = Stopwatch.StartNew();
        var e = await Assert.ThrowsAsync<RpcException>(() => new KV.KVClient(channel).PutAsync(
            new PutRequest { Key = ClusterKit.Bytes(Prefix + "short-deadline"), Value = ClusterKit.Bytes("x") },
            deadline: DateTime.UtcNow + ShortDeadline).ResponseAsync);
        output.WriteLine($"a put via {survivor.Name} with a {ShortDeadline.TotalMilliseconds:F0} ms deadline, sent at the fault: {e.StatusCode} \"{e.Status.Detail}\" after {sent.ElapsedMilliseconds} ms");
        Assert.True(
            e.StatusCode == StatusCode.Unavailable && LeaderLossErrors.Contains(e.Status.Detail),
            $"the short-deadline put ended with {e.StatusCode} \"{e.Status.Detail}\", not one of etcd's leader-loss errors before its deadline");
    }

    private async Task AssertWritesAsync(ArbiterCluster cluster, Writers writers)
    {
        ClusterKit.WriteServerProblems(cluster, output);
        var acked = writers.Acked.ToList();
        Assert.True(writers.Violations.IsEmpty, string.Join("\n", writers.Violations));
        var (revision, _) = await ClusterKit.WaitConvergedAsync(cluster, acked.Max(w => w.Revision));
        await ClusterKit.AssertAllPresentAsync(cluster, Prefix, acked, output);
        await ClusterKit.AssertHashKvEqualAsync(cluster, revision, output);
    }

    /// <summary>Every member follows <paramref name="leader"/> in <paramref name="term"/>: nothing disrupted the cluster.</summary>
    private async Task AssertSameLeaderAndTermAsync(IReadOnlyList<ArbiterClusterMember> members, ArbiterClusterMember leader, ulong term, string when)
    {
        var seen = string.Empty;
        await ClusterKit.WaitUntilAsync(
            $"every member follows {leader.Name} {when}",
            ResumeTimeout,
            async () =>
            {
                var statuses = new List<StatusResponse>();
                foreach (var member in members)
                {
                    statuses.Add(await ClusterKit.StatusAsync(member));
                }

                seen = string.Join(", ", members.Zip(statuses, (m, s) => $"{m.Name}: leader {s.Leader:x} term {s.RaftTerm}"));
                Assert.All(statuses, s => Assert.True(s.RaftTerm <= term, $"a new election {when}: {seen} (was {leader.Name} in term {term})"));
                return statuses.TrueForAll(s => s.Leader == leader.MemberId && s.RaftTerm == term);
            },
            () => seen);
        output.WriteLine($"{when}: {seen}");
    }

    /// <summary>From the (re)start until a write through <paramref name="member"/> is acknowledged.</summary>
    private static async Task<TimeSpan> FirstWriteThroughAsync(ArbiterClusterMember member)
    {
        var clock = Stopwatch.StartNew();
        using var channel = member.OpenChannel();
        var client = new KV.KVClient(channel);
        await ClusterKit.WaitUntilAsync(
            $"a write through {member.Name}",
            ResumeTimeout,
            async () =>
            {
                await client.PutAsync(new PutRequest { Key = ClusterKit.Bytes("restarted"), Value = ClusterKit.Bytes(member.Name) }, deadline: DateTime.UtcNow + ClientDeadline);
                return true;
            });
        return clock.Elapsed;
    }

    private static TimeSpan LongestAckGap(Writers writers, TimeSpan from, TimeSpan to)
    {
        var acks = writers.Acked.Select(w => w.AckedAt).Where(t => t >= from && t <= to).Order().Prepend(from).Append(to).ToList();
        return acks.Zip(acks.Skip(1), (a, b) => b - a).Max();
    }
}
