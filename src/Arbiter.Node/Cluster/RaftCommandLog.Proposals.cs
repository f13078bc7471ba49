using Arbiter.Core;
using Arbiter.Node.Metrics;
using Arbiter.Protocol.Internal;
using DotNext.Net.Cluster.Consensus.Raft;
using Google.Protobuf;
using Microsoft.Extensions.Logging;

namespace Arbiter.Node.Cluster;

internal sealed partial class RaftCommandLog
{
    /// <summary>Upper bound on one Raft entry's payload; the rest of the queue waits for the next entry.</summary>
    private const int BatchSizeBytesMax = 1024 * 1024;

    public async Task<CommandResult> ProposeAsync(Command command, CancellationToken cancellationToken)
    {
        var (result, _) = await ProposeCoreAsync(command, allowForwarding: true, cancellationToken).ConfigureAwait(false);
        return result;
    }

    /// <summary>
    /// A command forwarded by a follower: proposed here only if this member leads; otherwise the
    /// follower gets "not leader" (Unavailable) and tries the leader it sees next.
    /// </summary>
    public Task<(CommandResult Result, long RaftIndex)> ProposeForwardedAsync(Command command, CancellationToken cancellationToken)
        => ProposeCoreAsync(command, allowForwarding: false, cancellationToken);

    private async Task<(CommandResult Result, long RaftIndex)> ProposeCoreAsync(Command command, bool allowForwarding, CancellationToken cancellationToken)
    {
        if (command.RequestId == 0)
        {
            throw new ArgumentException("Cluster proposals need a request id (retries rely on it).", nameof(command));
        }

        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, _halted.Token);
        deadline.CancelAfter(RequestBudget());

        // Once the command was appended here as leader or may have reached a leader, it may still
        // commit (a follower may hold the entry; a request stalled in a partition may be delivered
        // late): from then on a failure means "outcome unknown", never "no leader", which tells the
        // client the command was not proposed at all.
        var handedOff = false;
        var leaderless = new LeaderlessClock(_cluster.EffectiveLeaderWaitTimeoutMs);
        try
        {
            while (true)
            {
                if (_stateMachine.Failed || _halted.IsCancellationRequested)
                {
                    throw new EtcdException(EtcdError.Stopped);
                }

                if (IsLeader)
                {
                    handedOff = true;
                    var applied = await TryProposeOnLeaderAsync(command, deadline.Token).ConfigureAwait(false);
                    if (applied is { } done)
                    {
                        return done;
                    }

                    leaderless.Start(); // leadership lost before the command was applied
                    continue;
                }

                if (!allowForwarding)
                {
                    throw new EtcdException(NotLeader);
                }

                if (!HasLeader)
                {
                    leaderless.Start();
                }

                var (url, epoch) = await LeaderClientUrlAsync(leaderless.Remaining, deadline.Token).ConfigureAwait(false);
                if (url is null)
                {
                    continue; // this member became the leader meanwhile
                }

                var forwarded = await TryForwardAsync(url, command, reached => handedOff |= reached, epoch, deadline.Token).ConfigureAwait(false);
                if (forwarded is { } answer)
                {
                    // Wait until this member has applied it too, so the client's next serializable
                    // read or watch here sees its own write.
                    await WaitAppliedAsync(answer.RaftIndex, deadline.Token).ConfigureAwait(false);
                    return answer;
                }

                // The leader this member forwarded to was lost while the command may have reached
                // it: answer at once (outcome unknown), as etcd does, so that the client decides
                // instead of waiting for the next leader past its own deadline.
                if (handedOff && epoch.IsCancellationRequested)
                {
                    throw new EtcdException(EtcdError.TimeoutDueToLeaderFail);
                }

                leaderless.Start();
                if (leaderless.Expired)
                {
                    throw new EtcdException(EtcdError.NoLeader);
                }
            }
        }
        catch (EtcdException e) when (e.Error == EtcdError.NoLeader && handedOff)
        {
            throw new EtcdException(EtcdError.TimeoutDueToLeaderFail);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            throw new EtcdException(_halted.IsCancellationRequested ? EtcdError.Stopped : handedOff ? EtcdError.Timeout : HasLeader ? EtcdError.Timeout : EtcdError.NoLeader);
        }
    }

    /// <summary>
    /// How long a proposal or a linearizable read may wait for its answer: the request timeout, or
    /// less when the client's deadline comes first (<see cref="CallDeadline"/>). When it ends, the
    /// caller gets etcd's error for what happened meanwhile rather than the client's own deadline.
    /// </summary>
    private TimeSpan RequestBudget() => CallDeadline.Budget(TimeSpan.FromMilliseconds(_cluster.RequestTimeoutMs), DateTime.UtcNow);

    /// <summary>
    /// How long a request has gone without a reachable leader: started at the first sign of
    /// trouble (no leader known, a failed forward, leadership lost), never reset, so that the waits
    /// of one request for a leader add up to at most one leader wait.
    /// </summary>
    private struct LeaderlessClock(int waitMaxMs)
    {
        private long _startedAt;

        public void Start()
        {
            if (_startedAt == 0)
            {
                _startedAt = Environment.TickCount64;
            }
        }

        /// <summary>What is left of the leader wait (all of it before the clock started).</summary>
        public readonly TimeSpan Remaining => TimeSpan.FromMilliseconds(
            _startedAt == 0 ? waitMaxMs : Math.Max(0, waitMaxMs - (Environment.TickCount64 - _startedAt)));

        public readonly bool Expired => _startedAt != 0 && Environment.TickCount64 - _startedAt >= waitMaxMs;
    }

    /// <summary>
    /// Awaited on the leader before a lease keep-alive is stamped with the leader's time: returns
    /// once this leader has renewed every lease for its term. A keep-alive applied before that
    /// renewal is measured against the deadline the previous leader set, so after an election
    /// longer than the lease's TTL it answered "lease not found" for a lease that was never
    /// expired (LeaseFailoverTests, a 2.9 s election and a 3 s TTL).
    /// </summary>
    public Func<CancellationToken, Task>? LeaseRenewalGate { get; set; }

    /// <summary>Queues the command for the next Raft entry; null if leadership was lost before it committed (the caller retries, same request id).</summary>
    private async Task<(CommandResult Result, long RaftIndex)?> TryProposeOnLeaderAsync(Command command, CancellationToken cancellationToken)
    {
        if (command.OpCase == Command.OpOneofCase.LeaseKeepAlive && LeaseRenewalGate is { } gate)
        {
            await gate(cancellationToken).ConfigureAwait(false);
        }

        // Lease time is the leader's clock, whoever received the request.
        command.TimeMs = _options.Clock.NowMs;
        var proposal = new Proposal(command);
        var waiting = _waiting.GetOrAdd(command.RequestId, proposal);
        if (!_leaderQueue.Writer.TryWrite(proposal))
        {
            throw new EtcdException(EtcdError.Stopped);
        }

        try
        {
            // A retry of a request id already in flight here shares its outcome; proposing it
            // again is harmless as the core applies each id once.
            return await waiting.Task.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (NotLeaderException)
        {
            _waiting.TryRemove(new KeyValuePair<ulong, Proposal>(command.RequestId, waiting));
            return null;
        }
        catch (OperationCanceledException)
        {
            _waiting.TryRemove(new KeyValuePair<ulong, Proposal>(command.RequestId, waiting));
            throw;
        }
    }

    private async Task BatchLoopAsync()
    {
        var reader = _leaderQueue.Reader;
        var token = _stopping.Token;
        while (await reader.WaitToReadAsync(token).ConfigureAwait(false))
        {
            await _replicationSlots.WaitAsync(token).ConfigureAwait(false);
            if (Volatile.Read(ref _appendsHeld) is { } held)
            {
                // A leadership move waits for its target to catch up (RaftCommandLog.LeaderMove.cs):
                // nothing more is appended here until it ends; the queue is proposed afterwards,
                // by whoever leads then.
                _replicationSlots.Release();
                await held.Task.WaitAsync(token).ConfigureAwait(false);
                continue;
            }

            var batch = new List<Proposal>();
            var sizeBytes = 0;
            while (batch.Count < _options.BatchCommandsMax && sizeBytes < BatchSizeBytesMax && reader.TryRead(out var proposal))
            {
                batch.Add(proposal);
                sizeBytes += proposal.Command.CalculateSize();
            }

            if (batch.Count == 0)
            {
                _replicationSlots.Release();
                continue;
            }

            _ = ReplicateAsync(batch);
        }
    }

    private async Task ReplicateAsync(List<Proposal> batch)
    {
        try
        {
            var entry = new CommandBatch();
            foreach (var proposal in batch)
            {
                entry.Commands.Add(proposal.Command);
            }

            // The entry carries the term of the leadership it is proposed under, never _raft.Term:
            // that is the log's current term, which DotNext raises (and flushes) before it steps the
            // leader down, and meanwhile its ReplicateAsync still appends. An old leader resumed
            // after a pause then wrote its own batch with the new leader's term at the index of the
            // new leader's no-op: same index and term, different content, so the entry was never
            // overwritten and the members diverged (docs/operations.md, "Log matching").
            var leadership = CurrentLeadership();
            if (leadership is null)
            {
                if (Volatile.Read(ref _leadership) is { } ending && !ending.Token.IsCancellationRequested)
                {
                    // The window the leader-pause divergence came through: DotNext still has this
                    // member's leader state, but the log's term has moved on.
                    _logger.LogInformation(
                        "Leadership of term {Term} is ending (the log is at term {LogTerm}): a batch of {Count} command(s) was not proposed; its requests retry as not leader",
                        ending.Term, _raft.Term, batch.Count);
                }

                throw new NotLeaderException();
            }

            using var replicating = CancellationTokenSource.CreateLinkedTokenSource(_stopping.Token, leadership.Token);

            // Returns once a quorum has the entry (the leader flushed it) and it is applied here;
            // the apply completed every proposal of the batch (OnApplied).
            await _raft.ReplicateAsync(new BinaryLogEntry { Content = entry.ToByteArray(), Term = leadership.Term }, replicating.Token).ConfigureAwait(false);
            PushCommitIndex(leadership.Token);
        }
        catch (OperationCanceledException e) when (!_stopping.IsCancellationRequested)
        {
            // The leadership ended (its token): the entry may still commit under the next leader.
            FailAll(batch, new NotLeaderException(e));
        }
        catch (NotLeaderException e)
        {
            // The entry may still commit under the next leader: its request ids make a retry safe.
            FailAll(batch, e);
        }
        catch (InvalidOperationException e) when (!IsLeader)
        {
            FailAll(batch, new NotLeaderException(e));
        }
        catch (OperationCanceledException)
        {
            FailAll(batch, new EtcdException(EtcdError.Stopped));
        }
        catch (Exception e)
        {
            _logger.LogError(e, "Replicating a batch of {Count} command(s) failed", batch.Count);
            FailAll(batch, new EtcdException(EtcdError.Stopped));
        }
        finally
        {
            _replicationSlots.Release();
        }
    }

    /// <summary>
    /// Starts a replication round now, so that the followers learn the new commit index at once.
    /// DotNext sends the commit index only with the next round, which without more proposals is the
    /// next heartbeat; a write forwarded by a follower is answered once that follower has applied
    /// it, so one write at a time through a follower took a heartbeat interval (p50 106 ms at
    /// 100 ms, bench/compare.sh MEMBERS=3). Requests coalesce: a round under way is followed by one
    /// more. Not while a member is being added or removed: DotNext's membership steps force their
    /// own rounds, and a change is rare enough to leave forwarded writes at heartbeat pace
    /// meanwhile. (The first version of this push, without that exception, was followed by two
    /// failures of SnapshotCatchUpTests' re-add test at load 60–87; with and without the exception
    /// it then passed 15 of 15 runs at load 12, so the cause of those two is not established.)
    /// </summary>
    private void PushCommitIndex(CancellationToken leadership)
    {
        if (leadership.IsCancellationRequested || _stopping.IsCancellationRequested || MembershipChangeUnderWay)
        {
            return;
        }

        _ = PushAsync();

        async Task PushAsync()
        {
            try
            {
                await _raft.ForceReplicationAsync(leadership).ConfigureAwait(false);
            }
            catch (Exception e) when (e is NotLeaderException or OperationCanceledException or InvalidOperationException or ObjectDisposedException)
            {
                // Leadership ended or the member stops: the next leader's rounds carry the commit index.
            }
        }
    }

    /// <summary>
    /// This member's leadership if it still holds it: the term it was elected in and the token
    /// DotNext cancels when that leadership ends. Null while a step-down is under way (the log's
    /// term already moved past the leadership's term) or when another member leads.
    /// </summary>
    private Leadership? CurrentLeadership()
    {
        var leadership = Volatile.Read(ref _leadership);
        if (leadership is null || leadership.Term != _raft.Term)
        {
            return null;
        }

        if (leadership.Token.IsCancellationRequested)
        {
            // A single-member cluster becomes leader while it starts, before DotNext installs the
            // leader state, so the token read in LeaderChanged was already cancelled. While the
            // log's term is still the leadership's, the installed leader state's token is that
            // leadership's (a new term would have changed the log's term first).
            var token = _raft.LeadershipToken;
            if (token.IsCancellationRequested || leadership.Term != _raft.Term)
            {
                return null;
            }

            var resolved = leadership with { Token = token };
            Interlocked.CompareExchange(ref _leadership, resolved, leadership);
            return resolved;
        }

        return leadership;
    }

    /// <summary>Records the leadership that starts (called from DotNext's LeaderChanged, inside its transition lock).</summary>
    private void OnLeadershipChanged(RaftClusterMember? leader)
    {
        // Raised while DotNext holds its transition lock, just after it installed the leader
        // state: no term change can run concurrently, so the log's term is that leader state's
        // term and ConsensusToken is its token (LeadershipToken stays cancelled until the
        // leader's no-op commits).
        Volatile.Write(ref _leadership, leader is { IsRemote: false } ? new Leadership(_raft.Term, _raft.ConsensusToken) : null);
    }

    /// <summary>A term in which this member leads, and the token that ends with it.</summary>
    private sealed record Leadership(long Term, CancellationToken Token);

    private static void FailAll(List<Proposal> batch, Exception error)
    {
        foreach (var proposal in batch)
        {
            proposal.Fail(error);
        }
    }

    /// <summary>Called by the state machine for every applied command, on every member.</summary>
    private void OnApplied(Command command, CommandResult result, long raftIndex)
    {
        if (command.RequestId != 0 && _waiting.TryRemove(command.RequestId, out var proposal))
        {
            proposal.Complete(result, raftIndex);
        }
    }

    private async Task WaitAppliedAsync(long raftIndex, CancellationToken cancellationToken)
    {
        if (AppliedIndex < raftIndex)
        {
            await _wal.WaitForApplyAsync(raftIndex, cancellationToken).ConfigureAwait(false);
        }
    }

    public async ValueTask WaitLinearizableAsync(CancellationToken cancellationToken)
    {
        using var span = NodeTracing.Source.StartActivity("arbiter.read_index");
        await ReadIndexCoreAsync(allowForwarding: true, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>The leader's side of a follower's ReadIndex: confirm leadership with a quorum, return the applied index.</summary>
    public Task<long> ReadIndexForwardedAsync(CancellationToken cancellationToken)
        => ReadIndexCoreAsync(allowForwarding: false, cancellationToken);

    private async Task<long> ReadIndexCoreAsync(bool allowForwarding, CancellationToken cancellationToken)
    {
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, _halted.Token);
        deadline.CancelAfter(RequestBudget());
        var leaderless = new LeaderlessClock(_cluster.EffectiveLeaderWaitTimeoutMs);
        try
        {
            while (true)
            {
                if (IsLeader)
                {
                    try
                    {
                        // A quorum round that started after this call, then apply up to the log's end
                        // as it was: the state then holds every write acknowledged before the read.
                        await _raft.ApplyReadBarrierAsync(ReadBarrierType.Strong, deadline.Token).ConfigureAwait(false);
                        return AppliedIndex;
                    }
                    catch (Exception e) when (e is NotLeaderException or QuorumUnreachableException)
                    {
                        leaderless.Start();
                        await Task.Delay(RetryDelayMs, deadline.Token).ConfigureAwait(false);
                        continue;
                    }
                }

                if (!allowForwarding)
                {
                    throw new EtcdException(NotLeader);
                }

                if (!HasLeader)
                {
                    leaderless.Start();
                }

                if (await TryForwardReadIndexAsync(leaderless.Remaining, deadline.Token).ConfigureAwait(false) is { } index)
                {
                    await WaitAppliedAsync(index, deadline.Token).ConfigureAwait(false);
                    return index;
                }

                leaderless.Start();
                if (leaderless.Expired)
                {
                    throw new EtcdException(EtcdError.NoLeader);
                }
            }
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            throw new EtcdException(_halted.IsCancellationRequested ? EtcdError.Stopped : HasLeader ? EtcdError.Timeout : EtcdError.NoLeader);
        }
    }

    /// <summary>Snapshots are taken by the state machine every <see cref="NodeOptions.SnapshotEveryEntries"/> entries; Defragment asks for one at the next entry.</summary>
    public Task SnapshotAsync(CancellationToken cancellationToken)
    {
        _stateMachine.RequestSnapshot();
        return Task.CompletedTask;
    }
}
