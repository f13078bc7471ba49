using System.Collections.Concurrent;
using Arbiter.Core;
using Arbiter.Node.Security;
using Arbiter.Protocol.Internal;
using DotNext.Net.Cluster.Consensus.Raft;
using Grpc.Core;
using Grpc.Net.Client;
using Microsoft.Extensions.Logging;

namespace Arbiter.Node.Cluster;

internal sealed partial class RaftCommandLog
{
    /// <summary>Pause before retrying after a leader change or an unreachable leader.</summary>
    private const int RetryDelayMs = 25;

    /// <summary>What a member that is not the leader answers to a forwarded call.</summary>
    internal static readonly EtcdError NotLeader = EtcdError.LeaderChanged;

    private readonly ConcurrentDictionary<string, GrpcChannel> _channels = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, ForwardQueue> _forwardQueues = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, AbortableConnections> _connections = new(StringComparer.Ordinal);

    /// <summary>Leader URLs that answered ProposeBatch as unimplemented (an earlier version).</summary>
    private readonly ConcurrentDictionary<string, bool> _singleProposeOnly = new(StringComparer.Ordinal);

    /// <summary>
    /// Cancelled (and replaced) whenever this member's view of the leader changes: a call forwarded
    /// to a leader that is then lost is cut at once instead of hanging on a stopped or cut-off process.
    /// </summary>
    private CancellationTokenSource _leaderEpoch = new();

    /// <summary>Set once the forwarding path to the first remote leader has been warmed up.</summary>
    private int _forwardingWarmed;

    /// <summary>A token cancelled at the next leader change (taken before reading the leader, so no change is missed).</summary>
    private CancellationToken LeaderEpoch => Volatile.Read(ref _leaderEpoch).Token;

    /// <summary>The leader the current epoch belongs to (null: none).</summary>
    private System.Net.EndPoint? _epochLeader;

    private long _leaderChangesSeen;

    /// <summary>Leaders this member has seen take over (etcd's <c>leader_changes_seen_total</c>).</summary>
    public long LeaderChangesSeen => Interlocked.Read(ref _leaderChangesSeen);

    private void OnLeaderChanged(RaftClusterMember? leader)
    {
        // DotNext may announce the same leader again: calls in flight to it go on.
        var endPoint = leader?.EndPoint;
        if (Equals(Interlocked.Exchange(ref _epochLeader, endPoint), endPoint) && endPoint is not null)
        {
            return;
        }

        if (endPoint is not null)
        {
            Interlocked.Increment(ref _leaderChangesSeen);
        }

        var previous = Interlocked.Exchange(ref _leaderEpoch, new CancellationTokenSource());

        // Not disposed: requests may still be linking to its token; it holds no timer.
        previous.Cancel();
        if (leader is { IsRemote: true } && Interlocked.Exchange(ref _forwardingWarmed, 1) == 0)
        {
            _ = Task.Run(WarmForwardingAsync);
        }
    }

    /// <summary>
    /// Fetches the leader's client URL, opens the channel to it and makes one ReadIndex call, so
    /// that a member's first forwarded request after it starts does not pay for the connection,
    /// the metadata round trip and the compilation of the forwarding path.
    /// </summary>
    private async Task WarmForwardingAsync()
    {
        try
        {
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(_halted.Token);
            timeout.CancelAfter(_cluster.RequestTimeoutMs);
            if (await LeaderClientUrlAsync(timeout.Token).ConfigureAwait(false) is { } url)
            {
                await new Peer.PeerClient(ChannelTo(url)).ReadIndexAsync(new ReadIndexRequest(), cancellationToken: timeout.Token).ConfigureAwait(false);
            }
        }
        catch (Exception e) when (e is RpcException or EtcdException or OperationCanceledException or ObjectDisposedException)
        {
            _logger.LogDebug("Warming up forwarding to the leader failed: {Message}", e.Message);
            Volatile.Write(ref _forwardingWarmed, 0);
        }
    }

    /// <summary>
    /// The leader's client URL, or null when this member leads. Waits up to
    /// <see cref="ClusterOptions.EffectiveLeaderWaitTimeoutMs"/> for a leader whose metadata answers,
    /// then fails with "etcdserver: no leader".
    /// </summary>
    public async Task<string?> LeaderClientUrlAsync(CancellationToken cancellationToken)
        => (await LeaderClientUrlAsync(TimeSpan.FromMilliseconds(_cluster.EffectiveLeaderWaitTimeoutMs), cancellationToken).ConfigureAwait(false)).Url;

    /// <summary>
    /// The leader's client URL (null when this member leads) and a token cancelled when the leader
    /// changes. Waits up to <paramref name="waitMax"/> for a leader whose metadata answers, then
    /// fails with "etcdserver: no leader".
    /// </summary>
    private async Task<(string? Url, CancellationToken Epoch)> LeaderClientUrlAsync(TimeSpan waitMax, CancellationToken cancellationToken)
    {
        using var wait = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        wait.CancelAfter(waitMax < TimeSpan.Zero ? TimeSpan.Zero : waitMax);
        try
        {
            while (true)
            {
                var epoch = LeaderEpoch;
                var leader = _raft.Leader ?? await _raft.WaitForLeaderAsync(Timeout.InfiniteTimeSpan, wait.Token).ConfigureAwait(false);
                if (!leader.IsRemote)
                {
                    if (_raft.LeadershipToken.IsCancellationRequested)
                    {
                        await WaitForWriteBarrierAsync(epoch, wait.Token).ConfigureAwait(false);
                        continue;
                    }

                    return (null, epoch);
                }

                if (await TryLeaderMetadataAsync(leader, wait.Token).ConfigureAwait(false) is { } metadata)
                {
                    if (ClusterId == 0 && metadata.TryGetValue(MetadataClusterId, out var clusterId))
                    {
                        AdoptClusterId(clusterId);
                    }

                    return metadata.TryGetValue(MetadataClientUrls, out var urls) && PeerClientUrl(urls) is { } url
                        ? (url, epoch)
                        : throw new EtcdException(EtcdError.NoLeader);
                }

                // The leader this member still believes in is gone (killed, cut off) and its metadata
                // was never fetched: wait for the election that replaces it.
                await Task.Delay(RetryDelayMs, wait.Token).ConfigureAwait(false);
            }
        }
        catch (Exception e) when (e is TimeoutException or OperationCanceledException && !cancellationToken.IsCancellationRequested)
        {
            throw new EtcdException(EtcdError.NoLeader);
        }
    }

    /// <summary>
    /// Waits while this member is the leader-elect: DotNext names it the leader as soon as it wins,
    /// but hands out a leadership token only once the first entry of its term has committed (its
    /// write barrier). Callers used to retry at once, without awaiting anything, and every request
    /// that arrived meanwhile spun on a thread-pool thread: on two cores the new leader's own
    /// replication then starved, so the barrier took 4-6 s to commit and the member answered
    /// nothing meanwhile (issue #12, LeaderLossTests). Ends when the barrier is applied, or when
    /// this member's view of the leader changes (<paramref name="epoch"/>).
    /// </summary>
    private async Task WaitForWriteBarrierAsync(CancellationToken epoch, CancellationToken cancellationToken)
    {
        using var barrier = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, epoch);
        try
        {
            await _raft.WaitForLeadershipAsync(barrier.Token).ConfigureAwait(false);
            if (_raft.LeadershipToken.IsCancellationRequested)
            {
                // Applied up to a barrier, yet no leadership: DotNext is between states (this member
                // stepping down, its leader not yet cleared). A pause keeps the caller from spinning.
                await Task.Delay(RetryDelayMs, barrier.Token).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            // The leader changed: the caller looks again.
        }
    }

    private static async Task<IReadOnlyDictionary<string, string>?> TryLeaderMetadataAsync(RaftClusterMember leader, CancellationToken cancellationToken)
    {
        using var attempt = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        attempt.CancelAfter(MetadataTimeoutMs);
        try
        {
            return await leader.GetMetadataAsync(refresh: false, attempt.Token).ConfigureAwait(false);
        }
        catch (Exception e) when (e is DotNext.Net.Cluster.MemberUnavailableException or IOException or System.Net.Sockets.SocketException or OperationCanceledException or ObjectDisposedException)
        {
            // Cut by the caller's wait (DotNext reports that as the member being unavailable):
            // the caller's cancellation, so it answers "no leader" rather than an unknown error.
            return cancellationToken.IsCancellationRequested
                ? throw new OperationCanceledException("Waiting for the leader's metadata was cut.", e, cancellationToken)
                : null;
        }
    }

    /// <summary>
    /// A gRPC channel to another member's client URL (kept open, one per URL). An https URL is
    /// dialled with this member's peer certificate (or, without peer TLS, its client-port one) and
    /// the other member's certificate must chain to a CA of <c>--peer-trusted-ca-file</c> or
    /// <c>--trusted-ca-file</c>. Calls to the internal services carry this member's peer credential
    /// (<see cref="PeerCredentialHandler"/>).
    /// </summary>
    public GrpcChannel ChannelTo(string clientUrl) => _channels.GetOrAdd(clientUrl, url =>
    {
        var handler = PeerTransportSecurity.ForwardingHandler(url, _options.PeerTls, _options.ClientTls);
        handler.ConnectCallback = _connections.GetOrAdd(url, _ => new AbortableConnections()).ConnectAsync;
        return GrpcChannel.ForAddress(url, new GrpcChannelOptions
        {
            HttpHandler = new PeerCredentialHandler(() => _host.PeerCredential, handler),
            MaxReceiveMessageSize = null,
            MaxSendMessageSize = null,
        });
    });

    /// <summary>
    /// Makes a call that changes state on the leader at <paramref name="clientUrl"/> (a membership
    /// change); if it ends without the leader's answer (cut, broken, past its deadline), the
    /// connections to that leader are reset as for a forwarded write, so that it is not delivered later.
    /// </summary>
    public async Task<T> CallLeaderToChangeAsync<T>(string clientUrl, Func<GrpcChannel, Task<T>> call)
    {
        ArgumentNullException.ThrowIfNull(call);
        try
        {
            return await call(ChannelTo(clientUrl)).ConfigureAwait(false);
        }
        catch (Exception e) when (e is OperationCanceledException || (e is RpcException rpc && !ForwardQueue.AnsweredByLeader(rpc)))
        {
            AbortConnectionsTo(clientUrl);
            throw;
        }
    }

    /// <summary>
    /// Resets the connections to <paramref name="clientUrl"/> after a forwarded write was given up
    /// on (<see cref="AbortableConnections"/>): what they still hold unsent is never delivered.
    /// Other calls on them fail as on a broken connection and are retried.
    /// </summary>
    private void AbortConnectionsTo(string clientUrl)
    {
        // Called from cancellation callbacks too (a leader change cancels inside DotNext's
        // transition): nothing may escape.
        try
        {
            if (_connections.TryGetValue(clientUrl, out var connections) && connections.AbortAll() is var aborted and > 0)
            {
                _logger.LogInformation("A write forwarded to {Url} was given up on: reset {Count} connection(s) to it, so that it is not delivered later", clientUrl, aborted);
            }
        }
        catch (Exception e)
        {
            _logger.LogWarning(e, "Resetting the connections to {Url} failed", clientUrl);
        }
    }

    /// <summary>
    /// The queue of writes forwarded to the leader at <paramref name="clientUrl"/> (one per URL):
    /// concurrent writes share <c>ProposeBatch</c> calls instead of one <c>Propose</c> call each.
    /// A call is cut when this member sees the leader change, as a single forwarded call is.
    /// </summary>
    private ForwardQueue QueueTo(string clientUrl) => _forwardQueues.GetOrAdd(clientUrl, url => new ForwardQueue(
        (request, cancellationToken) => ProposeBatchAsync(url, request, cancellationToken),
        () => LeaderEpoch,
        _options.Limits.RequestSizeBytesMax / 2,
        () => AbortConnectionsTo(url)));

    /// <summary>
    /// One <c>ProposeBatch</c> call; to a leader of an earlier version, which does not know it
    /// (a rolling upgrade), one <c>Propose</c> call per command instead.
    /// </summary>
    private async Task<ProposeBatchResponse> ProposeBatchAsync(string url, ProposeBatchRequest request, CancellationToken cancellationToken)
    {
        var peer = new Peer.PeerClient(ChannelTo(url));
        if (!_singleProposeOnly.ContainsKey(url))
        {
            try
            {
                return await peer.ProposeBatchAsync(request, cancellationToken: cancellationToken).ConfigureAwait(false);
            }
            catch (RpcException e) when (e.StatusCode == StatusCode.Unimplemented)
            {
                _singleProposeOnly[url] = true;
                _logger.LogInformation("The leader at {Url} does not batch forwarded writes (an earlier version): forwarding one at a time", url);
            }
        }

        var calls = request.Commands.Select(command => peer.ProposeAsync(command, cancellationToken: cancellationToken).ResponseAsync).ToArray();
        var response = new ProposeBatchResponse();
        foreach (var call in calls)
        {
            try
            {
                response.Outcomes.Add(new ForwardedOutcome { Result = await call.ConfigureAwait(false) });
            }
            catch (RpcException e)
            {
                response.Outcomes.Add(new ForwardedOutcome { ErrorCode = (int)e.StatusCode, ErrorMessage = e.Status.Detail });
            }
        }

        return response;
    }

    /// <summary>
    /// Which of a member's advertised client URLs (comma-separated) other members call it on: with
    /// peer TLS the first https one (those calls must be encrypted and authenticated), otherwise the
    /// first plain one, else the first. Null when there is none to use.
    /// </summary>
    internal string? PeerClientUrl(string advertisedClientUrls) => PeerTransportSecurity.PickClientUrl(advertisedClientUrls, _options.PeerTls is not null);

    /// <summary>
    /// Sends the command to the leader at <paramref name="url"/>. Null when the caller should retry:
    /// the leader moved, the transport failed, or <paramref name="epoch"/> ended (this member's view
    /// of the leader changed while the call waited). <paramref name="delivered"/> tells whether the
    /// command may have reached a leader (false only when the connection could not be made).
    /// </summary>
    private async Task<(CommandResult Result, long RaftIndex)?> TryForwardAsync(string url, Command command, Action<bool> delivered, CancellationToken epoch, CancellationToken cancellationToken)
    {
        using var attempt = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, epoch);
        try
        {
            var reply = await QueueTo(url).SendAsync(command, attempt.Token).ConfigureAwait(false);
            delivered(true);
            return (reply.Result, reply.RaftIndex);
        }
        catch (RpcException e) when (IsRetryable(e, cancellationToken))
        {
            delivered(!IsConnectFailure(e));
            _logger.LogDebug("Forwarding to {Url} failed ({Status}); retrying", url, epoch.IsCancellationRequested ? "leader changed" : e.Status.Detail);
            await DelayUnlessLeaderChangedAsync(epoch, cancellationToken).ConfigureAwait(false);
            return null;
        }
        catch (RpcException e) when (cancellationToken.IsCancellationRequested)
        {
            delivered(true);
            throw CallCut(e, cancellationToken);
        }
    }

    private async Task<long?> TryForwardReadIndexAsync(TimeSpan leaderWaitMax, CancellationToken cancellationToken)
    {
        var (url, epoch) = await LeaderClientUrlAsync(leaderWaitMax, cancellationToken).ConfigureAwait(false);
        if (url is null)
        {
            return null;
        }

        using var attempt = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, epoch);
        try
        {
            var reply = await new Peer.PeerClient(ChannelTo(url)).ReadIndexAsync(new ReadIndexRequest(), cancellationToken: attempt.Token).ConfigureAwait(false);
            return reply.RaftIndex;
        }
        catch (RpcException e) when (IsRetryable(e, cancellationToken))
        {
            await DelayUnlessLeaderChangedAsync(epoch, cancellationToken).ConfigureAwait(false);
            return null;
        }
        catch (RpcException e) when (cancellationToken.IsCancellationRequested)
        {
            throw CallCut(e, cancellationToken);
        }
    }

    /// <summary>
    /// Runs a read-only <paramref name="call"/> on the leader's client URL; null when this member
    /// leads (the caller answers itself). Transport failures and leader changes are retried within
    /// one leader wait, then "etcdserver: no leader".
    /// </summary>
    public async Task<T?> CallLeaderAsync<T>(Func<GrpcChannel, CancellationToken, Task<T>> call, CancellationToken cancellationToken)
        where T : class
    {
        ArgumentNullException.ThrowIfNull(call);
        var leaderless = new LeaderlessClock(_cluster.EffectiveLeaderWaitTimeoutMs);
        while (true)
        {
            var (url, epoch) = await LeaderClientUrlAsync(leaderless.Remaining, cancellationToken).ConfigureAwait(false);
            if (url is null)
            {
                return null;
            }

            using var attempt = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, epoch);
            try
            {
                return await call(ChannelTo(url), attempt.Token).ConfigureAwait(false);
            }
            catch (RpcException e) when (IsRetryable(e, cancellationToken))
            {
                leaderless.Start();
                if (leaderless.Expired)
                {
                    throw new EtcdException(EtcdError.NoLeader);
                }

                await DelayUnlessLeaderChangedAsync(epoch, cancellationToken).ConfigureAwait(false);
            }
        }
    }

    /// <summary>Pauses before a retry, unless the leader already changed (then the retry goes to the new one at once).</summary>
    private static async Task DelayUnlessLeaderChangedAsync(CancellationToken epoch, CancellationToken cancellationToken)
    {
        if (!epoch.IsCancellationRequested)
        {
            await Task.Delay(RetryDelayMs, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// True when the call failed before a connection to the leader existed (refused, unreachable):
    /// the command was not sent. Anything else may have reached the leader.
    /// </summary>
    private static bool IsConnectFailure(RpcException e)
    {
        if (e.StatusCode != StatusCode.Unavailable)
        {
            return false;
        }

        for (var inner = e.Status.DebugException; inner is not null; inner = inner.InnerException)
        {
            if (inner is HttpRequestException { HttpRequestError: HttpRequestError.ConnectionError }
                || inner is System.Net.Sockets.SocketException { SocketErrorCode: System.Net.Sockets.SocketError.ConnectionRefused or System.Net.Sockets.SocketError.HostUnreachable or System.Net.Sockets.SocketError.NetworkUnreachable })
            {
                return true;
            }
        }

        return e.Status.Detail.StartsWith("Error connecting to subchannel", StringComparison.Ordinal);
    }

    /// <summary>
    /// A forwarded call cut by our own deadline surfaces as RpcException(Cancelled); turned into
    /// the cancellation it is, the caller answers "request timed out" / "no leader" instead of
    /// passing "Call canceled by the client" on to its client.
    /// </summary>
    private static OperationCanceledException CallCut(RpcException e, CancellationToken cancellationToken)
        => new("The forwarded call was cut by the request deadline.", e, cancellationToken);

    /// <summary>Transport failures, "not leader" and calls cut by a leader change are retried (the leader may have moved); the caller's deadline and leader wait bound it.</summary>
    private static bool IsRetryable(RpcException e, CancellationToken cancellationToken)
    {
        if (cancellationToken.IsCancellationRequested)
        {
            return false;
        }

        return e.StatusCode is StatusCode.Unavailable or StatusCode.Internal or StatusCode.Unknown or StatusCode.Cancelled or StatusCode.DeadlineExceeded;
    }

    private void AdoptClusterId(string hex)
    {
        if (ulong.TryParse(hex, System.Globalization.NumberStyles.HexNumber, System.Globalization.CultureInfo.InvariantCulture, out var id) && id != 0)
        {
            ClusterId = id;
            SaveClusterId(Path.Combine(_options.DataDirectory!, "member"), id);
            _logger.LogInformation("Joined cluster {ClusterId:x16}", id);
        }
    }

    private void DisposeForwarding()
    {
        foreach (var channel in _channels.Values)
        {
            channel.Dispose();
        }

        _channels.Clear();
    }
}
