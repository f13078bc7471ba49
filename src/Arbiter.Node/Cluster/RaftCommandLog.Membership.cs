using System.Collections.Concurrent;
using System.Net;
using Arbiter.Core;
using Arbiter.Protocol.Etcd;
using Arbiter.Protocol.Internal;
using DotNext.Net.Cluster;
using DotNext.Net.Cluster.Consensus.Raft;
using Microsoft.Extensions.Logging;

namespace Arbiter.Node.Cluster;

internal sealed partial class RaftCommandLog
{
    /// <summary>How long MemberList waits for a member's name and client URLs before listing it without them.</summary>
    private const int MetadataTimeoutMs = 500;

    /// <summary>Pause between attempts to add a member that is not answering yet.</summary>
    private const int MemberAddRetryDelayMs = 500;

    /// <summary>Pause before asking DotNext again for a membership change it refused for now.</summary>
    private const int MemberChangeRetryDelayMs = 100;

    private readonly SemaphoreSlim _membershipChange = new(1, 1);

    /// <summary>The add this member is bringing in as leader (at most one): removing its member cancels it, as etcd removes an unstarted member.</summary>
    private PendingAdd? _pendingAdd;

    /// <summary>
    /// Proposes a membership fact (<see cref="MemberAddCommand"/>) on the leader and waits for it to
    /// apply; set by the node, which stamps commands with request ids. Throws
    /// <see cref="EtcdException"/> when the command is refused or its outcome is unknown.
    /// </summary>
    internal Func<Command, CancellationToken, Task<CommandResult>>? ProposeMembershipFact { get; set; }

    /// <summary>A member is being added or removed (the change's semaphore is taken).</summary>
    private bool MembershipChangeUnderWay => _membershipChange.CurrentCount == 0 || Volatile.Read(ref _pendingAdd) is not null;

    /// <summary>
    /// The last Raft metadata (name, client URLs) read from each member: a member that is down or
    /// that this one has not talked to lately (a follower never talks to the other followers, so
    /// DotNext may mark one unavailable for good after a refusal at start-up) is still listed with
    /// its client URLs, as etcd lists a stopped member's.
    /// </summary>
    private readonly ConcurrentDictionary<EndPoint, IReadOnlyDictionary<string, string>> _metadataSeen = new();

    /// <summary>How many members the Raft configuration has (this one included), reachable or not.</summary>
    public int ConfiguredMemberCount => _raft.Members.Count;

    /// <summary>Every member (voting, from the Raft configuration), plus members added but not yet started.</summary>
    public async Task<IReadOnlyList<Member>> ListMembersAsync(CancellationToken cancellationToken)
    {
        var members = new List<Member>();
        foreach (var raftMember in _raft.Members)
        {
            var peerUrl = PeerAddress.ToUrl(raftMember.EndPoint);
            var member = new Member { ID = PeerAddress.MemberId(raftMember.EndPoint, _options.ClusterToken) };
            member.PeerURLs.Add(peerUrl);
            if (await TryGetMetadataAsync(raftMember, cancellationToken).ConfigureAwait(false) is { } metadata)
            {
                member.Name = metadata.GetValueOrDefault(MetadataName, string.Empty);
                member.ClientURLs.AddRange(metadata.GetValueOrDefault(MetadataClientUrls, string.Empty).Split(',', StringSplitOptions.RemoveEmptyEntries));
            }

            members.Add(member);
        }

        foreach (var (peerUrl, id) in _host.Read(state => state.PendingMemberAdds))
        {
            if (members.TrueForAll(m => m.ID != id))
            {
                // etcd lists an added member that has not started with an empty name and no client URLs.
                var member = new Member { ID = id };
                member.PeerURLs.Add(peerUrl);
                members.Add(member);
            }
        }

        return members;
    }

    /// <summary>
    /// The URL this member reaches <paramref name="member"/>'s client port on (from the client URLs it
    /// advertises in its Raft metadata, https when peers use TLS); null when the member is unavailable
    /// or its metadata cannot be read now.
    /// </summary>
    private async Task<string?> TryClientUrlOfAsync(DotNext.Net.Cluster.Consensus.Raft.RaftClusterMember member, CancellationToken cancellationToken) =>
        await TryGetMetadataAsync(member, cancellationToken).ConfigureAwait(false) is { } metadata
            ? PeerClientUrl(metadata.GetValueOrDefault(MetadataClientUrls, string.Empty))
            : null;

    private async Task<IReadOnlyDictionary<string, string>?> TryGetMetadataAsync(DotNext.Net.Cluster.Consensus.Raft.RaftClusterMember member, CancellationToken cancellationToken)
    {
        _metadataSeen.TryGetValue(member.EndPoint, out var seen);
        if (seen is not null && member.Status == ClusterMemberStatus.Unavailable)
        {
            return seen;
        }

        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(MetadataTimeoutMs);
        try
        {
            var metadata = await member.GetMetadataAsync(refresh: false, timeout.Token).ConfigureAwait(false);
            _metadataSeen[member.EndPoint] = metadata;
            return metadata;
        }
        catch (Exception e) when (e is OperationCanceledException or IOException or System.Net.Sockets.SocketException or MemberUnavailableException or ObjectDisposedException)
        {
            return seen;
        }
    }

    /// <summary>
    /// Adds a member (leader only). As in etcd, the member may start afterwards: the add is
    /// committed to the log first (<see cref="MemberAddPending"/>), so it outlives this leader, and
    /// whoever leads keeps trying to bring the member in (catch-up, then the configuration change)
    /// until it answers or <see cref="ClusterOptions.MemberAddTimeoutMs"/> passes. One change at a time.
    /// </summary>
    public async Task<Member> AddMemberAsync(string peerUrl, CancellationToken cancellationToken)
    {
        IPEndPoint endPoint;
        try
        {
            endPoint = PeerAddress.Parse(peerUrl);
        }
        catch (ArgumentException)
        {
            throw new EtcdException(EtcdError.MemberBadUrls);
        }

        var canonical = PeerAddress.ToUrl(endPoint);

        // A member added and not started yet is listed, as in etcd, so adding it again is a duplicate too.
        if (_raft.Members.Any(m => PeerAddress.ToUrl(m.EndPoint) == canonical)
            || _host.Read(state => state.PendingMemberAdds).Any(p => p.PeerUrl == canonical))
        {
            throw new EtcdException(EtcdError.PeerUrlExists);
        }

        if (!_membershipChange.Wait(0, CancellationToken.None))
        {
            throw new EtcdException(EtcdError.Unhealthy);
        }

        var id = PeerAddress.MemberId(endPoint, _options.ClusterToken);
        try
        {
            await ProposeMemberAddAsync(new MemberAddCommand { Pending = new MemberAddPending { PeerUrl = canonical, MemberId = id } }, cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            // Not acknowledged. Should it commit all the same, the leader's reconciliation picks it up.
            _membershipChange.Release();
            throw;
        }

        StartBringingIn(endPoint, canonical, id);
        var member = new Member { ID = id };
        member.PeerURLs.Add(canonical);
        return member;
    }

    /// <summary>
    /// The leader's reconciliation of the replicated pending adds, called from its housekeeping
    /// loop: an add left by a former leader (or whose acknowledgement failed after it committed)
    /// is settled if its member is already in the configuration, and otherwise brought in here.
    /// Does nothing while another change is under way here.
    /// </summary>
    public async Task ResumePendingAddsAsync(CancellationToken cancellationToken)
    {
        if (!IsLeader || Volatile.Read(ref _pendingAdd) is not null)
        {
            return;
        }

        var pending = _host.Read(state => state.PendingMemberAdds);
        if (pending.Count == 0 || !_membershipChange.Wait(0, CancellationToken.None))
        {
            return;
        }

        var resumed = false;
        try
        {
            foreach (var add in pending)
            {
                if (_raft.Members.Any(m => PeerAddress.ToUrl(m.EndPoint) == add.PeerUrl))
                {
                    await ProposeMemberAddAsync(new MemberAddCommand { Settled = new MemberAddSettled { PeerUrl = add.PeerUrl } }, cancellationToken).ConfigureAwait(false);
                    _logger.LogInformation("Pending add of member {PeerUrl} settled: it is in the configuration", add.PeerUrl);
                    continue;
                }

                _logger.LogInformation("Resuming the add of member {PeerUrl} (acknowledged under an earlier leader or term)", add.PeerUrl);
                StartBringingIn(PeerAddress.Parse(add.PeerUrl), add.PeerUrl, add.MemberId);
                resumed = true;
                return;
            }
        }
        catch (EtcdException e)
        {
            _logger.LogDebug("Reconciling pending member adds failed ({Message}); the next round retries", e.Message);
        }
        finally
        {
            if (!resumed)
            {
                _membershipChange.Release();
            }
        }
    }

    private Task<CommandResult> ProposeMemberAddAsync(MemberAddCommand command, CancellationToken cancellationToken) =>
        (ProposeMembershipFact ?? throw new InvalidOperationException("The node did not connect membership proposals."))(new Command { MemberAdd = command }, cancellationToken);

    /// <summary>Starts bringing in an add already in the log; the caller holds the change's semaphore, which the add releases when it ends.</summary>
    private void StartBringingIn(IPEndPoint endPoint, string canonical, ulong id)
    {
        var cancel = new CancellationTokenSource();
        Volatile.Write(ref _pendingAdd, new PendingAdd(id, cancel, Task.Run(() => BringInAsync(endPoint, canonical, cancel), CancellationToken.None)));
    }

    private async Task BringInAsync(IPEndPoint endPoint, string canonical, CancellationTokenSource cancel)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(_stopping.Token, cancel.Token);
        timeout.CancelAfter(_cluster.MemberAddTimeoutMs);

        // Settled (dropped from the log's pending adds) when the member joined, was removed first, or
        // timed out; left pending when this member stops or loses leadership, for the next leader.
        var settle = false;
        try
        {
            while (!timeout.IsCancellationRequested)
            {
                if (!IsLeader)
                {
                    _logger.LogInformation("Leadership lost while adding member {PeerUrl}: the add stays in the log for the next leader", canonical);
                    return;
                }

                try
                {
                    // DotNext spends its warm-up rounds (and logs a warning with a stack trace for
                    // each) on a member that is not listening yet: wait until its peer port answers.
                    if (await IsListeningAsync(endPoint, timeout.Token).ConfigureAwait(false)
                        && await _raft.AddMemberAsync(endPoint, timeout.Token).ConfigureAwait(false))
                    {
                        _logger.LogInformation("Member {PeerUrl} added", canonical);
                        settle = true;
                        return;
                    }
                }
                catch (Exception e) when (e is not OperationCanceledException)
                {
                    _logger.LogDebug("Adding member {PeerUrl} failed ({Message}); retrying", canonical, e.Message);
                }

                await Task.Delay(MemberAddRetryDelayMs, timeout.Token).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException) when (cancel.IsCancellationRequested)
        {
            _logger.LogInformation("Adding member {PeerUrl} cancelled (removed before it joined)", canonical);
            settle = true;
        }
        catch (OperationCanceledException) when (!_stopping.IsCancellationRequested)
        {
            _logger.LogWarning("Member {PeerUrl} was not added within {TimeoutMs} ms", canonical, _cluster.MemberAddTimeoutMs);
            settle = true;
        }
        catch (OperationCanceledException)
        {
            // Stopping: the add stays pending in the log.
        }
        finally
        {
            if (settle)
            {
                await SettleAsync(canonical).ConfigureAwait(false);
            }

            Volatile.Write(ref _pendingAdd, null);
            _membershipChange.Release();
        }
    }

    /// <summary>Drops a finished add from the log's pending adds; on failure the leader's reconciliation tries again.</summary>
    private async Task SettleAsync(string canonical)
    {
        try
        {
            using var deadline = CancellationTokenSource.CreateLinkedTokenSource(_stopping.Token);
            deadline.CancelAfter(_cluster.RequestTimeoutMs);
            await ProposeMemberAddAsync(new MemberAddCommand { Settled = new MemberAddSettled { PeerUrl = canonical } }, deadline.Token).ConfigureAwait(false);
        }
        catch (Exception e) when (e is EtcdException or OperationCanceledException)
        {
            _logger.LogWarning("Settling the add of member {PeerUrl} failed ({Message}); the leader retries", canonical, e.Message);
        }
    }

    private async Task<bool> IsListeningAsync(IPEndPoint endPoint, CancellationToken cancellationToken)
    {
        using var socket = new System.Net.Sockets.Socket(endPoint.AddressFamily, System.Net.Sockets.SocketType.Stream, System.Net.Sockets.ProtocolType.Tcp);
        using var connectTimeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        connectTimeout.CancelAfter(_cluster.ElectionTimeoutMs);
        try
        {
            await socket.ConnectAsync(endPoint, connectTimeout.Token).ConfigureAwait(false);
            return true;
        }
        catch (Exception e) when (e is System.Net.Sockets.SocketException || (e is OperationCanceledException && !cancellationToken.IsCancellationRequested))
        {
            return false;
        }
    }

    /// <summary>Removes a member by id (leader only).</summary>
    public async Task RemoveMemberAsync(ulong memberId, CancellationToken cancellationToken)
    {
        var target = _raft.Members.FirstOrDefault(m => PeerAddress.MemberId(m.EndPoint, _options.ClusterToken) == memberId);
        if (target is null && Volatile.Read(ref _pendingAdd) is { } pending && pending.MemberId == memberId)
        {
            // Added but not (yet) in the configuration: stop bringing it in (which settles the add).
            await pending.Cancel.CancelAsync().ConfigureAwait(false);
            await pending.Done.ConfigureAwait(false);
            _logger.LogInformation("Pending member {MemberId:x16} removed before it joined", memberId);

            // The configuration change may have committed just before the cancellation: then remove it normally.
            target = _raft.Members.FirstOrDefault(m => PeerAddress.MemberId(m.EndPoint, _options.ClusterToken) == memberId);
            if (target is null)
            {
                return;
            }
        }

        if (target is null && _host.Read(state => state.PendingMemberAdds).FirstOrDefault(p => p.MemberId == memberId) is { PeerUrl: not null } waiting)
        {
            // Pending in the log but not being brought in here (yet): settle it directly, holding the
            // change's semaphore so that the reconciliation cannot start bringing it in meanwhile.
            if (!await _membershipChange.WaitAsync(0, cancellationToken).ConfigureAwait(false))
            {
                throw new EtcdException(EtcdError.Unhealthy);
            }

            try
            {
                await ProposeMemberAddAsync(new MemberAddCommand { Settled = new MemberAddSettled { PeerUrl = waiting.PeerUrl } }, cancellationToken).ConfigureAwait(false);
            }
            finally
            {
                _membershipChange.Release();
            }

            _logger.LogInformation("Pending member {MemberId:x16} removed before it joined", memberId);
            return;
        }

        if (target is null)
        {
            throw new EtcdException(EtcdError.MemberNotFound);
        }

        if (!await _membershipChange.WaitAsync(0, cancellationToken).ConfigureAwait(false))
        {
            throw new EtcdException(EtcdError.Unhealthy);
        }

        try
        {
            using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, _stopping.Token);
            deadline.CancelAfter(_cluster.RequestTimeoutMs);
            // DotNext refuses (false) while the previous configuration is not committed yet, e.g.
            // just after an election or another change: that passes, so try again until the deadline.
            while (!await _raft.RemoveMemberAsync(target.EndPoint, deadline.Token).ConfigureAwait(false))
            {
                _logger.LogDebug("Removing {PeerUrl} was refused for now; retrying", PeerAddress.ToUrl(target.EndPoint));
                await Task.Delay(MemberChangeRetryDelayMs, deadline.Token).ConfigureAwait(false);
            }

            _logger.LogInformation("Member {PeerUrl} removed", PeerAddress.ToUrl(target.EndPoint));
        }
        catch (NotLeaderException)
        {
            throw new EtcdException(EtcdError.LeaderChanged);
        }
        catch (RaftCluster.ConcurrentMembershipModificationException)
        {
            throw new EtcdException(EtcdError.Unhealthy);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            throw new EtcdException(_stopping.IsCancellationRequested ? EtcdError.Stopped : EtcdError.Unhealthy);
        }
        finally
        {
            _membershipChange.Release();
        }
    }

    private sealed record PendingAdd(ulong MemberId, CancellationTokenSource Cancel, Task Done);
}
