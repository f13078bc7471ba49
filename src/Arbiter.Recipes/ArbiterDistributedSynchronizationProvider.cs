using Arbiter.Client;
using Medallion.Threading;

namespace Arbiter.Recipes;

/// <summary>
/// Arbiter behind the DistributedLock library's provider interfaces: code written against
/// <see cref="IDistributedLockProvider"/>, <see cref="IDistributedSemaphoreProvider"/> or
/// <see cref="IDistributedReaderWriterLockProvider"/> (for PostgreSQL, Redis, ZooKeeper…) runs on
/// Arbiter by registering this one instead. Locks are <see cref="DistributedMutex"/> (etcd's lock
/// algorithm, so <c>etcdctl lock</c> excludes them too), semaphores <see cref="DistributedSemaphore"/>,
/// reader-writer locks <see cref="DistributedReaderWriterLock"/>; every handle is lease-bound and
/// carries a fencing token.
/// </summary>
public sealed class ArbiterDistributedSynchronizationProvider : IDistributedLockProvider, IDistributedSemaphoreProvider, IDistributedReaderWriterLockProvider
{
    private readonly ArbiterClient _client;
    private readonly RecipeOptions? _options;
    private readonly string _keyPrefix;

    /// <summary>
    /// A provider over <paramref name="client"/>. Each name becomes the key prefix
    /// <paramref name="keyPrefix"/> + name (e.g. <c>locks/</c>, so that a role can be granted just that prefix).
    /// </summary>
    public ArbiterDistributedSynchronizationProvider(ArbiterClient client, RecipeOptions? options = null, string keyPrefix = "")
    {
        _client = client ?? throw new ArgumentNullException(nameof(client));
        _options = options;
        _keyPrefix = keyPrefix ?? throw new ArgumentNullException(nameof(keyPrefix));
    }

    /// <summary>A fair mutex named <paramref name="name"/>.</summary>
    public DistributedMutex CreateLock(string name) => new(_client, KeyOf(name), _options);

    /// <summary>A semaphore named <paramref name="name"/> with <paramref name="maxCount"/> permits.</summary>
    public DistributedSemaphore CreateSemaphore(string name, int maxCount) => new(_client, KeyOf(name), maxCount, _options);

    /// <summary>A fair reader-writer lock named <paramref name="name"/>.</summary>
    public DistributedReaderWriterLock CreateReaderWriterLock(string name) => new(_client, KeyOf(name), _options);

    IDistributedLock IDistributedLockProvider.CreateLock(string name) => CreateLock(name);

    IDistributedSemaphore IDistributedSemaphoreProvider.CreateSemaphore(string name, int maxCount) => CreateSemaphore(name, maxCount);

    IDistributedReaderWriterLock IDistributedReaderWriterLockProvider.CreateReaderWriterLock(string name) => CreateReaderWriterLock(name);

    private string KeyOf(string name)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        return _keyPrefix + name;
    }
}
