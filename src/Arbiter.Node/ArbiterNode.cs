using System.Security.Cryptography;
using System.Text;
using Arbiter.Core;
using Arbiter.Node.Cluster;
using Arbiter.Node.Log;
using Arbiter.Node.Metrics;
using Arbiter.Node.Spill;
using Arbiter.Node.Watch;
using Arbiter.Protocol.Etcd;
using Arbiter.Protocol.Internal;
using Arbiter.Storage;
using Google.Protobuf;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Arbiter.Node;

/// <summary>
/// One Arbiter member, in-process: the state machine, its log, lease expiry and watches, with
/// the etcd v3 operations as async methods. The gRPC server is a thin layer over this class, and
/// an application can host it directly (embedded mode) with no network at all.
/// Errors are thrown as <see cref="EtcdException"/> carrying etcd's status code and text.
/// </summary>
public sealed partial class ArbiterNode : IAsyncDisposable
{
    /// <summary>The etcd API version reported by Status: clients gate features on it.</summary>
    public const string EtcdApiVersion = "3.4.23";

    private readonly StateHost _host;
    private readonly ICommandLog _log;
    private readonly RaftCommandLog? _raft;
    private readonly WriteAheadLog? _wal;
    private readonly ILogger _logger;
    private readonly CancellationTokenSource _stopping = new();
    private readonly ulong _requestIdPrefix;
    private Task _leaseLoop = Task.CompletedTask;
    private Task _memberAddLoop = Task.CompletedTask;
    private Task _compactionLoop = Task.CompletedTask;
    private ulong _leasesPromotedTerm;

    /// <summary>Completed (and replaced) each time this member renews every lease for a new term.</summary>
    private TaskCompletionSource _leasesPromotedSignal = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>How often a waiting keep-alive looks again whether the term changed without a renewal here.</summary>
    private const int LeasePromotedPollMs = 50;
    private long _requestIdCounter;
    private int _disposed;
    private ulong _singleClusterId;

    private ArbiterNode(NodeOptions options, StateHost host, ICommandLog log, WriteAheadLog? wal, ILogger logger)
    {
        Options = options;
        _host = host;
        _log = log;
        _wal = wal;
        _logger = logger;
        _raft = log as RaftCommandLog;
        (ClusterId, MemberId) = ComputeIds(options);
        if (log is LocalCommandLog local)
        {
            local.LeaderId = MemberId;
        }

        // A single node leads from its start: one leader change, as a single etcd member counts.
        Metrics = new Metrics.NodeMetrics(this, host, () => log.CommittedIndex, () => _raft?.LeaderChangesSeen ?? 1, () => _wal?.SizeBytes);

        // Request ids need only be unique per node lifetime; a random prefix keeps them unique
        // across restarts too (they are remembered in snapshots for deduplication).
        _requestIdPrefix = (ulong)RandomNumberGenerator.GetInt32(1, int.MaxValue) << 32;
    }

    /// <summary>This member's instruments (meter <c>Arbiter.Node</c>), for an OpenTelemetry exporter.</summary>
    public Metrics.NodeMetrics Metrics { get; }

    /// <summary>The options this node runs with.</summary>
    public NodeOptions Options { get; }

    /// <summary>Commands a single node answered before their fsync (transaction grants; 0 on a cluster member).</summary>
    internal long CommandsAnsweredBeforeFsync => (_log as LocalCommandLog)?.CommandsAnsweredBeforeFsync ?? 0;

    /// <summary>A single node's log (null in a cluster), for tests.</summary>
    internal LocalCommandLog? LocalLog => _log as LocalCommandLog;

    /// <summary>Bytes of versions paged out so far (0 when they are kept in memory).</summary>
    internal long ValueSpillAppendedBytes => (_host.ValueSpill as FileValueSpill)?.AppendedBytes ?? 0;

    /// <summary>Bytes the value spill holds on disk now (segments not yet returned; 0 without a spill).</summary>
    internal long ValueSpillLiveBytes => (_host.ValueSpill as FileValueSpill)?.LiveBytes ?? 0;

    /// <summary>The last transaction id, lock request sequence and fencing token the lock table handed out.</summary>
    internal (long TxnId, long Sequence, long FencingToken) TransactionIdentifiers => _host.TransactionIdentifiers;

    /// <summary>The last index of the single node's write-ahead log known fsynced (0 without one).</summary>
    internal long DurableLogIndex => _wal?.DurableIndex ?? 0;

    /// <summary>How many times the single node's write-ahead log synced its data (0 without one).</summary>
    internal long LogDataSyncCount => _wal?.DataSyncCount ?? 0;

    /// <summary>This member's id (derived from its peer URL and the cluster token, as stable as etcd's).</summary>
    public ulong MemberId { get; private set; }

    /// <summary>The cluster's id (0 on a member that joined and has not yet heard from the leader).</summary>
    public ulong ClusterId
    {
        get => _raft?.ClusterId ?? _singleClusterId;
        private set => _singleClusterId = value;
    }

    /// <summary>Whether this node is a Raft cluster member (false: a single node with its local log).</summary>
    public bool IsClustered => _raft is not null;

    /// <summary>Whether this member is the leader (a single node always is).</summary>
    public bool IsLeader => _log.IsLeader;

    /// <summary>The leader's member id, 0 when none is known.</summary>
    public ulong LeaderId => _log.LeaderId;

    /// <summary>The current Raft term (1 on a single node).</summary>
    public ulong Term => _log.Term;

    /// <summary>The member name.</summary>
    public string Name => Options.Name;

    /// <summary>The current store revision.</summary>
    public long Revision => _host.Read(s => s.Revision);

    /// <summary>The revision history was compacted at (0: never).</summary>
    public long CompactRevision => _host.Read(static s => s.CompactRevision);

    /// <summary>Index of the last applied command.</summary>
    public long AppliedIndex => _log.AppliedIndex;

    /// <summary>Whether the member knows a leader (a single node is its own leader while healthy).</summary>
    public bool HasLeader => _log.HasLeader;

    /// <summary>
    /// Cancelled when this member learns that it has been removed from the cluster: a MemberRemove of
    /// it was applied here (now, or before its last stop), or, removed while it was down, the leader
    /// no longer lists it. From then on requests in flight and new proposals fail with "etcdserver:
    /// server stopped", and the host should stop, as etcd's removed member does. Cancelled about a
    /// second after the removal is learned (etcd waits as long), at once when found at start. Never
    /// cancelled on a single node. Read it before disposal.
    /// </summary>
    public CancellationToken Removed => _raft?.Removed ?? CancellationToken.None;

    /// <summary>
    /// Starts a node: opens (or creates) the data directory, restores the latest snapshot, replays
    /// the log after it, and renews every lease to its full TTL (the clock that measured them is gone).
    /// </summary>
    public static async Task<ArbiterNode> StartAsync(NodeOptions options, ILoggerFactory? loggerFactory = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        var logger = (loggerFactory ?? NullLoggerFactory.Instance).CreateLogger("Arbiter.Node");
        if (options.Cluster is not null)
        {
            return await StartMemberAsync(options, loggerFactory ?? NullLoggerFactory.Instance, logger, cancellationToken).ConfigureAwait(false);
        }

        WriteAheadLog? wal = null;
        StateMachine state;
        if (options.DataDirectory is null)
        {
            state = new StateMachine(options.Limits);
        }
        else
        {
            var walDirectory = Path.Combine(options.DataDirectory, "member", "wal");
            wal = WriteAheadLog.Open(new WalOptions { DirectoryPath = walDirectory, FsyncEnabled = options.FsyncEnabled });
            try
            {
                state = Recover(wal, options, logger);
            }
            catch
            {
                wal.Dispose();
                throw;
            }
        }

        ArbiterNode? node = null;
        var hub = new WatchHub(options, () => node!.NewHeader());
        var host = new StateHost(state, hub);
        hub.Host = host;
        var log = new LocalCommandLog(host, wal, state.AppliedIndex, options, logger);
        node = new ArbiterNode(options, host, log, wal, logger);
        node.StartCrdt(loggerFactory ?? NullLoggerFactory.Instance);

        // The start's promotion also moves the transaction numbers past any grant a power loss took
        // from the log (the single node answers grants before their fsync: LocalCommandLog).
        var promote = new LeasePromote { TxnIdentifierGap = wal is null ? 0 : LocalCommandLog.UnflushedIdentifiersMax };
        await node.ProposeAsync(new Command { LeasePromote = promote }, cancellationToken).ConfigureAwait(false);
        node.MarkLeasesPromoted(log.Term);
        await node.EnsurePeerSecretAsync(cancellationToken).ConfigureAwait(false);
        node._leaseLoop = Task.Run(node.LeaseExpiryLoopAsync, CancellationToken.None);
        node.StartAutoCompaction();
        logger.LogInformation(
            "Arbiter member {Name} ({MemberId:x16}) ready at revision {Revision}, applied index {Index}, data {DataDirectory}",
            options.Name, node.MemberId, node.Revision, node.AppliedIndex, options.DataDirectory ?? "(in memory)");
        return node;
    }

    /// <summary>Starts a Raft cluster member: the log (DotNext) owns durability, snapshots and membership.</summary>
    private static async Task<ArbiterNode> StartMemberAsync(NodeOptions options, ILoggerFactory loggerFactory, ILogger logger, CancellationToken cancellationToken)
    {
        if (options.DataDirectory is null)
        {
            throw new ArgumentException("A cluster member needs a data directory.", nameof(options));
        }

        ArbiterNode? node = null;
        var hub = new WatchHub(options, () => node!.NewHeader());
        var host = new StateHost(new StateMachine(options.Limits, CreateValueSpill(options, logger)), hub);
        hub.Host = host;
        var log = await RaftCommandLog.StartAsync(host, options, loggerFactory, cancellationToken).ConfigureAwait(false);
        node = new ArbiterNode(options, host, log, wal: null, logger);
        log.LeaseRenewalGate = node.WaitLeasesPromotedAsync;
        log.ProposeMembershipFact = (command, token) => node.ProposeAsync(command, token, leaderOnly: true);
        node.StartCrdt(loggerFactory);

        // Leases are promoted by whichever member leads, once per term, before it expires any.
        node._leaseLoop = Task.Run(node.LeaseExpiryLoopAsync, CancellationToken.None);
        node._memberAddLoop = Task.Run(node.MemberAddReconcileLoopAsync, CancellationToken.None);
        node.StartAutoCompaction();
        logger.LogInformation(
            "Arbiter member {Name} ({MemberId:x16}) of cluster {ClusterId:x16} ready at revision {Revision}, applied index {Index}, data {DataDirectory}",
            options.Name, node.MemberId, node.ClusterId, node.Revision, node.AppliedIndex, options.DataDirectory);
        return node;
    }

    /// <summary>Where versions are paged out (<see cref="NodeOptions.KeepHistoryInMemory"/>): files in the data directory, or nowhere.</summary>
    private static FileValueSpill? CreateValueSpill(NodeOptions options, ILogger logger) =>
        options.DataDirectory is null || options.KeepHistoryInMemory
            ? null
            : new FileValueSpill(Path.Combine(options.DataDirectory, "member", "spill"), logger, Math.Max(0, options.RecentValuesCacheSizeBytes));

    private static StateMachine Recover(WriteAheadLog wal, NodeOptions options, ILogger logger)
    {
        var valueSpill = CreateValueSpill(options, logger);
        StateMachine state;
        if (wal.LatestSnapshot is { } snapshot)
        {
            using var stream = wal.OpenSnapshot(snapshot);
            state = StateMachine.ReadSnapshot(stream, options.Limits, valueSpill);
            logger.LogInformation("Restored snapshot at index {Index} ({SizeBytes} bytes)", snapshot.Index, snapshot.SizeBytes);
        }
        else
        {
            state = new StateMachine(options.Limits, valueSpill);
        }

        var replayed = 0;
        foreach (var record in wal.ReadFrom(state.AppliedIndex))
        {
            var command = Command.Parser.ParseFrom(record.Payload.Span);
            state.Apply(record.Index, command);
            replayed++;
        }

        if (replayed > 0)
        {
            logger.LogInformation("Replayed {Count} log records up to index {Index}", replayed, state.AppliedIndex);
        }

        return state;
    }

    /// <summary>Opens a watch stream (many watches multiplexed, as one etcd Watch RPC).</summary>
    public WatchStream OpenWatchStream() => new(_host.Watches);

    /// <summary>A response header with this member's ids, the current term and the given revision.</summary>
    public ResponseHeader NewHeader(long revision = 0) => new()
    {
        ClusterId = ClusterId,
        MemberId = MemberId,
        RaftTerm = _log.Term,
        Revision = revision,
    };

    /// <summary>Stops the node: no new requests, pending ones finish, the log is flushed and closed.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        await _stopping.CancelAsync().ConfigureAwait(false);
        foreach (var loop in new[] { _leaseLoop, _memberAddLoop, _compactionLoop })
        {
            try
            {
                await loop.ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
            }
        }

        await StopCrdtAsync().ConfigureAwait(false);
        await _log.DisposeAsync().ConfigureAwait(false);
        _host.Watches.Dispose();
        _wal?.Dispose();
        _host.Dispose();
        Metrics.Dispose();
        _stopping.Dispose();
        _logger.LogInformation("Arbiter member {Name} stopped", Options.Name);
    }

    /// <summary>Gives the command a request id and the proposer's time, proposes it and returns its result (errors thrown).</summary>
    /// <param name="command">The command.</param>
    /// <param name="cancellationToken">Cancels the wait (the command may still be applied).</param>
    /// <param name="leaderOnly">
    /// Propose only if this member leads, never forwarded (lease promotion and expiry: a deposed
    /// leader's expiry must not reach a new leader that has not yet renewed the leases in its term).
    /// </param>
    private async Task<CommandResult> ProposeAsync(Command command, CancellationToken cancellationToken, bool leaderOnly = false)
    {
        CommandResult result;
        using var span = NodeTracing.StartPropose(command);
        try
        {
            result = leaderOnly && _raft is not null
                ? (await _raft.ProposeForwardedAsync(Prepare(command), cancellationToken).ConfigureAwait(false)).Result
                : await _log.ProposeAsync(Prepare(command), cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            NodeTracing.Fail(span, e);
            Metrics.ProposalFailed();
            throw;
        }

        return ThrowIfFailed(result);
    }

    /// <summary>Proposes <paramref name="command"/> and returns its response with this member's header fields filled.</summary>
    /// <remarks>The write path of every KV request: one async frame between the service and the log.</remarks>
    private async Task<T> ProposeAsync<T>(Command command, Func<CommandResult, T> response, Func<T, ResponseHeader?> header, CancellationToken cancellationToken)
    {
        CommandResult outcome;
        using var span = NodeTracing.StartPropose(command);
        try
        {
            outcome = await _log.ProposeAsync(Prepare(command), cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            // Not applied, or not known to be (etcd's proposals_failed_total: timeouts, lost leaders, stops).
            NodeTracing.Fail(span, e);
            Metrics.ProposalFailed();
            throw;
        }

        var result = response(ThrowIfFailed(outcome));
        FillHeader(header(result));
        return result;
    }

    /// <summary>Checks the command can be proposed and stamps it with a request id and the proposer's time.</summary>
    private Command Prepare(Command command)
    {
        if (Volatile.Read(ref _disposed) != 0)
        {
            throw new EtcdException(EtcdError.Stopped);
        }

        // Request ids let a Raft proposal retried through a new leader apply once. A single node
        // never proposes a command twice, and an id makes the core keep a copy of every result
        // for the last RequestIdsRememberedMax commands: garbage that lives just long enough to
        // be promoted by the GC.
        if (_raft is not null)
        {
            command.RequestId = _requestIdPrefix | (ulong)Interlocked.Increment(ref _requestIdCounter);
        }

        command.TimeMs = Options.Clock.NowMs;
        StampIdentity(command);

        // etcd measures the marshalled request against --max-request-bytes.
        if (command.CalculateSize() > Options.Limits.RequestSizeBytesMax)
        {
            throw new EtcdException(EtcdError.RequestTooLarge);
        }

        return command;
    }

    private static CommandResult ThrowIfFailed(CommandResult result) =>
        result.ResultCase == CommandResult.ResultOneofCase.Error
            ? throw new EtcdException(Core.Transactions.TransactionErrors.FromCommandError(result.Error))
            : result;

    private void FillHeader(ResponseHeader? header)
    {
        if (header is null)
        {
            return;
        }

        header.ClusterId = ClusterId;
        header.MemberId = MemberId;
        header.RaftTerm = _log.Term;
    }

    internal static (ulong ClusterId, ulong MemberId) ComputeIds(NodeOptions options)
    {
        if (options.Cluster is not null)
        {
            // Every member computes every other member's id from its peer URL alone.
            return (0, PeerAddress.MemberId(PeerAddress.Parse(options.AdvertisePeerUrls[0]), options.ClusterToken));
        }

        // Like etcd: member id from the peer URLs and cluster token (plus name, as names are unique
        // here); cluster id from the member ids. Stable across restarts of the same configuration.
        var memberSeed = string.Join(",", options.AdvertisePeerUrls.Order(StringComparer.Ordinal)) + "|" + options.ClusterToken + "|" + options.Name;
        var memberId = BitConverter.ToUInt64(SHA256.HashData(Encoding.UTF8.GetBytes(memberSeed)), 0);
        var clusterSeed = memberId.ToString("x16", System.Globalization.CultureInfo.InvariantCulture) + "|" + options.ClusterToken;
        var clusterId = BitConverter.ToUInt64(SHA256.HashData(Encoding.UTF8.GetBytes(clusterSeed)), 0);
        return (clusterId, memberId);
    }
}
