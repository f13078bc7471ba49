using Arbiter.Client;
using Medallion.Threading;

namespace Arbiter.Recipes;

/// <summary>
/// A fair reader-writer lock. Readers and writers queue by create revision under <c>name/read/</c>
/// and <c>name/write/</c>; a reader waits only for earlier writers, a writer for every earlier key.
/// A reader that arrives after a waiting writer queues behind it, so writers are never starved.
/// </summary>
public sealed class DistributedReaderWriterLock : IDistributedReaderWriterLock
{
    private readonly ArbiterClient _client;
    private readonly RecipeOptions _options;

    /// <summary>A lock named <paramref name="name"/>.</summary>
    public DistributedReaderWriterLock(ArbiterClient client, string name, RecipeOptions? options = null)
    {
        _client = client ?? throw new ArgumentNullException(nameof(client));
        ArgumentException.ThrowIfNullOrEmpty(name);
        Name = name;
        _options = options ?? new RecipeOptions();
    }

    /// <summary>The lock name (key prefix).</summary>
    public string Name { get; }

    /// <summary>Shared (read) lock, or null on timeout.</summary>
    public Task<DistributedLockHandle?> TryAcquireReadLockAsync(TimeSpan timeout = default, CancellationToken cancellationToken = default) =>
        LockAcquirer.TryAcquireAsync(_client, _options, Name + "/read/", "read", WaitForWriters, timeout, cancellationToken);

    /// <summary>Shared (read) lock; throws <see cref="TimeoutException"/>.</summary>
    public Task<DistributedLockHandle> AcquireReadLockAsync(TimeSpan? timeout = null, CancellationToken cancellationToken = default) =>
        LockAcquirer.AcquireAsync(_client, _options, Name + "/read/", "read", WaitForWriters, timeout, cancellationToken);

    /// <summary>Exclusive (write) lock, or null on timeout.</summary>
    public Task<DistributedLockHandle?> TryAcquireWriteLockAsync(TimeSpan timeout = default, CancellationToken cancellationToken = default) =>
        LockAcquirer.TryAcquireAsync(_client, _options, Name + "/write/", "write", WaitForAll, timeout, cancellationToken);

    /// <summary>Exclusive (write) lock; throws <see cref="TimeoutException"/>.</summary>
    public Task<DistributedLockHandle> AcquireWriteLockAsync(TimeSpan? timeout = null, CancellationToken cancellationToken = default) =>
        LockAcquirer.AcquireAsync(_client, _options, Name + "/write/", "write", WaitForAll, timeout, cancellationToken);

    private Task<bool> WaitForWriters(ArbiterClient client, long myRevision, TimeSpan timeout, CancellationToken cancellationToken) =>
        WaitQueue.WaitForPredecessorsAsync(client, Name + "/write/", myRevision, timeout, cancellationToken);

    private Task<bool> WaitForAll(ArbiterClient client, long myRevision, TimeSpan timeout, CancellationToken cancellationToken) =>
        WaitQueue.WaitForPredecessorsAsync(client, Name + "/", myRevision, timeout, cancellationToken);

    /// <summary>Synchronous <see cref="TryAcquireReadLockAsync"/>.</summary>
    public DistributedLockHandle? TryAcquireReadLock(TimeSpan timeout = default, CancellationToken cancellationToken = default) =>
        SyncOverAsync.Run(() => TryAcquireReadLockAsync(timeout, cancellationToken));

    /// <summary>Synchronous <see cref="AcquireReadLockAsync"/>.</summary>
    public DistributedLockHandle AcquireReadLock(TimeSpan? timeout = null, CancellationToken cancellationToken = default) =>
        SyncOverAsync.Run(() => AcquireReadLockAsync(timeout, cancellationToken));

    IDistributedSynchronizationHandle? IDistributedReaderWriterLock.TryAcquireReadLock(TimeSpan timeout, CancellationToken cancellationToken) => TryAcquireReadLock(timeout, cancellationToken);

    IDistributedSynchronizationHandle IDistributedReaderWriterLock.AcquireReadLock(TimeSpan? timeout, CancellationToken cancellationToken) => AcquireReadLock(timeout, cancellationToken);

    async ValueTask<IDistributedSynchronizationHandle?> IDistributedReaderWriterLock.TryAcquireReadLockAsync(TimeSpan timeout, CancellationToken cancellationToken) =>
        await TryAcquireReadLockAsync(timeout, cancellationToken).ConfigureAwait(false);

    async ValueTask<IDistributedSynchronizationHandle> IDistributedReaderWriterLock.AcquireReadLockAsync(TimeSpan? timeout, CancellationToken cancellationToken) =>
        await AcquireReadLockAsync(timeout, cancellationToken).ConfigureAwait(false);

    /// <summary>Synchronous <see cref="TryAcquireWriteLockAsync"/>.</summary>
    public DistributedLockHandle? TryAcquireWriteLock(TimeSpan timeout = default, CancellationToken cancellationToken = default) =>
        SyncOverAsync.Run(() => TryAcquireWriteLockAsync(timeout, cancellationToken));

    /// <summary>Synchronous <see cref="AcquireWriteLockAsync"/>.</summary>
    public DistributedLockHandle AcquireWriteLock(TimeSpan? timeout = null, CancellationToken cancellationToken = default) =>
        SyncOverAsync.Run(() => AcquireWriteLockAsync(timeout, cancellationToken));

    IDistributedSynchronizationHandle? IDistributedReaderWriterLock.TryAcquireWriteLock(TimeSpan timeout, CancellationToken cancellationToken) => TryAcquireWriteLock(timeout, cancellationToken);

    IDistributedSynchronizationHandle IDistributedReaderWriterLock.AcquireWriteLock(TimeSpan? timeout, CancellationToken cancellationToken) => AcquireWriteLock(timeout, cancellationToken);

    async ValueTask<IDistributedSynchronizationHandle?> IDistributedReaderWriterLock.TryAcquireWriteLockAsync(TimeSpan timeout, CancellationToken cancellationToken) =>
        await TryAcquireWriteLockAsync(timeout, cancellationToken).ConfigureAwait(false);

    async ValueTask<IDistributedSynchronizationHandle> IDistributedReaderWriterLock.AcquireWriteLockAsync(TimeSpan? timeout, CancellationToken cancellationToken) =>
        await AcquireWriteLockAsync(timeout, cancellationToken).ConfigureAwait(false);
}
