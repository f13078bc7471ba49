namespace Arbiter.Node.Cluster;

/// <summary>
/// Decides which member, if any, is a leader gone silent: the leader this member last followed,
/// once nothing has arrived from it for <see cref="SilentAfterMs"/>. Meanwhile requests to that
/// member get a short timeout (<see cref="PeerRequestTimeouts"/>) and this member grants
/// (pre-)votes after the base election timeout (<see cref="LeaderStickinessWindow"/>); the
/// watch in <see cref="RaftCommandLog"/> applies both. The timeout because DotNext's candidate counts
/// its (pre-)votes only after every member has answered or timed out, and a new leader's first
/// round fails on every follower (their logs lack the leader's new entry) and so also waits for
/// every member: with a stopped or cut-off leader each of the three steps waited the whole peer
/// request timeout (250 ms with etcd's timing; issue #12).
/// </summary>
/// <remarks>
/// Safety does not depend on the decision. A request that times out counts as a vote against
/// (<c>MemberUnavailable</c>), like a rejection, and the other members grant a (pre-)vote only if
/// they too have not heard from a leader for (at least the base) election timeout. A wrongly suspected live leader
/// loses only its veto as a leader (etcd's and DotNext's leader stickiness), which the members
/// that still hear from it give as well. Pure logic over what the caller observed: time and
/// leadership arrive as arguments.
/// </remarks>
/// <typeparam name="TMember">How the caller names a member (DotNext's member object in production).</typeparam>
internal sealed class SilentLeaderWatch<TMember>(int silentAfterMs)
    where TMember : class
{
    private TMember? _lastFollowed;

    /// <summary>How long without a message from the leader this member follows before it counts as silent.</summary>
    public int SilentAfterMs { get; } = silentAfterMs > 0 ? silentAfterMs : throw new ArgumentOutOfRangeException(nameof(silentAfterMs));

    /// <summary>The member judged silent, or null.</summary>
    public TMember? Suspect { get; private set; }

    /// <summary>
    /// Takes one observation and returns <see cref="Suspect"/> after it.
    /// </summary>
    /// <param name="leader">The leader as this member sees it now (null: none known).</param>
    /// <param name="leaderIsSelf">This member leads.</param>
    /// <param name="leadershipEstablished">This member leads and the first entry of its term has committed.</param>
    /// <param name="sinceLeaderMessageMs">Time since the last entries or heartbeat this member accepted from a leader.</param>
    public TMember? Observe(TMember? leader, bool leaderIsSelf, bool leadershipEstablished, long sinceLeaderMessageMs)
    {
        if (leaderIsSelf)
        {
            // A new leader's first round still waits for every member: keep the suspect until its
            // term's first entry commits. It follows nobody from then on.
            if (leadershipEstablished)
            {
                Suspect = null;
                _lastFollowed = null;
            }

            return Suspect;
        }

        if (leader is not null)
        {
            _lastFollowed = leader;
        }

        Suspect = _lastFollowed is not null && sinceLeaderMessageMs >= SilentAfterMs ? _lastFollowed : null;
        return Suspect;
    }
}
