using Arbiter.Core;
using Arbiter.Protocol.Consistency;
using Arbiter.Protocol.Internal;
using Grpc.Core;
using Microsoft.Extensions.Logging;

namespace Arbiter.Node;

/// <summary>
/// Read consistency levels: what a member does before it reads its own state for a read at a
/// given level. One Raft log gives one total order, so every level but linearizable reduces to
/// "has this member applied revision R?": session and causal reads take R from a token, bounded
/// staleness from the leader's revision (observed without a quorum round), at-revision reads
/// from the request. A member that is behind waits a short budget
/// (<see cref="NodeOptions.ConsistencyWaitBudgetMs"/>) and then refuses with a
/// <see cref="ConsistencyException"/> that says how far behind it is; it never forwards. On a
/// single node every write is applied before it is acknowledged, so every level is served at
/// once and only a token from the future is refused.
/// </summary>
public sealed partial class ArbiterNode
{
    private readonly Lock _observationGate = new();
    private LeaderObservation? _leaderObservation;
    private Task<LeaderObservation?>? _observing;

    /// <summary>The token of this member's current state (cluster id and applied revision).</summary>
    public ConsistencyToken CurrentToken => new(ClusterId, Revision);

    /// <summary>The token a response with <paramref name="header"/> gives its client (the header's revision, or this member's when it has none).</summary>
    public ConsistencyToken TokenFor(Protocol.Etcd.ResponseHeader? header) =>
        new(ClusterId, header is { Revision: > 0 } ? header.Revision : Revision);

    /// <summary>
    /// Opens the state image of one of this member's Raft snapshots, for a lagging follower that
    /// fetches it (<c>Peer.FetchSnapshotImage</c>); null when this member no longer has it. The
    /// caller must name the image's SHA-256 (from its snapshot ticket): otherwise it fails with
    /// PermissionDenied and nothing is sent, whether or not the image exists.
    /// </summary>
    public Task<FileStream?> OpenSnapshotImageAsync(long index, long term, ReadOnlyMemory<byte> sha256, CancellationToken cancellationToken) =>
        sha256.Length != System.Security.Cryptography.SHA256.HashSizeInBytes ? throw new EtcdException(Cluster.RaftCommandLog.SnapshotImageRefused)
        : _raft?.OpenSnapshotImageAsync(index, term, sha256, cancellationToken) ?? Task.FromResult<FileStream?>(null);

    /// <summary>The leader's side of <c>Peer.RefreshSnapshot</c> (a follower stuck at an installed snapshot asks for a newer one).</summary>
    public Task<RefreshSnapshotResponse> RefreshSnapshotHereAsync(long aboveIndex, CancellationToken cancellationToken) =>
        _raft?.RefreshSnapshotAsync(aboveIndex, cancellationToken) ?? Task.FromResult(new RefreshSnapshotResponse());

    /// <summary>The leader's side of <c>Peer.LeaderRevision</c>: this member's revision, if it leads.</summary>
    public LeaderRevisionResponse LeaderRevisionHere() =>
        _raft is null || _raft.IsLeader
            ? new LeaderRevisionResponse { Revision = _host.Revision }
            : throw new EtcdException(EtcdError.LeaderChanged);

    /// <summary>
    /// Waits until this member may answer a read at <paramref name="consistency"/> from its own
    /// state (null: etcd's behaviour, where <paramref name="serializableFlag"/> picks serializable
    /// over linearizable). Used before Range, read-only Txn and the start of a watch stream.
    /// </summary>
    /// <exception cref="ConsistencyException">The level cannot be honoured here (bad token, behind, stale).</exception>
    public ValueTask PrepareReadAsync(ReadConsistency? consistency, bool serializableFlag, CancellationToken cancellationToken)
    {
        var level = consistency?.Level ?? (serializableFlag ? ReadLevel.Serializable : ReadLevel.Linearizable);
        switch (level)
        {
            case ReadLevel.Linearizable:
                return _raft is null ? ValueTask.CompletedTask : _log.WaitLinearizableAsync(cancellationToken);
            case ReadLevel.Serializable:
                return ValueTask.CompletedTask;
            case ReadLevel.BoundedStaleness:
                return _raft is null || _raft.IsLeader ? ValueTask.CompletedTask : WaitBoundedAsync(consistency!, cancellationToken);
            default:
                if (consistency!.Token is { ClusterId: not 0 } token && token.ClusterId != ClusterId && ClusterId != 0)
                {
                    throw ConsistencyException.OtherCluster(token, ClusterId);
                }

                var required = consistency.RequiredRevision;
                return required <= _host.Revision ? ValueTask.CompletedTask : WaitAppliedRevisionAsync(consistency, required, cancellationToken);
        }
    }

    private async ValueTask WaitAppliedRevisionAsync(ReadConsistency consistency, long required, CancellationToken cancellationToken)
    {
        var budgetMs = Options.ConsistencyWaitBudgetMs;
        if (_raft is not null)
        {
            using var wait = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            wait.CancelAfter(budgetMs);
            try
            {
                await _host.WaitRevisionAsync(required, wait.Token).ConfigureAwait(false);
                return;
            }
            catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
            {
                // Not within the budget: say why below.
            }
        }

        // A single node applies every write before it is acknowledged: nothing it has not applied
        // was ever issued. A member tells its own lag from a token from the future by asking the leader.
        var applied = _host.Revision;
        var (leaderRevision, leaderError) = _raft is null ? ((long?)applied, (string?)null) : await TryLeaderRevisionAsync(Options.Cluster!.RequestTimeoutMs, cancellationToken).ConfigureAwait(false);
        if (leaderRevision is { } leader && required > leader)
        {
            if (consistency.Level == ReadLevel.AtRevision)
            {
                throw new EtcdException(EtcdError.FutureRevision);
            }

            throw ConsistencyException.Future(consistency.Token!.Value, leader);
        }

        throw ConsistencyException.Behind(applied, required, budgetMs, leaderRevision is { } l ? $"the leader is at revision {l}" : leaderError);
    }

    /// <summary>
    /// Bounded staleness on a follower: the answer must include every write the leader had applied
    /// at most <see cref="ReadConsistency.MaxStalenessMs"/> ago, except the latest
    /// <see cref="ReadConsistency.MaxLagRevisions"/>. The leader's revision is observed (one call,
    /// no quorum round, shared by concurrent reads, reused while younger than half the bound);
    /// the member waits up to the budget to catch up with it, then refuses.
    /// </summary>
    private async ValueTask WaitBoundedAsync(ReadConsistency consistency, CancellationToken cancellationToken)
    {
        var boundMs = consistency.MaxStalenessMs;
        var budgetMs = Options.ConsistencyWaitBudgetMs;
        var deadlineMs = Environment.TickCount64 + budgetMs;
        while (true)
        {
            var observation = await ObserveLeaderAsync(boundMs / 2, cancellationToken).ConfigureAwait(false);
            var applied = _host.Revision;
            if (observation is null)
            {
                throw ConsistencyException.Stale(applied, 0, "no leader answered to measure staleness against");
            }

            var ageMs = Environment.TickCount64 - observation.AtMs;
            var required = observation.Revision - consistency.MaxLagRevisions;
            if (ageMs > boundMs)
            {
                throw ConsistencyException.Stale(applied, required, $"the leader's revision was observed {ageMs} ms ago, beyond the bound of {boundMs} ms");
            }

            if (applied >= required)
            {
                return;
            }

            var remainingMs = deadlineMs - Environment.TickCount64;
            if (remainingMs > 0)
            {
                using var wait = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
                wait.CancelAfter(TimeSpan.FromMilliseconds(Math.Min(remainingMs, boundMs - ageMs)));
                try
                {
                    await _host.WaitRevisionAsync(required, wait.Token).ConfigureAwait(false);

                    // Caught up with that observation; serve if it is still within the bound, else observe again.
                    if (Environment.TickCount64 - observation.AtMs <= boundMs)
                    {
                        return;
                    }

                    continue;
                }
                catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
                {
                    if (Environment.TickCount64 < deadlineMs)
                    {
                        continue;
                    }
                }
            }

            applied = _host.Revision;
            throw ConsistencyException.Stale(
                applied,
                required,
                $"{required - applied} revision(s) behind the leader's revision {observation.Revision} (observed {Environment.TickCount64 - observation.AtMs} ms ago) less the {consistency.MaxLagRevisions} allowed, after waiting {budgetMs} ms");
        }
    }

    /// <summary>The latest observation of the leader's revision if younger than <paramref name="maxAgeMs"/>, else a new one (one call in flight at a time).</summary>
    private async Task<LeaderObservation?> ObserveLeaderAsync(int maxAgeMs, CancellationToken cancellationToken)
    {
        Task<LeaderObservation?> pending;
        lock (_observationGate)
        {
            if (_leaderObservation is { } known && Environment.TickCount64 - known.AtMs <= maxAgeMs)
            {
                return known;
            }

            // An answer later than the bound is of no use to the read that asked, so that is the timeout
            // (at least the wait budget, so that a short bound does not starve the observation).
            var timeoutMs = Math.Max(Options.ConsistencyWaitBudgetMs, maxAgeMs * 2);
            pending = _observing ??= Task.Run(() => ObserveLeaderOnceAsync(timeoutMs), CancellationToken.None);
        }

        return await pending.WaitAsync(cancellationToken).ConfigureAwait(false);
    }

    private async Task<LeaderObservation?> ObserveLeaderOnceAsync(int timeoutMs)
    {
        // The time is taken before the call: the leader's answer is at least this recent.
        var atMs = Environment.TickCount64;
        LeaderObservation? observation = null;
        try
        {
            var (revision, _) = await TryLeaderRevisionAsync(timeoutMs, _stopping.Token).ConfigureAwait(false);
            observation = revision is { } r ? new LeaderObservation(r, atMs) : null;
            return observation;
        }
        finally
        {
            lock (_observationGate)
            {
                if (observation is not null)
                {
                    _leaderObservation = observation;
                }

                _observing = null;
            }
        }
    }

    /// <summary>
    /// The leader's applied revision (this member's own when it leads), or null and why when no
    /// leader answers within <paramref name="timeoutMs"/> (transport failures and a leader that
    /// moved are retried until then).
    /// </summary>
    private async Task<(long? Revision, string? Error)> TryLeaderRevisionAsync(int timeoutMs, CancellationToken cancellationToken)
    {
        var raft = _raft;
        if (raft is null || raft.IsLeader)
        {
            return (_host.Revision, null);
        }

        using var attempt = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        attempt.CancelAfter(timeoutMs);
        var error = "no leader known";
        try
        {
            while (true)
            {
                try
                {
                    var url = await raft.LeaderClientUrlAsync(attempt.Token).ConfigureAwait(false);
                    if (url is null)
                    {
                        return (_host.Revision, null);
                    }

                    var reply = await new Peer.PeerClient(raft.ChannelTo(url))
                        .LeaderRevisionAsync(new LeaderRevisionRequest(), cancellationToken: attempt.Token).ConfigureAwait(false);
                    return (reply.Revision, null);
                }
                catch (Exception e) when (!attempt.IsCancellationRequested && e is RpcException or EtcdException)
                {
                    error = e is RpcException r ? r.Status.Detail : e.Message;
                    await Task.Delay(25, attempt.Token).ConfigureAwait(false);
                }
            }
        }
        catch (Exception e) when (!cancellationToken.IsCancellationRequested && e is RpcException or EtcdException or OperationCanceledException)
        {
            error = $"no leader answered within {timeoutMs} ms ({(e is OperationCanceledException ? error : e.Message)})";
            _logger.LogDebug("No leader revision: {Error}", error);
            return (null, error);
        }
    }

    /// <summary>The leader's revision as seen at <see cref="AtMs"/> (Environment.TickCount64, taken before asking).</summary>
    private sealed record LeaderObservation(long Revision, long AtMs);
}
