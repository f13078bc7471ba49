using Arbiter.Client;
using Arbiter.Recipes;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Logging;

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

    /// <summary>
    /// When true, a server that cannot be read at start gives an empty configuration instead of an
    /// error (as <c>optional</c> does for a missing JSON file); the keys appear as soon as it answers.
    /// </summary>
    public bool Optional { get; set; }

    /// <summary>Where failures are logged; null logs to the console (standard error).</summary>
    public ILoggerFactory? LoggerFactory { get; set; }

    /// <summary>Wait between attempts after a failed read or a broken watch.</summary>
    public int RetryDelayMs { get; set; } = 1000;

    /// <inheritdoc />
    public IConfigurationProvider Build(IConfigurationBuilder builder) => new ArbiterConfigurationProvider(this);
}

/// <summary>
/// Loads and live-reloads configuration from an <see cref="ArbiterConfigurationSource"/>. It keeps
/// watching whatever happens: a broken watch, a server restart or a compaction is retried (after a
/// fresh read), and a change that a consumer refuses (e.g. options binding "bad" into an int) is
/// logged once with the keys that changed, without stopping the next change from being delivered.
/// </summary>
public sealed partial class ArbiterConfigurationProvider : ConfigurationProvider, IDisposable
{
    private readonly ArbiterConfigurationSource _source;
    private readonly CancellationTokenSource _stop = new();
    private readonly ILoggerFactory? _ownedLoggerFactory;
    private readonly ILogger _logger;
    private Task? _watch;
    private int _loadCount;
    private int _rejectedReloadCount;

    /// <summary>A provider for <paramref name="source"/>.</summary>
    public ArbiterConfigurationProvider(ArbiterConfigurationSource source)
    {
        _source = source ?? throw new ArgumentNullException(nameof(source));
        var factory = source.LoggerFactory;
        if (factory == null)
        {
            // Configuration is built before the host's logging exists; a failure must still be seen.
            _ownedLoggerFactory = factory = Microsoft.Extensions.Logging.LoggerFactory.Create(logging =>
            {
                logging.SetMinimumLevel(LogLevel.Warning);
                logging.AddConsole(o => o.LogToStandardErrorThreshold = LogLevel.Trace);
                logging.AddSimpleConsole(o => o.SingleLine = true);
            });
        }

        _logger = factory.CreateLogger<ArbiterConfigurationProvider>();
    }

    /// <summary>How many times the data was (re)loaded; for tests and diagnostics.</summary>
    public int LoadCount => Volatile.Read(ref _loadCount);

    /// <summary>How many reloads a consumer of the configuration refused (each one was logged).</summary>
    public int RejectedReloadCount => Volatile.Read(ref _rejectedReloadCount);

    /// <summary>
    /// Reads the prefix once (blocking, as configuration loading is synchronous) and starts watching.
    /// Throws when the first read fails, unless the source is <see cref="ArbiterConfigurationSource.Optional"/>.
    /// </summary>
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
        try
        {
            _watch?.Wait(TimeSpan.FromSeconds(5));
        }
        catch (AggregateException)
        {
            // The loop ends by cancellation; anything else was already logged.
        }

        _stop.Dispose();
        _ownedLoggerFactory?.Dispose();
    }

    private async Task WatchLoopAsync(TaskCompletionSource first)
    {
        var failing = false;
        while (!_stop.IsCancellationRequested)
        {
            try
            {
                await foreach (var kvs in _source.Client.WatchPrefixSnapshotsAsync(_source.Prefix, _stop.Token).ConfigureAwait(false))
                {
                    if (failing)
                    {
                        LogWatchResumed(_logger, _source.Prefix);
                        failing = false;
                    }

                    Apply(ToData(kvs), first);
                }
            }
            catch (OperationCanceledException) when (_stop.IsCancellationRequested)
            {
                first.TrySetCanceled();
                return;
            }
            catch (Exception e)
            {
                if (!first.Task.IsCompleted)
                {
                    if (!_source.Optional)
                    {
                        // The first load of a required source fails loudly, in Load().
                        first.TrySetException(new InvalidOperationException(
                            $"configuration under '{_source.Prefix}' could not be read from Arbiter: {e.Message} (set Optional to start without it)", e));
                        return;
                    }

                    LogOptionalUnavailable(_logger, _source.Prefix, e.Message);
                    first.TrySetResult();
                    failing = true;
                }
                else if (!failing)
                {
                    // Once per outage, not once per attempt.
                    LogWatchFailed(_logger, _source.Prefix, e.Message, _source.RetryDelayMs);
                    failing = true;
                }
            }

            try
            {
                await Task.Delay(_source.RetryDelayMs, _stop.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }

    private Dictionary<string, string?> ToData(IReadOnlyList<Arbiter.Protocol.Mvcc.KeyValue> kvs)
    {
        var data = new Dictionary<string, string?>(StringComparer.OrdinalIgnoreCase);
        foreach (var kv in kvs)
        {
            data[kv.Key.ToStringUtf8()[_source.Prefix.Length..].Replace('/', ':')] = kv.Value.ToStringUtf8();
        }

        return data;
    }

    private void Apply(Dictionary<string, string?> data, TaskCompletionSource first)
    {
        var previous = Data;
        Data = data;
        Interlocked.Increment(ref _loadCount);
        if (first.TrySetResult())
        {
            return;
        }

        var changed = ChangedKeys(previous, data);
        if (changed.Count == 0)
        {
            // A fresh read after a reconnect that found nothing new.
            return;
        }

        try
        {
            OnReload();
        }
        catch (Exception e)
        {
            // A consumer (options binding, an OnChange callback) refused the new values. Every other
            // consumer was still notified; the next change is delivered as usual.
            Interlocked.Increment(ref _rejectedReloadCount);
            var reason = e is AggregateException aggregate ? string.Join("; ", aggregate.Flatten().InnerExceptions.Select(inner => inner.Message)) : e.Message;
            LogReloadRejected(_logger, e, _source.Prefix, string.Join(", ", changed), reason);
        }
    }

    private static List<string> ChangedKeys(IDictionary<string, string?> before, Dictionary<string, string?> after)
    {
        var changed = after.Where(pair => !before.TryGetValue(pair.Key, out var old) || old != pair.Value).Select(pair => pair.Key)
            .Concat(before.Keys.Where(key => !after.ContainsKey(key)))
            .Order(StringComparer.OrdinalIgnoreCase)
            .ToList();
        return changed;
    }

    [LoggerMessage(Level = LogLevel.Error, Message = "Configuration under '{Prefix}': the change to {Keys} was not accepted by a consumer ({Reason}); the values stay in IConfiguration and the next change will be delivered")]
    private static partial void LogReloadRejected(ILogger logger, Exception exception, string prefix, string keys, string reason);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Configuration under '{Prefix}': watch failed ({Reason}); retrying every {RetryDelayMs} ms, current values kept")]
    private static partial void LogWatchFailed(ILogger logger, string prefix, string reason, int retryDelayMs);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Configuration under '{Prefix}' is optional and could not be read at start ({Reason}); starting empty, the keys appear when the server answers")]
    private static partial void LogOptionalUnavailable(ILogger logger, string prefix, string reason);

    [LoggerMessage(Level = LogLevel.Information, Message = "Configuration under '{Prefix}': watching again")]
    private static partial void LogWatchResumed(ILogger logger, string prefix);
}

/// <summary>Adds Arbiter configuration to a builder.</summary>
public static class ArbiterConfigurationExtensions
{
    /// <summary>Adds the keys under <paramref name="prefix"/> as configuration, reloaded on change.</summary>
    /// <param name="builder">The configuration builder.</param>
    /// <param name="client">The client to read and watch with.</param>
    /// <param name="prefix">The key prefix.</param>
    /// <param name="optional">Start with an empty configuration when the server cannot be read at start.</param>
    public static IConfigurationBuilder AddArbiter(this IConfigurationBuilder builder, ArbiterClient client, string prefix, bool optional = false) =>
        builder.AddArbiter(client, prefix, source => source.Optional = optional);

    /// <summary>Adds the keys under <paramref name="prefix"/> as configuration, with the source's settings set by <paramref name="configure"/>.</summary>
    public static IConfigurationBuilder AddArbiter(this IConfigurationBuilder builder, ArbiterClient client, string prefix, Action<ArbiterConfigurationSource> configure)
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentNullException.ThrowIfNull(configure);
        var source = new ArbiterConfigurationSource(client, prefix);
        configure(source);
        return builder.Add(source);
    }
}
