using Arbiter.Client;
using Arbiter.Protocol.Etcd;
using Google.Protobuf;

namespace Arbiter.Recipes;

/// <summary>
/// The queue every lock-like recipe stands in (etcd's concurrency algorithm): a waiter owns one key
/// whose create revision is its place in line; it waits for the deletion of only the key just ahead
/// of it, so a release wakes one waiter, not all.
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
    /// Waits until no key under <paramref name="prefix"/> has a create revision below
    /// <paramref name="myRevision"/>. Returns false when <paramref name="timeout"/> passes first.
    /// </summary>
    public static async Task<bool> WaitForPredecessorsAsync(ArbiterClient client, string prefix, long myRevision, TimeSpan timeout, CancellationToken cancellationToken)
    {
        using var deadline = Timeouts.Linked(timeout, cancellationToken);
        while (true)
        {
            var last = await client.RangeAsync(
                new RangeRequest
                {
                    Key = Keys.From(prefix),
                    RangeEnd = Keys.PrefixEnd(prefix),
                    MaxCreateRevision = myRevision - 1,
                    SortTarget = RangeRequest.Types.SortTarget.Create,
                    SortOrder = RangeRequest.Types.SortOrder.Descend,
                    Limit = 1,
                },
                cancellationToken).ConfigureAwait(false);
            if (last.Kvs.Count == 0)
            {
                return true;
            }

            if (timeout == TimeSpan.Zero)
            {
                return false;
            }

            try
            {
                await WaitDeletedAsync(client, last.Kvs[0].Key, last.Header.Revision, deadline.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
            {
                return false;
            }
        }
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
