using Arbiter.Protocol.Etcd;
using Grpc.Core;
using Microsoft.Extensions.Logging;

namespace Arbiter.Node.Cluster;

internal sealed partial class RaftCommandLog
{
    /// <summary>etcd's words for it (etcdserver: "the member has been permanently removed from the cluster").</summary>
    internal const string RemovedMessage = "the member has been permanently removed from the cluster";

    /// <summary>
    /// A file in the member directory written once this member is in the Raft configuration: a
    /// member that was in it and is no longer was removed; a joiner that never was is still waiting.
    /// </summary>
    private const string JoinedMarkerFile = "joined";

    /// <summary>How often a member without a leader asks whether it is still in the cluster.</summary>
    private const int RemovalCheckIntervalMs = 1000;

    /// <summary>No leader for this many election timeouts (at least <see cref="RemovalCheckIntervalMs"/>) before asking.</summary>
    private const int RemovalCheckElectionTimeouts = 10;

    /// <summary>From learning of the removal to stopping (etcd waits 1 s too).</summary>
    private const int RemovedStopDelayMs = 1000;

    /// <summary>Bound on each question to another member during the check.</summary>
    private const int RemovalCheckCallTimeoutMs = 2000;

    private string _memberDirectory = string.Empty;
    private int _removedOnce;
    private Task _removalCheck = Task.CompletedTask;
    private int _removalCheckStarted;

    /// <summary>At start: records that this member is in the configuration, or finds it was removed before it went down.</summary>
    private void CheckStillMember(string memberDirectory)
    {
        _memberDirectory = memberDirectory;
        if (_raft.Members.Any(m => !m.IsRemote))
        {
            MarkJoined();
        }
        else if (File.Exists(Path.Combine(memberDirectory, JoinedMarkerFile)))
        {
            // Its own log applied the configuration without it before it stopped.
            MarkRemoved(inline: true);
        }
    }

    private void OnMemberAdded(DotNext.Net.Cluster.Consensus.Raft.RaftClusterMember member)
    {
        if (!member.IsRemote && _memberDirectory.Length > 0)
        {
            MarkJoined();
        }
    }

    private void OnMemberRemoved(DotNext.Net.Cluster.Consensus.Raft.RaftClusterMember member)
    {
        // DotNext also reports the local member gone when it stops: only a removal while running counts.
        if (!member.IsRemote && !_stopping.IsCancellationRequested)
        {
            MarkRemoved(inline: false);
        }
    }

    /// <summary>Written once this member is in the configuration; also starts <see cref="RemovalCheckLoopAsync"/> (once).</summary>
    private void MarkJoined()
    {
        if (Interlocked.Exchange(ref _removalCheckStarted, 1) == 0 && !_stopping.IsCancellationRequested)
        {
            _removalCheck = Task.Run(RemovalCheckLoopAsync, CancellationToken.None);
        }

        var marker = Path.Combine(_memberDirectory, JoinedMarkerFile);
        if (!File.Exists(marker))
        {
            File.WriteAllText(marker, PeerAddress.ToUrl(AdvertisedPeer));
        }
    }

    /// <summary>
    /// A member removed while it was down never hears of it: the leader no longer sends it anything,
    /// so it waits without a leader. After a while without one, it asks the other members of its
    /// configuration (over their client URLs) and concludes it was removed only when the leader
    /// itself, of the same cluster and having applied at least as much of the log, does not list it.
    /// </summary>
    private async Task RemovalCheckLoopAsync()
    {
        var token = _halted.Token;
        var noLeaderSince = Environment.TickCount64;
        var waitMs = Math.Max(RemovalCheckIntervalMs, (long)_cluster.ElectionTimeoutMs * RemovalCheckElectionTimeouts);
        try
        {
            while (!token.IsCancellationRequested)
            {
                await Task.Delay(RemovalCheckIntervalMs, token).ConfigureAwait(false);
                if (HasLeader)
                {
                    noLeaderSince = Environment.TickCount64;
                    continue;
                }

                if (Environment.TickCount64 - noLeaderSince >= waitMs && await LeaderDoesNotListMeAsync(token).ConfigureAwait(false))
                {
                    MarkRemoved(inline: false);
                    return;
                }
            }
        }
        catch (OperationCanceledException)
        {
        }
    }

    private async Task<bool> LeaderDoesNotListMeAsync(CancellationToken cancellationToken)
    {
        foreach (var member in _raft.Members.Where(m => m.IsRemote).ToList())
        {
            try
            {
                using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
                timeout.CancelAfter(RemovalCheckCallTimeoutMs);
                var metadata = await member.GetMetadataAsync(refresh: true, timeout.Token).ConfigureAwait(false);
                if (PeerClientUrl(metadata.GetValueOrDefault(MetadataClientUrls, string.Empty)) is not { } url)
                {
                    continue;
                }

                var channel = ChannelTo(url);
                var status = await new Maintenance.MaintenanceClient(channel).StatusAsync(new StatusRequest(), cancellationToken: timeout.Token).ConfigureAwait(false);
                if (status.Leader == 0 || status.Leader != status.Header.MemberId || status.Header.ClusterId != ClusterId
                    || status.RaftAppliedIndex < (ulong)AppliedIndex)
                {
                    continue; // not the leader, another cluster, or behind this member: its list proves nothing
                }

                var list = await new Protocol.Etcd.Cluster.ClusterClient(channel).MemberListAsync(new MemberListRequest(), cancellationToken: timeout.Token).ConfigureAwait(false);
                if (list.Members.All(m => m.ID != MemberId))
                {
                    _logger.LogWarning("The leader {Url} does not list this member {MemberId:x16}", url, MemberId);
                    return true;
                }

                return false;
            }
            catch (Exception e) when (e is RpcException or IOException or System.Net.Sockets.SocketException
                or DotNext.Net.Cluster.MemberUnavailableException or ObjectDisposedException
                || (e is OperationCanceledException && !cancellationToken.IsCancellationRequested))
            {
                // Unreachable for now: ask the next one, and all of them again later.
            }
        }

        return false;
    }

    private void MarkRemoved(bool inline)
    {
        if (Interlocked.Exchange(ref _removedOnce, 1) != 0)
        {
            return;
        }

        _logger.LogWarning("{Message}", RemovedMessage);
        if (inline)
        {
            _removed.Cancel();
            return;
        }

        // Not inline: DotNext raises MemberRemoved under its own lock, and the callbacks fail
        // requests in flight and start the host's shutdown. After a pause, as etcd's stopWithDelay:
        // the answer to the MemberRemove that removed this member (perhaps on it) gets out first.
        _ = Task.Run(
            async () =>
            {
                try
                {
                    await Task.Delay(RemovedStopDelayMs, _stopping.Token).ConfigureAwait(false);
                    await _removed.CancelAsync().ConfigureAwait(false);
                }
                catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException)
                {
                    // Stopped meanwhile.
                }
            },
            CancellationToken.None);
    }
}
