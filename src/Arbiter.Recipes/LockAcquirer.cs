using System.Diagnostics;
using Arbiter.Client;
using Arbiter.Client.Diagnostics;
using Arbiter.Recipes.Diagnostics;
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
        string kind,
        WaitTurn waitTurn,
        TimeSpan timeout,
        CancellationToken cancellationToken)
    {
        Timeouts.Check(timeout);
        var startTimestamp = Stopwatch.GetTimestamp();
        using var activity = RecipeTelemetry.Source.StartActivity("arbiter.lock.acquire");
        activity?.SetTag("arbiter.lock.kind", kind);
        activity?.SetTag("arbiter.lock.name", ArbiterTelemetry.KeyPrefixOf(Keys.From(keyPrefix).Span));
        DistributedLockHandle? handle = null;
        try
        {
            handle = await AcquireOnceAsync(client, options, keyPrefix, kind, waitTurn, timeout, cancellationToken).ConfigureAwait(false);
            Waited(activity, kind, startTimestamp, handle, null);
            return handle;
        }
        catch (Exception e)
        {
            Waited(activity, kind, startTimestamp, null, e);
            throw;
        }
    }

    /// <summary>Records how a wait ended: on the span (outcome, wait, fencing token) and the wait histogram.</summary>
    private static void Waited(Activity? activity, string kind, long startTimestamp, DistributedLockHandle? handle, Exception? error)
    {
        var outcome = RecipeTelemetry.OutcomeOf(error, timedOut: handle is null);
        var waited = Stopwatch.GetElapsedTime(startTimestamp);
        if (activity is not null)
        {
            activity.SetTag("arbiter.lock.outcome", outcome);
            activity.SetTag("arbiter.lock.wait_ms", (long)waited.TotalMilliseconds);
            if (handle is not null)
            {
                activity.SetTag("arbiter.lock.fencing_token", handle.FencingToken);
            }

            if (error is not null and not OperationCanceledException)
            {
                RecipeTelemetry.Fail(activity, error);
            }
        }

        if (RecipeTelemetry.LockWaitDuration.Enabled)
        {
            RecipeTelemetry.LockWaitDuration.Record(waited.TotalSeconds, new("arbiter.lock.kind", kind), new("arbiter.lock.outcome", outcome));
        }
    }

    private static async Task<DistributedLockHandle?> AcquireOnceAsync(
        ArbiterClient client,
        RecipeOptions options,
        string keyPrefix,
        string kind,
        WaitTurn waitTurn,
        TimeSpan timeout,
        CancellationToken cancellationToken)
    {
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
            return new DistributedLockHandle(session, ownsSession, key, myRevision, kind);
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
        string kind,
        WaitTurn waitTurn,
        TimeSpan? timeout,
        CancellationToken cancellationToken)
    {
        var span = timeout ?? Timeout.InfiniteTimeSpan;
        return await TryAcquireAsync(client, options, keyPrefix, kind, waitTurn, span, cancellationToken).ConfigureAwait(false)
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
