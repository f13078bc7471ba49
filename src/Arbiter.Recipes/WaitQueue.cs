using Arbiter.Client;
using Arbiter.Protocol.Consistency;
using Arbiter.Protocol.Etcd;
using Google.Protobuf;

namespace Arbiter.Recipes;

/// <summary>
/// The queue every lock-like recipe stands in (etcd's concurrency algorithm): a waiter owns one key
/// whose create revision is its place in line; it waits for the deletion of only the key just ahead
/// of it (or, with N slots, of the N keys just ahead), so a release wakes one waiter (at most N), not all.
/// </summary>
internal static class WaitQueue
{
    /// <summary>Creates <paramref name="key"/> under the lease unless it exists; returns its create revision.</summary>
    public static async Task<long> EnqueueAsync(ArbiterClient client, string key, string value, long leaseId, CancellationToken cancellationToken)
    {
        var response = await client.Txn()
            .If(Cmp.CreateRevision(key) == 0)
            .Then(Op.Put(key, value, leaseId))
            .Else(Op.Get(key))
            .CommitAsync(cancellationToken).ConfigureAwait(false);
        return response.Succeeded ? response.Header.Revision : response.Responses[0].ResponseRange.Kvs[0].CreateRevision;
    }

    /// <summary>
    /// Waits until fewer than <paramref name="slots"/> keys under <paramref name="prefix"/> have a
    /// create revision below <paramref name="myRevision"/> (1 slot: a mutex; N: a semaphore).
    /// Returns false when <paramref name="timeout"/> passes first.
    /// </summary>
    /// <remarks>
    /// The waiter watches only the <paramref name="slots"/> keys just ahead of it. That is enough:
    /// while it is not admitted, exactly that many keys separate it from the head, and a key leaving
    /// from further ahead leaves the window unchanged; only a departure inside the window can admit
    /// it. So a release wakes at most <paramref name="slots"/> waiters, never the whole line.
    /// The window is read causally after the waiter's own key (any member that has applied
    /// <paramref name="myRevision"/>, no leader round trip): such a state holds every key created
    /// before it, so a predecessor is never missed; one deleted meanwhile may still show, and its
    /// deletion then arrives on the watch that follows. Against etcd the read is linearizable.
    /// </remarks>
    public static async Task<bool> WaitForPredecessorsAsync(ArbiterClient client, string prefix, long myRevision, TimeSpan timeout, CancellationToken cancellationToken, int slots = 1)
    {
        using var deadline = Timeouts.Linked(timeout, cancellationToken);
        while (true)
        {
            var window = await client.RangeAsync(
                new RangeRequest
                {
                    Key = Keys.From(prefix),
                    RangeEnd = Keys.PrefixEnd(prefix),
                    MaxCreateRevision = myRevision - 1,
                    SortTarget = RangeRequest.Types.SortTarget.Create,
                    SortOrder = RangeRequest.Types.SortOrder.Descend,
                    Limit = slots,
                    KeysOnly = true,
                },
                ReadConsistency.MinRevision(myRevision),
                cancellationToken).ConfigureAwait(false);
            if (window.Kvs.Count < slots)
            {
                return true;
            }

            if (timeout == TimeSpan.Zero)
            {
                return false;
            }

            try
            {
                await WaitAnyDeletedAsync(client, window.Kvs.Select(kv => kv.Key), window.Header.Revision, deadline.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
            {
                return false;
            }
        }
    }

    /// <summary>Returns once any of <paramref name="keys"/> is deleted after <paramref name="revision"/>.</summary>
    private static async Task WaitAnyDeletedAsync(ArbiterClient client, IEnumerable<ByteString> keys, long revision, CancellationToken cancellationToken)
    {
        using var stopOthers = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var waits = keys.Select(key => WaitDeletedAsync(client, key, revision, stopOthers.Token)).ToList();
        var first = await Task.WhenAny(waits).ConfigureAwait(false);
        await stopOthers.CancelAsync().ConfigureAwait(false);
        foreach (var wait in waits.Where(w => w != first))
        {
            try
            {
                await wait.ConfigureAwait(false);
            }
            catch (Exception e) when (e is OperationCanceledException or Grpc.Core.RpcException)
            {
                // Stopped on purpose (a canceled gRPC watch may end as an aborted call).
            }
        }

        // Surfaces the caller's cancellation or timeout if that is what ended the first wait.
        await first.ConfigureAwait(false);
    }

    /// <summary>Returns once <paramref name="key"/> is deleted after <paramref name="revision"/> (or history was compacted: re-check).</summary>
    public static async Task WaitDeletedAsync(ArbiterClient client, ByteString key, long revision, CancellationToken cancellationToken)
    {
        try
        {
            await foreach (var e in client.WatchAsync(key, new WatchOptions { StartRevision = revision + 1, NoPut = true }, cancellationToken).ConfigureAwait(false))
            {
                if (e.Kind == WatchEventKind.Delete)
                {
                    return;
                }
            }
        }
        catch (WatchCompactedException)
        {
            // Events were compacted away; the caller re-reads the current state.
        }
    }

    /// <summary>Deletes <paramref name="key"/> only if it is still the one created at <paramref name="createRevision"/>; true when it was deleted.</summary>
    public static async Task<bool> DeleteOwnedAsync(ArbiterClient client, string key, long createRevision, CancellationToken cancellationToken)
    {
        // Guarded so a retried or late release never deletes a newer key of the same name.
        var response = await client.Txn()
            .If(Cmp.CreateRevision(key) == createRevision)
            .Then(Op.Delete(key))
            .CommitAsync(cancellationToken).ConfigureAwait(false);
        return response.Succeeded;
    }
}
