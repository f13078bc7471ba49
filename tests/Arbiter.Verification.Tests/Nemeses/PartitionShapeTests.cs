using Arbiter.Verification.Nemeses;

namespace Arbiter.Verification.Tests.Nemeses;

/// <summary>The shapes of the partitions the nemesis cuts, without iptables: who still sees whom.</summary>
public sealed class PartitionShapeTests
{
    private static HashSet<string>[] Views(NemesisKind kind, int n)
    {
        var members = Enumerable.Range(1, n).Select(i => $"n{i}").ToList();
        var (pairs, _) = Nemesis.Cuts(kind, members, m => m);
        return [.. members.Select(m => members.Where(o => !pairs.Contains((m, o)) && !pairs.Contains((o, m))).ToHashSet())];
    }

    [Fact]
    public void A_ring_of_five_leaves_each_member_its_two_neighbours_a_distinct_overlapping_majority()
    {
        var views = Views(NemesisKind.PartitionRing, 5);
        for (var i = 0; i < 5; i++)
        {
            var expected = new[] { $"n{i + 1}", $"n{((i + 1) % 5) + 1}", $"n{((i + 4) % 5) + 1}" }.ToHashSet();
            Assert.True(expected.SetEquals(views[i]), $"n{i + 1} sees {string.Join(",", views[i])}, expected {string.Join(",", expected)}");
        }

        Assert.Equal(5, views.Select(v => string.Join(",", v.Order(StringComparer.Ordinal))).Distinct().Count());
        foreach (var a in views)
        {
            foreach (var b in views)
            {
                Assert.True(a.Overlaps(b), "two majorities of 3 out of 5 must overlap");
            }
        }
    }

    [Fact]
    public void A_ring_of_three_is_a_bridge()
    {
        var ring = Views(NemesisKind.PartitionRing, 3);
        var bridge = Views(NemesisKind.PartitionBridge, 3);
        Assert.Equal(bridge.Select(v => v.Count), ring.Select(v => v.Count));
        Assert.Equal([2, 3, 2], ring.Select(v => v.Count));
    }

    [Theory]
    [InlineData(3, 1)]
    [InlineData(5, 2)]
    public void A_majority_partition_leaves_a_minority_that_sees_only_itself(int n, int minority)
    {
        var views = Views(NemesisKind.PartitionMajority, n);
        Assert.Equal(minority, views.Count(v => v.Count == minority));
        Assert.Equal(n - minority, views.Count(v => v.Count == n - minority));
    }

    [Fact]
    public void Clock_skew_applies_to_arbiter_only()
    {
        Assert.True(Nemesis.AppliesTo(NemesisKind.ClockSkew, Cluster.ServerKind.Arbiter));
        Assert.False(Nemesis.AppliesTo(NemesisKind.ClockSkew, Cluster.ServerKind.Etcd));
        Assert.All(Enum.GetValues<NemesisKind>().Where(k => k != NemesisKind.ClockSkew), k => Assert.True(Nemesis.AppliesTo(k, Cluster.ServerKind.Etcd)));
    }

    [Fact]
    public void Offsets_are_written_in_libfaketimes_relative_form()
    {
        var file = Path.Combine(Path.GetTempPath(), $"faketime-{Guid.NewGuid():N}");
        try
        {
            FakeTime.WriteOffset(file, -90.25);
            Assert.Equal("-90.250\n", File.ReadAllText(file));
            FakeTime.WriteOffset(file, 3600);
            Assert.Equal("+3600.000\n", File.ReadAllText(file));
            FakeTime.WriteOffset(file, 0);
            Assert.Equal("+0\n", File.ReadAllText(file));
        }
        finally
        {
            File.Delete(file);
        }
    }
}
