using Arbiter.Core;
using Arbiter.Node.Cluster;
using Arbiter.Protocol.Etcd;
using Arbiter.Protocol.Internal;
using Grpc.Net.Client;
using Microsoft.Extensions.Logging;

namespace Arbiter.Node;

public sealed partial class ArbiterNode
{
    private static readonly EtcdError SingleNode = new(
        ErrorStatusCode.FailedPrecondition,
        "arbiter: membership changes need a cluster; this member runs as a single node");

    private static readonly EtcdError NoLearners = new(
        ErrorStatusCode.InvalidArgument,
        "arbiter: learner members are not supported; add a voting member");

    private static readonly EtcdError NoPeerUrlUpdate = new(
        ErrorStatusCode.FailedPrecondition,
        "arbiter: a member's peer URLs cannot change; remove the member and add it with the new URL");

    /// <summary>How long a follower waits for the leader's member list before answering with its own.</summary>
    private const int MemberListForwardTimeoutMs = 1000;

    /// <summary>
    /// The members of the cluster (one, on a single node). A follower asks the leader, which alone
    /// knows members added but not started yet (etcd lists them on every member); when the leader
    /// does not answer quickly, the follower lists the members it knows.
    /// </summary>
    public async Task<MemberListResponse> MemberListAsync(CancellationToken cancellationToken = default)
    {
        // etcd's cluster server fills cluster id, member id and term, not the revision.
        var response = new MemberListResponse { Header = NewHeader() };
        if (_raft is null)
        {
            response.Members.Add(Self());
            return response;
        }

        if (!_raft.IsLeader && await TryLeaderMemberListAsync(_raft, cancellationToken).ConfigureAwait(false) is { } fromLeader)
        {
            response.Members.AddRange(fromLeader.Members);
            return response;
        }

        response.Members.AddRange(await _raft.ListMembersAsync(cancellationToken).ConfigureAwait(false));
        return response;
    }

    private static async Task<MemberListResponse?> TryLeaderMemberListAsync(RaftCommandLog raft, CancellationToken cancellationToken)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(MemberListForwardTimeoutMs);
        try
        {
            var url = await raft.LeaderClientUrlAsync(timeout.Token).ConfigureAwait(false);
            return url is null
                ? null
                : await new Protocol.Etcd.Cluster.ClusterClient(raft.ChannelTo(url))
                    .MemberListAsync(new MemberListRequest(), cancellationToken: timeout.Token).ResponseAsync.ConfigureAwait(false);
        }
        catch (Exception e) when (e is Grpc.Core.RpcException or OperationCanceledException or EtcdException or IOException or System.Net.Sockets.SocketException or DotNext.Net.Cluster.MemberUnavailableException
            && !cancellationToken.IsCancellationRequested)
        {
            return null;
        }
    }

    /// <summary>Adds a voting member (on the leader; a follower forwards). The new member may be started before or after.</summary>
    public async Task<MemberAddResponse> MemberAddAsync(MemberAddRequest request, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        var raft = _raft ?? throw new EtcdException(SingleNode);
        if (request.IsLearner)
        {
            throw new EtcdException(NoLearners);
        }

        if (request.PeerURLs.Count != 1)
        {
            throw new EtcdException(EtcdError.MemberBadUrls);
        }

        return await OnLeaderAsync(
            async () =>
            {
                var added = await raft.AddMemberAsync(request.PeerURLs[0], cancellationToken).ConfigureAwait(false);
                var response = new MemberAddResponse { Header = NewHeader(Revision), Member = added };
                response.Members.AddRange(await raft.ListMembersAsync(cancellationToken).ConfigureAwait(false));
                return response;
            },
            channel => new Protocol.Etcd.Cluster.ClusterClient(channel).MemberAddAsync(request, cancellationToken: cancellationToken).ResponseAsync,
            cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Removes a member (on the leader; a follower forwards).</summary>
    public async Task<MemberRemoveResponse> MemberRemoveAsync(MemberRemoveRequest request, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        var raft = _raft ?? throw new EtcdException(request.ID == MemberId ? SingleNode : EtcdError.MemberNotFound);
        return await OnLeaderAsync(
            async () =>
            {
                await raft.RemoveMemberAsync(request.ID, cancellationToken).ConfigureAwait(false);
                var response = new MemberRemoveResponse { Header = NewHeader(Revision) };
                response.Members.AddRange(await raft.ListMembersAsync(cancellationToken).ConfigureAwait(false));
                // Not awaited: the answer must not wait on a proposal (a leader that removed itself
                // has stepped down); the leader's membership loop logs a departure this one misses.
                var remaining = response.Members.Select(m => m.ID).ToList();
                _ = Task.Run(() => LogCrdtDepartureAsync(request.ID, remaining), CancellationToken.None);
                return response;
            },
            channel => new Protocol.Etcd.Cluster.ClusterClient(channel).MemberRemoveAsync(request, cancellationToken: cancellationToken).ResponseAsync,
            cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// After a MemberRemove: the removed member's CRDT replicas are departed (a fact of the log,
    /// with one pruner). Best effort: should it fail, the leader's membership loop logs it later.
    /// </summary>
    private async Task LogCrdtDepartureAsync(ulong memberId, IReadOnlyCollection<ulong> remaining)
    {
        try
        {
            if (!CrdtReplicas.Any(r => r.MemberId == memberId && !r.Departed))
            {
                return;
            }

            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(_stopping.Token);
            timeout.CancelAfter(Options.Cluster!.RequestTimeoutMs);
            await ProposeCrdtDepartureAsync(memberId, remaining, timeout.Token).ConfigureAwait(false);
        }
        catch (Exception e)
        {
            _logger.LogWarning("The CRDT departure of member {Member:x16} was not logged ({Reason}); the leader's membership loop retries", memberId, e.Message);
        }
    }

    /// <summary>Peer URL updates are refused (the peer URL is the member's identity in the Raft configuration).</summary>
    public async Task<MemberUpdateResponse> MemberUpdateAsync(MemberUpdateRequest request, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        if (_raft is null)
        {
            throw new EtcdException(request.ID == MemberId ? SingleNode : EtcdError.MemberNotFound);
        }

        var members = await _raft.ListMembersAsync(cancellationToken).ConfigureAwait(false);
        throw new EtcdException(members.Any(m => m.ID == request.ID) ? NoPeerUrlUpdate : EtcdError.MemberNotFound);
    }

    /// <summary>There are no learners to promote.</summary>
    public async Task<MemberPromoteResponse> MemberPromoteAsync(MemberPromoteRequest request, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        var members = (await MemberListAsync(cancellationToken).ConfigureAwait(false)).Members;
        throw new EtcdException(members.Any(m => m.ID == request.ID) ? EtcdError.MemberNotLearner : EtcdError.MemberNotFound);
    }

    /// <summary>
    /// Moves leadership to <see cref="MoveLeaderRequest.TargetID"/>. Must be sent to the leader, as
    /// in etcd. There is no targeted transfer in DotNext: the leader steps down until the target wins.
    /// </summary>
    public async Task<MoveLeaderResponse> MoveLeaderAsync(MoveLeaderRequest request, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        if (_raft is null)
        {
            return request.TargetID == MemberId
                ? new MoveLeaderResponse { Header = NewHeader(Revision) }
                : throw new EtcdException(EtcdError.BadLeaderTransferee);
        }

        if (!_raft.IsLeader)
        {
            throw new EtcdException(EtcdError.NotLeader);
        }

        await _raft.MoveLeaderAsync(request.TargetID, cancellationToken).ConfigureAwait(false);
        return new MoveLeaderResponse { Header = NewHeader(Revision) };
    }

    /// <summary>The leader's side of <c>Peer.Propose</c>: a follower's client write.</summary>
    public async Task<ForwardedResult> ProposeForwardedAsync(Command command, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(command);
        var raft = _raft ?? throw new EtcdException(SingleNode);
        var (result, raftIndex) = await raft.ProposeForwardedAsync(command, cancellationToken).ConfigureAwait(false);
        return new ForwardedResult { Result = result, RaftIndex = raftIndex };
    }

    /// <summary>
    /// The leader's side of <c>Peer.ProposeBatch</c>: proposes every command of a follower's batch
    /// at once (they join the leader's own batching) and answers each in order. An etcd error ends
    /// only its own command, with the status its own <c>Propose</c> call would have had; anything
    /// else fails the call, and the follower retries each command (their request ids make that safe).
    /// </summary>
    public async Task<ProposeBatchResponse> ProposeBatchForwardedAsync(ProposeBatchRequest request, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        var raft = _raft ?? throw new EtcdException(SingleNode);

        // Without peer TLS any client can call this: a batch proposes no more at once than a
        // follower ever sends in one.
        if (request.Commands.Count > ForwardQueue.CommandsPerCallMax)
        {
            throw new EtcdException(EtcdError.TooManyOps);
        }

        var proposals = new Task<(CommandResult Result, long RaftIndex)>[request.Commands.Count];
        for (var i = 0; i < proposals.Length; i++)
        {
            proposals[i] = raft.ProposeForwardedAsync(request.Commands[i], cancellationToken);
        }

        var response = new ProposeBatchResponse();
        foreach (var proposal in proposals)
        {
            try
            {
                var (result, raftIndex) = await proposal.ConfigureAwait(false);
                response.Outcomes.Add(new ForwardedOutcome { Result = new ForwardedResult { Result = result, RaftIndex = raftIndex } });
            }
            catch (EtcdException e)
            {
                response.Outcomes.Add(new ForwardedOutcome { ErrorCode = (int)e.Error.StatusCode, ErrorMessage = e.Error.Message });
            }
        }

        return response;
    }

    /// <summary>The leader's side of <c>Peer.ReadIndex</c>: confirms leadership, returns the index a linearizable read must see.</summary>
    public async Task<ReadIndexResponse> ReadIndexForwardedAsync(CancellationToken cancellationToken = default)
    {
        var raft = _raft ?? throw new EtcdException(SingleNode);
        return new ReadIndexResponse { RaftIndex = await raft.ReadIndexForwardedAsync(cancellationToken).ConfigureAwait(false) };
    }

    /// <summary>How often the leader looks for MemberAdds in the log that nobody is bringing in.</summary>
    private const int MemberAddReconcileIntervalMs = 1000;

    /// <summary>
    /// The leader resumes the adds a former leader acknowledged and did not finish (they are in the
    /// log: <c>MemberAddCommand</c>). Only once it renewed the leases in its term, so that its
    /// state includes every entry of earlier terms: a settled add must not look pending.
    /// </summary>
    private async Task MemberAddReconcileLoopAsync()
    {
        var token = _stopping.Token;
        while (!token.IsCancellationRequested)
        {
            try
            {
                await Task.Delay(MemberAddReconcileIntervalMs, token).ConfigureAwait(false);
                if (_raft is { IsLeader: true } raft && Volatile.Read(ref _leasesPromotedTerm) == _log.Term)
                {
                    await raft.ResumePendingAddsAsync(token).ConfigureAwait(false);
                }
            }
            catch (OperationCanceledException) when (token.IsCancellationRequested)
            {
                return;
            }
            catch (Exception e)
            {
                // The next round tries again; the loop must outlive any one failure.
                _logger.LogWarning(e, "Resuming pending member adds failed");
            }
        }
    }

    /// <summary>The receiving side of <c>Peer.Standby</c> (MoveLeader on the leader asks every other member but the target).</summary>
    public async Task<StandbyResponse> StandbyAsync(StandbyRequest request, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        var raft = _raft ?? throw new EtcdException(SingleNode);
        await raft.StandbyAsync(request.DurationMs, cancellationToken).ConfigureAwait(false);
        return new StandbyResponse();
    }

    /// <summary>The receiving side of <c>Peer.LogPosition</c>: the end of this member's Raft log (MoveLeader asks its target).</summary>
    public Task<LogPositionResponse> LogPositionAsync(CancellationToken cancellationToken = default)
    {
        var raft = _raft ?? throw new EtcdException(SingleNode);
        return raft.LogPositionAsync(cancellationToken);
    }

    /// <summary>Runs <paramref name="here"/> on the leader, or sends the request to the leader's client URL.</summary>
    private async Task<T> OnLeaderAsync<T>(Func<Task<T>> here, Func<GrpcChannel, Task<T>> remote, CancellationToken cancellationToken)
    {
        var raft = _raft!;
        var deadlineMs = Environment.TickCount64 + Options.Cluster!.RequestTimeoutMs;
        while (true)
        {
            try
            {
                if (raft.IsLeader)
                {
                    return await here().ConfigureAwait(false);
                }

                var url = await raft.LeaderClientUrlAsync(cancellationToken).ConfigureAwait(false);
                return url is null
                    ? await here().ConfigureAwait(false)
                    : await raft.CallLeaderToChangeAsync(url, remote).ConfigureAwait(false);
            }
            catch (EtcdException e) when (e.Error == EtcdError.LeaderChanged && Environment.TickCount64 < deadlineMs)
            {
                // Leadership moved under the call: ask whoever leads now.
                await Task.Delay(25, cancellationToken).ConfigureAwait(false);
            }
        }
    }
}
