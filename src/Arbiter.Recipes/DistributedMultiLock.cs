using Arbiter.Client;

namespace Arbiter.Recipes;

/// <summary>
/// All-or-nothing acquisition of several mutexes. Names are taken in ordinal order (one global order,
/// so two multi-locks never deadlock) under one session; if any cannot be had in time, those already
/// held are released.
/// </summary>
public sealed class DistributedMultiLock
{
    private readonly ArbiterClient _client;
    private readonly RecipeOptions _options;

    /// <summary>A lock over every name in <paramref name="names"/> (duplicates ignored).</summary>
    public DistributedMultiLock(ArbiterClient client, IEnumerable<string> names, RecipeOptions? options = null)
    {
        _client = client ?? throw new ArgumentNullException(nameof(client));
        ArgumentNullException.ThrowIfNull(names);
        Names = [.. names.Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal)];
        if (Names.Count == 0)
        {
            throw new ArgumentException("at least one name is needed", nameof(names));
        }

        _options = options ?? new RecipeOptions();
    }

    /// <summary>The mutex names, in acquisition order.</summary>
    public IReadOnlyList<string> Names { get; }

    /// <summary>Acquires every mutex within <paramref name="timeout"/>, or none and returns null.</summary>
    public async Task<MultiLockHandle?> TryAcquireAsync(TimeSpan timeout = default, CancellationToken cancellationToken = default)
    {
        Timeouts.Check(timeout);
        var ownsSession = _options.Session == null;
        var session = _options.Session ?? await _client.CreateSessionAsync(TimeSpan.FromSeconds(_options.SessionTtlSeconds), cancellationToken).ConfigureAwait(false);
        var shared = _options with { Session = session };
        var held = new List<DistributedLockHandle>();
        var deadline = timeout == Timeout.InfiniteTimeSpan ? DateTime.MaxValue : DateTime.UtcNow + timeout;
        var succeeded = false;
        try
        {
            foreach (var name in Names)
            {
                var left = deadline == DateTime.MaxValue ? Timeout.InfiniteTimeSpan : TimeSpan.FromTicks(Math.Max(0, (deadline - DateTime.UtcNow).Ticks));
                var handle = await new DistributedMutex(_client, name, shared).TryAcquireAsync(left, cancellationToken).ConfigureAwait(false);
                if (handle == null)
                {
                    return null;
                }

                held.Add(handle);
            }

            succeeded = true;
            return new MultiLockHandle(held, session, ownsSession);
        }
        finally
        {
            if (!succeeded)
            {
                foreach (var handle in held)
                {
                    await handle.DisposeAsync().ConfigureAwait(false);
                }

                if (ownsSession)
                {
                    await session.DisposeAsync().ConfigureAwait(false);
                }
            }
        }
    }

    /// <summary>Acquires every mutex; throws <see cref="TimeoutException"/>.</summary>
    public async Task<MultiLockHandle> AcquireAsync(TimeSpan? timeout = null, CancellationToken cancellationToken = default) =>
        await TryAcquireAsync(timeout ?? Timeout.InfiniteTimeSpan, cancellationToken).ConfigureAwait(false)
            ?? throw new TimeoutException($"could not acquire all of {string.Join(", ", Names)} within {timeout}");
}

/// <summary>Several mutexes held together; disposing releases all of them.</summary>
public sealed class MultiLockHandle : IAsyncDisposable
{
    private readonly Session _session;
    private readonly bool _ownsSession;
    private int _released;

    internal MultiLockHandle(IReadOnlyList<DistributedLockHandle> handles, Session session, bool ownsSession)
    {
        Handles = handles;
        _session = session;
        _ownsSession = ownsSession;
    }

    /// <summary>One handle per mutex, in acquisition (ordinal name) order; each has its own fencing token.</summary>
    public IReadOnlyList<DistributedLockHandle> Handles { get; }

    /// <summary>Fires when the shared session is lost (all locks may be lost).</summary>
    public CancellationToken HandleLostToken => _session.LostToken;

    /// <summary>Releases every mutex, in reverse order.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _released, 1) != 0)
        {
            return;
        }

        for (var i = Handles.Count - 1; i >= 0; i--)
        {
            await Handles[i].DisposeAsync().ConfigureAwait(false);
        }

        if (_ownsSession)
        {
            await _session.DisposeAsync().ConfigureAwait(false);
        }
    }
}
