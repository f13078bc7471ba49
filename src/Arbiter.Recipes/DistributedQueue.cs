using System.Globalization;
using Arbiter.Client;
using Arbiter.Protocol.Etcd;
using Arbiter.Protocol.Mvcc;
using Grpc.Core;

namespace Arbiter.Recipes;

/// <summary>
/// A FIFO work queue. Items are <c>name/items/&lt;id&gt;</c> ordered by create revision (no lease).
/// <see cref="TryDequeueAsync"/> removes the oldest item atomically (at most once).
/// <see cref="TryClaimAsync"/> instead marks it with <c>name/claims/&lt;id&gt;</c> under the consumer's
/// lease: the item is removed on <see cref="QueueClaim.CompleteAsync"/>, and comes back if the consumer
/// abandons it or dies (at least once). With a capacity, <c>name/size</c> counts items and enqueues wait
/// for room; size and items change in one transaction. Consumers wake by watch, never by polling.
/// </summary>
public sealed class DistributedQueue
{
    private const int ScanBatch = 64;
    private readonly ArbiterClient _client;

    /// <summary>A queue named <paramref name="name"/>; <paramref name="capacity"/> null = unbounded.</summary>
    public DistributedQueue(ArbiterClient client, string name, int? capacity = null)
    {
        _client = client ?? throw new ArgumentNullException(nameof(client));
        ArgumentException.ThrowIfNullOrEmpty(name);
        if (capacity is < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(capacity), capacity, "capacity must be at least 1");
        }

        Name = name;
        Capacity = capacity;
    }

    /// <summary>The queue name (key prefix).</summary>
    public string Name { get; }

    /// <summary>Most items at once, or null.</summary>
    public int? Capacity { get; }

    private string ItemsPrefix => Name + "/items/";

    private string ClaimsPrefix => Name + "/claims/";

    private string SizeKey => Name + "/size";

    /// <summary>Adds <paramref name="value"/> at the tail; false when a bounded queue stayed full for <paramref name="timeout"/>.</summary>
    public async Task<bool> TryEnqueueAsync(string value, TimeSpan timeout, CancellationToken cancellationToken = default)
    {
        Timeouts.Check(timeout);
        var itemKey = ItemsPrefix + Guid.NewGuid().ToString("N");
        if (Capacity == null)
        {
            await _client.PutAsync(itemKey, value, cancellationToken: cancellationToken).ConfigureAwait(false);
            return true;
        }

        using var deadline = Timeouts.Linked(timeout, cancellationToken);
        while (true)
        {
            var size = await _client.GetAsync(SizeKey, cancellationToken).ConfigureAwait(false);
            var count = ParseSize(size);
            if (count < Capacity)
            {
                var response = await _client.Txn()
                    .If(Cmp.ModRevision(SizeKey) == (size?.ModRevision ?? 0))
                    .Then(Op.Put(SizeKey, Format(count + 1)), Op.Put(itemKey, value))
                    .CommitAsync(cancellationToken).ConfigureAwait(false);
                if (response.Succeeded)
                {
                    return true;
                }

                continue;
            }

            if (timeout == TimeSpan.Zero)
            {
                return false;
            }

            var known = size?.ModRevision ?? 0;
            try
            {
                if (!await _client.WaitUntilAsync(SizeKey, kv => (kv?.ModRevision ?? 0) != known, Timeout.InfiniteTimeSpan, deadline.Token).ConfigureAwait(false))
                {
                    return false;
                }
            }
            catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
            {
                return false;
            }
        }
    }

    /// <summary>Adds <paramref name="value"/>, waiting as long as needed for room.</summary>
    public Task EnqueueAsync(string value, CancellationToken cancellationToken = default) =>
        TryEnqueueAsync(value, Timeout.InfiniteTimeSpan, cancellationToken);

    /// <summary>Removes and returns the oldest unclaimed item, waiting up to <paramref name="timeout"/>; null when none came.</summary>
    public async Task<string?> TryDequeueAsync(TimeSpan timeout, CancellationToken cancellationToken = default)
    {
        var taken = await TakeAsync(null, timeout, cancellationToken).ConfigureAwait(false);
        return taken?.Value.ToStringUtf8();
    }

    /// <summary>
    /// Claims the oldest unclaimed item under <paramref name="session"/>'s lease, waiting up to
    /// <paramref name="timeout"/>; null when none came. The item stays until completed.
    /// </summary>
    public async Task<QueueClaim?> TryClaimAsync(Session session, TimeSpan timeout, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(session);
        var taken = await TakeAsync(session, timeout, cancellationToken).ConfigureAwait(false);
        return taken == null ? null : new QueueClaim(this, taken, ClaimKey(taken), session.LeaseId);
    }

    /// <summary>Items in the queue now (claimed ones included).</summary>
    public async Task<long> CountAsync(CancellationToken cancellationToken = default) =>
        (await _client.RangeAsync(new RangeRequest { Key = Keys.From(ItemsPrefix), RangeEnd = Keys.PrefixEnd(ItemsPrefix), CountOnly = true }, cancellationToken).ConfigureAwait(false)).Count;

    internal Task<bool> CompleteAsync(KeyValue item, string claimKey, long leaseId, CancellationToken cancellationToken) =>
        // Guarded by our lease on the claim: a claim that expired and went to another consumer is not ours to complete.
        RemoveAsync(item, [Op.Delete(claimKey)], cancellationToken, claimKey: claimKey, claimLeaseId: leaseId);

    internal Task AbandonAsync(string claimKey, CancellationToken cancellationToken) => _client.DeleteAsync(claimKey, cancellationToken);

    private string ClaimKey(KeyValue item) => ClaimsPrefix + item.Key.ToStringUtf8()[ItemsPrefix.Length..];

    private async Task<KeyValue?> TakeAsync(Session? claimer, TimeSpan timeout, CancellationToken cancellationToken)
    {
        Timeouts.Check(timeout);
        using var deadline = Timeouts.Linked(timeout, cancellationToken);
        while (true)
        {
            var items = await _client.RangeAsync(
                new RangeRequest
                {
                    Key = Keys.From(ItemsPrefix),
                    RangeEnd = Keys.PrefixEnd(ItemsPrefix),
                    SortTarget = RangeRequest.Types.SortTarget.Create,
                    SortOrder = RangeRequest.Types.SortOrder.Ascend,
                    Limit = ScanBatch,
                },
                cancellationToken).ConfigureAwait(false);
            foreach (var item in items.Kvs)
            {
                var claimKey = ClaimKey(item);
                if (claimer != null)
                {
                    var claimed = await _client.Txn()
                        .If(Cmp.ModRevision(item.Key) == item.ModRevision, Cmp.CreateRevision(claimKey) == 0)
                        .Then(Op.Put(claimKey, string.Empty, claimer.LeaseId))
                        .CommitAsync(cancellationToken).ConfigureAwait(false);
                    if (claimed.Succeeded)
                    {
                        return item;
                    }
                }
                else if (await RemoveAsync(item, [], cancellationToken, requireUnclaimed: claimKey).ConfigureAwait(false))
                {
                    return item;
                }
            }

            if (timeout == TimeSpan.Zero)
            {
                return null;
            }

            // Nothing free: wait for any change under the queue (a new item, a released claim) after what we read.
            try
            {
                await foreach (var _ in _client.WatchAsync(Name + "/", new WatchOptions { Prefix = true, StartRevision = items.Header.Revision + 1 }, deadline.Token).ConfigureAwait(false))
                {
                    break;
                }
            }
            catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
            {
                return null;
            }
            catch (WatchCompactedException)
            {
                // Re-scan.
            }
        }
    }

    /// <summary>Deletes <paramref name="item"/> if unchanged (and keeps the size key in step); false when someone else took it.</summary>
    private async Task<bool> RemoveAsync(KeyValue item, RequestOp[] extra, CancellationToken cancellationToken, string? requireUnclaimed = null, string? claimKey = null, long claimLeaseId = 0)
    {
        while (true)
        {
            var txn = _client.Txn().If(Cmp.ModRevision(item.Key) == item.ModRevision).Then(Op.Delete(item.Key)).Then(extra);
            if (requireUnclaimed != null)
            {
                txn.If(Cmp.CreateRevision(requireUnclaimed) == 0);
            }

            if (claimKey != null)
            {
                txn.If(Cmp.Lease(claimKey) == claimLeaseId);
            }

            KeyValue? size = null;
            if (Capacity != null)
            {
                size = await _client.GetAsync(SizeKey, cancellationToken).ConfigureAwait(false);
                txn.If(Cmp.ModRevision(SizeKey) == (size?.ModRevision ?? 0)).Then(Op.Put(SizeKey, Format(Math.Max(0, ParseSize(size) - 1))));
            }

            var response = await txn.CommitAsync(cancellationToken).ConfigureAwait(false);
            if (response.Succeeded)
            {
                return true;
            }

            // Retry only if it was the size counter that moved and the item is still ours to take.
            var current = await _client.GetAsync(item.Key, cancellationToken).ConfigureAwait(false);
            if (Capacity == null || current == null || current.ModRevision != item.ModRevision
                || (claimKey != null && (await _client.GetAsync(claimKey, cancellationToken).ConfigureAwait(false))?.Lease != claimLeaseId)
                || (requireUnclaimed != null && await _client.GetAsync(requireUnclaimed, cancellationToken).ConfigureAwait(false) != null))
            {
                return false;
            }
        }
    }

    private static long ParseSize(KeyValue? size) => size == null ? 0 : long.Parse(size.Value.ToStringUtf8(), CultureInfo.InvariantCulture);

    private static string Format(long value) => value.ToString(CultureInfo.InvariantCulture);
}

/// <summary>An item claimed from a <see cref="DistributedQueue"/>. Disposing without completing abandons it (it becomes available again).</summary>
public sealed class QueueClaim : IAsyncDisposable
{
    private readonly DistributedQueue _queue;
    private readonly KeyValue _item;
    private readonly string _claimKey;
    private readonly long _leaseId;
    private int _done;

    internal QueueClaim(DistributedQueue queue, KeyValue item, string claimKey, long leaseId)
    {
        _queue = queue;
        _item = item;
        _claimKey = claimKey;
        _leaseId = leaseId;
    }

    /// <summary>The item's value.</summary>
    public string Value => _item.Value.ToStringUtf8();

    /// <summary>The item's create revision (its place in the queue).</summary>
    public long Revision => _item.CreateRevision;

    /// <summary>Removes the item for good; false when the claim was lost meanwhile (the item may be handed out again).</summary>
    public async Task<bool> CompleteAsync(CancellationToken cancellationToken = default) =>
        Interlocked.Exchange(ref _done, 1) == 0 && await _queue.CompleteAsync(_item, _claimKey, _leaseId, cancellationToken).ConfigureAwait(false);

    /// <summary>Releases the claim; the item is handed out again.</summary>
    public async Task AbandonAsync(CancellationToken cancellationToken = default)
    {
        if (Interlocked.Exchange(ref _done, 1) == 0)
        {
            await _queue.AbandonAsync(_claimKey, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>Abandons the item unless completed.</summary>
    public async ValueTask DisposeAsync()
    {
        using var cleanup = Timeouts.Cleanup();
        try
        {
            await AbandonAsync(cleanup.Token).ConfigureAwait(false);
        }
        catch (Exception e) when (e is RpcException or OperationCanceledException)
        {
            // The claim expires with the consumer's lease.
        }
    }
}
