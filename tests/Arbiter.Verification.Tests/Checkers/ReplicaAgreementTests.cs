using Arbiter.Verification.Checkers;
using static Arbiter.Verification.Checkers.ReplicaAgreement;

namespace Arbiter.Verification.Tests.Checkers;

/// <summary>The check after the heal: same revision, same data on every member.</summary>
public sealed class ReplicaAgreementTests
{
    [Fact]
    public void Members_at_one_revision_with_one_hash_agree()
    {
        Assert.Empty(Compare([new("a", 90, 90, 7), new("b", 90, 90, 7), new("c", 90, 90, 7)]));
    }

    /// <summary>The leader-pause divergence of 2026-12-03: one member held a write nobody else had.</summary>
    [Fact]
    public void A_member_with_other_data_at_the_same_revision_is_a_divergence()
    {
        var violation = Assert.Single(Compare([new("a", 90, 90, 7), new("b", 90, 90, 7), new("c", 90, 90, 8)]));
        Assert.Equal("replica-divergence", violation.Kind);
        Assert.Contains("hash 8 on c", violation.Explanation, StringComparison.Ordinal);
    }

    /// <summary>The member stuck at a snapshot boundary: behind for good although the cluster is quiet.</summary>
    [Fact]
    public void A_member_left_behind_or_silent_is_reported()
    {
        var violations = Compare([new("a", 90, 40, 7), new("b", 90, 40, 7), new("c", 40, 40, 7), new("d", Unanswered, 40, 0)]);
        Assert.All(violations, v => Assert.Equal("replica-behind", v.Kind));
        Assert.Contains(violations, v => v.Explanation.Contains("c stayed at revision 40", StringComparison.Ordinal));
        Assert.Contains(violations, v => v.Explanation.Contains("d did not answer", StringComparison.Ordinal));
    }
}
