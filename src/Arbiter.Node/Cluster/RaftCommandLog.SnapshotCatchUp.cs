using Arbiter.Core;
using Arbiter.Protocol.Internal;
using DotNext.Net.Cluster.Consensus.Raft;
using Google.Protobuf;
using Microsoft.Extensions.Logging;

namespace Arbiter.Node.Cluster;

/// <summary>
/// Breaks DotNext's snapshot-install loop. A follower refuses an InstallSnapshot at or below its
/// commit index, and DotNext's leader answers the refusal by sending the same snapshot again. So
/// when an install completed on the follower but its answer never reached the leader (the request
/// timed out: under load, or a large state), the leader resent that snapshot forever and the
/// follower stayed at the snapshot's index. Seen as a member stuck at a snapshot boundary
/// (<c>LeaderPauseDivergenceTests</c> soak, index 40000) and reproduced with a 39 MB state.
/// The follower notices it (applied index still at the snapshot it installed, the leader's commit
/// beyond it) and asks the leader for a newer snapshot, which it accepts.
/// </summary>
internal sealed partial class RaftCommandLog
{
    private Task _catchUpWatch = Task.CompletedTask;

    /// <summary>How long a follower may sit at the snapshot it installed, behind the leader, before it asks for a newer one.</summary>
    private TimeSpan StuckAfterInstall => TimeSpan.FromMilliseconds(3L * _cluster.ElectionTimeoutMs);

    private void StartSnapshotCatchUpWatch() => _catchUpWatch = Task.Run(SnapshotCatchUpWatchAsync, CancellationToken.None);

    private async Task SnapshotCatchUpWatchAsync()
    {
        var lastAsked = DateTime.MinValue;
        try
        {
            while (!_stopping.IsCancellationRequested)
            {
                await Task.Delay(TimeSpan.FromMilliseconds(_cluster.ElectionTimeoutMs), _stopping.Token).ConfigureAwait(false);
                if (IsLeader || _stateMachine.LastInstall is not { } install || _stateMachine.IsFetchingImage)
                {
                    continue;
                }

                var stuckFor = DateTime.UtcNow - install.AtUtc;
                if (AppliedIndex != install.Index || stuckFor < StuckAfterInstall || DateTime.UtcNow - lastAsked < StuckAfterInstall)
                {
                    continue;
                }

                lastAsked = DateTime.UtcNow;
                await AskForNewerSnapshotAsync(install.Index, stuckFor).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException) when (_stopping.IsCancellationRequested)
        {
        }
        catch (Exception e)
        {
            // A bug here must not take the member down at shutdown (DisposeAsync awaits this task).
            _logger.LogError(e, "The snapshot catch-up watch stopped");
        }
    }

    private async Task AskForNewerSnapshotAsync(long installedIndex, TimeSpan stuckFor)
    {
        try
        {
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(_stopping.Token);
            timeout.CancelAfter(TimeSpan.FromMilliseconds(_cluster.ElectionTimeoutMs * 5L));
            long? leaderCommit;
            try
            {
                leaderCommit = await TryForwardReadIndexAsync(TimeSpan.FromMilliseconds(_cluster.ElectionTimeoutMs), timeout.Token).ConfigureAwait(false);
            }
            catch (EtcdException e) when (e.Error == EtcdError.NoLeader)
            {
                // Refusing the resent install does not reset DotNext's election timer, so a stuck
                // follower soon stops believing in any leader, and asking "the leader" fails for
                // good. Every member is asked instead; only the leader acts.
                await AskEveryMemberForNewerSnapshotAsync(installedIndex, stuckFor, timeout.Token).ConfigureAwait(false);
                return;
            }

            if (leaderCommit is not { } commit || commit <= installedIndex || AppliedIndex != installedIndex)
            {
                return; // nothing beyond the snapshot to catch up on, or moving again
            }

            var reply = await CallLeaderAsync(
                (channel, token) => new Peer.PeerClient(channel).RefreshSnapshotAsync(new RefreshSnapshotRequest { AboveIndex = installedIndex }, cancellationToken: token).ResponseAsync,
                timeout.Token).ConfigureAwait(false);
            _logger.LogWarning(
                "Still at Raft snapshot {Index} after {StuckMs} ms while the leader committed {LeaderCommit}: asked the leader for a newer snapshot (now {SnapshotIndex})",
                installedIndex, (long)stuckFor.TotalMilliseconds, commit, reply?.SnapshotIndex);
        }
        catch (Exception e) when (e is Grpc.Core.RpcException or EtcdException or OperationCanceledException && !_stopping.IsCancellationRequested)
        {
            _logger.LogInformation("Asking the leader for a newer Raft snapshot failed: {Reason}", e.Message);
        }
    }

    /// <summary>
    /// Sends <c>Peer.RefreshSnapshot</c> to every other member at once (their advertised client
    /// URLs from the Raft member metadata). Members that do not lead refuse it; the leader, if
    /// there is one, takes a snapshot above <paramref name="installedIndex"/>, which this member
    /// then accepts instead of refusing.
    /// </summary>
    private async Task AskEveryMemberForNewerSnapshotAsync(long installedIndex, TimeSpan stuckFor, CancellationToken cancellationToken)
    {
        var asks = _raft.Members.Where(m => m.IsRemote).Select(async member =>
        {
            if (await TryClientUrlOfAsync(member, cancellationToken).ConfigureAwait(false) is not { } url)
            {
                return (long?)null;
            }

            try
            {
                var reply = await new Peer.PeerClient(ChannelTo(url))
                    .RefreshSnapshotAsync(new RefreshSnapshotRequest { AboveIndex = installedIndex }, cancellationToken: cancellationToken)
                    .ConfigureAwait(false);
                return reply.SnapshotIndex;
            }
            catch (Grpc.Core.RpcException)
            {
                return null; // not the leader, or unreachable
            }
        }).ToList();

        var answered = (await Task.WhenAll(asks).ConfigureAwait(false)).Where(index => index is not null).ToList();
        _logger.LogWarning(
            "Still at Raft snapshot {Index} after {StuckMs} ms and no leader known: asked every member for a newer snapshot ({Answer})",
            installedIndex, (long)stuckFor.TotalMilliseconds, answered.Count == 0 ? "no leader answered" : $"the leader's is now at {answered.Max()}");
    }

    /// <summary>
    /// The leader's side of <c>Peer.RefreshSnapshot</c>: when its newest snapshot is not above
    /// <paramref name="aboveIndex"/>, takes one at a new no-op entry.
    /// </summary>
    public async Task<RefreshSnapshotResponse> RefreshSnapshotAsync(long aboveIndex, CancellationToken cancellationToken)
    {
        if (CurrentLeadership() is not { } leadership)
        {
            throw new EtcdException(NotLeader);
        }

        if (_stateMachine.SnapshotIndex <= aboveIndex)
        {
            _stateMachine.RequestSnapshot();
            using var replicating = CancellationTokenSource.CreateLinkedTokenSource(_stopping.Token, leadership.Token, cancellationToken);
            await _raft.ReplicateAsync(new BinaryLogEntry { Content = new CommandBatch().ToByteArray(), Term = leadership.Term }, replicating.Token).ConfigureAwait(false);
            _logger.LogInformation("A follower stuck at Raft snapshot {Index} asked for a newer one: snapshot taken at {SnapshotIndex}", aboveIndex, _stateMachine.SnapshotIndex);
        }

        return new RefreshSnapshotResponse { SnapshotIndex = _stateMachine.SnapshotIndex };
    }
}
