using Arbiter.Client;
using Arbiter.Recipes;
using Grpc.Core;
using Microsoft.Extensions.Configuration;

namespace Arbiter.Hosting;

/// <summary>
/// Configuration from the keys under a prefix: <c>prefix/Section/Key</c> = value becomes
/// <c>Section:Key</c>. The provider watches the prefix and reloads (raising change tokens) on every change.
/// </summary>
public sealed class ArbiterConfigurationSource(ArbiterClient client, string prefix) : IConfigurationSource
{
    /// <summary>The client to read with.</summary>
    public ArbiterClient Client { get; } = client ?? throw new ArgumentNullException(nameof(client));

    /// <summary>The key prefix (a trailing slash is implied).</summary>
    public string Prefix { get; } = prefix.EndsWith('/') ? prefix : prefix + "/";

    /// <inheritdoc />
    public IConfigurationProvider Build(IConfigurationBuilder builder) => new ArbiterConfigurationProvider(this);
}

/// <summary>Loads and live-reloads configuration from an <see cref="ArbiterConfigurationSource"/>.</summary>
public sealed class ArbiterConfigurationProvider : ConfigurationProvider, IDisposable
{
    private readonly ArbiterConfigurationSource _source;
    private readonly CancellationTokenSource _stop = new();
    private Task? _watch;

    /// <summary>A provider for <paramref name="source"/>.</summary>
    public ArbiterConfigurationProvider(ArbiterConfigurationSource source) => _source = source ?? throw new ArgumentNullException(nameof(source));

    /// <summary>How many times the data was (re)loaded; for tests and diagnostics.</summary>
    public int LoadCount { get; private set; }

    /// <summary>Reads the prefix once (blocking, as configuration loading is synchronous) and starts watching.</summary>
    public override void Load()
    {
        if (_watch != null)
        {
            return;
        }

        var first = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        _watch = Task.Run(() => WatchLoopAsync(first), CancellationToken.None);
        first.Task.GetAwaiter().GetResult();
    }

    /// <summary>Stops watching.</summary>
    public void Dispose()
    {
        _stop.Cancel();
        _stop.Dispose();
    }

    private async Task WatchLoopAsync(TaskCompletionSource first)
    {
        while (!_stop.IsCancellationRequested)
        {
            try
            {
                await foreach (var kvs in _source.Client.WatchPrefixSnapshotsAsync(_source.Prefix, _stop.Token).ConfigureAwait(false))
                {
                    var data = new Dictionary<string, string?>(StringComparer.OrdinalIgnoreCase);
                    foreach (var kv in kvs)
                    {
                        data[kv.Key.ToStringUtf8()[_source.Prefix.Length..].Replace('/', ':')] = kv.Value.ToStringUtf8();
                    }

                    Data = data;
                    LoadCount++;
                    if (!first.TrySetResult())
                    {
                        OnReload();
                    }
                }
            }
            catch (OperationCanceledException) when (_stop.IsCancellationRequested)
            {
                first.TrySetCanceled();
                return;
            }
            catch (RpcException e)
            {
                // First load must fail loudly; later failures retry (WatchAsync already resumes broken streams).
                if (first.TrySetException(e))
                {
                    return;
                }

                await Task.Delay(1000, _stop.Token).ConfigureAwait(false);
            }
        }
    }
}

/// <summary>Adds Arbiter configuration to a builder.</summary>
public static class ArbiterConfigurationExtensions
{
    /// <summary>Adds the keys under <paramref name="prefix"/> as configuration, reloaded on change.</summary>
    public static IConfigurationBuilder AddArbiter(this IConfigurationBuilder builder, ArbiterClient client, string prefix)
    {
        ArgumentNullException.ThrowIfNull(builder);
        return builder.Add(new ArbiterConfigurationSource(client, prefix));
    }
}
