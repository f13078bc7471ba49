using Arbiter.Client;
using Arbiter.Hosting;
using Arbiter.Recipes.Tests.Hosting;
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
            Assert.StartsWith(Prefix + "l/", handle.Key, StringComparison.Ordinal);
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
