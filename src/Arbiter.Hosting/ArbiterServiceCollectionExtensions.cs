using Arbiter.Client;
using Arbiter.Recipes;
using Medallion.Threading;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;

namespace Arbiter.Hosting;

/// <summary>Registers Arbiter with dependency injection.</summary>
public static class ArbiterServiceCollectionExtensions
{
    /// <summary>
    /// Registers a singleton <see cref="ArbiterClient"/> (gRPC, options bound from
    /// <paramref name="configuration"/>, e.g. the "Arbiter" section: <c>Endpoints</c>, <c>CallTimeoutMs</c>,
    /// <c>RetryAttemptsMax</c>, <c>SessionTtlSeconds</c>, and for https endpoints <c>CaFile</c>, <c>CertFile</c>,
    /// <c>KeyFile</c>, with auth on <c>UserName</c> and <c>Password</c>), and the DistributedLock library's <see cref="IDistributedLockProvider"/>,
    /// <see cref="IDistributedSemaphoreProvider"/> and <see cref="IDistributedReaderWriterLockProvider"/>
    /// (all <see cref="ArbiterDistributedSynchronizationProvider"/>).
    /// </summary>
    public static IServiceCollection AddArbiter(this IServiceCollection services, IConfiguration configuration, Action<ArbiterClientOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentNullException.ThrowIfNull(configuration);
        services.AddOptions<ArbiterClientOptions>()
            .Configure(o =>
            {
                BindOptions(configuration, o);
                configure?.Invoke(o);
            });
        return services.AddArbiterCore(sp => ArbiterClient.Connect(sp.GetRequiredService<IOptions<ArbiterClientOptions>>().Value));
    }

    /// <summary>
    /// Creates one <see cref="ArbiterClient"/> from the <paramref name="sectionName"/> section of the
    /// application's configuration, registers it (as <see cref="AddArbiter(IServiceCollection, ArbiterClient)"/>)
    /// and, with <paramref name="configurationPrefix"/>, adds the keys under that prefix to the
    /// application's configuration as a live source through the same client: one client, one set of
    /// connections, one set of credentials, for both.
    /// </summary>
    public static IHostApplicationBuilder AddArbiter(this IHostApplicationBuilder builder, string? configurationPrefix = null, string sectionName = "Arbiter")
    {
        ArgumentNullException.ThrowIfNull(builder);
        var options = new ArbiterClientOptions();
        BindOptions(builder.Configuration.GetSection(sectionName), options);
        return builder.AddArbiter(ArbiterClient.Connect(options), configurationPrefix);
    }

    /// <summary>
    /// Registers <paramref name="client"/> (e.g. an embedded node's) and, with
    /// <paramref name="configurationPrefix"/>, adds the keys under that prefix to the application's
    /// configuration through that same client.
    /// </summary>
    public static IHostApplicationBuilder AddArbiter(this IHostApplicationBuilder builder, ArbiterClient client, string? configurationPrefix = null)
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentNullException.ThrowIfNull(client);
        builder.Services.AddArbiter(client);
        if (configurationPrefix is not null)
        {
            builder.Configuration.AddArbiter(client, configurationPrefix);
        }

        return builder;
    }

    /// <summary>Registers <paramref name="client"/> (e.g. an embedded node's) as the singleton client.</summary>
    public static IServiceCollection AddArbiter(this IServiceCollection services, ArbiterClient client)
    {
        ArgumentNullException.ThrowIfNull(client);
        return services.AddArbiterCore(_ => client);
    }

    /// <summary>Adds a health check that asks the server for its status within <paramref name="timeout"/>.</summary>
    public static IHealthChecksBuilder AddArbiter(this IHealthChecksBuilder builder, string name = "arbiter", TimeSpan? timeout = null)
    {
        ArgumentNullException.ThrowIfNull(builder);
        return builder.Add(new HealthCheckRegistration(
            name,
            sp => new ArbiterHealthCheck(sp.GetRequiredService<ArbiterClient>(), timeout ?? TimeSpan.FromSeconds(5)),
            HealthStatus.Unhealthy,
            ["arbiter"]));
    }

    /// <summary>Runs <paramref name="work"/> only while this process leads <paramref name="electionName"/> (see <see cref="LeaderBackgroundService"/>).</summary>
    public static IServiceCollection AddLeaderService(this IServiceCollection services, string electionName, string candidateValue, Func<IServiceProvider, CancellationToken, Task> work)
    {
        ArgumentNullException.ThrowIfNull(services);
        return services.AddSingleton<Microsoft.Extensions.Hosting.IHostedService>(sp => new DelegateLeaderService(sp, electionName, candidateValue, work));
    }

    /// <summary>Binds the client options from a configuration section (names as the properties).</summary>
    private static void BindOptions(IConfiguration configuration, ArbiterClientOptions o)
    {
        // IList<string> is get-only: bind the endpoints explicitly.
        foreach (var endpoint in configuration.GetSection(nameof(ArbiterClientOptions.Endpoints)).GetChildren().Select(c => c.Value).OfType<string>())
        {
            o.Endpoints.Add(endpoint);
        }

        o.CallTimeoutMs = configuration.GetValue(nameof(ArbiterClientOptions.CallTimeoutMs), o.CallTimeoutMs);
        o.RetryAttemptsMax = configuration.GetValue(nameof(ArbiterClientOptions.RetryAttemptsMax), o.RetryAttemptsMax);
        o.RetryDelayMs = configuration.GetValue(nameof(ArbiterClientOptions.RetryDelayMs), o.RetryDelayMs);
        o.SessionTtlSeconds = configuration.GetValue(nameof(ArbiterClientOptions.SessionTtlSeconds), o.SessionTtlSeconds);
        o.CaFile = configuration[nameof(ArbiterClientOptions.CaFile)] ?? o.CaFile;
        o.CertFile = configuration[nameof(ArbiterClientOptions.CertFile)] ?? o.CertFile;
        o.KeyFile = configuration[nameof(ArbiterClientOptions.KeyFile)] ?? o.KeyFile;
        o.UserName = configuration[nameof(ArbiterClientOptions.UserName)] ?? o.UserName;
        o.Password = configuration[nameof(ArbiterClientOptions.Password)] ?? o.Password;
    }

    private static IServiceCollection AddArbiterCore(this IServiceCollection services, Func<IServiceProvider, ArbiterClient> factory)
    {
        services.TryAddSingleton(factory);

        // The DistributedLock library's provider interfaces: code written against them (for
        // PostgreSQL, Redis…) gets Arbiter's locks from this one registration.
        services.TryAddSingleton(sp =>
        {
            var client = sp.GetRequiredService<ArbiterClient>();
            return new ArbiterDistributedSynchronizationProvider(client, new RecipeOptions { SessionTtlSeconds = client.Options.SessionTtlSeconds });
        });
        services.TryAddSingleton<IDistributedLockProvider>(sp => sp.GetRequiredService<ArbiterDistributedSynchronizationProvider>());
        services.TryAddSingleton<IDistributedSemaphoreProvider>(sp => sp.GetRequiredService<ArbiterDistributedSynchronizationProvider>());
        services.TryAddSingleton<IDistributedReaderWriterLockProvider>(sp => sp.GetRequiredService<ArbiterDistributedSynchronizationProvider>());
        return services;
    }

    private sealed class DelegateLeaderService(IServiceProvider services, string electionName, string candidateValue, Func<IServiceProvider, CancellationToken, Task> work)
        : LeaderBackgroundService(services.GetRequiredService<ArbiterClient>(), electionName, candidateValue)
    {
        protected override Task ExecuteAsLeaderAsync(CancellationToken leadershipToken) => work(services, leadershipToken);
    }
}

/// <summary>Healthy when the server answers a status request in time.</summary>
public sealed class ArbiterHealthCheck(ArbiterClient client, TimeSpan timeout) : IHealthCheck
{
    /// <inheritdoc />
    public async Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        deadline.CancelAfter(timeout);
        try
        {
            var status = await client.Raw.StatusAsync(deadline.Token).ConfigureAwait(false);
            return status.Errors.Count == 0
                ? HealthCheckResult.Healthy($"version {status.Version}, revision {status.Header.Revision}")
                : HealthCheckResult.Degraded(string.Join("; ", status.Errors));
        }
        catch (Exception e) when (e is Grpc.Core.RpcException or OperationCanceledException)
        {
            return HealthCheckResult.Unhealthy("Arbiter did not answer", e);
        }
    }
}
