using Arbiter.Client;
using Arbiter.Protocol.Etcd;
using Medallion.Threading;

namespace Arbiter.Recipes;

/// <summary>
/// A fair counting semaphore with <see cref="MaxCount"/> permits. Waiter keys
/// <c>name/&lt;lease hex&gt;</c> queue by create revision; the first <see cref="MaxCount"/> hold a permit.
/// A waiter watches only the <see cref="MaxCount"/> keys just ahead of it, so a release wakes at most
/// that many waiters, not the whole line. A crashed holder's permit returns when its lease expires.
/// Every participant must use the same <see cref="MaxCount"/>.
/// </summary>
public sealed class DistributedSemaphore : IDistributedSemaphore
{
    private readonly ArbiterClient _client;
    private readonly RecipeOptions _options;

    /// <summary>A semaphore named <paramref name="name"/> with <paramref name="maxCount"/> permits.</summary>
    public DistributedSemaphore(ArbiterClient client, string name, int maxCount, RecipeOptions? options = null)
    {
        _client = client ?? throw new ArgumentNullException(nameof(client));
        ArgumentException.ThrowIfNullOrEmpty(name);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxCount, 1);
        Name = name;
        MaxCount = maxCount;
        _options = options ?? new RecipeOptions();
    }

    /// <summary>The semaphore name (key prefix).</summary>
    public string Name { get; }

    /// <summary>How many holders at most.</summary>
    public int MaxCount { get; }

    /// <summary>Takes a permit within <paramref name="timeout"/>, or returns null.</summary>
    public Task<DistributedLockHandle?> TryAcquireAsync(TimeSpan timeout = default, CancellationToken cancellationToken = default) =>
        LockAcquirer.TryAcquireAsync(_client, _options, Name + "/", "semaphore", WaitTurn, timeout, cancellationToken);

    /// <summary>Takes a permit; throws <see cref="TimeoutException"/>.</summary>
    public Task<DistributedLockHandle> AcquireAsync(TimeSpan? timeout = null, CancellationToken cancellationToken = default) =>
        LockAcquirer.AcquireAsync(_client, _options, Name + "/", "semaphore", WaitTurn, timeout, cancellationToken);

    /// <summary>How many keys (holders and waiters) are in line now.</summary>
    public async Task<long> GetQueueLengthAsync(CancellationToken cancellationToken = default) =>
        (await _client.RangeAsync(new RangeRequest { Key = Keys.From(Name + "/"), RangeEnd = Keys.PrefixEnd(Name + "/"), CountOnly = true }, cancellationToken).ConfigureAwait(false)).Count;

    private Task<bool> WaitTurn(ArbiterClient client, long myRevision, TimeSpan timeout, CancellationToken cancellationToken) =>
        WaitQueue.WaitForPredecessorsAsync(client, Name + "/", myRevision, timeout, cancellationToken, MaxCount);

    /// <summary>Synchronous <see cref="TryAcquireAsync"/>.</summary>
    public DistributedLockHandle? TryAcquire(TimeSpan timeout = default, CancellationToken cancellationToken = default) =>
        SyncOverAsync.Run(() => TryAcquireAsync(timeout, cancellationToken));

    /// <summary>Synchronous <see cref="AcquireAsync"/>.</summary>
    public DistributedLockHandle Acquire(TimeSpan? timeout = null, CancellationToken cancellationToken = default) =>
        SyncOverAsync.Run(() => AcquireAsync(timeout, cancellationToken));

    IDistributedSynchronizationHandle? IDistributedSemaphore.TryAcquire(TimeSpan timeout, CancellationToken cancellationToken) => TryAcquire(timeout, cancellationToken);

    IDistributedSynchronizationHandle IDistributedSemaphore.Acquire(TimeSpan? timeout, CancellationToken cancellationToken) => Acquire(timeout, cancellationToken);

    async ValueTask<IDistributedSynchronizationHandle?> IDistributedSemaphore.TryAcquireAsync(TimeSpan timeout, CancellationToken cancellationToken) =>
        await TryAcquireAsync(timeout, cancellationToken).ConfigureAwait(false);

    async ValueTask<IDistributedSynchronizationHandle> IDistributedSemaphore.AcquireAsync(TimeSpan? timeout, CancellationToken cancellationToken) =>
        await AcquireAsync(timeout, cancellationToken).ConfigureAwait(false);
}
