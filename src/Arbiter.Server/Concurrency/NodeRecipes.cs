using Arbiter.Core;
using Arbiter.Node;
using Arbiter.Protocol;
using Arbiter.Protocol.Etcd;
using Arbiter.Protocol.Mvcc;
using Google.Protobuf;

namespace Arbiter.Server.Concurrency;

/// <summary>
/// The waiting half of etcd's lock and election recipes, run inside the server for the
/// v3lock/v3election services: wait until every key in a prefix created before a revision is gone,
/// watching only the immediate predecessor each time (no thundering herd).
/// </summary>
public sealed class NodeRecipes(ArbiterNode node)
{
    /// <summary>The node the recipes run on.</summary>
    public ArbiterNode Node { get; } = node;

    /// <summary>Waits until no key under <paramref name="prefix"/> has create revision ≤ <paramref name="maxCreateRevision"/>.</summary>
    public async Task<ResponseHeader> WaitDeletesAsync(ByteString prefix, long maxCreateRevision, CancellationToken cancellationToken)
    {
        while (true)
        {
            var predecessor = await Node.RangeAsync(new RangeRequest
            {
                Key = prefix,
                RangeEnd = KeyRanges.PrefixEnd(prefix),
                MaxCreateRevision = maxCreateRevision,
                SortOrder = RangeRequest.Types.SortOrder.Descend,
                SortTarget = RangeRequest.Types.SortTarget.Create,
                Limit = 1,
            }, cancellationToken).ConfigureAwait(false);
            if (predecessor.Kvs.Count == 0)
            {
                return predecessor.Header;
            }

            await WaitDeleteAsync(predecessor.Kvs[0].Key, predecessor.Header.Revision, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>Waits for a DELETE of <paramref name="key"/> after <paramref name="revision"/>.</summary>
    public async Task WaitDeleteAsync(ByteString key, long revision, CancellationToken cancellationToken)
    {
        var stream = Node.OpenWatchStream();
        await using (stream.ConfigureAwait(false))
        {
            var request = new WatchCreateRequest { Key = key, StartRevision = revision + 1 };
            request.Filters.Add(WatchCreateRequest.Types.FilterType.Noput);
            stream.Create(request);
            await foreach (var response in stream.ReadAllAsync(cancellationToken).ConfigureAwait(false))
            {
                // A compacted watch means history moved on; the caller re-reads the predecessor.
                if (response.Canceled || response.Events.Any(e => e.Type == Event.Types.EventType.Delete))
                {
                    return;
                }
            }
        }

        throw new EtcdException(EtcdError.Stopped);
    }

    /// <summary>Whether <paramref name="key"/> still exists with <paramref name="createRevision"/> (the holder's session is alive).</summary>
    public async Task<bool> StillOwnsAsync(ByteString key, long createRevision, CancellationToken cancellationToken)
    {
        var current = await Node.RangeAsync(new RangeRequest { Key = key }, cancellationToken).ConfigureAwait(false);
        return current.Kvs.Count == 1 && current.Kvs[0].CreateRevision == createRevision;
    }
}
