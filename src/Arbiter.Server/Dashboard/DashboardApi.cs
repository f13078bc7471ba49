using System.Globalization;
using System.Text;
using Arbiter.Core;
using Arbiter.Node;
using Arbiter.Protocol;
using Arbiter.Protocol.Etcd;
using Arbiter.Protocol.Mvcc;
using Google.Protobuf;

namespace Arbiter.Server.Dashboard;

/// <summary>
/// The read-only views behind the dashboard, from this member's node. Key reads are serializable
/// (this member's applied state: the page polls every second and must not load the leader);
/// leases and the transaction table are read as their own RPCs read them.
/// </summary>
public sealed class DashboardApi(ArbiterNode node, WatchStreamRegistry watchStreams)
{
    /// <summary>Most keys one key-tree listing reads.</summary>
    public const int KeyListScanMax = 5_000;

    /// <summary>Most keys the lock and election scan reads (the whole keyspace, keys with a lease only matter).</summary>
    public const int QueueScanKeysMax = 20_000;

    /// <summary>Most versions of a key the history shows (the newest).</summary>
    public const int KeyVersionsMax = 200;

    /// <summary>Most leases listed with their keys (each is a TimeToLive read).</summary>
    public const int LeasesListedMax = 200;

    /// <summary>Longest value text shown, in characters.</summary>
    public const int ValueTextCharsMax = 256;

    /// <summary>The member, its status and the member list.</summary>
    public async Task<DashboardCluster> ClusterAsync(CancellationToken cancellationToken)
    {
        var status = await node.StatusAsync(new StatusRequest(), cancellationToken).ConfigureAwait(false);
        var members = await node.MemberListAsync(cancellationToken).ConfigureAwait(false);
        var leader = status.Leader;
        var listed = members.Members
            .OrderBy(m => m.Name, StringComparer.Ordinal)
            .Select(m => new DashboardMember(Id(m.ID), m.Name, [.. m.PeerURLs], [.. m.ClientURLs], m.ID == leader && leader != 0, m.ID == node.MemberId))
            .ToList();
        return new DashboardCluster(
            Id(node.MemberId),
            node.Name,
            Id(node.ClusterId),
            node.IsClustered,
            node.AuthEnabled,
            status.Version,
            Id(leader),
            listed.FirstOrDefault(m => m.IsLeader)?.Name,
            status.RaftTerm,
            status.Header.Revision,
            node.CompactRevision,
            status.RaftIndex,
            status.RaftAppliedIndex,
            status.DbSize,
            status.DbSizeInUse,
            [.. status.Errors],
            listed,
            DateTimeOffset.UtcNow);
    }

    /// <summary>One level of the key tree under <paramref name="prefix"/>: folders up to the next '/', and keys.</summary>
    public async Task<DashboardKeyList> KeysAsync(ByteString prefix, CancellationToken cancellationToken)
    {
        var request = prefix.IsEmpty
            ? new RangeRequest { Key = ByteString.CopyFrom(0), RangeEnd = ByteString.CopyFrom(0) }
            : new RangeRequest { Key = prefix, RangeEnd = KeyRanges.PrefixEnd(prefix) };
        request.Serializable = true;
        request.Limit = KeyListScanMax;
        var range = await node.RangeAsync(request, cancellationToken).ConfigureAwait(false);
        var folders = new SortedDictionary<ByteString, int>(ByteStringOrder.Instance);
        var keys = new List<DashboardKey>();
        foreach (var kv in range.Kvs)
        {
            var rest = kv.Key.Span[prefix.Length..];
            var slash = rest.IndexOf((byte)'/');
            if (slash >= 0 && slash < rest.Length - 1)
            {
                var folder = ByteString.CopyFrom(kv.Key.Span[..(prefix.Length + slash + 1)]);
                folders[folder] = folders.GetValueOrDefault(folder) + 1;
            }
            else
            {
                keys.Add(new DashboardKey(Bytes(kv.Key), Bytes(kv.Value, ValueTextCharsMax), kv.CreateRevision, kv.ModRevision, kv.Version, Id(kv.Lease)));
            }
        }

        return new DashboardKeyList(
            Bytes(prefix),
            [.. folders.Select(f => new DashboardFolder(Bytes(f.Key), f.Value))],
            keys,
            range.Header.Revision,
            range.Kvs.Count,
            range.More);
    }

    /// <summary>The retained versions of <paramref name="key"/>, oldest first (the newest <see cref="KeyVersionsMax"/>).</summary>
    public DashboardKeyHistory KeyHistory(ByteString key)
    {
        // One more than shown, to say whether older versions were left out.
        var (versions, revision, compactRevision) = node.KeyVersions(key, KeyVersionsMax + 1);
        var shown = versions.Skip(Math.Max(0, versions.Count - KeyVersionsMax)).Select(e => e.Type == Event.Types.EventType.Put
            ? new DashboardKeyVersion("PUT", e.Kv.ModRevision, e.Kv.CreateRevision, e.Kv.Version, Id(e.Kv.Lease), Bytes(e.Kv.Value, ValueTextCharsMax))
            : new DashboardKeyVersion("DELETE", e.Kv.ModRevision, 0, 0, Id(0), null));
        return new DashboardKeyHistory(Bytes(key), [.. shown], revision, compactRevision, versions.Count > KeyVersionsMax);
    }

    /// <summary>Live leases (the first <see cref="LeasesListedMax"/> by id) with remaining TTL and keys.</summary>
    public async Task<DashboardLeases> LeasesAsync(CancellationToken cancellationToken)
    {
        var all = await node.LeaseLeasesAsync(new LeaseLeasesRequest(), cancellationToken).ConfigureAwait(false);
        var leases = new List<DashboardLease>();
        foreach (var lease in all.Leases.OrderBy(l => l.ID).Take(LeasesListedMax))
        {
            var ttl = await node.LeaseTimeToLiveAsync(new LeaseTimeToLiveRequest { ID = lease.ID, Keys = true }, cancellationToken).ConfigureAwait(false);
            if (ttl.TTL >= 0)
            {
                leases.Add(new DashboardLease(Id(lease.ID), ttl.TTL, ttl.GrantedTTL, [.. ttl.Keys.Select(k => Bytes(k))]));
            }
        }

        return new DashboardLeases(leases, all.Leases.Count, all.Header.Revision);
    }

    /// <summary>Lock and election queues in the keyspace, and the transaction lock table.</summary>
    public async Task<DashboardLocks> LocksAsync(CancellationToken cancellationToken)
    {
        var range = await node.RangeAsync(new RangeRequest
        {
            Key = ByteString.CopyFrom(0),
            RangeEnd = ByteString.CopyFrom(0),
            Serializable = true,
            Limit = QueueScanKeysMax,
        }, cancellationToken).ConfigureAwait(false);
        var queues = new Dictionary<ByteString, List<KeyValue>>();
        foreach (var kv in range.Kvs)
        {
            if (QueueName(kv) is { } name)
            {
                if (!queues.TryGetValue(name, out var entries))
                {
                    queues[name] = entries = [];
                }

                entries.Add(kv);
            }
        }

        var locks = new List<DashboardQueue>();
        var elections = new List<DashboardQueue>();
        foreach (var (name, entries) in queues.OrderBy(q => q.Key, ByteStringOrder.Instance))
        {
            entries.Sort((a, b) => a.CreateRevision.CompareTo(b.CreateRevision));
            var queue = new DashboardQueue(Bytes(name), Entry(entries[0]), [.. entries.Skip(1).Select(Entry)]);

            // The lock recipes queue with empty values; a candidate's key holds its proclaimed value.
            (entries.TrueForAll(e => e.Value.IsEmpty) ? locks : elections).Add(queue);
        }

        var table = await node.TxnStatusAsync(cancellationToken).ConfigureAwait(false);
        var tableLocks = table.Locks
            .OrderBy(l => l.Sequence)
            .Select(l => new DashboardTableLock(l.TxnId, Bytes(l.Key), l.RangeEnd.IsEmpty ? null : Bytes(l.RangeEnd), l.Mode.ToString(), l.Granted, l.FencingToken, l.Sequence))
            .ToList();
        var transactions = table.Transactions
            .OrderBy(t => t.TxnId)
            .Select(t => new DashboardTransaction(t.TxnId, Id(t.Lease), t.LocksHeld, [.. t.WaitsFor], t.OpenMs, t.TimeLeftMs))
            .ToList();
        return new DashboardLocks(locks, elections, tableLocks, transactions, range.Header.Revision, range.Kvs.Count, range.More);
    }

    /// <summary>The client watch streams on this member and their watches.</summary>
    public DashboardWatches Watches()
    {
        var streams = watchStreams.Snapshot().Select(s => new DashboardWatchStream(
            s.StreamId,
            s.Peer,
            s.OpenedAt,
            s.Stream.PendingResponses,
            [.. s.Stream.DescribeWatches().Select(w => new DashboardWatch(
                w.WatchId,
                Bytes(ByteString.CopyFrom(w.Key)),
                w.RangeEnd is { Length: > 0 } end ? Bytes(ByteString.CopyFrom(end)) : null,
                w.RangeEnd is { Length: 0 },
                w.RangeEnd is { Length: > 0 } && KeyRanges.PrefixEnd(ByteString.CopyFrom(w.Key)).Span.SequenceEqual(w.RangeEnd),
                w.NextRevision,
                w.Synced,
                [.. Filters(w.FilterPut, w.FilterDelete)],
                w.PrevKv))]));
        return new DashboardWatches([.. streams], streams.Sum(s => s.Watches.Count));
    }

    /// <summary>
    /// The queue a key belongs to when it is a lock or election entry: its last segment is the hex
    /// id of the lease it is bound to (<c>name/&lt;lease hex&gt;</c>); the name is what precedes the '/'.
    /// </summary>
    internal static ByteString? QueueName(KeyValue kv)
    {
        if (kv.Lease == 0)
        {
            return null;
        }

        var key = kv.Key.Span;
        var slash = key.LastIndexOf((byte)'/');
        if (slash <= 0)
        {
            return null;
        }

        var suffix = KeyRanges.LeaseHex(kv.Lease);
        return key[(slash + 1)..].SequenceEqual(Encoding.ASCII.GetBytes(suffix))
            ? ByteString.CopyFrom(key[..slash])
            : null;
    }

    /// <summary>Display text and exact bytes; text longer than <paramref name="textCharsMax"/> is cut.</summary>
    internal static DashboardBytes Bytes(ByteString bytes, int textCharsMax = int.MaxValue)
    {
        string text;
        try
        {
            text = new UTF8Encoding(false, throwOnInvalidBytes: true).GetString(bytes.Span);
        }
        catch (DecoderFallbackException)
        {
            text = "0x" + Convert.ToHexString(bytes.Span).ToLowerInvariant();
        }

        var truncated = text.Length > textCharsMax;
        return new DashboardBytes(truncated ? text[..textCharsMax] : text, bytes.ToBase64(), truncated);
    }

    /// <summary>Ids as etcdctl prints them: hex, so that the page shows what the tools show.</summary>
    internal static string Id(ulong id) => id.ToString("x", CultureInfo.InvariantCulture);

    internal static string Id(long id) => id == 0 ? string.Empty : KeyRanges.LeaseHex(id);

    private static DashboardQueueEntry Entry(KeyValue kv) =>
        new(Bytes(kv.Key), Id(kv.Lease), kv.CreateRevision, Bytes(kv.Value, ValueTextCharsMax));

    private static IEnumerable<string> Filters(bool filterPut, bool filterDelete)
    {
        if (filterPut)
        {
            yield return "NOPUT";
        }

        if (filterDelete)
        {
            yield return "NODELETE";
        }
    }

    private sealed class ByteStringOrder : IComparer<ByteString>
    {
        public static readonly ByteStringOrder Instance = new();

        public int Compare(ByteString? x, ByteString? y) =>
            (x ?? ByteString.Empty).Span.SequenceCompareTo((y ?? ByteString.Empty).Span);
    }
}
