using Arbiter.Client;
using Arbiter.Hosting;
using Arbiter.Recipes.Tests.Hosting;
using Medallion.Threading;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Primitives;

namespace Arbiter.Recipes.Tests.Contract;

public abstract partial class ContractSuite
{
    [Fact]
    public async Task Configuration_source_loads_prefix_and_reloads_on_change()
    {
        var client = NewClient();
        await client.PutAsync(Prefix + "cfg/Feature/Enabled", "false");
        await client.PutAsync(Prefix + "cfg/Name", "one");
        var configuration = new ConfigurationBuilder().AddArbiter(client, Prefix + "cfg").Build();
        try
        {
            Assert.Equal("false", configuration["Feature:Enabled"]);
            Assert.Equal("one", configuration["name"]);
            var reloaded = new TaskCompletionSource();
            using var registration = ChangeToken.OnChange(configuration.GetReloadToken, () =>
            {
                if (configuration["Feature:Enabled"] == "true")
                {
                    reloaded.TrySetResult();
                }
            });
            await client.PutAsync(Prefix + "cfg/Feature/Enabled", "true");
            await reloaded.Task.Within();
            await client.DeleteAsync(Prefix + "cfg/Name");
            await TestSupport.EventuallyAsync(() => Task.FromResult(configuration["Name"] == null), TestSupport.Deadline, "deleted key gone from configuration");
        }
        finally
        {
            (configuration as IDisposable)?.Dispose();
        }
    }

    [Fact]
    public async Task Configuration_source_survives_a_value_options_cannot_bind()
    {
        var client = NewClient();
        await client.PutAsync(Prefix + "cfg/Cache/MaxItems", "4");
        using var logs = new CapturedLogs();
        var configuration = new ConfigurationBuilder().AddArbiter(client, Prefix + "cfg", source => source.LoggerFactory = logs.Factory).Build();
        try
        {
            var services = new ServiceCollection();
            services.Configure<CacheOptions>(configuration.GetSection("Cache"));
            await using var provider = services.BuildServiceProvider();
            var options = provider.GetRequiredService<IOptionsMonitor<CacheOptions>>();
            Assert.Equal(4, options.CurrentValue.MaxItems);

            // Binding "bad" into an int throws inside the reload: logged once, with the key; the watch goes on.
            await client.PutAsync(Prefix + "cfg/Cache/MaxItems", "bad");
            await TestSupport.EventuallyAsync(() => Task.FromResult(logs.AtLeast(LogLevel.Error).Count == 1), TestSupport.Deadline, "the refused change logged");
            Assert.Equal("bad", configuration["Cache:MaxItems"]);
            var error = Assert.Single(logs.AtLeast(LogLevel.Error));
            Assert.Contains("Cache:MaxItems", error, StringComparison.Ordinal);
            Assert.Contains("'Cache:MaxItems'", error, StringComparison.Ordinal);

            await client.PutAsync(Prefix + "cfg/Cache/MaxItems", "8");
            // Until the monitor rebinds, CurrentValue rethrows the cached binding failure of "bad".
            bool Delivered()
            {
                try
                {
                    return options.CurrentValue.MaxItems == 8;
                }
                catch (InvalidOperationException)
                {
                    return false;
                }
            }

            await TestSupport.EventuallyAsync(() => Task.FromResult(Delivered()), TestSupport.Deadline, "the next valid value delivered to the options");
            Assert.Single(logs.AtLeast(LogLevel.Error));
            Assert.Equal(1, ((IConfigurationRoot)configuration).Providers.OfType<ArbiterConfigurationProvider>().Single().RejectedReloadCount);
        }
        finally
        {
            (configuration as IDisposable)?.Dispose();
        }
    }

    /// <summary>
    /// Code written against the DistributedLock library's interfaces only (as for its PostgreSQL or
    /// Redis providers), given Arbiter by one registration: locks, semaphores and reader-writer locks
    /// exclude as they should, through the asynchronous and the synchronous overloads.
    /// </summary>
    [Fact]
    public async Task DistributedLock_library_interfaces_work_from_one_registration()
    {
        var services = new ServiceCollection();
        services.AddArbiter(NewClient());
        await using var provider = services.BuildServiceProvider();

        // Locks: the second holder is refused until the first releases.
        var locks = provider.GetRequiredService<IDistributedLockProvider>();
        IDistributedLock first = locks.CreateLock(Prefix + "dl-lock"), second = locks.CreateLock(Prefix + "dl-lock");
        Assert.Equal(Prefix + "dl-lock", first.Name);
        await using (var held = await first.AcquireAsync(TestSupport.Deadline))
        {
            Assert.False(held.HandleLostToken.IsCancellationRequested);
            Assert.Null(await second.TryAcquireAsync());
            Assert.Null(second.TryAcquire(TimeSpan.FromMilliseconds(200)));
            await Assert.ThrowsAsync<TimeoutException>(async () => await second.AcquireAsync(TimeSpan.FromMilliseconds(200)));
        }

        using (second.Acquire(TestSupport.Deadline))
        {
            Assert.Null(await first.TryAcquireAsync());
        }

        await using ((await first.TryAcquireAsync(TestSupport.Deadline))!)
        {
        }

        // Semaphores: MaxCount holders at once.
        var semaphores = provider.GetRequiredService<IDistributedSemaphoreProvider>();
        var semaphore = semaphores.CreateSemaphore(Prefix + "dl-sem", 2);
        Assert.Equal(2, semaphore.MaxCount);
        var one = await semaphore.AcquireAsync(TestSupport.Deadline);
        var two = semaphore.Acquire(TestSupport.Deadline);
        Assert.Null(await semaphores.CreateSemaphore(Prefix + "dl-sem", 2).TryAcquireAsync());
        await one.DisposeAsync();
        using (var three = semaphore.TryAcquire(TestSupport.Deadline))
        {
            Assert.NotNull(three);
        }

        two.Dispose();

        // Reader-writer locks: readers share, a writer excludes both.
        var rw = provider.GetRequiredService<IDistributedReaderWriterLockProvider>().CreateReaderWriterLock(Prefix + "dl-rw");
        var reader1 = await rw.AcquireReadLockAsync(TestSupport.Deadline);
        var reader2 = rw.AcquireReadLock(TestSupport.Deadline);
        Assert.Null(await rw.TryAcquireWriteLockAsync());
        await reader1.DisposeAsync();
        reader2.Dispose();
        using (var writer = rw.AcquireWriteLock(TestSupport.Deadline))
        {
            Assert.Null(await rw.TryAcquireReadLockAsync());
            Assert.Null(rw.TryAcquireWriteLock());
        }

        await using ((await rw.TryAcquireReadLockAsync(TestSupport.Deadline))!)
        {
        }

        // One provider behind all three interfaces.
        Assert.Same(locks, semaphores);
    }

    [Fact]
    public async Task Hosting_registers_client_lock_provider_health_check_and_leader_only_service()
    {
        var client = NewClient();
        var services = new ServiceCollection();
        services.AddLogging();
        services.AddArbiter(client);
        services.AddHealthChecks().AddArbiter();
        var ran = new TaskCompletionSource<long>();
        services.AddLeaderService(Prefix + "leader", "me", async (sp, token) =>
        {
            ran.TrySetResult(1);
            await Task.Delay(Timeout.Infinite, token);
        });
        await using var provider = services.BuildServiceProvider();
        Assert.Same(client, provider.GetRequiredService<ArbiterClient>());
        await using (var handle = await provider.GetRequiredService<IDistributedLockProvider>().CreateLock(Prefix + "l").AcquireAsync(TestSupport.Deadline))
        {
            Assert.StartsWith(Prefix + "l/", Assert.IsType<DistributedLockHandle>(handle).Key, StringComparison.Ordinal);
        }

        var health = await provider.GetRequiredService<HealthCheckService>().CheckHealthAsync();
        Assert.Equal(HealthStatus.Healthy, health.Status);

        // A rival holds the election first: the service must wait, then run once the rival resigns.
        var rival = await new LeaderElection(NewClient(), Prefix + "leader").CampaignAsync("rival", TestSupport.Deadline);
        var hosted = provider.GetServices<IHostedService>().OfType<LeaderBackgroundService>().Single();
        await hosted.StartAsync(CancellationToken.None);
        await TestSupport.EventuallyAsync(async () => await CountKeysAsync(Prefix + "leader/") == 2, TestSupport.Deadline, "service campaigning");
        Assert.False(ran.Task.IsCompleted);
        await rival.ResignAsync();
        await ran.Task.Within();
        Assert.Equal("me", (await new LeaderElection(NewClient(), Prefix + "leader").GetLeaderAsync())!.Value);
        await hosted.StopAsync(CancellationToken.None).Within();
        await TestSupport.EventuallyAsync(async () => await CountKeysAsync(Prefix + "leader/") == 0, TestSupport.Deadline, "service resigned on stop");
    }

    /// <summary>The application builder's AddArbiter: the client it registers is the one the live configuration source reads through.</summary>
    [Fact]
    public async Task Host_builder_uses_one_client_for_services_and_configuration()
    {
        var client = NewClient();
        await client.PutAsync(Prefix + "hostcfg/Name", "one");
        var builder = Host.CreateEmptyApplicationBuilder(new HostApplicationBuilderSettings());
        builder.AddArbiter(client, Prefix + "hostcfg");
        using var host = builder.Build();
        Assert.Same(client, host.Services.GetRequiredService<ArbiterClient>());
        Assert.Same(client, ((IConfigurationBuilder)builder.Configuration).Sources.OfType<ArbiterConfigurationSource>().Single().Client);
        Assert.Equal("one", host.Services.GetRequiredService<IConfiguration>()["Name"]);
        Assert.NotNull(host.Services.GetRequiredService<IDistributedLockProvider>());
    }

    [Fact]
    public void Host_builder_binds_the_client_from_the_arbiter_section()
    {
        var builder = Host.CreateEmptyApplicationBuilder(new HostApplicationBuilderSettings());
        builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Arbiter:Endpoints:0"] = "http://127.0.0.1:1",
            ["Arbiter:CallTimeoutMs"] = "1234",
            ["Arbiter:UserName"] = "alice",
        });
        builder.AddArbiter();
        using var host = builder.Build();
        var options = host.Services.GetRequiredService<ArbiterClient>().Options;
        Assert.Equal(["http://127.0.0.1:1"], options.Endpoints);
        Assert.Equal(1234, options.CallTimeoutMs);
        Assert.Equal("alice", options.UserName);
    }

    [Fact]
    public void Options_bind_from_configuration()
    {
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Arbiter:Endpoints:0"] = "http://127.0.0.1:1",
            ["Arbiter:Endpoints:1"] = "http://127.0.0.1:2",
            ["Arbiter:CallTimeoutMs"] = "1234",
        }).Build();
        var services = new ServiceCollection().AddArbiter(configuration.GetSection("Arbiter"));
        using var provider = services.BuildServiceProvider();
        var options = provider.GetRequiredService<Microsoft.Extensions.Options.IOptions<ArbiterClientOptions>>().Value;
        Assert.Equal(["http://127.0.0.1:1", "http://127.0.0.1:2"], options.Endpoints);
        Assert.Equal(1234, options.CallTimeoutMs);
    }
}

/// <summary>Options bound from the live configuration in the hosting tests.</summary>
public sealed class CacheOptions
{
    public int MaxItems { get; set; }
}
