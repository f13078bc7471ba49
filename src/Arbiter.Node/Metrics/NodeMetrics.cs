using System.Diagnostics.Metrics;
using System.Globalization;
using Arbiter.Protocol.Etcd;
using Google.Protobuf;

namespace Arbiter.Node.Metrics;

/// <summary>
/// One member's instruments (<see cref="System.Diagnostics.Metrics"/>, meter <see cref="MeterName"/>,
/// one meter per node, disposed with it): etcd's names where the meaning is the same, so etcd's
/// dashboards and alerts read an Arbiter member unchanged, and <c>arbiter_*</c> for the rest.
/// Gauges are read from the member when a collector asks; counters move as requests are served.
/// </summary>
public sealed class NodeMetrics : IDisposable
{
    /// <summary>The meter's name, for an OpenTelemetry <c>AddMeter</c>.</summary>
    public const string MeterName = "Arbiter.Node";

    private static readonly RangeRequest CountAllKeys = new() { Key = ByteString.CopyFrom(0), RangeEnd = ByteString.CopyFrom(0), CountOnly = true };

    private readonly Meter _meter = new(MeterName);
    private long _proposalsFailed;
    private long _puts;
    private long _ranges;
    private long _deletes;
    private long _txns;

    internal NodeMetrics(ArbiterNode node, StateHost host, Func<long> committedIndex, Func<long> leaderChangesSeen, Func<long?> diskSizeBytes)
    {
        var serverId = new KeyValuePair<string, object?>("server_id", node.MemberId.ToString("x", CultureInfo.InvariantCulture));
        var serverVersion = new KeyValuePair<string, object?>("server_version", ArbiterNode.EtcdApiVersion);

        _meter.CreateObservableGauge("etcd_server_has_leader", () => node.HasLeader ? 1 : 0, description: "Whether or not a leader exists. 1 is existence, 0 is not.");
        _meter.CreateObservableGauge("etcd_server_is_leader", () => node.IsLeader ? 1 : 0, description: "Whether or not this member is a leader. 1 if is, 0 otherwise.");
        _meter.CreateObservableCounter("etcd_server_leader_changes_seen_total", leaderChangesSeen, description: "The number of leader changes seen.");
        _meter.CreateObservableGauge("etcd_server_proposals_committed_total", committedIndex, description: "The total number of consensus proposals committed.");
        _meter.CreateObservableGauge("etcd_server_proposals_applied_total", () => node.AppliedIndex, description: "The total number of consensus proposals applied.");
        _meter.CreateObservableCounter("etcd_server_proposals_failed_total", () => Interlocked.Read(ref _proposalsFailed), description: "The total number of failed proposals seen.");
        _meter.CreateObservableGauge("etcd_server_id", () => new Measurement<int>(1, serverId), description: "Server or member ID in hexadecimal format. 1 for 'server_id' label with current ID.");
        _meter.CreateObservableGauge("etcd_server_version", () => new Measurement<int>(1, serverVersion), description: "Which version is running. 1 for 'server_version' label with current version.");

        _meter.CreateObservableGauge("etcd_mvcc_db_total_size_in_bytes", () => diskSizeBytes() ?? host.Read(s => s.SizeBytes), unit: "By", description: "Total size of the underlying database physically allocated in bytes.");
        _meter.CreateObservableGauge("etcd_mvcc_db_total_size_in_use_in_bytes", () => host.Read(s => s.SizeBytes), unit: "By", description: "Total size of the underlying database logically in use in bytes.");
        _meter.CreateObservableGauge("etcd_debugging_mvcc_keys_total", () => host.Read(s => s.Range(CountAllKeys).Count), description: "Total number of keys.");
        _meter.CreateObservableGauge("etcd_debugging_mvcc_current_revision", () => host.Read(s => s.Revision), description: "The current revision of store.");
        _meter.CreateObservableGauge("etcd_debugging_mvcc_compact_revision", () => host.Read(s => s.CompactRevision == 0 ? -1 : s.CompactRevision), description: "The revision of the last compaction in store (-1 before the first, as etcd).");
        _meter.CreateObservableGauge("etcd_debugging_mvcc_watcher_total", () => host.Watches.WatcherCount, description: "Total number of watchers.");
        _meter.CreateObservableCounter("etcd_mvcc_put_total", () => Interlocked.Read(ref _puts), description: "Total number of puts seen by this member.");
        _meter.CreateObservableCounter("etcd_mvcc_range_total", () => Interlocked.Read(ref _ranges), description: "Total number of ranges seen by this member.");
        _meter.CreateObservableCounter("etcd_mvcc_delete_total", () => Interlocked.Read(ref _deletes), description: "Total number of deletes seen by this member.");
        _meter.CreateObservableCounter("etcd_mvcc_txn_total", () => Interlocked.Read(ref _txns), description: "Total number of txns seen by this member.");

        _meter.CreateObservableGauge("arbiter_value_spill_bytes", () => (host.ValueSpill as Spill.FileValueSpill)?.LiveBytes ?? 0, unit: "By", description: "Bytes of versions paged out to member/spill and not yet returned (its files are unlinked: du does not show them).");
        _meter.CreateObservableGauge("arbiter_leases_alive", () => host.Read(s => s.LeaseCount), description: "Leases granted and not yet expired or revoked (every session is one).");
        _meter.CreateObservableGauge("arbiter_transactions_open", () => host.Read(s => s.TransactionSummary().OpenTransactions), description: "Interactive transactions begun and not yet finished.");
        _meter.CreateObservableGauge("arbiter_locks_held", () => host.Read(s => s.TransactionSummary().LocksHeld), description: "Lock-table locks granted (shared and exclusive, keys and ranges).");
        _meter.CreateObservableGauge("arbiter_locks_waiting", () => host.Read(s => s.TransactionSummary().LocksWaiting), description: "Lock-table requests queued behind a conflicting lock.");
        _meter.CreateObservableCounter("arbiter_transactions_begun_total", () => host.Read(s => s.TransactionSummary().Counters.Begun), description: "Interactive transactions begun.");
        _meter.CreateObservableCounter("arbiter_transactions_committed_total", () => host.Read(s => s.TransactionSummary().Counters.Committed), description: "Interactive transactions committed.");
        _meter.CreateObservableCounter("arbiter_transactions_aborted_total", () => host.Read(s => s.TransactionSummary().Counters.Aborted), description: "Interactive transactions aborted (by the client, a deadlock, a timeout or an expired lease).");
        _meter.CreateObservableCounter("arbiter_transactions_deadlocks_total", () => host.Read(s => s.TransactionSummary().Counters.Deadlocks), description: "Deadlocks found (each aborted one victim).");
        _meter.CreateObservableCounter("arbiter_transactions_lock_timeouts_total", () => host.Read(s => s.TransactionSummary().Counters.LockTimeouts), description: "Lock waits that timed out.");
        _meter.CreateObservableCounter("arbiter_optimistic_commits_total", () => host.Read(s => s.TransactionSummary().Counters.OptimisticCommits), description: "Optimistic commits that succeeded.");
        var gossip = node.CrdtGossip;
        _meter.CreateObservableCounter(
            "arbiter_crdt_gossip_bytes_total",
            () => Enum.GetValues<Crdt.CrdtGossipKind>().Select(kind => new Measurement<long>(gossip.BytesOf(kind), new KeyValuePair<string, object?>("kind", kind.ToString().ToLowerInvariant()))),
            description: "Bytes of CRDT anti-entropy messages this member started (requests sent and answers received, protobuf only), by kind: delta, ack, digest, repair.");
        _meter.CreateObservableCounter("arbiter_crdt_updates_total", () => gossip.Updates, description: "CRDT updates applied on this member (the denominator of gossip bytes per update).");
        _meter.CreateObservableGauge(
            "arbiter_crdt_peer_lag_deltas",
            () => node.CrdtPeerLag().Select(lag => new Measurement<long>(lag.DeltasBehind, new KeyValuePair<string, object?>("member", lag.MemberId.ToString("x16", CultureInfo.InvariantCulture)))),
            description: "CRDT convergence lag: per peer member, the deltas this member holds that the peer has not acknowledged yet (0 when it is up to date).");
        _meter.CreateObservableCounter("arbiter_optimistic_conflicts_total", () => host.Read(s => s.TransactionSummary().Counters.OptimisticConflicts), description: "Optimistic commits refused because a read was overwritten.");
    }

    // Observable counters over plain fields: exported from the start (at 0, as etcd's are), and
    // an increment costs one interlocked add whether or not anything listens.
    internal void ProposalFailed() => Interlocked.Increment(ref _proposalsFailed);

    internal void Put() => Interlocked.Increment(ref _puts);

    internal void Range() => Interlocked.Increment(ref _ranges);

    internal void Delete() => Interlocked.Increment(ref _deletes);

    internal void Txn() => Interlocked.Increment(ref _txns);

    /// <inheritdoc />
    public void Dispose() => _meter.Dispose();
}
