using Arbiter.Core;
using Arbiter.Protocol.Internal;
using DotNext.IO.Log;
using DotNext.Net.Cluster.Consensus.Raft;
using Microsoft.Extensions.Logging;

namespace Arbiter.Node.Cluster;

/// <summary>
/// MoveLeader. DotNext has no targeted leadership transfer, so the leader does what etcd's does,
/// in steps it can take with DotNext:
/// <list type="number">
/// <item>it stops appending (proposals wait in its queue, as etcd drops them while a transfer is
/// under way) and waits until the target's log is as up to date as its own; a target with a
/// shorter log is refused every vote, and with every other member kept out of elections nobody
/// could win (a 20 s outage under load, until the standby below ran out);</item>
/// <item>it asks every other member to stay out of elections (standby: they still vote), steps
/// down into standby itself, and waits for the target, the only candidate, to win;</item>
/// <item>whatever happened, it brings itself and the others back into elections. When the target
/// has not won within <see cref="LeaderMoveElectionTimeouts"/> election timeouts, the move fails
/// with "leader transfer timeout" and the cluster elects a leader as usual.</item>
/// </list>
/// </summary>
internal sealed partial class RaftCommandLog
{
    /// <summary>A move gives up after this many request timeouts in all.</summary>
    private const int MoveLeaderTimeoutRequestTimeouts = 3;

    /// <summary>How many election timeouts the target has to catch up before the leader steps down (etcd aborts a transfer after one).</summary>
    private const int LeaderMoveCatchUpElectionTimeouts = 2;

    /// <summary>How many election timeouts the target has to win once the leader stepped down, before everyone is brought back into elections.</summary>
    private const int LeaderMoveElectionTimeouts = 3;

    /// <summary>How many times a member is asked to come back into elections before it is left to come back by itself.</summary>
    private const int StandbyEndAttempts = 3;

    /// <summary>One move at a time on this member.</summary>
    private readonly SemaphoreSlim _leaderMove = new(1, 1);

    /// <summary>Serializes standby requests received from a moving leader (<see cref="StandbyAsync"/>).</summary>
    private readonly SemaphoreSlim _standbyChange = new(1, 1);

    /// <summary>Completed when appends may go on; null when nothing holds them (<see cref="BatchLoopAsync"/>).</summary>
    private TaskCompletionSource? _appendsHeld;

    /// <summary>Counts standby requests received; a standby's own time limit ends only that standby, not a later one.</summary>
    private long _standbyGeneration;

    /// <summary>Moves leadership to <paramref name="targetId"/> (on the leader).</summary>
    public async Task MoveLeaderAsync(ulong targetId, CancellationToken cancellationToken)
    {
        var target = _raft.Members.FirstOrDefault(m => PeerAddress.MemberId(m.EndPoint, _options.ClusterToken) == targetId)
            ?? throw new EtcdException(EtcdError.BadLeaderTransferee);
        if (!target.IsRemote)
        {
            return; // already the leader (only the leader runs this)
        }

        // The move's whole time limit; the other members' standby lasts as long, so that a leader
        // that dies mid-move leaves nobody out of elections for longer than the move could take.
        var standbyMs = (long)_cluster.RequestTimeoutMs * MoveLeaderTimeoutRequestTimeouts;
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, _stopping.Token);
        deadline.CancelAfter(TimeSpan.FromMilliseconds(standbyMs));
        var others = _raft.Members.Where(m => m.IsRemote && !ReferenceEquals(m, target)).ToList();
        var othersAsked = false;
        var steppedDown = false;
        var phase = "the target's log to catch up";
        try
        {
            await _leaderMove.WaitAsync(deadline.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            throw new EtcdException(EtcdError.LeaderTransferTimeout);
        }

        var held = HoldAppends();
        try
        {
            if (!IsLeader)
            {
                throw new EtcdException(EtcdError.NotLeader);
            }

            using (var catchUp = CancellationTokenSource.CreateLinkedTokenSource(deadline.Token))
            {
                catchUp.CancelAfter(_cluster.ElectionTimeoutMs * LeaderMoveCatchUpElectionTimeouts);
                await WaitForLogCaughtUpAsync(target, catchUp.Token).ConfigureAwait(false);
            }

            // Every member but the target stops campaigning (they still vote), then this leader
            // steps down: the target is the only candidate, and its log is as up to date as any.
            phase = "the target to win the election";
            othersAsked = true;
            foreach (var other in others)
            {
                await TrySetStandbyAsync(other, standbyMs, deadline.Token).ConfigureAwait(false);
            }

            await _raft.EnableStandbyModeAsync(deadline.Token).ConfigureAwait(false);
            steppedDown = true;
            using var election = CancellationTokenSource.CreateLinkedTokenSource(deadline.Token);
            election.CancelAfter(_cluster.ElectionTimeoutMs * LeaderMoveElectionTimeouts);
            while (_raft.Leader is not { } leader || PeerAddress.MemberId(leader.EndPoint, _options.ClusterToken) != targetId)
            {
                await Task.Delay(RetryDelayMs, election.Token).ConfigureAwait(false);
            }

            _logger.LogInformation("Leadership moved to {Leader} (term {Term})", PeerAddress.ToUrl(target.EndPoint), _raft.Term);
        }
        catch (Exception e) when (e is OperationCanceledException or TimeoutException && !cancellationToken.IsCancellationRequested)
        {
            _logger.LogWarning("Leadership did not reach {TargetId:x16} in time: waited for {Phase}; every member takes part in elections again", targetId, phase);
            throw new EtcdException(EtcdError.LeaderTransferTimeout);
        }
        finally
        {
            ReleaseAppends(held);
            if (steppedDown)
            {
                await _raft.RevertToNormalModeAsync(CancellationToken.None).ConfigureAwait(false);
            }

            if (othersAsked)
            {
                foreach (var other in others)
                {
                    await EndStandbyAsync(other, standbyMs).ConfigureAwait(false);
                }
            }

            _leaderMove.Release();
        }
    }

    /// <summary>
    /// Stops this leader appending new entries (<see cref="BatchLoopAsync"/> waits on the returned
    /// source); proposals wait in the queue and, once the move is over, go to whoever leads then.
    /// </summary>
    private TaskCompletionSource HoldAppends()
    {
        var held = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);

        // A full fence: the batch loop takes a replication slot and then reads this; the move writes
        // this and then counts free slots (WaitForLogCaughtUpAsync).
        Interlocked.Exchange(ref _appendsHeld, held);
        return held;
    }

    private void ReleaseAppends(TaskCompletionSource held)
    {
        Interlocked.CompareExchange(ref _appendsHeld, null, held);
        held.TrySetResult();
    }

    /// <summary>
    /// Returns once no batch is being appended here and <paramref name="target"/>'s log is at
    /// least as up to date as this member's (Raft's voting rule: last term, then last index).
    /// Appends are held (<see cref="HoldAppends"/>), so this member's log no longer grows.
    /// </summary>
    private async Task WaitForLogCaughtUpAsync(RaftClusterMember target, CancellationToken cancellationToken)
    {
        var client = await TryClientUrlOfAsync(target, cancellationToken).ConfigureAwait(false) is { } url
            ? new Peer.PeerClient(ChannelTo(url))
            : throw new OperationCanceledException("the target's client URL is not known");
        while (true)
        {
            // A slot in use is a batch that may still be appended (it started before the hold).
            if (_replicationSlots.CurrentCount == _replicationSlotsMax)
            {
                var own = await LogPositionAsync(cancellationToken).ConfigureAwait(false);
                try
                {
                    var theirs = await client.LogPositionAsync(new LogPositionRequest(), cancellationToken: cancellationToken).ConfigureAwait(false);
                    if (theirs.LastTerm > own.LastTerm || (theirs.LastTerm == own.LastTerm && theirs.LastIndex >= own.LastIndex))
                    {
                        return;
                    }
                }
                catch (Grpc.Core.RpcException e)
                {
                    // gRPC reports its own cancellation as a status: the time is up.
                    cancellationToken.ThrowIfCancellationRequested();
                    _logger.LogDebug("Asking {Member} for its log position failed: {Message}", PeerAddress.ToUrl(target.EndPoint), e.Status.Detail);
                }
            }

            await Task.Delay(RetryDelayMs, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>The end of this member's Raft log: its last entry's index and term (the snapshot's, when the log holds nothing after it).</summary>
    public async Task<LogPositionResponse> LogPositionAsync(CancellationToken cancellationToken)
    {
        var lastIndex = _wal.LastEntryIndex;
        var lastTerm = lastIndex == 0 ? 0 : await ((IAuditTrail<IRaftLogEntry>)_wal).ReadAsync(LastTermReader.Instance, lastIndex, lastIndex, cancellationToken).ConfigureAwait(false);
        return new LogPositionResponse { LastIndex = lastIndex, LastTerm = lastTerm };
    }

    /// <summary>Asks another member (over its client URL) to stay out of elections for a while, or to end that (0); false when it could not be reached.</summary>
    private async Task<bool> TrySetStandbyAsync(RaftClusterMember member, long durationMs, CancellationToken cancellationToken)
    {
        try
        {
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            timeout.CancelAfter(_cluster.ElectionTimeoutMs);
            if (await TryClientUrlOfAsync(member, timeout.Token).ConfigureAwait(false) is not { } url)
            {
                return false;
            }

            await new Peer.PeerClient(ChannelTo(url))
                .StandbyAsync(new StandbyRequest { DurationMs = durationMs }, cancellationToken: timeout.Token)
                .ConfigureAwait(false);
            return true;
        }
        catch (Exception e) when (e is Grpc.Core.RpcException or OperationCanceledException)
        {
            // A member that cannot be reached cannot campaign against the target either.
            _logger.LogDebug("Standby request ({DurationMs} ms) to {Member} failed: {Message}", durationMs, PeerAddress.ToUrl(member.EndPoint), e.Message);
            return false;
        }
    }

    /// <summary>Brings <paramref name="member"/> back into elections, trying a few times; left alone, it comes back after <paramref name="standbyMs"/>.</summary>
    private async Task EndStandbyAsync(RaftClusterMember member, long standbyMs)
    {
        for (var attempt = 1; attempt <= StandbyEndAttempts; attempt++)
        {
            if (await TrySetStandbyAsync(member, 0, _stopping.Token).ConfigureAwait(false))
            {
                return;
            }
        }

        _logger.LogWarning(
            "{Member} did not answer a request to take part in elections again; it does by itself within {StandbyMs} ms",
            PeerAddress.ToUrl(member.EndPoint), standbyMs);
    }

    /// <summary>
    /// The receiving side of <see cref="TrySetStandbyAsync"/>: out of elections for
    /// <paramref name="durationMs"/> (undone by itself afterwards, in case the mover dies), or back
    /// now (0). Requests are handled one at a time, so that an "end" is never overtaken by the
    /// "start" before it; a standby's time limit ends only that standby, not one asked for later.
    /// </summary>
    public async Task StandbyAsync(long durationMs, CancellationToken cancellationToken)
    {
        await _standbyChange.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            var generation = ++_standbyGeneration;
            if (durationMs <= 0)
            {
                await _raft.RevertToNormalModeAsync(cancellationToken).ConfigureAwait(false);
                return;
            }

            await _raft.EnableStandbyModeAsync(cancellationToken).ConfigureAwait(false);
            _ = Task.Run(() => EndStandbyAfterAsync(generation, durationMs), CancellationToken.None);
        }
        finally
        {
            _standbyChange.Release();
        }
    }

    private async Task EndStandbyAfterAsync(long generation, long durationMs)
    {
        try
        {
            await Task.Delay(TimeSpan.FromMilliseconds(durationMs), _stopping.Token).ConfigureAwait(false);
            await _standbyChange.WaitAsync(_stopping.Token).ConfigureAwait(false);
            try
            {
                if (_standbyGeneration == generation)
                {
                    await _raft.RevertToNormalModeAsync(_stopping.Token).ConfigureAwait(false);
                }
            }
            finally
            {
                _standbyChange.Release();
            }
        }
        catch (OperationCanceledException)
        {
        }
    }

    /// <summary>Reads the term of one log entry (metadata only).</summary>
    private sealed class LastTermReader : ILogEntryConsumer<IRaftLogEntry, long>
    {
        public static readonly LastTermReader Instance = new();

        public bool LogEntryMetadataOnly => true;

        public ValueTask<long> ReadAsync<TEntryImpl, TList>(TList entries, long? snapshotIndex, CancellationToken token)
            where TEntryImpl : notnull, IRaftLogEntry
            where TList : notnull, IReadOnlyList<TEntryImpl>
            => ValueTask.FromResult(entries[entries.Count - 1].Term);
    }
}
