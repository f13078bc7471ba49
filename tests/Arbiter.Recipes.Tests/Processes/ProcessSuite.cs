using System.Globalization;
using Arbiter.Client;
using Arbiter.Compatibility.Tests.Fixtures;
using Arbiter.Recipes.Tests.Backends;

namespace Arbiter.Recipes.Tests.Processes;

/// <summary>
/// Recipes across real OS processes against a real server: contention, SIGKILL, SIGSTOP, elections.
/// Run against the Arbiter server and a real etcd, same tests.
/// </summary>
public abstract class ProcessSuite : IAsyncLifetime
{
    private readonly List<ManagedProcess> _children = [];

    protected ProcessSuite(ProcessBackend backend, ITestOutputHelper output)
    {
        Backend = backend;
        Output = output;
        Prefix = $"p-{Guid.NewGuid().ToString("N")[..8]}/";
        Client = backend.NewClient();
    }

    protected ProcessBackend Backend { get; }

    protected ITestOutputHelper Output { get; }

    protected string Prefix { get; }

    protected ArbiterClient Client { get; }

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        foreach (var child in _children)
        {
            Output.WriteLine($"--- {child.DisplayName} ---\n{child.Log}");
            await child.DisposeAsync();
        }

        // Leader changes and lease expiry explain most failures here; xunit shows this only for failed tests.
        var serverLog = Backend.Log.Split('\n');
        Output.WriteLine($"--- server ({Backend.Name}) log tail ---\n{string.Join('\n', serverLog.Skip(Math.Max(0, serverLog.Length - 150)))}");
        await Client.DisposeAsync();
    }

    [Fact]
    public async Task Mutex_across_processes_loses_no_update()
    {
        var seed = TestSupport.Seed(Output);
        var random = new Random(seed);
        var iterations = Enumerable.Range(0, 3).Select(_ => random.Next(15, 26)).ToArray();
        var children = iterations.Select((n, i) => Start($"inc{i}", "mutex-increment", Backend.Endpoint!, Prefix + "lock", Prefix + "counter", n.ToString(CultureInfo.InvariantCulture), "5")).ToList();
        foreach (var child in children)
        {
            await child.ExpectLineAsync("DONE", TimeSpan.FromSeconds(120));
        }

        Assert.Equal(iterations.Sum().ToString(CultureInfo.InvariantCulture), await Client.GetStringAsync(Prefix + "counter"));
        Assert.Empty(await Client.GetPrefixAsync(Prefix + "lock/"));
    }

    [Theory]
    [InlineData("mutex")]
    [InlineData("semaphore:1")]
    public async Task Holder_killed_with_sigkill_frees_the_lock_after_its_ttl(string kind)
    {
        var name = Prefix + "held";
        var holder = Start("holder", "hold", Backend.Endpoint!, kind, name, "2");
        var acquired = await holder.ExpectLineAsync("ACQUIRED");
        var token = long.Parse(acquired.Split(' ')[1], CultureInfo.InvariantCulture);
        DistributedLockHandle? mine = kind == "mutex"
            ? await new DistributedMutex(Client, name).TryAcquireAsync()
            : await new DistributedSemaphore(Client, name, 1).TryAcquireAsync();
        Assert.Null(mine);

        await holder.KillAsync();
        var started = DateTime.UtcNow;
        await using var handle = kind == "mutex"
            ? await new DistributedMutex(Client, name).AcquireAsync(TestSupport.Deadline)
            : await new DistributedSemaphore(Client, name, 1).AcquireAsync(TestSupport.Deadline);
        Output.WriteLine($"acquired {DateTime.UtcNow - started} after SIGKILL");
        Assert.True(handle.FencingToken > token);
    }

    [Fact]
    public async Task Holder_frozen_past_its_ttl_is_fenced_off_after_it_resumes()
    {
        var name = Prefix + "frozen";
        var holder = Start("frozen", "hold", Backend.Endpoint!, "mutex", name, "2");
        var acquired = await holder.ExpectLineAsync("ACQUIRED");
        var frozenToken = long.Parse(acquired.Split(' ')[1], CultureInfo.InvariantCulture);

        holder.Signal("STOP");
        try
        {
            // The frozen holder cannot renew: its lease expires and the lock passes on.
            await using var successor = await new DistributedMutex(Client, name).AcquireAsync(TestSupport.Deadline);
            Assert.True(successor.FencingToken > frozenToken);
            Assert.True(await successor.FencedPutAsync(name + "-data", "successor"));

            holder.Signal("CONT");
            await holder.WriteStdinAndCloseAsync(string.Empty);
            Assert.Equal("FENCED rejected", await holder.ExpectLineAsync("FENCED"));
            Assert.Equal("successor", await Client.GetStringAsync(name + "-data"));
        }
        finally
        {
            holder.Signal("CONT");
        }
    }

    [Fact]
    public async Task Election_across_processes_has_one_leader_at_a_time_and_observers_see_each()
    {
        var name = Prefix + "election";
        using var stop = new CancellationTokenSource();
        var seen = new List<LeaderInfo>();
        var observer = Task.Run(async () =>
        {
            await foreach (var leader in new LeaderElection(Client, name).ObserveAsync(stop.Token))
            {
                lock (seen)
                {
                    seen.Add(leader);
                }
            }
        });

        var candidates = Enumerable.Range(0, 3).Select(i => Start($"cand{i}", "campaign", Backend.Endpoint!, name, $"c{i}", "1000")).ToList();
        foreach (var candidate in candidates)
        {
            Assert.Equal("TERM ok", await candidate.ExpectLineAsync("TERM", TimeSpan.FromSeconds(60)));
            await candidate.ExpectLineAsync("RESIGNED");
        }

        await TestSupport.EventuallyAsync(
            () =>
            {
                lock (seen)
                {
                    return Task.FromResult(seen.Count >= 3);
                }
            },
            TestSupport.Deadline,
            "observer saw three leaders: " + string.Join(", ", seen));
        await stop.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => observer);
        lock (seen)
        {
            Output.WriteLine("observed: " + string.Join(", ", seen));
            Assert.Equal(3, seen.Select(l => l.Value).Distinct().Count());
            Assert.Equal(seen.Select(l => l.Revision).Order(), seen.Select(l => l.Revision));
        }
    }

    [Fact]
    public async Task Mutex_and_etcdctl_lock_exclude_each_other()
    {
        var name = Prefix + "shared";
        await using var etcdctl = ManagedProcess.Start(
            "/usr/bin/etcdctl",
            ["--endpoints", Backend.Endpoint!, "lock", name],
            "etcdctl-lock",
            new Dictionary<string, string> { ["ETCDCTL_API"] = "3" });
        var etcdctlKey = await etcdctl.ExpectLineAsync(name + "/");
        Assert.Matches("^" + System.Text.RegularExpressions.Regex.Escape(name) + "/[0-9a-f]+$", etcdctlKey);
        Assert.Null(await new DistributedMutex(Client, name).TryAcquireAsync(TimeSpan.FromMilliseconds(300)));

        // Our waiter queues behind etcdctl's key and gets the lock once etcdctl releases on SIGINT.
        var waiting = new DistributedMutex(Client, name).AcquireAsync(TestSupport.Deadline);
        await TestSupport.EventuallyAsync(async () => (await Client.GetPrefixAsync(name + "/")).Count == 2, TestSupport.Deadline, "our waiter queued");
        etcdctl.Signal("INT");
        await using var ours = await waiting.Within();

        // And the other way round: etcdctl waits for us.
        await using var second = ManagedProcess.Start(
            "/usr/bin/etcdctl",
            ["--endpoints", Backend.Endpoint!, "lock", name],
            "etcdctl-lock-2",
            new Dictionary<string, string> { ["ETCDCTL_API"] = "3" });
        await TestSupport.EventuallyAsync(async () => (await Client.GetPrefixAsync(name + "/")).Count == 2, TestSupport.Deadline, "etcdctl queued");
        await ours.DisposeAsync();
        await second.ExpectLineAsync(name + "/");
        second.Signal("INT");
    }

    [Fact]
    public async Task Client_fails_over_from_a_dead_endpoint_for_reads_and_unsent_writes()
    {
        var dead = $"http://127.0.0.1:{PortAllocator.FreePort()}";
        await using var client = ArbiterClient.Connect(dead, Backend.Endpoint!);

        // Connection refused proves the put was never sent: it is retried on the next endpoint.
        await client.PutAsync(Prefix + "failover", "1");
        Assert.Equal("1", await client.GetStringAsync(Prefix + "failover"));
        await using var other = ArbiterClient.Connect(dead, Backend.Endpoint!);
        Assert.Equal("1", await other.GetStringAsync(Prefix + "failover"));
    }

    [Fact]
    public async Task Watch_resumes_after_the_server_is_killed_and_restarted_without_loss_or_repeats()
    {
        using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(90));
        var events = System.Threading.Channels.Channel.CreateUnbounded<WatchEvent>();
        var watcher = Task.Run(async () =>
        {
            await foreach (var e in Client.WatchAsync(Prefix + "w/", new WatchOptions { Prefix = true, ReconnectDelayMs = 100 }, stop.Token))
            {
                await events.Writer.WriteAsync(e);
            }
        });
        await TestSupport.EventuallyAsync(
            async () =>
            {
                await Client.PutAsync(Prefix + "w/probe", "x");
                return events.Reader.TryRead(out _);
            },
            TestSupport.Deadline,
            "watch established");
        await Client.PutAsync(Prefix + "w/before", "1");

        // A probe put by an earlier attempt above may be delivered after the drain: skip probes.
        WatchEvent first;
        do
        {
            first = await events.Reader.ReadAsync().AsTask().Within();
        }
        while (first.Key.EndsWith("w/probe", StringComparison.Ordinal));
        Assert.Equal("before", first.Key[(Prefix.Length + 2)..]);

        // SIGKILL, not SIGTERM: Arbiter's graceful stop currently waits for open watch streams.
        await Backend.Fixture.Server.KillAsync();
        await Backend.Fixture.Server.StartAsync(isRestart: true);
        await using var writer = Backend.NewClient();
        await writer.PutAsync(Prefix + "w/after1", "2");
        await writer.PutAsync(Prefix + "w/after2", "3");
        Assert.Equal("after1", (await events.Reader.ReadAsync().AsTask().Within(TimeSpan.FromSeconds(60))).Key[(Prefix.Length + 2)..]);
        Assert.Equal("after2", (await events.Reader.ReadAsync().AsTask().Within()).Key[(Prefix.Length + 2)..]);
        Assert.False(events.Reader.TryRead(out _));
        await stop.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => watcher);
    }

    [Fact]
    public async Task Session_is_lost_when_keep_alives_fail_for_a_whole_ttl()
    {
        await using var client = Backend.NewClient();
        var session = await client.CreateSessionAsync(TimeSpan.FromSeconds(2));
        var lost = new TaskCompletionSource();
        session.LostToken.Register(() => lost.TrySetResult());
        await Backend.Fixture.Server.KillAsync();
        try
        {
            await lost.Task.Within();
            Output.WriteLine($"lost: {session.LostReason}");
            Assert.True(session.IsLost);
        }
        finally
        {
            await Backend.Fixture.Server.StartAsync(isRestart: true);
        }

        await session.DisposeAsync();
    }

    private ManagedProcess Start(string name, params string[] arguments)
    {
        var child = HostProcess.Start(name, arguments);
        _children.Add(child);
        return child;
    }
}

public sealed class ArbiterServerProcessTests(ArbiterServerBackend backend, ITestOutputHelper output) : ProcessSuite(backend, output), IClassFixture<ArbiterServerBackend>;

/// <summary>The kill/restart tests kill and restart the follower the clients talk to; the cluster keeps its quorum.</summary>
[Collection(ArbiterClusterCollection.Name)]
public sealed class ArbiterClusterProcessTests(ArbiterClusterBackend backend, ITestOutputHelper output) : ProcessSuite(backend, output);

public sealed class EtcdProcessTests(EtcdBackend backend, ITestOutputHelper output) : ProcessSuite(backend, output), IClassFixture<EtcdBackend>;
