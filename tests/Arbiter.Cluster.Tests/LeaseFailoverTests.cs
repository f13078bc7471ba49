using System.Collections.Concurrent;
using System.Diagnostics;
using Arbiter.Compatibility.Tests.Fixtures;
using Arbiter.Protocol.Etcd;
using Grpc.Core;

namespace Arbiter.Cluster.Tests;

/// <summary>
/// Leases across a leader kill: lease time is the leader's clock, and a new leader renews every
/// lease to its full TTL before it expires any, so a failover never expires a lease early.
/// </summary>
public sealed class LeaseFailoverTests(ITestOutputHelper output)
{
    private const long KeptTtlSeconds = 3;
    private const long IdleTtlSeconds = 4;

    [Fact]
    public async Task Kept_lease_survives_a_leader_kill_and_an_idle_one_expires_no_earlier_than_its_ttl()
    {
        var clock = Stopwatch.StartNew();
        await using var cluster = await ArbiterCluster.StartAsync(3);
        var leader = await cluster.WaitForLeaderAsync(TimeSpan.FromSeconds(30));
        var followers = cluster.Running.Where(m => m != leader).ToList();
        var keeperMember = followers[0];
        var reader = followers[1];
        output.WriteLine($"leader {leader.Name}; keep-alives through {keeperMember.Name}; reads on {reader.Name}");

        using var keeperChannel = keeperMember.OpenChannel();
        var leases = new Lease.LeaseClient(keeperChannel);
        var kv = new KV.KVClient(keeperChannel);
        // The set-up rides out a leader change of the fresh cluster (a grant applied before the
        // answer was lost leaves a spare lease that expires by itself); the kill is the test.
        var kept = await ClusterKit.RetryOnLeaderLossAsync("grant the kept lease", () => leases.LeaseGrantAsync(new LeaseGrantRequest { TTL = KeptTtlSeconds }, deadline: DateTime.UtcNow.AddSeconds(30)).ResponseAsync, output);
        var idle = await ClusterKit.RetryOnLeaderLossAsync("grant the idle lease", () => leases.LeaseGrantAsync(new LeaseGrantRequest { TTL = IdleTtlSeconds }, deadline: DateTime.UtcNow.AddSeconds(30)).ResponseAsync, output);
        await ClusterKit.RetryOnLeaderLossAsync("put the kept lease's key", () => kv.PutAsync(new PutRequest { Key = ClusterKit.Bytes("lease/kept"), Value = ClusterKit.Bytes("v"), Lease = kept.ID }, deadline: DateTime.UtcNow.AddSeconds(30)).ResponseAsync, output);
        await ClusterKit.RetryOnLeaderLossAsync("put the idle lease's key", () => kv.PutAsync(new PutRequest { Key = ClusterKit.Bytes("lease/idle"), Value = ClusterKit.Bytes("v"), Lease = idle.ID }, deadline: DateTime.UtcNow.AddSeconds(30)).ResponseAsync, output);

        await using var keeper = new KeepAliveLoop(keeperMember, kept.ID, TimeSpan.FromMilliseconds(500), clock);
        await keeper.WaitForRenewalsAsync(1, TimeSpan.FromSeconds(30));

        // The idle lease's last renewal: anything the server measures starts after this instant.
        var idleRenewSentAt = clock.Elapsed;
        using (var once = leases.LeaseKeepAlive(deadline: DateTime.UtcNow.AddSeconds(30)))
        {
            await once.RequestStream.WriteAsync(new LeaseKeepAliveRequest { ID = idle.ID });
            Assert.True(await once.ResponseStream.MoveNext(CancellationToken.None));
            Assert.Equal(IdleTtlSeconds, once.ResponseStream.Current.TTL);
            await once.RequestStream.CompleteAsync();
        }

        var idleEarliestExpiry = idleRenewSentAt + TimeSpan.FromSeconds(IdleTtlSeconds);
        var killedAt = clock.Elapsed;
        await leader.KillAsync();
        var newLeader = await cluster.WaitForLeaderAsync(TimeSpan.FromSeconds(30));
        output.WriteLine($"killed {leader.Name} at {killedAt.TotalMilliseconds:F0} ms (idle lease renewed at {idleRenewSentAt.TotalMilliseconds:F0} ms); {newLeader.Name} leads after {(clock.Elapsed - killedAt).TotalMilliseconds:F0} ms");

        // Poll the idle lease's key with linearizable reads on a member that was never leader.
        using var readerChannel = reader.OpenChannel();
        var readerKv = new KV.KVClient(readerChannel);
        TimeSpan? goneAt = null;
        var reads = 0;
        var expiryDeadline = killedAt + TimeSpan.FromSeconds(IdleTtlSeconds + 30);
        while (goneAt is null && clock.Elapsed < expiryDeadline)
        {
            RangeResponse got;
            try
            {
                got = await readerKv.RangeAsync(new RangeRequest { Key = ClusterKit.Bytes("lease/idle") }, deadline: DateTime.UtcNow.AddSeconds(10));
            }
            catch (RpcException e) when (e.StatusCode is StatusCode.Unavailable or StatusCode.DeadlineExceeded)
            {
                continue;
            }

            var answeredAt = clock.Elapsed;
            reads++;
            if (got.Kvs.Count == 0)
            {
                // A linearizable read reflects the state at some instant before its answer.
                Assert.True(
                    answeredAt >= idleEarliestExpiry,
                    $"idle lease gone at {answeredAt.TotalMilliseconds:F0} ms, before its TTL ran out at {idleEarliestExpiry.TotalMilliseconds:F0} ms\n{cluster.Logs}");
                goneAt = answeredAt;
            }
            else
            {
                await Task.Delay(100);
            }
        }

        Assert.True(goneAt is not null, $"idle lease still there {expiryDeadline.TotalMilliseconds:F0} ms after start ({reads} reads)\n{cluster.Logs}");
        output.WriteLine(
            $"idle lease (TTL {IdleTtlSeconds} s) gone {(goneAt.Value - idleRenewSentAt).TotalMilliseconds:F0} ms after its last renewal, " +
            $"{(goneAt.Value - killedAt).TotalMilliseconds:F0} ms after the kill ({reads} reads)");

        // The kept lease outlived the idle one (longer than its own TTL after the kill) and stays with its key.
        Assert.True(clock.Elapsed - killedAt > TimeSpan.FromSeconds(KeptTtlSeconds));
        await keeper.WaitForRenewalsAsync(2, TimeSpan.FromSeconds(30));
        Assert.True(keeper.Lost.IsEmpty, string.Join("\n", keeper.Lost));
        foreach (var member in cluster.Running.ToList())
        {
            using var channel = member.OpenChannel();
            var got = await new KV.KVClient(channel).RangeAsync(new RangeRequest { Key = ClusterKit.Bytes("lease/kept") }, deadline: DateTime.UtcNow.AddSeconds(30));
            Assert.True(got.Kvs.Count == 1, $"kept lease's key gone on {member.Name}\n{cluster.Logs}");
            var ttl = await new Lease.LeaseClient(channel).LeaseTimeToLiveAsync(new LeaseTimeToLiveRequest { ID = kept.ID }, deadline: DateTime.UtcNow.AddSeconds(30));
            Assert.InRange(ttl.TTL, 1, KeptTtlSeconds);
            Assert.Equal(member.MemberId, ttl.Header.MemberId);
        }

        output.WriteLine($"kept lease renewed {keeper.Renewals} times, {keeper.Errors.Count} stream errors (reopened): {string.Join(" | ", keeper.Errors.Take(3))}");
    }

    /// <summary>
    /// etcd extends every lease when a new leader takes over, so a lease kept alive through an
    /// election longer than its TTL survives it. Here the election (3 s timeout) always outlasts
    /// the lease's 1 s TTL: a keep-alive applied before the new leader renewed every lease was
    /// measured against the old deadline and answered TTL 0.
    /// </summary>
    [Fact]
    public async Task A_lease_kept_alive_through_an_election_longer_than_its_ttl_survives_it()
    {
        var clock = Stopwatch.StartNew();
        await using var cluster = await ArbiterCluster.StartAsync(3, new ClusterSettings { HeartbeatIntervalMs = 300, ElectionTimeoutMs = 3000 });
        var leader = await cluster.WaitForLeaderAsync(TimeSpan.FromSeconds(60));
        var keeperMember = cluster.Running.First(m => m != leader);
        using var channel = keeperMember.OpenChannel();
        var lease = await ClusterKit.RetryOnLeaderLossAsync("grant", () => new Lease.LeaseClient(channel).LeaseGrantAsync(new LeaseGrantRequest { TTL = 1 }, deadline: DateTime.UtcNow.AddSeconds(30)).ResponseAsync, output);
        await ClusterKit.RetryOnLeaderLossAsync("put the lease's key", () => new KV.KVClient(channel).PutAsync(new PutRequest { Key = ClusterKit.Bytes("lease/short"), Value = ClusterKit.Bytes("v"), Lease = lease.ID }, deadline: DateTime.UtcNow.AddSeconds(30)).ResponseAsync, output);

        await using var keeper = new KeepAliveLoop(keeperMember, lease.ID, TimeSpan.FromMilliseconds(200), clock);
        await keeper.WaitForRenewalsAsync(2, TimeSpan.FromSeconds(30));
        var killedAt = clock.Elapsed;
        await leader.KillAsync();
        var newLeader = await cluster.WaitForLeaderAsync(TimeSpan.FromSeconds(60));
        output.WriteLine($"killed {leader.Name}; {newLeader.Name} leads after {(clock.Elapsed - killedAt).TotalMilliseconds:F0} ms (lease TTL 1000 ms)");

        await keeper.WaitForRenewalsAsync(5, TimeSpan.FromSeconds(30));
        Assert.True(keeper.Lost.IsEmpty, string.Join("\n", keeper.Lost) + "\n" + cluster.Logs);
        using var leaderChannel = newLeader.OpenChannel();
        var got = await new KV.KVClient(leaderChannel).RangeAsync(new RangeRequest { Key = ClusterKit.Bytes("lease/short") }, deadline: DateTime.UtcNow.AddSeconds(30));
        Assert.Single(got.Kvs);
    }
}

/// <summary>A client keeping one lease alive through one member, reopening the stream when it breaks.</summary>
internal sealed class KeepAliveLoop : BackgroundLoop
{
    private readonly ArbiterClusterMember _member;
    private readonly long _leaseId;
    private readonly TimeSpan _interval;
    private readonly Stopwatch _clock;
    private int _renewals;

    public KeepAliveLoop(ArbiterClusterMember member, long leaseId, TimeSpan interval, Stopwatch clock)
    {
        _member = member;
        _leaseId = leaseId;
        _interval = interval;
        _clock = clock;
        Start(RunAsync);
    }

    public int Renewals => Volatile.Read(ref _renewals);

    /// <summary>Answers with TTL 0: the lease was gone.</summary>
    public ConcurrentQueue<string> Lost { get; } = new();

    public ConcurrentQueue<string> Errors { get; } = new();

    public async Task WaitForRenewalsAsync(int count, TimeSpan timeout)
    {
        var target = Renewals + count;
        await ClusterKit.WaitUntilAsync($"{count} more renewals", timeout, () => Task.FromResult(Renewals >= target), () => $"{Renewals}/{target} renewals; errors: {string.Join(" | ", Errors.TakeLast(5))}");
    }

    private async Task RunAsync()
    {
        using var channel = _member.OpenChannel();
        var client = new Lease.LeaseClient(channel);
        while (!Stop.IsCancellationRequested)
        {
            try
            {
                using var call = client.LeaseKeepAlive(cancellationToken: Stop.Token);
                while (!Stop.IsCancellationRequested)
                {
                    await call.RequestStream.WriteAsync(new LeaseKeepAliveRequest { ID = _leaseId });
                    if (!await call.ResponseStream.MoveNext(Stop.Token))
                    {
                        break;
                    }

                    if (call.ResponseStream.Current.TTL <= 0)
                    {
                        Lost.Enqueue($"{_clock.Elapsed.TotalMilliseconds:F0} ms: keep-alive through {_member.Name} answered TTL {call.ResponseStream.Current.TTL}");
                    }
                    else
                    {
                        Interlocked.Increment(ref _renewals);
                    }

                    await Task.Delay(_interval, Stop.Token);
                }
            }
            catch (RpcException e) when (!Stop.IsCancellationRequested)
            {
                Errors.Enqueue($"{_clock.Elapsed.TotalMilliseconds:F0} ms: {e.StatusCode} {e.Status.Detail}");
                await Task.Delay(100);
            }
            catch (RpcException)
            {
                return;
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }

}
