using System.Collections.Concurrent;
using Arbiter.Core;
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

    /// <summary>
    /// The leader's client URL, or null when this member leads. Waits up to
    /// <see cref="ClusterOptions.LeaderWaitTimeoutMs"/> for a leader whose metadata answers, then
    /// fails with "etcdserver: no leader".
    /// </summary>
    public async Task<string?> LeaderClientUrlAsync(CancellationToken cancellationToken)
    {
        using var wait = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        wait.CancelAfter(_cluster.LeaderWaitTimeoutMs);
        try
        {
            while (true)
            {
                var leader = _raft.Leader ?? await _raft.WaitForLeaderAsync(TimeSpan.FromMilliseconds(_cluster.LeaderWaitTimeoutMs), wait.Token).ConfigureAwait(false);
                if (!leader.IsRemote)
                {
                    return null;
                }

                if (await TryLeaderMetadataAsync(leader, wait.Token).ConfigureAwait(false) is { } metadata)
                {
                    if (ClusterId == 0 && metadata.TryGetValue(MetadataClusterId, out var clusterId))
                    {
                        AdoptClusterId(clusterId);
                    }

                    return metadata.TryGetValue(MetadataClientUrls, out var urls) && urls.Split(',', StringSplitOptions.RemoveEmptyEntries) is [var first, ..]
                        ? first
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

    private static async Task<IReadOnlyDictionary<string, string>?> TryLeaderMetadataAsync(RaftClusterMember leader, CancellationToken cancellationToken)
    {
        using var attempt = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        attempt.CancelAfter(MetadataTimeoutMs);
        try
        {
            return await leader.GetMetadataAsync(refresh: false, attempt.Token).ConfigureAwait(false);
        }
        catch (Exception e) when (!cancellationToken.IsCancellationRequested
            && e is DotNext.Net.Cluster.MemberUnavailableException or IOException or System.Net.Sockets.SocketException or OperationCanceledException or ObjectDisposedException)
        {
            return null;
        }
    }

    /// <summary>A gRPC channel to another member's client URL (kept open, one per URL).</summary>
    public GrpcChannel ChannelTo(string clientUrl) => _channels.GetOrAdd(clientUrl, static url => GrpcChannel.ForAddress(url, new GrpcChannelOptions
    {
        HttpHandler = new SocketsHttpHandler { EnableMultipleHttp2Connections = true, ConnectTimeout = TimeSpan.FromSeconds(2) },
        MaxReceiveMessageSize = null,
        MaxSendMessageSize = null,
    }));

    /// <summary>Sends the command to the leader at <paramref name="url"/>; null when the caller should retry (leader moved, transport failure).</summary>
    private async Task<(CommandResult Result, long RaftIndex)?> TryForwardAsync(string url, Command command, CancellationToken cancellationToken)
    {
        try
        {
            var reply = await new Peer.PeerClient(ChannelTo(url)).ProposeAsync(command, cancellationToken: cancellationToken).ConfigureAwait(false);
            return (reply.Result, reply.RaftIndex);
        }
        catch (RpcException e) when (IsRetryable(e, cancellationToken))
        {
            _logger.LogDebug("Forwarding to {Url} failed ({Status}); retrying", url, e.Status.Detail);
            await Task.Delay(RetryDelayMs, cancellationToken).ConfigureAwait(false);
            return null;
        }
        catch (RpcException e) when (cancellationToken.IsCancellationRequested)
        {
            throw CallCut(e, cancellationToken);
        }
    }

    private async Task<long?> TryForwardReadIndexAsync(CancellationToken cancellationToken)
    {
        var url = await LeaderClientUrlAsync(cancellationToken).ConfigureAwait(false);
        if (url is null)
        {
            return null;
        }

        try
        {
            var reply = await new Peer.PeerClient(ChannelTo(url)).ReadIndexAsync(new ReadIndexRequest(), cancellationToken: cancellationToken).ConfigureAwait(false);
            return reply.RaftIndex;
        }
        catch (RpcException e) when (IsRetryable(e, cancellationToken))
        {
            await Task.Delay(RetryDelayMs, cancellationToken).ConfigureAwait(false);
            return null;
        }
        catch (RpcException e) when (cancellationToken.IsCancellationRequested)
        {
            throw CallCut(e, cancellationToken);
        }
    }

    /// <summary>
    /// A forwarded call cut by our own deadline surfaces as RpcException(Cancelled); turned into
    /// the cancellation it is, the caller answers "request timed out" / "no leader" instead of
    /// passing "Call canceled by the client" on to its client.
    /// </summary>
    private static OperationCanceledException CallCut(RpcException e, CancellationToken cancellationToken)
        => new("The forwarded call was cut by the request deadline.", e, cancellationToken);

    /// <summary>Transport failures and "not leader" are retried (the leader may have moved); the caller's deadline bounds it.</summary>
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
