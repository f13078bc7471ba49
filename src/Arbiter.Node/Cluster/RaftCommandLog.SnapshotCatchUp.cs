using Arbiter.Core;
using Arbiter.Protocol.Internal;
using DotNext.Net.Cluster.Consensus.Raft;
using Google.Protobuf;
using Microsoft.Extensions.Logging;

namespace Arbiter.Node.Cluster;

/// <summary>
/// Breaks DotNext's snapshot-install loop. A follower refuses an InstallSnapshot at or below its
/// commit index, and DotNext's leader answers the refusal by lowering the follower's next index
/// and sending the same snapshot again, forever: the follower never hears an AppendEntries again,
/// and since a refused install does not reset its election timer, it soon knows no leader either.
/// Two ways in have been seen:
/// <list type="bullet">
/// <item>An install that completed on the follower but whose answer never reached the leader (the
/// request timed out: under load, or a large state). The follower sits at the snapshot it
/// installed (<c>LeaderPauseDivergenceTests</c> soak, index 40000; reproduced with a 39 MB state).</item>
/// <item>A stale refusal of an AppendEntries that lowered the leader's next index for a follower
/// below the leader's snapshot after the follower had already committed past it (CI, right after
/// every member restarted: <c>RestartTests</c> with a snapshot every 25 entries, the follower at
/// applied index 126 refusing the leader's snapshot at 125 for a minute).</item>
/// </list>
/// The follower notices it (<see cref="SnapshotCatchUpRule"/>) and asks for a snapshot above its
/// commit index, which it then accepts.
/// </summary>
internal sealed partial class RaftCommandLog
{
    private Task _catchUpWatch = Task.CompletedTask;

    /// <summary>How long a follower may sit at one applied index, behind the leader or with no leader known, before it asks for a newer snapshot.</summary>
    private TimeSpan StuckAfter => TimeSpan.FromMilliseconds(3L * _cluster.ElectionTimeoutMs);

    private void StartSnapshotCatchUpWatch() => _catchUpWatch = Task.Run(SnapshotCatchUpWatchAsync, CancellationToken.None);

    private async Task SnapshotCatchUpWatchAsync()
    {
        var rule = new SnapshotCatchUpRule(StuckAfter);
        try
        {
            while (!_stopping.IsCancellationRequested)
            {
                await Task.Delay(TimeSpan.FromMilliseconds(_cluster.ElectionTimeoutMs), _stopping.Token).ConfigureAwait(false);
                var applied = AppliedIndex;
                var leaderKnown = _raft.Leader is not null;
                var stuckFor = rule.Observe(
                    DateTime.UtcNow,
                    applied,
                    mayBeStuck: !IsLeader && !_stateMachine.IsFetchingImage,
                    atInstalledSnapshot: _stateMachine.LastInstall?.Index == applied,
                    leaderKnown);
                if (stuckFor is { } stuck)
                {
                    // Above the commit index, not the applied one: that is what the refusal compares.
                    await AskForNewerSnapshotAsync(Math.Max(applied, _wal.LastCommittedEntryIndex), stuck, leaderKnown).ConfigureAwait(false);
                }
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

    private async Task AskForNewerSnapshotAsync(long aboveIndex, TimeSpan stuckFor, bool leaderKnown)
    {
        try
        {
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(_stopping.Token);
            timeout.CancelAfter(TimeSpan.FromMilliseconds(_cluster.ElectionTimeoutMs * 5L));
            if (!leaderKnown)
            {
                // A forwarded ReadIndex would only wait an election timeout to answer "no leader".
                await AskEveryMemberForNewerSnapshotAsync(aboveIndex, stuckFor, timeout.Token).ConfigureAwait(false);
                return;
            }

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
                await AskEveryMemberForNewerSnapshotAsync(aboveIndex, stuckFor, timeout.Token).ConfigureAwait(false);
                return;
            }

            if (leaderCommit is not { } commit || commit <= aboveIndex)
            {
                return; // nothing beyond this member's commit to catch up on
            }

            var reply = await CallLeaderAsync(
                (channel, token) => new Peer.PeerClient(channel).RefreshSnapshotAsync(new RefreshSnapshotRequest { AboveIndex = aboveIndex }, cancellationToken: token).ResponseAsync,
                timeout.Token).ConfigureAwait(false);
            _logger.LogWarning(
                "Still at Raft index {Index} after {StuckMs} ms while the leader committed {LeaderCommit}: asked the leader for a snapshot above it (now {SnapshotIndex})",
                aboveIndex, (long)stuckFor.TotalMilliseconds, commit, reply?.SnapshotIndex);
        }
        catch (Exception e) when (e is Grpc.Core.RpcException or EtcdException or OperationCanceledException && !_stopping.IsCancellationRequested)
        {
            _logger.LogInformation("Asking the leader for a newer Raft snapshot failed: {Reason}", e.Message);
        }
    }

    /// <summary>
    /// Sends <c>Peer.RefreshSnapshot</c> to every other member at once (their advertised client
    /// URLs from the Raft member metadata). Members that do not lead refuse it; the leader, if
    /// there is one, takes a snapshot above <paramref name="aboveIndex"/>, which this member
    /// then accepts instead of refusing.
    /// </summary>
    private async Task AskEveryMemberForNewerSnapshotAsync(long aboveIndex, TimeSpan stuckFor, CancellationToken cancellationToken)
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
                    .RefreshSnapshotAsync(new RefreshSnapshotRequest { AboveIndex = aboveIndex }, cancellationToken: cancellationToken)
                    .ConfigureAwait(false);
                return reply.SnapshotIndex;
            }
            catch (Grpc.Core.RpcException)
            {
                return null; // not the leader, or unreachable
            }
        }).ToList();

        var answered = (await Task.WhenAll(asks).ConfigureAwait(false)).Where(index => index is not null).ToList();
        // Quiet when no leader answered: a member cut off from the others asks every few seconds.
        _logger.Log(
            answered.Count == 0 ? LogLevel.Information : LogLevel.Warning,
            "Still at Raft index {Index} after {StuckMs} ms and no leader known: asked every member for a snapshot above it ({Answer})",
            aboveIndex, (long)stuckFor.TotalMilliseconds, answered.Count == 0 ? "no leader answered" : $"the leader's is now at {answered.Max()}");
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
