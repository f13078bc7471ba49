using System.Collections.Concurrent;
using System.Net;
using System.Threading.Channels;
using Arbiter.Core;
using Arbiter.Node.Security;
using Arbiter.Protocol.Internal;
using DotNext.Net.Cluster.Consensus.Raft;
using DotNext.Net.Cluster.Consensus.Raft.Membership;
using DotNext.Net.Cluster.Consensus.Raft.StateMachine;
using Google.Protobuf;
using Grpc.Core;
using Microsoft.Extensions.Logging;
using RaftWal = DotNext.Net.Cluster.Consensus.Raft.StateMachine.WriteAheadLog;

namespace Arbiter.Node.Cluster;

/// <summary>
/// The cluster log: commands replicate through DotNext's Raft (TCP transport, its write-ahead
/// log with checksums) and are applied by <see cref="RaftStateMachine"/> on every member. On the
/// leader, waiting proposals are batched into one entry; followers forward proposals and
/// linearizable reads to the leader over the client port (<c>arbiter.internal.v1.Peer</c>).
/// </summary>
internal sealed partial class RaftCommandLog : Log.ICommandLog
{
    internal const string MetadataName = "name";
    internal const string MetadataClientUrls = "client-urls";
    internal const string MetadataClusterId = "cluster-id";

    private readonly NodeOptions _options;
    private readonly ClusterOptions _cluster;
    private readonly ILogger _logger;
    private readonly CancellationTokenSource _stopping = new();

    /// <summary>Cancelled once this member learns it was removed from the cluster.</summary>
    private readonly CancellationTokenSource _removed = new();

    /// <summary>Stopping or removed: requests in flight end with "server stopped".</summary>
    private readonly CancellationTokenSource _halted;
    private readonly Channel<Proposal> _leaderQueue = Channel.CreateUnbounded<Proposal>(new UnboundedChannelOptions { SingleReader = true });
    private readonly ConcurrentDictionary<ulong, Proposal> _waiting = new();
    private readonly SemaphoreSlim _replicationSlots;
    private readonly int _replicationSlotsMax;
    private RaftStateMachine _stateMachine = null!;
    private DurableAckWriteAheadLog _wal = null!;
    private SnapshotImages _images = null!;
    private RaftCluster _raft = null!;
    private FileMembershipStorage _membership = null!;
    private Task _batchLoop = Task.CompletedTask;
    private Leadership? _leadership;
    private StateHost _host = null!;

    private RaftCommandLog(NodeOptions options, ILogger logger)
    {
        _options = options;
        _cluster = options.Cluster ?? throw new ArgumentException("Cluster options are required.", nameof(options));
        _logger = logger;
        _replicationSlotsMax = Math.Max(1, _cluster.ReplicationsInFlightMax);
        _replicationSlots = new SemaphoreSlim(_replicationSlotsMax);
        AdvertisedPeer = PeerAddress.Parse(options.AdvertisePeerUrls[0]);
        _halted = CancellationTokenSource.CreateLinkedTokenSource(_stopping.Token, _removed.Token);
    }

    /// <summary>The endpoint other members know this member by (its advertised peer URL).</summary>
    public EndPoint AdvertisedPeer { get; }

    /// <summary>This member's id.</summary>
    public ulong MemberId => PeerAddress.MemberId(AdvertisedPeer, _options.ClusterToken);

    /// <summary>The cluster id (from the founding members; persisted so joiners keep the one they were given).</summary>
    public ulong ClusterId { get; private set; }

    public long AppliedIndex => _stateMachine.RaftAppliedIndex;

    public long CommittedIndex => _wal.LastCommittedEntryIndex;

    public bool HasLeader => !_stateMachine.Failed && _raft.Leader is not null;

    public bool IsLeader => !_stateMachine.Failed && !_raft.LeadershipToken.IsCancellationRequested;

    public ulong LeaderId => _raft.Leader is { } leader ? PeerAddress.MemberId(leader.EndPoint, _options.ClusterToken) : 0;

    public ulong Term => (ulong)Math.Max(0, _raft.Term);

    /// <summary>Cancelled once this member learns that the cluster configuration no longer includes it.</summary>
    public CancellationToken Removed => _removed.Token;

    /// <summary>
    /// Opens the member's Raft state under <c>data-dir/member</c>: restores the latest snapshot,
    /// opens the log (which replays committed entries after it) and starts the Raft node.
    /// </summary>
    public static async Task<RaftCommandLog> StartAsync(StateHost host, NodeOptions options, ILoggerFactory loggerFactory, CancellationToken cancellationToken)
    {
        var dataDirectory = options.DataDirectory ?? throw new ArgumentException("A cluster member needs a data directory.", nameof(options));
        var log = new RaftCommandLog(options, loggerFactory.CreateLogger("Arbiter.Raft"));
        try
        {
            await log.OpenAsync(host, dataDirectory, loggerFactory, cancellationToken).ConfigureAwait(false);
            return log;
        }
        catch
        {
            await log.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    private async Task OpenAsync(StateHost host, string dataDirectory, ILoggerFactory loggerFactory, CancellationToken cancellationToken)
    {
        _host = host;
        var memberDirectory = Path.Combine(dataDirectory, "member");
        Directory.CreateDirectory(memberDirectory);
        ClusterId = LoadOrCreateClusterId(memberDirectory);

        // Restore the snapshot before the log opens, or DotNext replays the whole log into an empty state.
        var snapshotDirectory = new DirectoryInfo(Path.Combine(memberDirectory, "snap"));
        _images = new SnapshotImages(Path.Combine(memberDirectory, "snap-images"));
        DropTicketsWithoutImage(snapshotDirectory);
        _stateMachine = new RaftStateMachine(
            snapshotDirectory, _images, host, _options.Limits,
            _options.SnapshotEveryEntries, _options.SnapshotEveryLogBytes, OnApplied, _logger);
        await _stateMachine.RestoreAsync(cancellationToken).ConfigureAwait(false);
        _stateMachine.FetchImage = FetchSnapshotImageAsync;
        _stateMachine.OwnClientUrls = string.Join(",", _options.AdvertiseClientUrls);
        var walDirectory = Path.Combine(memberDirectory, "raft");
        _wal = new DurableAckWriteAheadLog(
            new RaftWal.Options
            {
                Location = walDirectory,
                HashAlgorithm = RaftWal.IntegrityHashAlgorithm.Crc32,
                ChunkSize = LoadOrChooseWalChunkSize(memberDirectory, walDirectory),
                MemoryManagement = _cluster.RaftLogPages == RaftLogPages.Mapped
                    ? RaftWal.MemoryManagementStrategy.SharedMemory
                    : RaftWal.MemoryManagementStrategy.PrivateMemory,
            },
            _stateMachine);

        _membership = new FileMembershipStorage(Path.Combine(memberDirectory, "members"));
        await WriteInitialMembershipAsync(memberDirectory, cancellationToken).ConfigureAwait(false);
        var (electionLowerMs, electionUpperMs) = await ElectionTimeoutSlotAsync(cancellationToken).ConfigureAwait(false);

        var configuration = new RaftCluster.TcpConfiguration(PeerAddress.Parse(_cluster.ListenPeerUrl))
        {
            PublicEndPoint = AdvertisedPeer,
            LowerElectionTimeout = electionLowerMs,
            UpperElectionTimeout = electionUpperMs,
            // DotNext's heartbeat period is the lower election timeout times this: the member's slot, not the range.
            HeartbeatThreshold = Math.Clamp((double)_cluster.HeartbeatIntervalMs / electionLowerMs, 0.05, 0.9),
            // The transport's timeout is also how long this member may take to process a request
            // it receives (a follower's append, flush included): the leader's longer one, or a
            // disk stall of a few hundred ms made followers drop appends and the leader step down.
            // Requests this member sends get the configured one until it leads (the watch in
            // RaftCommandLog.SilentLeader.cs): not the election timeout, DotNext's default, because
            // a candidate waits for every member's answer, so an unreachable member would hold
            // each (pre-)vote for that long and the candidacy would often time out before it
            // counted its votes (issue #12).
            RequestTimeout = TimeSpan.FromMilliseconds(_cluster.LeaderAppendTimeoutMs),
            ConnectTimeout = TimeSpan.FromMilliseconds(_cluster.EffectivePeerRequestTimeoutMs),
            GracefulShutdownTimeout = TimeSpan.FromMilliseconds(_cluster.EffectivePeerRequestTimeoutMs),
            ColdStart = false,
            ConfigurationStorage = _membership,
            LoggerFactory = new RepeatedWarningLoggerFactory(loggerFactory, TimeProvider.System, RepeatedWarningLoggerFactory.StartGraceMsDefault),
            SslOptions = PeerTransportSecurity.RaftSslOptions(_options.PeerTls),
        };
        configuration.Metadata[MetadataName] = _options.Name;
        configuration.Metadata[MetadataClientUrls] = string.Join(",", _options.AdvertiseClientUrls);
        configuration.Metadata[MetadataClusterId] = ClusterId.ToString("x16", System.Globalization.CultureInfo.InvariantCulture);

        _raft = new RaftCluster(configuration) { AuditTrail = _wal };
        _raft.LeaderChanged += (_, leader) =>
        {
            if (leader is { IsRemote: true })
            {
                _wal.NoteLeaderMessage();
            }

            OnLeadershipChanged(leader);
            OnLeaderChanged(leader);
            _logger.LogInformation("Leader is now {Leader} (term {Term})", leader is null ? "(none)" : PeerAddress.ToUrl(leader.EndPoint), _raft.Term);
        };
        _raft.MemberAdded += (_, e) => OnMemberAdded(e.Member);
        _raft.MemberRemoved += (_, e) => OnMemberRemoved(e.Member);
        _batchLoop = Task.Run(BatchLoopAsync, CancellationToken.None);
        await _raft.StartAsync(cancellationToken).ConfigureAwait(false);

        // After the Raft member exists: started before it, a slow start (seen at load 50) let the
        // watch read the leadership of a member not yet created, and that fault ended the process
        // with code 1 at shutdown.
        StartSnapshotCatchUpWatch();
        StartSilentLeaderWatch();
        _logger.LogInformation(
            "Raft member {Url} started: term {Term}, committed {Committed}, applied {Applied}; heartbeat {HeartbeatMs} ms, election timeout {ElectionMs} ms (this member's timer {ElectionLowerMs}–{ElectionUpperMs} ms), peer request timeout {PeerRequestTimeoutMs} ms ({LeaderAppendTimeoutMs} ms for a leader's appends and for requests received)",
            PeerAddress.ToUrl(AdvertisedPeer), _raft.Term, _wal.LastCommittedEntryIndex, AppliedIndex,
            _cluster.HeartbeatIntervalMs, _cluster.ElectionTimeoutMs, electionLowerMs, electionUpperMs, _cluster.EffectivePeerRequestTimeoutMs, _cluster.LeaderAppendTimeoutMs);
        CheckStillMember(memberDirectory);
    }

    /// <summary>
    /// A snapshot install that failed before its image arrived leaves DotNext's snapshot file (the
    /// ticket) behind; DotNext would restore the newest file at start. Nothing was installed from
    /// it (the log did not move), so it is dropped and the snapshot before it is restored.
    /// </summary>
    private void DropTicketsWithoutImage(DirectoryInfo snapshotDirectory)
    {
        if (!snapshotDirectory.Exists)
        {
            return;
        }

        foreach (var file in snapshotDirectory.EnumerateFiles("*-*"))
        {
            if (SnapshotTicket.TryRead(file) is { } ticket && !_images.Has(ticket))
            {
                _logger.LogWarning("Dropping Raft snapshot {Ticket}: its image never arrived (an install cut short)", ticket);
                file.Delete();
            }
        }
    }

    /// <summary>What a fetch that does not name the image's SHA-256 gets.</summary>
    internal static readonly EtcdError SnapshotImageRefused = new(ErrorStatusCode.PermissionDenied, "arbiter: a snapshot image is sent only to a member that names its SHA-256");

    /// <summary>
    /// The image of one of this member's snapshots, for a follower that fetches it and names its
    /// SHA-256 (from the ticket it received over the peer port); null when gone. The image is
    /// hashed before anything is sent (one extra read of it per fetch).
    /// </summary>
    /// <exception cref="EtcdException"><see cref="SnapshotImageRefused"/>: the hash named is not the image's.</exception>
    public async Task<FileStream?> OpenSnapshotImageAsync(long index, long term, ReadOnlyMemory<byte> sha256, CancellationToken cancellationToken)
    {
        if (sha256.Length != System.Security.Cryptography.SHA256.HashSizeInBytes)
        {
            throw new EtcdException(SnapshotImageRefused);
        }

        var image = _images.TryOpen(index, term);
        if (image is null)
        {
            return null;
        }

        try
        {
            var hash = await System.Security.Cryptography.SHA256.HashDataAsync(image, cancellationToken).ConfigureAwait(false);
            if (!System.Security.Cryptography.CryptographicOperations.FixedTimeEquals(hash, sha256.Span))
            {
                throw new EtcdException(SnapshotImageRefused);
            }

            image.Position = 0;
            return image;
        }
        catch
        {
            await image.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>
    /// Streams a snapshot's image into <paramref name="destination"/>: from the leader when this
    /// member knows it, else (or when the leader cannot send it) from any member that holds that
    /// image; the image is checked against the ticket's SHA-256 whoever sends it. A member receiving
    /// its first snapshot (wiped, or added) often knows no leader yet: DotNext learns it from an
    /// accepted request, and the install is refused until the image is here.
    /// </summary>
    private async Task FetchSnapshotImageAsync(SnapshotTicket ticket, Stream destination, CancellationToken cancellationToken)
    {
        var request = new FetchSnapshotImageRequest { Index = ticket.Index, Term = ticket.Term, Sha256 = ByteString.CopyFrom(ticket.Sha256) };
        var tried = new List<string>();
        await foreach (var url in SnapshotImageSourcesAsync(ticket, cancellationToken).ConfigureAwait(false))
        {
            if (tried.Contains(url, StringComparer.Ordinal))
            {
                continue;
            }

            tried.Add(url);
            var written = false;
            try
            {
                using var call = new Peer.PeerClient(ChannelTo(url)).FetchSnapshotImage(request, cancellationToken: cancellationToken);
                await foreach (var chunk in call.ResponseStream.ReadAllAsync(cancellationToken).ConfigureAwait(false))
                {
                    written = true;
                    await destination.WriteAsync(chunk.Data.Memory, cancellationToken).ConfigureAwait(false);
                }

                return;
            }
            catch (RpcException e) when (!written && !cancellationToken.IsCancellationRequested)
            {
                _logger.LogDebug("The image of Raft snapshot {Ticket} is not available from {Url}: {Reason}", ticket, url, e.Status.Detail);
            }
        }

        throw new EtcdException(tried.Count == 0 ? EtcdError.NoLeader : new EtcdError(ErrorStatusCode.Unavailable, $"no member sent the image (asked {string.Join(", ", tried)})"));
    }

    /// <summary>
    /// The leader's client URL if known now, then the ticket's writer's (the member that sent it:
    /// all a wiped member knows before DotNext gives it the configuration), then every other member's.
    /// </summary>
    private async IAsyncEnumerable<string> SnapshotImageSourcesAsync(SnapshotTicket ticket, [System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken cancellationToken)
    {
        if (_raft.Leader is { IsRemote: true } leader
            && await TryClientUrlOfAsync(leader, cancellationToken).ConfigureAwait(false) is { } leaderUrl)
        {
            yield return leaderUrl;
        }

        if (ticket.SourceClientUrls is { } source && PeerClientUrl(source) is { } sourceUrl && !_options.AdvertiseClientUrls.Contains(sourceUrl))
        {
            yield return sourceUrl;
        }

        foreach (var member in _raft.Members.Where(m => m.IsRemote).ToList())
        {
            if (await TryClientUrlOfAsync(member, cancellationToken).ConfigureAwait(false) is { } url)
            {
                yield return url;
            }
        }
    }

    /// <summary>This member's slot of the election timeout range (<see cref="ClusterOptions.ElectionTimeoutSlot"/>), by its place among the members it starts with.</summary>
    private async Task<(int LowerMs, int UpperMs)> ElectionTimeoutSlotAsync(CancellationToken cancellationToken)
    {
        IClusterConfigurationStorage<EndPoint> storage = _membership;
        var members = await storage.LoadConfigurationAsync(cancellationToken).ConfigureAwait(false);
        var ids = members.Members.Select(m => PeerAddress.MemberId(m, _options.ClusterToken)).Order().ToList();
        return _cluster.ElectionTimeoutSlot(ids.IndexOf(MemberId), ids.Count);
    }

    private async Task WriteInitialMembershipAsync(string memberDirectory, CancellationToken cancellationToken)
    {
        // Only on first start of a founding member: afterwards the membership on disk (kept
        // current by Raft) wins over --initial-cluster, as etcd does.
        var marker = Path.Combine(memberDirectory, "members");
        if (File.Exists(marker) || _cluster.JoinExisting)
        {
            return;
        }

        IClusterConfigurationStorage<EndPoint> storage = _membership;
        var configuration = await storage.LoadConfigurationAsync(cancellationToken).ConfigureAwait(false);
        foreach (var peerUrl in _cluster.InitialCluster.Values)
        {
            configuration = configuration.Add(PeerAddress.Parse(peerUrl));
        }

        await ((IClusterConfigurationStorage)storage).SaveConfigurationAsync(configuration, 0L, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Size of the files the Raft log keeps its entries in. DotNext's default is the OS page (4 KiB),
    /// and each file stays open and memory-mapped: 80 MB of log held 20,000 open files and a member
    /// failed with "Too many open files" (a follower catching up on large values; a shell's usual
    /// limit of 1024 would be reached at 4 MB). The size is fixed for the life of a log (entries are
    /// addressed by offset), so a data dir from before keeps 4 KiB, written down beside the log.
    /// </summary>
    internal const int WalChunkSizeBytes = 1 << 20;

    private const int LegacyWalChunkSizeBytes = 4096;

    private static int LoadOrChooseWalChunkSize(string memberDirectory, string walDirectory)
    {
        var file = Path.Combine(memberDirectory, "raft-chunk-size");
        if (File.Exists(file))
        {
            return int.Parse(File.ReadAllText(file).Trim(), System.Globalization.CultureInfo.InvariantCulture);
        }

        var existingLog = Directory.Exists(walDirectory) && Directory.EnumerateFileSystemEntries(walDirectory).Any();
        var chunkSizeBytes = existingLog ? LegacyWalChunkSizeBytes : WalChunkSizeBytes;
        var temporary = file + ".tmp";
        File.WriteAllText(temporary, chunkSizeBytes.ToString(System.Globalization.CultureInfo.InvariantCulture));
        File.Move(temporary, file, overwrite: true);
        return chunkSizeBytes;
    }

    private ulong LoadOrCreateClusterId(string memberDirectory)
    {
        var file = Path.Combine(memberDirectory, "cluster-id");
        if (File.Exists(file))
        {
            return ulong.Parse(File.ReadAllText(file).Trim(), System.Globalization.NumberStyles.HexNumber, System.Globalization.CultureInfo.InvariantCulture);
        }

        if (_cluster.JoinExisting)
        {
            return 0; // learned from the leader when joining
        }

        var id = PeerAddress.ClusterId(_cluster.InitialCluster.Values.Select(PeerAddress.Parse), _options.ClusterToken);
        SaveClusterId(memberDirectory, id);
        return id;
    }

    private static void SaveClusterId(string memberDirectory, ulong id)
    {
        var file = Path.Combine(memberDirectory, "cluster-id");
        var temporary = file + ".tmp";
        File.WriteAllText(temporary, id.ToString("x16", System.Globalization.CultureInfo.InvariantCulture));
        File.Move(temporary, file, overwrite: true);
    }

    public async ValueTask DisposeAsync()
    {
        if (_stopping.IsCancellationRequested)
        {
            return;
        }

        await _stopping.CancelAsync().ConfigureAwait(false);
        _leaderQueue.Writer.TryComplete();
        try
        {
            await _batchLoop.ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
        }

        await _removalCheck.ConfigureAwait(false);
        await _catchUpWatch.ConfigureAwait(false);
        await _silentLeaderWatch.ConfigureAwait(false);

        if (_raft is not null)
        {
            await _raft.StopAsync(CancellationToken.None).ConfigureAwait(false);
            _raft.Dispose();
        }

        if (_wal is not null)
        {
            await _wal.DisposeAsync().ConfigureAwait(false);
        }

        if (_stateMachine is not null)
        {
            await _stateMachine.DisposeAsync().ConfigureAwait(false);
        }

        _membership?.Dispose();
        foreach (var proposal in _waiting.Values)
        {
            proposal.Fail(new EtcdException(EtcdError.Stopped));
        }

        DisposeForwarding();
        _replicationSlots.Dispose();
        _halted.Dispose();
        _removed.Dispose();
        _stopping.Dispose();
    }

    /// <summary>A command waiting to be committed and applied on this member.</summary>
    private sealed class Proposal(Command command)
    {
        private readonly TaskCompletionSource<(CommandResult Result, long RaftIndex)> _completion = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public Command Command { get; } = command;

        public Task<(CommandResult Result, long RaftIndex)> Task => _completion.Task;

        public bool IsDone => _completion.Task.IsCompleted;

        public void Complete(CommandResult result, long raftIndex) => _completion.TrySetResult((result, raftIndex));

        public void Fail(Exception error) => _completion.TrySetException(error);
    }
}
