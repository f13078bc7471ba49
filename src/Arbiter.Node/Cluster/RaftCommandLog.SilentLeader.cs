using DotNext.Net.Cluster.Consensus.Raft;
using Microsoft.Extensions.Logging;

namespace Arbiter.Node.Cluster;

internal sealed partial class RaftCommandLog
{
    private Task _silentLeaderWatch = Task.CompletedTask;

    /// <summary>
    /// Starts judging the leader's silence (<see cref="SilentLeaderWatch{TMember}"/>) every half
    /// heartbeat; while it is silent, requests to it get a short timeout
    /// (<see cref="PeerRequestTimeouts"/>) and this member grants (pre-)votes after the base election
    /// timeout (<see cref="LeaderStickinessWindow"/>). First checks that this DotNext keeps both
    /// where they are set.
    /// </summary>
    private void StartSilentLeaderWatch()
    {
        var stickiness = new LeaderStickinessWindow(_raft, _cluster.ElectionTimeoutMs);
        stickiness.Verify();
        var configured = TimeSpan.FromMilliseconds(_cluster.EffectivePeerRequestTimeoutMs);
        var appendTimeout = TimeSpan.FromMilliseconds(_cluster.LeaderAppendTimeoutMs);
        foreach (var member in _raft.Members)
        {
            if (member.IsRemote)
            {
                // DotNext gives each member the transport's timeouts (OpenAsync); until this member
                // leads, its requests get the configured one.
                PeerRequestTimeouts.Verify(member, appendTimeout, configured);
                PeerRequestTimeouts.Set(member, configured);
            }
        }

        _silentLeaderWatch = Task.Run(() => SilentLeaderWatchAsync(stickiness, configured), CancellationToken.None);
    }

    private async Task SilentLeaderWatchAsync(LeaderStickinessWindow stickiness, TimeSpan configured)
    {
        var watch = new SilentLeaderWatch<RaftClusterMember>(_cluster.SilentLeaderAfterMs);
        var shortTimeout = TimeSpan.FromMilliseconds(_cluster.SilentLeaderRequestTimeoutMs);
        var appendTimeout = TimeSpan.FromMilliseconds(_cluster.LeaderAppendTimeoutMs);
        var token = _halted.Token;
        RaftClusterMember? shortened = null;
        var extended = false;
        using var ticks = new PeriodicTimer(TimeSpan.FromMilliseconds(Math.Max(5, _cluster.HeartbeatIntervalMs / 2)));
        try
        {
            while (await ticks.WaitForNextTickAsync(token).ConfigureAwait(false))
            {
                var leader = _raft.Leader;
                var leaderIsSelf = leader is { IsRemote: false };
                var established = leaderIsSelf && !_raft.LeadershipToken.IsCancellationRequested;
                var sinceMessageMs = Environment.TickCount64 - _wal.LastLeaderMessageTicks;
                var suspect = watch.Observe(leader, leaderIsSelf, established, sinceMessageMs);
                if (suspect is not null)
                {
                    // Every tick: DotNext draws a new random window after a failed election.
                    stickiness.Shorten();
                }
                else
                {
                    stickiness.Restore();
                }

                if (!ReferenceEquals(suspect, shortened))
                {
                    if (shortened is not null)
                    {
                        PeerRequestTimeouts.Set(shortened, configured);
                        _logger.LogInformation("Requests to {Url} time out after {TimeoutMs} ms again", PeerAddress.ToUrl(shortened.EndPoint), configured.TotalMilliseconds);
                    }

                    if (suspect is not null)
                    {
                        PeerRequestTimeouts.Set(suspect, shortTimeout);
                        _logger.LogInformation(
                            "Leader {Url} silent for {SilentMs} ms: requests to it time out after {TimeoutMs} ms, and this member grants (pre-)votes after {StickinessMs} ms without a leader, until a leader is established",
                            PeerAddress.ToUrl(suspect.EndPoint), sinceMessageMs, shortTimeout.TotalMilliseconds, _cluster.ElectionTimeoutMs);
                    }

                    shortened = suspect;
                }

                extended = ApplyRequestTimeouts(established, extended, shortened, configured, appendTimeout);
            }
        }
        catch (OperationCanceledException) when (token.IsCancellationRequested)
        {
        }
        catch (Exception e)
        {
            // Without the watch, elections only take longer; the member keeps serving.
            _logger.LogError(e, "The silent-leader watch stopped");
        }
        finally
        {
            if (shortened is not null)
            {
                PeerRequestTimeouts.Set(shortened, configured);
            }

            ApplyRequestTimeouts(established: false, extended, shortened: null, configured, appendTimeout);
            stickiness.Restore();
        }
    }

    /// <summary>
    /// While this member's leadership is established, requests to every other member (its entries
    /// and heartbeats) get <see cref="ClusterOptions.LeaderAppendTimeoutMs"/>; otherwise the
    /// configured timeout (a silent leader, <paramref name="shortened"/>, keeps its shorter one),
    /// in place before this member can stand as a candidate: after stepping down its election
    /// timer runs for at least the election timeout, and this runs every half heartbeat. Returns
    /// whether the longer timeout is in place.
    /// </summary>
    private bool ApplyRequestTimeouts(bool established, bool extended, RaftClusterMember? shortened, TimeSpan configured, TimeSpan appendTimeout)
    {
        // Every tick, not only on a change: a member added meanwhile starts with the transport's
        // timeout, the longer one.
        var timeout = established ? appendTimeout : configured;
        foreach (var member in _raft.Members)
        {
            if (member.IsRemote && !ReferenceEquals(member, shortened)
                && (PeerRequestTimeouts.RequestTimeoutOf(member) != timeout || PeerRequestTimeouts.ConnectTimeoutOf(member) != configured))
            {
                // Connection attempts keep the configured timeout either way.
                PeerRequestTimeouts.Set(member, timeout, configured);
            }
        }

        if (established != extended)
        {
            _logger.LogInformation(
                "Leadership {Change}: requests to the other members time out after {TimeoutMs} ms",
                established ? "established" : "ended", timeout.TotalMilliseconds);
        }

        return established;
    }
}
