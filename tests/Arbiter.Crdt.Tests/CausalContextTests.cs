using Arbiter.Crdt.Causal;
using CsCheck;

namespace Arbiter.Crdt.Tests;

/// <summary>The causal context's incremental union agrees with building the context from scratch, and stays normalized.</summary>
public sealed class CausalContextTests(ITestOutputHelper output)
{
    private static readonly Gen<(KeyValuePair<ulong, ulong>[] Versions, Dot[] Dots)> Contexts =
        Gen.Select(
            Gen.Select(Gen.ULong[1, 4], Gen.ULong[0, 12]).Select(t => new KeyValuePair<ulong, ulong>(t.Item1, t.Item2)).Array[0, 4],
            Gen.Select(Gen.ULong[1, 4], Gen.ULong[1, 30]).Select(t => new Dot(t.Item1, t.Item2)).Array[0, 12]);

    [Fact]
    public void UnionEqualsTheContextOfAllDots() =>
        Property.Check(Gen.Select(Contexts, Contexts), input =>
        {
            var ((leftVersions, leftDots), (rightVersions, rightDots)) = input;
            var left = CausalContext.Create(leftVersions, leftDots);
            var right = CausalContext.Create(rightVersions, rightDots);
            var expected = CausalContext.Create(leftVersions.Concat(rightVersions), leftDots.Concat(rightDots));
            foreach (var union in new[] { left.Union(right), right.Union(left) })
            {
                Assert.Equal(expected.Versions.ToArray(), union.Versions.ToArray());
                Assert.Equal(expected.Cloud.ToArray(), union.Cloud.ToArray());
                foreach (var (replica, seq) in union.Versions)
                {
                    Assert.DoesNotContain(new Dot(replica, seq + 1), union.Cloud);
                    Assert.True(seq > 0);
                }

                for (ulong replica = 1; replica <= 4; replica++)
                {
                    for (ulong seq = 1; seq <= 31; seq++)
                    {
                        var dot = new Dot(replica, seq);
                        Assert.Equal(left.Contains(dot) || right.Contains(dot), union.Contains(dot));
                    }
                }
            }
        }, output, cases: 400);
}
