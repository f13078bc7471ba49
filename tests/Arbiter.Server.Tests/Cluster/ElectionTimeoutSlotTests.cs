using Arbiter.Node.Cluster;

namespace Arbiter.Server.Tests.Cluster;

/// <summary>Each member draws its election timeout from its own slot of the range, with a gap before the next member's.</summary>
public sealed class ElectionTimeoutSlotTests
{
    private static ClusterOptions Options(int electionTimeoutMs) => new()
    {
        ListenPeerUrl = "http://127.0.0.1:2380",
        InitialCluster = new Dictionary<string, string> { ["m1"] = "http://127.0.0.1:2380" },
        ElectionTimeoutMs = electionTimeoutMs,
        HeartbeatIntervalMs = Math.Max(1, electionTimeoutMs / 10),
    };

    [Fact]
    public void Three_members_at_etcds_timing_get_three_slots_55_ms_apart()
    {
        var options = Options(1000);
        Assert.Equal((1000, 1111), options.ElectionTimeoutSlot(0, 3));
        Assert.Equal((1166, 1277), options.ElectionTimeoutSlot(1, 3));
        Assert.Equal((1332, 1443), options.ElectionTimeoutSlot(2, 3));
    }

    [Theory]
    [InlineData(1000, 3)]
    [InlineData(1000, 5)]
    [InlineData(1000, 7)]
    [InlineData(500, 3)]
    [InlineData(50_000, 5)]
    [InlineData(100, 9)]
    public void Slots_lie_inside_the_range_in_rank_order_and_never_touch(int electionTimeoutMs, int members)
    {
        var options = Options(electionTimeoutMs);
        var slots = Enumerable.Range(0, members).Select(rank => options.ElectionTimeoutSlot(rank, members)).ToList();
        Assert.All(slots, s => Assert.True(
            s.LowerMs >= options.ElectionTimeoutMs && s.UpperMs <= options.ElectionTimeoutUpperMs && s.LowerMs < s.UpperMs,
            $"slot {s} outside {options.ElectionTimeoutMs}-{options.ElectionTimeoutUpperMs} or empty"));
        Assert.All(slots.Zip(slots.Skip(1)), pair => Assert.True(pair.First.UpperMs < pair.Second.LowerMs, $"slots {pair.First} and {pair.Second} touch"));
    }

    [Theory]
    [InlineData(-1, 3)]
    [InlineData(0, 1)]
    [InlineData(3, 3)]
    public void A_member_alone_or_not_in_the_configuration_draws_from_the_whole_range(int rank, int members)
    {
        var options = Options(1000);
        Assert.Equal((1000, 1500), options.ElectionTimeoutSlot(rank, members));
    }

    [Fact]
    public void A_range_too_narrow_to_cut_is_shared()
    {
        var options = Options(10);
        Assert.Equal((10, 15), options.ElectionTimeoutSlot(1, 3));
    }
}
