using Arbiter.Client;
using Arbiter.Recipes;
using Medallion.Threading;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Options;

namespace Arbiter.Hosting;

/// <summary>Registers Arbiter with dependency injection.</summary>
public static class ArbiterServiceCollectionExtensions
{
    /// <summary>
    /// Registers a singleton <see cref="ArbiterClient"/> (gRPC, options bound from
    /// <paramref name="configuration"/>, e.g. the "Arbiter" section: <c>Endpoints</c>, <c>CallTimeoutMs</c>,
    /// <c>RetryAttemptsMax</c>, <c>SessionTtlSeconds</c>, and for https endpoints <c>CaFile</c>, <c>CertFile</c>,
    /// <c>KeyFile</c>), and the DistributedLock library's <see cref="IDistributedLockProvider"/>,
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
                configure?.Invoke(o);
            });
        return services.AddArbiterCore(sp => ArbiterClient.Connect(sp.GetRequiredService<IOptions<ArbiterClientOptions>>().Value));
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
