using Arbiter.Client;
using Arbiter.Protocol.Etcd;
using Grpc.Core;

namespace Arbiter.Recipes;

/// <summary>
/// A condition variable: a waiter registers a key <c>name/waiters/&lt;id&gt;</c> under its session's
/// lease and waits (by watch) for that key's deletion. <see cref="SignalAsync"/> deletes the oldest
/// waiter key (FIFO), <see cref="BroadcastAsync"/> all of them. A signal sent when nobody waits is
/// lost, as with any condition variable: re-check your predicate after waking.
/// </summary>
public sealed class DistributedCondition
{
    private readonly Session _session;
    private readonly ArbiterClient _client;

    /// <summary>A condition named <paramref name="name"/>; waits register under <paramref name="session"/>'s lease.</summary>
    public DistributedCondition(Session session, string name)
    {
        _session = session ?? throw new ArgumentNullException(nameof(session));
        _client = session.Client;
        ArgumentException.ThrowIfNullOrEmpty(name);
        Name = name;
    }

    /// <summary>The condition name (key prefix).</summary>
    public string Name { get; }

    private string WaitersPrefix => Name + "/waiters/";

    /// <summary>Waits for a signal; false on timeout. The waiter key is removed on timeout or cancellation.</summary>
    public async Task<bool> WaitAsync(TimeSpan timeout, CancellationToken cancellationToken = default)
    {
        Timeouts.Check(timeout);
        var key = WaitersPrefix + Keys.LeaseHex(_session.LeaseId) + "-" + Guid.NewGuid().ToString("N");
        var put = await _client.PutAsync(key, string.Empty, _session.LeaseId, cancellationToken).ConfigureAwait(false);
        var createRevision = put.Header.Revision;
        var woken = false;
        try
        {
            woken = await _client.WaitUntilAsync(key, kv => kv == null, timeout, cancellationToken).ConfigureAwait(false);
            return woken;
        }
        finally
        {
            if (!woken)
            {
                using var cleanup = Timeouts.Cleanup();
                try
                {
                    // If the delete finds nothing, a signal took our key at the last moment; it is consumed either way.
                    await WaitQueue.DeleteOwnedAsync(_client, key, createRevision, cleanup.Token).ConfigureAwait(false);
                }
                catch (Exception e) when (e is RpcException or OperationCanceledException)
                {
                    // The key expires with the session.
                }
            }
        }
    }

    /// <summary>Wakes the longest-waiting waiter; false when nobody waits.</summary>
    public async Task<bool> SignalAsync(CancellationToken cancellationToken = default)
    {
        while (true)
        {
            var first = await _client.RangeAsync(
                new RangeRequest
                {
                    Key = Keys.From(WaitersPrefix),
                    RangeEnd = Keys.PrefixEnd(WaitersPrefix),
                    SortTarget = RangeRequest.Types.SortTarget.Create,
                    SortOrder = RangeRequest.Types.SortOrder.Ascend,
                    Limit = 1,
                },
                cancellationToken).ConfigureAwait(false);
            if (first.Kvs.Count == 0)
            {
                return false;
            }

            var deleted = await _client.DeleteRangeAsync(new DeleteRangeRequest { Key = first.Kvs[0].Key }, cancellationToken).ConfigureAwait(false);
            if (deleted.Deleted > 0)
            {
                return true;
            }
        }
    }

    /// <summary>Wakes every waiter; returns how many.</summary>
    public Task<long> BroadcastAsync(CancellationToken cancellationToken = default) => _client.DeletePrefixAsync(WaitersPrefix, cancellationToken);
}
