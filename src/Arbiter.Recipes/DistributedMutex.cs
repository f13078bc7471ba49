using Arbiter.Client;
using Medallion.Threading;

namespace Arbiter.Recipes;

/// <summary>
/// A fair (FIFO) distributed mutex, etcd's algorithm: the waiter key is <c>name/&lt;lease id hex&gt;</c>,
/// exactly as etcd's Go client and <c>etcdctl lock name</c> use, so they exclude each other.
/// The holder is the key with the lowest create revision; each waiter watches only its predecessor.
/// </summary>
public sealed class DistributedMutex : IDistributedLock
{
    private readonly ArbiterClient _client;
    private readonly RecipeOptions _options;

    /// <summary>A mutex named <paramref name="name"/> (the key prefix, without trailing slash).</summary>
    public DistributedMutex(ArbiterClient client, string name, RecipeOptions? options = null)
    {
        _client = client ?? throw new ArgumentNullException(nameof(client));
        ArgumentException.ThrowIfNullOrEmpty(name);
        Name = name;
        _options = options ?? new RecipeOptions();
    }

    /// <summary>The mutex name: waiter keys live under <c>Name + "/"</c>.</summary>
    public string Name { get; }

    /// <summary>Acquires within <paramref name="timeout"/> (default: try once, no wait), or returns null.</summary>
    public Task<DistributedLockHandle?> TryAcquireAsync(TimeSpan timeout = default, CancellationToken cancellationToken = default) =>
        LockAcquirer.TryAcquireAsync(_client, _options, Name + "/", "mutex", WaitTurn, timeout, cancellationToken);

    /// <summary>Acquires, waiting up to <paramref name="timeout"/> (default: forever); throws <see cref="TimeoutException"/>.</summary>
    public Task<DistributedLockHandle> AcquireAsync(TimeSpan? timeout = null, CancellationToken cancellationToken = default) =>
        LockAcquirer.AcquireAsync(_client, _options, Name + "/", "mutex", WaitTurn, timeout, cancellationToken);

    private Task<bool> WaitTurn(ArbiterClient client, long myRevision, TimeSpan timeout, CancellationToken cancellationToken) =>
        WaitQueue.WaitForPredecessorsAsync(client, Name + "/", myRevision, timeout, cancellationToken);

    /// <summary>Synchronous <see cref="TryAcquireAsync"/>.</summary>
    public DistributedLockHandle? TryAcquire(TimeSpan timeout = default, CancellationToken cancellationToken = default) =>
        SyncOverAsync.Run(() => TryAcquireAsync(timeout, cancellationToken));

    /// <summary>Synchronous <see cref="AcquireAsync"/>.</summary>
    public DistributedLockHandle Acquire(TimeSpan? timeout = null, CancellationToken cancellationToken = default) =>
        SyncOverAsync.Run(() => AcquireAsync(timeout, cancellationToken));

    IDistributedSynchronizationHandle? IDistributedLock.TryAcquire(TimeSpan timeout, CancellationToken cancellationToken) => TryAcquire(timeout, cancellationToken);

    IDistributedSynchronizationHandle IDistributedLock.Acquire(TimeSpan? timeout, CancellationToken cancellationToken) => Acquire(timeout, cancellationToken);

    async ValueTask<IDistributedSynchronizationHandle?> IDistributedLock.TryAcquireAsync(TimeSpan timeout, CancellationToken cancellationToken) =>
        await TryAcquireAsync(timeout, cancellationToken).ConfigureAwait(false);

    async ValueTask<IDistributedSynchronizationHandle> IDistributedLock.AcquireAsync(TimeSpan? timeout, CancellationToken cancellationToken) =>
        await AcquireAsync(timeout, cancellationToken).ConfigureAwait(false);
}
