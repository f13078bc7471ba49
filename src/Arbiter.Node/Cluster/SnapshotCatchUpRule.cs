namespace Arbiter.Node.Cluster;

/// <summary>
/// When a follower counts as stuck in DotNext's snapshot-install loop (see
/// <see cref="RaftCommandLog"/>'s catch-up watch): its applied index has not moved for
/// <paramref name="stuckAfter"/>, it does not lead, it is not fetching an image, and either it sits
/// at the snapshot it installed or it knows no leader (a follower refusing resent installs stops
/// hearing one). An idle follower that hears its leader is not stuck. Asks at most once per
/// <paramref name="stuckAfter"/>. Pure: the watch feeds it the clock and the member's state.
/// </summary>
internal sealed class SnapshotCatchUpRule(TimeSpan stuckAfter)
{
    private long _applied = -1;
    private DateTime _appliedSinceUtc;
    private DateTime _lastAskedUtc = DateTime.MinValue;

    /// <summary>
    /// One look at the member. Returns how long it has been at its applied index when it should
    /// ask for a newer snapshot now, otherwise null.
    /// </summary>
    public TimeSpan? Observe(DateTime nowUtc, long applied, bool mayBeStuck, bool atInstalledSnapshot, bool leaderKnown)
    {
        if (applied != _applied)
        {
            _applied = applied;
            _appliedSinceUtc = nowUtc;
            return null;
        }

        var stuckFor = nowUtc - _appliedSinceUtc;
        if (!mayBeStuck || (leaderKnown && !atInstalledSnapshot) || stuckFor < stuckAfter || nowUtc - _lastAskedUtc < stuckAfter)
        {
            return null;
        }

        _lastAskedUtc = nowUtc;
        return stuckFor;
    }
}
