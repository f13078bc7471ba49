using Arbiter.Node.Cluster;

namespace Arbiter.Server.Tests.Cluster;

/// <summary>When a follower asks for a newer snapshot: stuck at one applied index, and either at the snapshot it installed or with no leader known.</summary>
public sealed class SnapshotCatchUpRuleTests
{
    private static readonly TimeSpan StuckAfter = TimeSpan.FromSeconds(3);
    private static readonly DateTime Start = new(2026, 12, 4, 12, 0, 0, DateTimeKind.Utc);

    private static DateTime At(double seconds) => Start.AddSeconds(seconds);

    [Fact]
    public void A_follower_that_knows_no_leader_and_does_not_move_asks_once_it_has_been_still_long_enough()
    {
        // The CI case: committed past the leader's snapshot, refusing it, no leader heard since.
        var rule = new SnapshotCatchUpRule(StuckAfter);
        Assert.Null(rule.Observe(At(0), 126, mayBeStuck: true, atInstalledSnapshot: false, leaderKnown: false));
        Assert.Null(rule.Observe(At(2), 126, mayBeStuck: true, atInstalledSnapshot: false, leaderKnown: false));
        Assert.Equal(TimeSpan.FromSeconds(3), rule.Observe(At(3), 126, mayBeStuck: true, atInstalledSnapshot: false, leaderKnown: false));
    }

    [Fact]
    public void An_idle_follower_that_hears_its_leader_never_asks()
    {
        var rule = new SnapshotCatchUpRule(StuckAfter);
        for (var second = 0; second <= 60; second++)
        {
            Assert.Null(rule.Observe(At(second), 500, mayBeStuck: true, atInstalledSnapshot: false, leaderKnown: true));
        }
    }

    [Fact]
    public void A_follower_still_at_the_snapshot_it_installed_asks_even_while_it_knows_a_leader()
    {
        var rule = new SnapshotCatchUpRule(StuckAfter);
        Assert.Null(rule.Observe(At(0), 40_000, mayBeStuck: true, atInstalledSnapshot: true, leaderKnown: true));
        Assert.NotNull(rule.Observe(At(3.5), 40_000, mayBeStuck: true, atInstalledSnapshot: true, leaderKnown: true));
    }

    [Fact]
    public void Moving_again_restarts_the_count_and_asks_are_spaced()
    {
        var rule = new SnapshotCatchUpRule(StuckAfter);
        Assert.Null(rule.Observe(At(0), 10, mayBeStuck: true, atInstalledSnapshot: false, leaderKnown: false));
        Assert.Null(rule.Observe(At(2.9), 11, mayBeStuck: true, atInstalledSnapshot: false, leaderKnown: false));
        Assert.Null(rule.Observe(At(5), 11, mayBeStuck: true, atInstalledSnapshot: false, leaderKnown: false));
        Assert.NotNull(rule.Observe(At(6), 11, mayBeStuck: true, atInstalledSnapshot: false, leaderKnown: false));
        Assert.Null(rule.Observe(At(8), 11, mayBeStuck: true, atInstalledSnapshot: false, leaderKnown: false));
        Assert.NotNull(rule.Observe(At(9), 11, mayBeStuck: true, atInstalledSnapshot: false, leaderKnown: false));
    }

    [Fact]
    public void A_leader_or_a_member_fetching_an_image_is_not_stuck()
    {
        var rule = new SnapshotCatchUpRule(StuckAfter);
        Assert.Null(rule.Observe(At(0), 7, mayBeStuck: false, atInstalledSnapshot: false, leaderKnown: false));
        Assert.Null(rule.Observe(At(30), 7, mayBeStuck: false, atInstalledSnapshot: false, leaderKnown: false));
        Assert.NotNull(rule.Observe(At(31), 7, mayBeStuck: true, atInstalledSnapshot: false, leaderKnown: false));
    }
}
