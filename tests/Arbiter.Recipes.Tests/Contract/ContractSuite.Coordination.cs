using System.Threading.Channels;
using Arbiter.Client;

namespace Arbiter.Recipes.Tests.Contract;

public abstract partial class ContractSuite
{
    [Fact]
    public async Task Election_one_leader_at_a_time_observers_see_every_change()
    {
        var name = Prefix + "e";
        var seen = Channel.CreateUnbounded<LeaderInfo>();
        using var stop = new CancellationTokenSource();
        var observer = Task.Run(async () =>
        {
            await foreach (var leader in new LeaderElection(NewClient(), name).ObserveAsync(stop.Token))
            {
                await seen.Writer.WriteAsync(leader);
            }
        });

        var a = await new LeaderElection(NewClient(), name).CampaignAsync("a", TestSupport.Deadline);
        Assert.True(a.IsLeader);
        Assert.Equal("a", (await ReadNextAsync(seen)).Value);
        var bTask = new LeaderElection(NewClient(), name).CampaignAsync("b", TestSupport.Deadline);
        await TestSupport.EventuallyAsync(async () => await CountKeysAsync(name + "/") == 2, TestSupport.Deadline, "b queued");
        Assert.False(bTask.IsCompleted);
        Assert.Equal("a", (await new LeaderElection(NewClient(), name).GetLeaderAsync())!.Value);

        Assert.True(await a.ProclaimAsync("a2"));
        Assert.Equal("a2", (await ReadNextAsync(seen)).Value);
        await a.ResignAsync();
        Assert.False(a.IsLeader);
        Assert.False(await a.ProclaimAsync("a3"));

        await using var b = await bTask.Within();
        var bSeen = await ReadNextAsync(seen);
        Assert.Equal("b", bSeen.Value);
        Assert.Equal(b.Revision, bSeen.Revision);
        Assert.True(b.Revision > a.Revision);
        await stop.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => observer);
    }

    [Fact]
    public async Task Election_slow_observer_still_sees_every_term_in_order()
    {
        var name = Prefix + "e";
        var a = await new LeaderElection(NewClient(), name).CampaignAsync("a", TestSupport.Deadline);
        await using var observer = new LeaderElection(NewClient(), name).ObserveAsync().Within().GetAsyncEnumerator();
        Assert.True(await observer.MoveNextAsync());
        Assert.Equal("a", observer.Current.Value);

        // Terms b and c start and end while the observer is not reading.
        await a.ResignAsync();
        var b = await new LeaderElection(NewClient(), name).CampaignAsync("b", TestSupport.Deadline);
        await b.ResignAsync();
        await using var c = await new LeaderElection(NewClient(), name).CampaignAsync("c", TestSupport.Deadline);
        Assert.True(await observer.MoveNextAsync());
        Assert.Equal(("b", b.Revision), (observer.Current.Value, observer.Current.Revision));
        Assert.True(await observer.MoveNextAsync());
        Assert.Equal(("c", c.Revision), (observer.Current.Value, observer.Current.Revision));
    }

    [Fact]
    public async Task Election_leadership_lost_token_fires_when_the_leader_key_goes()
    {
        var leadership = await new LeaderElection(NewClient(), Prefix + "e").CampaignAsync("x", TestSupport.Deadline);
        var lost = new TaskCompletionSource();
        leadership.LostToken.Register(() => lost.TrySetResult());
        await NewClient().DeleteAsync(leadership.Key);
        await lost.Task.Within();
        Assert.False(leadership.IsLeader);
        await leadership.DisposeAsync();
    }

    [Fact]
    public async Task Barrier_blocks_until_released()
    {
        var barrier = new DistributedBarrier(NewClient(), Prefix + "barrier");
        Assert.True(await barrier.WaitAsync(TimeSpan.Zero));
        Assert.True(await barrier.HoldAsync());
        Assert.False(await barrier.HoldAsync());
        var waiter = new DistributedBarrier(NewClient(), Prefix + "barrier").WaitAsync(TestSupport.Deadline);
        Assert.False(await new DistributedBarrier(NewClient(), Prefix + "barrier").WaitAsync(TimeSpan.FromMilliseconds(200)));
        await barrier.ReleaseAsync();
        Assert.True(await waiter.Within());
    }

    [Fact]
    public async Task DoubleBarrier_enters_and_leaves_together()
    {
        var sessions = new List<Session>();
        for (var i = 0; i < 3; i++)
        {
            sessions.Add(await NewClient().CreateSessionAsync(TimeSpan.FromSeconds(10)));
        }

        var barriers = sessions.Select(s => new DistributedDoubleBarrier(s, Prefix + "db", 3)).ToList();
        var first = barriers[0].EnterAsync(TestSupport.Deadline);
        var second = barriers[1].EnterAsync(TestSupport.Deadline);
        await TestSupport.EventuallyAsync(async () => await CountKeysAsync(Prefix + "db/waiters/") == 2, TestSupport.Deadline, "two entered");
        Assert.False(first.IsCompleted || second.IsCompleted);
        Assert.True(await barriers[2].EnterAsync(TestSupport.Deadline));
        Assert.True(await first.Within());
        Assert.True(await second.Within());

        var leave0 = barriers[0].LeaveAsync(TestSupport.Deadline);
        Assert.False(await barriers[1].LeaveAsync(TimeSpan.FromMilliseconds(200)));
        Assert.True(await barriers[2].LeaveAsync(TestSupport.Deadline));
        Assert.True(await leave0.Within());
        foreach (var s in sessions)
        {
            await s.DisposeAsync();
        }
    }

    /// <summary>
    /// Three parties through three phases: none leaves a phase before all three arrived at it, each
    /// sees the phases 0, 1, 2 in order, and the barrier resets by itself. A party that times out
    /// withdraws its arrival (the next party alone does not open the barrier).
    /// </summary>
    [Fact]
    public async Task CyclicBarrier_releases_all_parties_together_phase_after_phase()
    {
        const int parties = 3, phases = 3;
        var sessions = new List<Session>();
        for (var i = 0; i < parties; i++)
        {
            sessions.Add(await NewClient().CreateSessionAsync(TimeSpan.FromSeconds(10)));
        }

        var arrivedAt = new int[phases];
        var passedEarly = 0;
        var seen = await Task.WhenAll(sessions.Select(async session =>
        {
            var barrier = new DistributedCyclicBarrier(session, Prefix + "cyclic", parties);
            var opened = new List<long>();
            for (var phase = 0; phase < phases; phase++)
            {
                Interlocked.Increment(ref arrivedAt[phase]);
                opened.Add(await barrier.SignalAndWaitAsync(TestSupport.Deadline));
                if (Volatile.Read(ref arrivedAt[phase]) != parties)
                {
                    Interlocked.Increment(ref passedEarly);
                }
            }

            return opened;
        })).Within();

        Assert.Equal(0, passedEarly);
        Assert.All(seen, opened => Assert.Equal([0L, 1L, 2L], opened));
        Assert.Equal(phases, await new DistributedCyclicBarrier(sessions[0], Prefix + "cyclic", parties).GetCurrentPhaseNumberAsync());
        Assert.Equal(0, await CountKeysAsync(Prefix + "cyclic/arrivals/"));

        // A party alone times out and withdraws; a second one alone then does not open a 2-party barrier.
        var pair = sessions.Take(2).Select(s => new DistributedCyclicBarrier(s, Prefix + "pair", 2)).ToList();
        await Assert.ThrowsAsync<TimeoutException>(() => pair[0].SignalAndWaitAsync(TimeSpan.FromMilliseconds(300)));
        Assert.Equal(0, await CountKeysAsync(Prefix + "pair/arrivals/"));
        await Assert.ThrowsAsync<TimeoutException>(() => pair[1].SignalAndWaitAsync(TimeSpan.FromMilliseconds(300)));
        var both = await Task.WhenAll(pair.Select(b => b.SignalAndWaitAsync(TestSupport.Deadline))).Within();
        Assert.Equal([0L, 0L], both);

        foreach (var s in sessions)
        {
            await s.DisposeAsync();
        }
    }

    [Fact]
    public async Task CountdownLatch_opens_at_zero()
    {
        var latch = new DistributedCountdownLatch(NewClient(), Prefix + "latch");
        Assert.True(await latch.TrySetCountAsync(3));
        Assert.False(await latch.TrySetCountAsync(5));
        var waiter = new DistributedCountdownLatch(NewClient(), Prefix + "latch").WaitAsync(TestSupport.Deadline);
        await Task.WhenAll(Enumerable.Range(0, 2).Select(_ => new DistributedCountdownLatch(NewClient(), Prefix + "latch").CountDownAsync()));
        Assert.Equal(1, await latch.GetCountAsync());
        Assert.False(waiter.IsCompleted);
        Assert.Equal(0, await latch.CountDownAsync());
        Assert.True(await waiter.Within());
        Assert.Equal(0, await latch.CountDownAsync());
    }

    [Fact]
    public async Task Condition_wait_until_predicate_by_watch_and_signal_broadcast()
    {
        var client = NewClient();
        var untilReady = client.WaitUntilAsync(Prefix + "state", kv => kv?.Value.ToStringUtf8() == "ready", TestSupport.Deadline);
        var untilThree = client.WaitUntilPrefixAsync(Prefix + "items/", kvs => kvs.Count >= 3, TestSupport.Deadline);
        await client.PutAsync(Prefix + "state", "starting");
        await client.PutAsync(Prefix + "state", "ready");
        Assert.True(await untilReady.Within());
        for (var i = 0; i < 3; i++)
        {
            await client.PutAsync(Prefix + "items/" + i, "x");
        }

        Assert.True(await untilThree.Within());
        Assert.False(await client.WaitUntilAsync(Prefix + "never", kv => kv != null, TimeSpan.FromMilliseconds(200)));

        await using var session = await client.CreateSessionAsync(TimeSpan.FromSeconds(10));
        var condition = new DistributedCondition(session, Prefix + "cond");
        Assert.False(await condition.SignalAsync());
        var w1 = condition.WaitAsync(TestSupport.Deadline);
        await TestSupport.EventuallyAsync(async () => await CountKeysAsync(Prefix + "cond/waiters/") == 1, TestSupport.Deadline, "w1 waiting");
        var w2 = condition.WaitAsync(TestSupport.Deadline);
        var w3 = condition.WaitAsync(TestSupport.Deadline);
        await TestSupport.EventuallyAsync(async () => await CountKeysAsync(Prefix + "cond/waiters/") == 3, TestSupport.Deadline, "three waiting");
        Assert.True(await condition.SignalAsync());
        Assert.True(await w1.Within());
        Assert.False(w2.IsCompleted || w3.IsCompleted);
        Assert.Equal(2, await condition.BroadcastAsync());
        Assert.True(await w2.Within());
        Assert.True(await w3.Within());
        Assert.False(await condition.WaitAsync(TimeSpan.FromMilliseconds(200)));
        Assert.Equal(0, await CountKeysAsync(Prefix + "cond/waiters/"));
    }

    [Fact]
    public async Task Counter_and_cas_value_have_no_lost_updates()
    {
        await Task.WhenAll(Enumerable.Range(0, 4).Select(_ => Task.Run(async () =>
        {
            var counter = new DistributedCounter(NewClient(), Prefix + "n");
            for (var i = 0; i < 10; i++)
            {
                await counter.IncrementAsync();
            }
        }))).Within();
        Assert.Equal(40, await new DistributedCounter(NewClient(), Prefix + "n").GetAsync());

        var value = new DistributedValue(NewClient(), Prefix + "v");
        Assert.Equal(new VersionedValue(null, 0), await value.GetAsync());
        Assert.True(await value.TrySetAsync("one", 0));
        var current = await value.GetAsync();
        Assert.False(await value.TrySetAsync("lost", 0));
        Assert.True(await value.TrySetAsync("two", current.ModRevision));
        Assert.Equal("two", (await value.GetAsync()).Value);
    }

    [Fact]
    public async Task Registry_register_resolve_watch_pick_and_expiry_on_deregister()
    {
        var registry = new ServiceRegistry(NewClient(), Prefix + "services");
        var snapshots = Channel.CreateUnbounded<IReadOnlyList<ServiceInstance>>();
        using var stop = new CancellationTokenSource();
        var watcher = Task.Run(async () =>
        {
            await foreach (var s in registry.WatchAsync("api", stop.Token))
            {
                await snapshots.Writer.WriteAsync(s);
            }
        });
        Assert.Empty(await ReadNextAsync(snapshots));
        var one = await registry.RegisterAsync("api", "1", "10.0.0.1:80", TimeSpan.FromSeconds(10));
        await using var two = await registry.RegisterAsync("api", "2", "10.0.0.2:80", TimeSpan.FromSeconds(10));
        Assert.Single(await ReadNextAsync(snapshots));
        Assert.Equal(["1", "2"], (await ReadNextAsync(snapshots)).Select(i => i.Id));
        Assert.Equal(2, (await registry.ResolveAsync("api")).Count);

        var picker = new ServicePicker(registry, "api", PickStrategy.RoundRobin);
        Assert.Equal(["1", "2", "1"], [(await picker.PickAsync())!.Id, (await picker.PickAsync())!.Id, (await picker.PickAsync())!.Id]);
        Assert.NotNull(await new ServicePicker(registry, "api", PickStrategy.Random, new Random(TestSupport.Seed(Output))).PickAsync());

        await one.DisposeAsync();
        Assert.Equal(["2"], (await ReadNextAsync(snapshots)).Select(i => i.Id));
        await stop.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => watcher);

        var group = new GroupMembership(NewClient(), Prefix + "g");
        await using var member = await group.JoinAsync("m1", "meta", TimeSpan.FromSeconds(10));
        Assert.Equal([new ServiceInstance("m1", "meta")], await group.GetMembersAsync());
    }

    private static async Task<T> ReadNextAsync<T>(Channel<T> channel) => await channel.Reader.ReadAsync().AsTask().Within();
}
