using Arbiter.Client;
using Arbiter.Recipes.Diagnostics;
using Grpc.Core;
using Medallion.Threading;

namespace Arbiter.Recipes;

/// <summary>
/// A held lock, permit or read/write lock. Disposing releases it. <see cref="HandleLostToken"/> fires
/// if the session behind it is lost (the lease expired or could not be renewed for a whole TTL), after
/// which another process may hold the lock: protect shared data with <see cref="FencingToken"/>.
/// It is DistributedLock's <see cref="IDistributedSynchronizationHandle"/>.
/// </summary>
public sealed class DistributedLockHandle : IDistributedSynchronizationHandle
{
    private readonly bool _ownsSession;
    private int _released;

    private readonly string _kind;

    internal DistributedLockHandle(Session session, bool ownsSession, string key, long fencingToken, string kind)
    {
        Session = session;
        _ownsSession = ownsSession;
        Key = key;
        FencingToken = fencingToken;
        _kind = kind;
        RecipeTelemetry.LocksHeld.Add(1, new KeyValuePair<string, object?>("arbiter.lock.kind", kind));
    }

    /// <summary>The key this handle owns in the store.</summary>
    public string Key { get; }

    /// <summary>
    /// The key's create revision: unique, and larger for every later grant of the same lock (never
    /// reused, even after release). Storage that checks it can reject writes of a stale holder.
    /// </summary>
    public long FencingToken { get; }

    /// <summary>The session (lease) the key lives under.</summary>
    public Session Session { get; }

    /// <summary>Fires when the lock may have been lost.</summary>
    public CancellationToken HandleLostToken => Session.LostToken;

    /// <summary>The guard that holds only while this handle still owns its key: add it to your own transactions.</summary>
    public Protocol.Etcd.Compare OwnershipGuard => Cmp.CreateRevision(Key) == FencingToken;

    /// <summary>Puts <paramref name="key"/> only if this handle still holds the lock; false when it does not (the write was rejected).</summary>
    public Task<bool> FencedPutAsync(string key, string value, CancellationToken cancellationToken = default) =>
        FencedWrite.PutAsync(Session.Client, Key, FencingToken, key, value, cancellationToken);

    /// <summary>Releases the lock, waiting for it (idempotent); see <see cref="DisposeAsync"/>.</summary>
    public void Dispose() => SyncOverAsync.Run(() => DisposeAsync().AsTask());

    /// <summary>Releases the lock (idempotent). A release that cannot reach the server leaves the key to expire with its lease.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _released, 1) != 0)
        {
            return;
        }

        RecipeTelemetry.LocksHeld.Add(-1, new KeyValuePair<string, object?>("arbiter.lock.kind", _kind));

        using var cleanup = Timeouts.Cleanup();
        try
        {
            await WaitQueue.DeleteOwnedAsync(Session.Client, Key, FencingToken, cleanup.Token).ConfigureAwait(false);
        }
        catch (Exception e) when (e is RpcException or OperationCanceledException)
        {
            // Unreachable: revoking (below) or the lease TTL removes the key.
        }

        if (_ownsSession)
        {
            await Session.DisposeAsync().ConfigureAwait(false);
        }
    }
}

/// <summary>Writes guarded by a lock's fencing token (Kleppmann's fencing on etcd revisions).</summary>
public static class FencedWrite
{
    /// <summary>
    /// Puts <paramref name="key"/> = <paramref name="value"/> only if <paramref name="lockKey"/> still
    /// has create revision <paramref name="fencingToken"/>, i.e. the writer still holds the lock.
    /// A holder that paused past its lease (its key expired, maybe re-granted to another) is rejected.
    /// </summary>
    public static async Task<bool> PutAsync(ArbiterClient client, string lockKey, long fencingToken, string key, string value, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(client);
        var response = await client.Txn()
            .If(Cmp.CreateRevision(lockKey) == fencingToken)
            .Then(Op.Put(key, value))
            .CommitAsync(cancellationToken).ConfigureAwait(false);
        return response.Succeeded;
    }
}
