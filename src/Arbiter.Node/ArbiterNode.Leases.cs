using System.Security.Cryptography;
using Arbiter.Core;
using Arbiter.Protocol.Etcd;
using Arbiter.Protocol.Internal;
using Microsoft.Extensions.Logging;

namespace Arbiter.Node;

public sealed partial class ArbiterNode
{
    private const int LeaseIdAttemptsMax = 8;

    /// <summary>Grants a lease; ID 0 lets the node choose a random positive id.</summary>
    public async Task<LeaseGrantResponse> LeaseGrantAsync(LeaseGrantRequest request, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        ThrowIfInvalid(RequestValidator.Validate(request, Options.Limits));
        if (request.ID != 0)
        {
            return await GrantAsync(request, cancellationToken).ConfigureAwait(false);
        }

        // The id is chosen here, at the edge, so that the command the core applies is deterministic.
        for (var attempt = 1; ; attempt++)
        {
            var chosen = new LeaseGrantRequest { TTL = request.TTL, ID = RandomNumberGenerator.GetInt32(1, int.MaxValue) * (long)RandomNumberGenerator.GetInt32(1, int.MaxValue) };
            try
            {
                return await GrantAsync(chosen, cancellationToken).ConfigureAwait(false);
            }
            catch (EtcdException e) when (e.Error == EtcdError.LeaseExists && attempt < LeaseIdAttemptsMax)
            {
            }
        }
    }

    private async Task<LeaseGrantResponse> GrantAsync(LeaseGrantRequest request, CancellationToken cancellationToken)
    {
        return await ProposeAsync(new Command { LeaseGrant = request }, r => r.LeaseGrant, r => r.Header, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Revokes a lease, deleting its keys in one revision.</summary>
    public async Task<LeaseRevokeResponse> LeaseRevokeAsync(LeaseRevokeRequest request, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        return await ProposeAsync(new Command { LeaseRevoke = request }, r => r.LeaseRevoke, r => r.Header, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Renews a lease to its full TTL. An unknown lease answers TTL = 0, as etcd does.</summary>
    public async Task<LeaseKeepAliveResponse> LeaseKeepAliveAsync(LeaseKeepAliveRequest request, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        try
        {
            return await ProposeAsync(new Command { LeaseKeepAlive = request }, r => r.LeaseKeepAlive, r => r.Header, cancellationToken).ConfigureAwait(false);
        }
        catch (EtcdException e) when (e.Error == EtcdError.LeaseNotFound)
        {
            return new LeaseKeepAliveResponse { Header = NewHeader(Revision), ID = request.ID, TTL = 0 };
        }
    }

    /// <summary>Remaining and granted TTL of a lease (TTL = -1 when it does not exist).</summary>
    public async Task<LeaseTimeToLiveResponse> LeaseTimeToLiveAsync(LeaseTimeToLiveRequest request, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        cancellationToken.ThrowIfCancellationRequested();
        if (_raft is not null && !_raft.IsLeader)
        {
            // Remaining TTL is measured on the leader's clock: ask the leader, as etcd does.
            var forwarded = await _raft.CallLeaderAsync(
                (channel, token) => new Protocol.Internal.Peer.PeerClient(channel).LeaseTimeToLiveAsync(request, cancellationToken: token).ResponseAsync,
                cancellationToken).ConfigureAwait(false);
            if (forwarded is not null)
            {
                FillHeader(forwarded.Header);
                return forwarded;
            }
        }

        return LeaseTimeToLiveHere(request);
    }

    /// <summary>TimeToLive from this member's state and clock (the leader's side of a forwarded call).</summary>
    public LeaseTimeToLiveResponse LeaseTimeToLiveHere(LeaseTimeToLiveRequest request)
    {
        ArgumentNullException.ThrowIfNull(request);
        var nowMs = Options.Clock.NowMs;
        var response = _host.Read(s => s.LeaseTimeToLive(request, nowMs));
        FillHeader(response.Header);
        return response;
    }

    /// <summary>Every live lease.</summary>
    public async Task<LeaseLeasesResponse> LeaseLeasesAsync(LeaseLeasesRequest request, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        cancellationToken.ThrowIfCancellationRequested();
        await _log.WaitLinearizableAsync(cancellationToken).ConfigureAwait(false);
        var response = _host.Read(s => s.LeaseLeases());
        FillHeader(response.Header);
        return response;
    }

    /// <summary>Records that this member, leading in <paramref name="term"/>, has renewed every lease, and wakes the keep-alives waiting for it.</summary>
    private void MarkLeasesPromoted(ulong term)
    {
        Volatile.Write(ref _leasesPromotedTerm, term);
        Interlocked.Exchange(ref _leasesPromotedSignal, new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).TrySetResult();
    }

    /// <summary>
    /// Returns once this member, as leader, has renewed every lease in its current term (at once
    /// when it does not lead: the keep-alive then fails as not leader and is retried).
    /// </summary>
    private async Task WaitLeasesPromotedAsync(CancellationToken cancellationToken)
    {
        while (true)
        {
            var signal = Volatile.Read(ref _leasesPromotedSignal);
            if (!_log.IsLeader || Volatile.Read(ref _leasesPromotedTerm) == _log.Term)
            {
                return;
            }

            try
            {
                // Bounded: the term may change without a renewal here (this member lost the lead).
                await signal.Task.WaitAsync(TimeSpan.FromMilliseconds(LeasePromotedPollMs), cancellationToken).ConfigureAwait(false);
            }
            catch (TimeoutException)
            {
                // Look again.
            }
        }
    }

    /// <summary>
    /// Only the leader expires leases, and only after renewing every lease to its full TTL in its
    /// term (its clock did not measure them). False (after a pause) while that is not the case.
    /// </summary>
    private async Task<bool> EnsureLeasesPromotedAsync(CancellationToken token)
    {
        var term = _log.Term;
        if (_log.IsLeader && _leasesPromotedTerm == term)
        {
            return true;
        }

        try
        {
            if (_log.IsLeader)
            {
                await ProposeAsync(new Command { LeasePromote = new LeasePromote() }, token, leaderOnly: true).ConfigureAwait(false);
                MarkLeasesPromoted(term);
                _logger.LogInformation("Leases renewed to their full TTL for term {Term}", term);
                return false;
            }

            await Task.Delay(Options.LeaseCheckIntervalMsMax, token).ConfigureAwait(false);
        }
        catch (EtcdException e)
        {
            _logger.LogWarning("Renewing leases for term {Term} failed: {Message}", term, e.Message);
            await Task.Delay(Options.LeaseCheckIntervalMsMax, token).ConfigureAwait(false);
        }

        return false;
    }

    /// <summary>
    /// Proposes expiry when the earliest lease deadline has passed on this node's monotonic clock,
    /// and the transactions' time-based events (time limits, lock-wait timeouts) when the earliest
    /// of those has passed. Both are commands like any other, so every replica applies the same
    /// effects at the same point; only the leader proposes them, after renewing leases and timers.
    /// </summary>
    private async Task LeaseExpiryLoopAsync()
    {
        var token = _stopping.Token;
        while (!token.IsCancellationRequested)
        {
            if (!await EnsureLeasesPromotedAsync(token).ConfigureAwait(false) || !await EnsurePeerSecretAsync(token).ConfigureAwait(false))
            {
                continue;
            }

            var nowMs = Options.Clock.NowMs;
            var transactionsChanged = _host.TransactionsChanged;
            var (nextDeadlineMs, nextTxnDeadlineMs) = _host.Read(s => (s.NextLeaseDeadlineMs, s.NextTransactionDeadlineMs));
            Command? due = nextDeadlineMs is { } deadline && deadline <= nowMs ? new Command { LeaseExpire = new LeaseExpire() }
                : nextTxnDeadlineMs is { } txnDeadline && txnDeadline <= nowMs ? new Command { TxnTimers = new TxnTimers() }
                : null;
            if (due is not null)
            {
                try
                {
                    var result = await ProposeAsync(due, token, leaderOnly: true).ConfigureAwait(false);
                    if (result.LeaseExpire?.ExpiredLeaseIds.Count > 0)
                    {
                        _logger.LogDebug("Expired {Count} lease(s)", result.LeaseExpire.ExpiredLeaseIds.Count);
                    }

                    continue;
                }
                catch (OperationCanceledException) when (token.IsCancellationRequested)
                {
                    return;
                }
                catch (EtcdException e)
                {
                    _logger.LogWarning("{What} failed: {Message}", due.OpCase == Command.OpOneofCase.LeaseExpire ? "Lease expiry" : "Transaction timers", e.Message);
                }
            }

            var next = new[] { nextDeadlineMs, nextTxnDeadlineMs }.Where(d => d is not null).Select(d => d!.Value).DefaultIfEmpty(nowMs + Options.LeaseCheckIntervalMsMax).Min();
            var waitMs = Math.Clamp(next - nowMs, 1, Options.LeaseCheckIntervalMsMax);
            try
            {
                // A new lock wait or transaction may bring the next deadline closer: wake up for it.
                await Task.WhenAny(Task.Delay(TimeSpan.FromMilliseconds(waitMs), token), transactionsChanged).ConfigureAwait(false);
                token.ThrowIfCancellationRequested();
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }
}
