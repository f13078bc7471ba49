using Arbiter.Node.Cluster;

namespace Arbiter.Server.Tests.Cluster;

/// <summary>Which member counts as a silent leader: the one this member followed, once it has not been heard from for long enough, until a leader is established.</summary>
public sealed class SilentLeaderWatchTests
{
    private const int SilentAfterMs = 750;
    private readonly string _old = "m3";
    private readonly string _other = "m2";

    [Fact]
    public void A_leader_heard_within_the_silence_bound_is_never_suspected()
    {
        var watch = new SilentLeaderWatch<string>(SilentAfterMs);
        for (var sinceMs = 0; sinceMs < SilentAfterMs; sinceMs += 50)
        {
            Assert.Null(watch.Observe(_old, leaderIsSelf: false, leadershipEstablished: false, sinceMs));
        }
    }

    [Fact]
    public void The_followed_leader_is_suspected_once_silent_and_stays_so_while_no_leader_is_known()
    {
        var watch = new SilentLeaderWatch<string>(SilentAfterMs);
        Assert.Null(watch.Observe(_old, false, false, 100));
        Assert.Same(_old, watch.Observe(_old, false, false, SilentAfterMs));

        // The election timer fired: DotNext forgot the leader, the suspect stays for the (pre-)votes.
        Assert.Same(_old, watch.Observe(null, false, false, 1_200));
        Assert.Same(_old, watch.Observe(null, false, false, 1_500));
    }

    [Fact]
    public void A_member_that_never_followed_anyone_suspects_no_one()
    {
        var watch = new SilentLeaderWatch<string>(SilentAfterMs);
        Assert.Null(watch.Observe(null, false, false, 60_000));
    }

    [Fact]
    public void Another_leader_heard_from_ends_the_suspicion()
    {
        var watch = new SilentLeaderWatch<string>(SilentAfterMs);
        watch.Observe(_old, false, false, 0);
        Assert.Same(_old, watch.Observe(null, false, false, 1_000));
        Assert.Null(watch.Observe(_other, false, false, 5));

        // If that one falls silent in turn, it is the suspect, not the first.
        Assert.Same(_other, watch.Observe(null, false, false, 900));
    }

    [Fact]
    public void The_old_leader_heard_again_is_no_longer_suspected()
    {
        var watch = new SilentLeaderWatch<string>(SilentAfterMs);
        watch.Observe(_old, false, false, 0);
        Assert.Same(_old, watch.Observe(_old, false, false, 2_000));
        Assert.Null(watch.Observe(_old, false, false, 3));
    }

    [Fact]
    public void A_new_leader_keeps_the_suspect_until_its_term_is_established_then_follows_no_one()
    {
        var watch = new SilentLeaderWatch<string>(SilentAfterMs);
        watch.Observe(_old, false, false, 0);
        Assert.Same(_old, watch.Observe(null, false, false, 1_100));

        // Elected: its first round waits for every member, the silent one included.
        Assert.Same(_old, watch.Observe("self", leaderIsSelf: true, leadershipEstablished: false, 1_300));
        Assert.Null(watch.Observe("self", leaderIsSelf: true, leadershipEstablished: true, 1_400));

        // Stepping down later, with nothing heard from any leader for long: nobody to suspect.
        Assert.Null(watch.Observe(null, false, false, 30_000));
    }

    [Fact]
    public void A_leader_that_never_was_a_follower_suspects_no_one()
    {
        var watch = new SilentLeaderWatch<string>(SilentAfterMs);
        Assert.Null(watch.Observe("self", leaderIsSelf: true, leadershipEstablished: false, 10_000));
        Assert.Null(watch.Observe("self", leaderIsSelf: true, leadershipEstablished: true, 10_000));
    }

    [Fact]
    public void The_silence_bound_must_be_positive() =>
        Assert.Throws<ArgumentOutOfRangeException>(() => new SilentLeaderWatch<string>(0));
}
