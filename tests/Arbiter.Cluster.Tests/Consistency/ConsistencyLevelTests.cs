using System.Diagnostics;
using Arbiter.Client;
using Arbiter.Cluster.Tests.Faults;
using Arbiter.Compatibility.Tests.Fixtures;
using Arbiter.Protocol.Consistency;
using Grpc.Core;

namespace Arbiter.Cluster.Tests.Consistency;

/// <summary>
/// Every read level on a 3-member cluster of real <c>arbiter serve</c> processes, each next to a
/// weaker level that shows the anomaly it forbids. A member is made to lag by an iptables
/// partition (deterministic: it cannot apply what the majority commits), and killed with SIGKILL
/// for failover. Calls target one member each through the SDK (<see cref="ArbiterClient"/>).
/// </summary>
[Trait("Category", "Partition")]
public sealed class ConsistencyLevelTests(ITestOutputHelper output)
{
    /// <summary>A short member wait budget, so that refusals come quickly.</summary>
    private const int ShortBudgetMs = 1000;

    /// <summary>A long member wait budget, for the test where a member must wait until it catches up.</summary>
    private const int LongBudgetMs = 20_000;

    private static readonly TimeSpan LeaderTimeout = TimeSpan.FromSeconds(30);

    private static ClusterSettings Settings(int budgetMs) => new()
    {
        RunMembersAsSeparateUsers = true,
        ExtraArguments = ["--consistency-wait-budget", budgetMs.ToString(System.Globalization.CultureInfo.InvariantCulture)],
    };

    /// <summary>A client of the given members only, in that order; no retries unless asked.</summary>
    private static ArbiterClient ClientOf(int retries, params ArbiterClusterMember[] members)
    {
        var options = new ArbiterClientOptions { RetryAttemptsMax = retries, RetryDelayMs = 50, CallTimeoutMs = 60_000 };
        foreach (var member in members)
        {
            options.Endpoints.Add(member.Endpoint);
        }

        return ArbiterClient.Connect(options);
    }

    [IptablesFact]
    public async Task A_partitioned_member_serves_stale_serializable_reads_but_refuses_session_bounded_and_linearizable_ones()
    {
        await using var cluster = await ArbiterCluster.StartAsync(3, Settings(ShortBudgetMs));
        var leader = await cluster.WaitForLeaderAsync(LeaderTimeout);
        var lagging = cluster.Running.First(m => m != leader);
        var healthy = cluster.Running.First(m => m != leader && m != lagging);
        output.WriteLine($"leader {leader.Name}, healthy follower {healthy.Name}, lagging follower {lagging.Name}");
        await using var onLeader = ClientOf(3, leader);
        await using var onHealthy = ClientOf(0, healthy);
        await using var onLagging = ClientOf(0, lagging);

        var first = await onLeader.PutAsync("profile/picture", "old.png");
        await ClusterKit.WaitConvergedAsync(cluster, first.Header.Revision);

        using var partition = IptablesPartition.Isolate(lagging, [leader, healthy]);
        var session = onLeader.StartSession();
        var second = await session.PutAsync("profile/picture", "new.png");
        output.WriteLine($"wrote new.png at revision {second.Header.Revision} with {lagging.Name} cut off");

        // Serializable: the healthy member has it (once applied), the lagging one does not; a client
        // that moves from the first to the second sees time go backwards.
        await ClusterKit.WaitUntilAsync("the healthy follower applied the write", LeaderTimeout, async () =>
            await onHealthy.GetStringAsync("profile/picture", ReadConsistency.Serializable) == "new.png");
        var fromHealthy = await onHealthy.RangeAsync(new() { Key = Keys.From("profile/picture") }, ReadConsistency.Serializable);
        var fromLagging = await onLagging.RangeAsync(new() { Key = Keys.From("profile/picture") }, ReadConsistency.Serializable);
        output.WriteLine($"serializable: {healthy.Name} at {fromHealthy.Header.Revision} says {fromHealthy.Kvs[0].Value.ToStringUtf8()}, then {lagging.Name} at {fromLagging.Header.Revision} says {fromLagging.Kvs[0].Value.ToStringUtf8()}");
        Assert.Equal("new.png", fromHealthy.Kvs[0].Value.ToStringUtf8());
        Assert.Equal("old.png", fromLagging.Kvs[0].Value.ToStringUtf8());
        Assert.True(fromLagging.Header.Revision < fromHealthy.Header.Revision, "serializable reads went backwards, as they may");

        // Session: the same move never goes backwards. The session's read on the healthy member
        // moves its token; the lagging member then refuses (typed, saying how far behind) instead of
        // answering old data.
        Assert.Equal("new.png", await session.GetStringAsync("profile/picture"));
        var onLaggingSession = onLagging.StartSession(session.Token);
        var clock = Stopwatch.StartNew();
        var behind = await Assert.ThrowsAsync<ReadConsistencyException>(() => onLaggingSession.GetStringAsync("profile/picture"));
        output.WriteLine($"session on {lagging.Name}: refused after {clock.ElapsedMilliseconds} ms: {behind.Status.Detail}");
        Assert.Equal(ConsistencyErrorKind.MemberBehind, behind.Kind);
        Assert.Equal(StatusCode.Unavailable, behind.StatusCode);
        Assert.Equal(second.Header.Revision, behind.RequiredRevision);
        Assert.Equal(fromLagging.Header.Revision, behind.AppliedRevision);
        Assert.True(behind.BehindRevisions >= 1);

        // A session watch from "now" on the lagging member must not start before the session's
        // revision: the member refuses it (MemberBehind) and the SDK keeps retrying, as watches do,
        // so nothing is delivered while the member is behind (checked again after the heal below).
        using var watchCancel = new CancellationTokenSource(TimeSpan.FromMinutes(2));
        var sessionWatch = onLaggingSession.WatchAsync("profile/picture", cancellationToken: watchCancel.Token).GetAsyncEnumerator(watchCancel.Token);
        var firstEvent = sessionWatch.MoveNextAsync().AsTask();
        Assert.NotSame(firstEvent, await Task.WhenAny(firstEvent, Task.Delay(1000)));

        // A session client that knows both members fails over from the lagging one to the healthy one.
        await using (var bothMembers = ClientOf(2, lagging, healthy))
        {
            var failingOver = bothMembers.StartSession(session.Token);
            Assert.Equal("new.png", await failingOver.GetStringAsync("profile/picture"));
        }

        // The profile-picture refresh: a session read on the healthy follower (no leader round trip)
        // sees the write; a session that never wrote may read the lagging member.
        Assert.Equal("new.png", await onHealthy.StartSession(session.Token).GetStringAsync("profile/picture"));
        Assert.Equal("old.png", await onLagging.StartSession().GetStringAsync("profile/picture"));

        // Bounded staleness: within the bound on the healthy member; refused on the cut-off one,
        // which cannot show it is within 2 s of the leader.
        // (Polled: the healthy member's first call to the leader opens a connection, which on a loaded
        // machine may take longer than the bound.)
        await ClusterKit.WaitUntilAsync("the healthy follower serves a bounded-staleness read", LeaderTimeout, async () =>
            await onHealthy.GetStringAsync("profile/picture", ReadConsistency.BoundedStaleness(TimeSpan.FromSeconds(2))) == "new.png");

        var stale = await Assert.ThrowsAsync<ReadConsistencyException>(() => onLagging.GetStringAsync("profile/picture", ReadConsistency.BoundedStaleness(TimeSpan.FromSeconds(2))));
        output.WriteLine($"bounded on {lagging.Name}: {stale.Status.Detail}");
        Assert.Equal(ConsistencyErrorKind.StalenessBoundExceeded, stale.Kind);

        // Linearizable: refused on the cut-off member (no leader to confirm a read index with).
        var linearizable = await Assert.ThrowsAsync<RpcException>(() => onLagging.GetStringAsync("profile/picture", ReadConsistency.Linearizable));
        output.WriteLine($"linearizable on {lagging.Name}: {linearizable.StatusCode}: {linearizable.Status.Detail}");
        Assert.NotEqual(StatusCode.OK, linearizable.StatusCode);

        // At revision: a revision the member has not reached is refused the same way, never served from the past.
        var atRevision = await Assert.ThrowsAsync<ReadConsistencyException>(() => onLagging.GetStringAsync("profile/picture", ReadConsistency.AtRevision(second.Header.Revision)));
        Assert.Equal(ConsistencyErrorKind.MemberBehind, atRevision.Kind);

        // Healed: the session watch starts at or after the session's revision, so the first event it
        // delivers is a later write, never new.png again (a watch that ignored the token would start
        // at the member's old revision and replay it). Writes continue until the watch has started.
        partition.Heal();
        for (var i = 0; !firstEvent.IsCompleted; i++)
        {
            await onLeader.PutAsync("profile/picture", $"newest-{i}.png");
            await Task.WhenAny(firstEvent, Task.Delay(200));
        }

        Assert.True(await firstEvent);
        output.WriteLine($"session watch on {lagging.Name} after the heal: first event {sessionWatch.Current.Kv.Value.ToStringUtf8()} at {sessionWatch.Current.Kv.ModRevision}");
        Assert.True(sessionWatch.Current.Kv.ModRevision > second.Header.Revision, $"the session watch delivered revision {sessionWatch.Current.Kv.ModRevision}, not after the session's {second.Header.Revision}");
        Assert.StartsWith("newest-", sessionWatch.Current.Kv.Value.ToStringUtf8(), StringComparison.Ordinal);
        await sessionWatch.DisposeAsync();
    }

    [IptablesFact]
    public async Task A_causal_token_handed_to_another_client_makes_a_lagging_member_wait_until_it_has_the_write()
    {
        await using var cluster = await ArbiterCluster.StartAsync(3, Settings(LongBudgetMs));
        var leader = await cluster.WaitForLeaderAsync(LeaderTimeout);
        var lagging = cluster.Running.First(m => m != leader);
        var others = cluster.Running.Where(m => m != lagging).ToList();
        await using var alice = ClientOf(3, leader);
        await using var bob = ClientOf(0, lagging);
        var before = await alice.PutAsync("forum/question", "none");
        await ClusterKit.WaitConvergedAsync(cluster, before.Header.Revision);

        var partition = IptablesPartition.Isolate(lagging, others);
        try
        {
            // Alice asks a question and hands Bob her token (a message, an HTTP header).
            var aliceSession = alice.StartSession();
            await aliceSession.PutAsync("forum/question", "is it raining?");
            var handedOver = aliceSession.Token!;
            output.WriteLine($"alice wrote at {aliceSession.CurrentToken}; handed over \"{handedOver}\"");

            // Without the token (serializable) Bob's member answers without the question.
            Assert.Equal("none", await bob.GetStringAsync("forum/question", ReadConsistency.Serializable));

            // With it, the member waits: the read is still pending while the member is cut off.
            var clock = Stopwatch.StartNew();
            var causal = bob.GetStringAsync("forum/question", ReadConsistency.Causal(ConsistencyToken.Parse(handedOver)));
            var early = await Task.WhenAny(causal, Task.Delay(500));
            Assert.NotSame(causal, early);
            output.WriteLine($"causal read on {lagging.Name} still waiting after {clock.ElapsedMilliseconds} ms; healing");
            partition.Dispose();

            Assert.Equal("is it raining?", await causal);
            output.WriteLine($"causal read answered after {clock.ElapsedMilliseconds} ms");
        }
        finally
        {
            partition.Dispose();
        }
    }

    [Fact]
    public async Task A_session_continues_on_another_member_after_its_member_is_killed_and_bad_tokens_are_refused()
    {
        await using var cluster = await ArbiterCluster.StartAsync(3, new ClusterSettings { ExtraArguments = ["--consistency-wait-budget", "5000"] });
        var first = await cluster.WaitForLeaderAsync(LeaderTimeout);
        var second = cluster.Running.First(m => m != first);
        await using var client = ClientOf(5, first, second);
        var session = client.StartSession();

        // Bad tokens, on a follower (which asks the leader to tell "from the future" from its own lag).
        await using (var onFollower = ClientOf(0, second))
        {
            var put = await session.PutAsync("bad/probe", "x");
            var current = session.CurrentToken!.Value;
            var malformed = Assert.Throws<ReadConsistencyException>(() => onFollower.StartSession("arb1.not-a-token"));
            Assert.Equal(ConsistencyErrorKind.MalformedToken, malformed.Kind);
            var other = await Assert.ThrowsAsync<ReadConsistencyException>(() => onFollower.GetStringAsync("bad/probe", ReadConsistency.Causal(current with { ClusterId = current.ClusterId ^ 0x5a })));
            Assert.Equal(ConsistencyErrorKind.OtherClusterToken, other.Kind);
            Assert.Equal(StatusCode.FailedPrecondition, other.StatusCode);
            var future = await Assert.ThrowsAsync<ReadConsistencyException>(() => onFollower.GetStringAsync("bad/probe", ReadConsistency.Causal(current with { Revision = current.Revision + 1000 })));
            Assert.True(future.Kind == ConsistencyErrorKind.FutureToken, future.Status.Detail);
            Assert.Equal(StatusCode.OutOfRange, future.StatusCode);
            output.WriteLine($"{malformed.Status.Detail}\n{other.Status.Detail}\n{future.Status.Detail}");
            Assert.Equal(put.Header.ClusterId, current.ClusterId);
        }

        // Read-your-writes and monotonic reads, before and after the session's member (the leader) is killed.
        var lastSeen = 0L;
        async Task StepAsync(int i)
        {
            var value = $"v{i}";
            var written = await session.PutAsync($"session/{i % 3}", value);
            Assert.Equal(value, await session.GetStringAsync($"session/{i % 3}"));
            var all = await session.RangeAsync(new() { Key = Keys.From("session/"), RangeEnd = Keys.PrefixEnd("session/") });
            Assert.True(all.Header.Revision >= written.Header.Revision && all.Header.Revision >= lastSeen, $"step {i}: read at {all.Header.Revision} after writing {written.Header.Revision} and seeing {lastSeen}");
            lastSeen = all.Header.Revision;
        }

        for (var i = 0; i < 5; i++)
        {
            await StepAsync(i);
        }

        var tokenBeforeKill = session.CurrentToken!.Value;
        await first.KillAsync();
        output.WriteLine($"killed {first.Name} (leader) with the session at {tokenBeforeKill}; continuing on {second.Name}");

        // The very first read after the kill lands on the other member and still sees the session's writes.
        Assert.Equal("v4", await session.GetStringAsync("session/1"));
        await cluster.WaitForLeaderAsync(LeaderTimeout);
        for (var i = 5; i < 10; i++)
        {
            await StepAsync(i);
        }

        Assert.True(session.CurrentToken!.Value.Revision > tokenBeforeKill.Revision);
    }
}
