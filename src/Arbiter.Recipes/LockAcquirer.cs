using Arbiter.Client;
using Grpc.Core;

namespace Arbiter.Recipes;

/// <summary>The acquisition steps every queue-based lock shares: session, enqueue, wait, verify, or clean up.</summary>
internal static class LockAcquirer
{
    /// <summary>The wait strategy: true when the waiter at <c>myRevision</c> may proceed, false on timeout.</summary>
    public delegate Task<bool> WaitTurn(ArbiterClient client, long myRevision, TimeSpan timeout, CancellationToken cancellationToken);

    /// <summary>Acquires, or returns null when <paramref name="timeout"/> passes; leaves no waiter key behind on timeout or cancellation.</summary>
    public static async Task<DistributedLockHandle?> TryAcquireAsync(
        ArbiterClient client,
        RecipeOptions options,
        string keyPrefix,
        WaitTurn waitTurn,
        TimeSpan timeout,
        CancellationToken cancellationToken)
    {
        Timeouts.Check(timeout);
        var ownsSession = options.Session == null;
        var session = options.Session ?? await client.CreateSessionAsync(TimeSpan.FromSeconds(options.SessionTtlSeconds), cancellationToken).ConfigureAwait(false);
        var key = keyPrefix + Keys.LeaseHex(session.LeaseId);
        long myRevision = 0;
        var acquired = false;
        try
        {
            myRevision = await WaitQueue.EnqueueAsync(client, key, string.Empty, session.LeaseId, cancellationToken).ConfigureAwait(false);

            // Stop waiting if our own session dies: the key is gone and the turn would never be ours.
            using var waitToken = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, session.LostToken);
            bool turn;
            try
            {
                turn = await waitTurn(client, myRevision, timeout, waitToken.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (session.IsLost && !cancellationToken.IsCancellationRequested)
            {
                throw new LockLostException($"the session of {key} was lost while waiting ({session.LostReason})");
            }

            if (!turn)
            {
                return null;
            }

            // The session may have expired while we waited: our key (and place) would be gone.
            var mine = await client.GetAsync(key, cancellationToken).ConfigureAwait(false);
            if (mine == null || mine.CreateRevision != myRevision)
            {
                throw new LockLostException($"{key} disappeared while waiting (session expired?)");
            }

            acquired = true;
            return new DistributedLockHandle(session, ownsSession, key, myRevision);
        }
        finally
        {
            if (!acquired)
            {
                await CleanupAsync(client, session, ownsSession, key, myRevision).ConfigureAwait(false);
            }
        }
    }

    /// <summary>Removes the waiter key (guarded) and the session we created.</summary>
    public static async Task CleanupAsync(ArbiterClient client, Session session, bool ownsSession, string key, long myRevision)
    {
        if (myRevision != 0 && !session.IsLost)
        {
            using var cleanup = Timeouts.Cleanup();
            try
            {
                await WaitQueue.DeleteOwnedAsync(client, key, myRevision, cleanup.Token).ConfigureAwait(false);
            }
            catch (Exception e) when (e is RpcException or OperationCanceledException)
            {
                // Unreachable: the lease (revoked below, or expiring) removes the key.
            }
        }

        if (ownsSession)
        {
            await session.DisposeAsync().ConfigureAwait(false);
        }
    }

    /// <summary>TryAcquire, but a timeout throws <see cref="TimeoutException"/>.</summary>
    public static async Task<DistributedLockHandle> AcquireAsync(
        ArbiterClient client,
        RecipeOptions options,
        string keyPrefix,
        WaitTurn waitTurn,
        TimeSpan? timeout,
        CancellationToken cancellationToken)
    {
        var span = timeout ?? Timeout.InfiniteTimeSpan;
        return await TryAcquireAsync(client, options, keyPrefix, waitTurn, span, cancellationToken).ConfigureAwait(false)
            ?? throw new TimeoutException($"could not acquire {keyPrefix.TrimEnd('/')} within {span}");
    }
}

/// <summary>The session behind a lock was lost while waiting for it: the lock was not acquired.</summary>
public sealed class LockLostException : Exception
{
    /// <summary>Creates the exception.</summary>
    public LockLostException()
    {
    }

    /// <summary>Creates the exception.</summary>
    public LockLostException(string message)
        : base(message)
    {
    }

    /// <summary>Creates the exception.</summary>
    public LockLostException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}
