using Arbiter.Core.Mvcc;
using Xunit.Abstractions;

namespace Arbiter.Core.Tests.Mvcc;

/// <summary>
/// <see cref="ChunkedList{T}"/> against <see cref="List{T}"/> as the model: seeded random appends
/// and prefix removals across chunk boundaries. Replay one seed with ARBITER_TEST_SEED=n.
/// </summary>
public class ChunkedListTests(ITestOutputHelper output)
{
    [Theory]
    [MemberData(nameof(ModelTests.Seeds), MemberType = typeof(ModelTests))]
    public void MatchesAListUnderRandomAppendsAndPrefixRemovals(int seed)
    {
        output.WriteLine($"seed {seed} (replay with ARBITER_TEST_SEED={seed})");
        var rng = new Random(seed);
        var list = new ChunkedList<long>();
        var model = new List<long>();
        long next = 0;
        for (var step = 0; step < 400; step++)
        {
            var context = $"seed {seed} step {step}";
            // Appends of up to 3 chunks at a time, so appends and removals both cross chunk edges.
            var appends = rng.Next(0, 3_000);
            for (var i = 0; i < appends; i++)
            {
                list.Add(next);
                model.Add(next++);
            }

            var removals = rng.Next(0, 4) switch
            {
                0 => model.Count, // everything
                1 => 0,
                _ => rng.Next(0, model.Count + 1),
            };
            list.RemoveFirst(removals);
            model.RemoveRange(0, removals);

            Assert.True(model.Count == list.Count, $"{context}: count {list.Count}, expected {model.Count}");
            for (var i = 0; i < model.Count; i += 1 + rng.Next(0, 64))
            {
                Assert.True(model[i] == list[i], $"{context}: [{i}] = {list[i]}, expected {model[i]}");
            }

            if (model.Count > 0)
            {
                Assert.True(model[^1] == list.Last, $"{context}: last {list.Last}, expected {model[^1]}");
                Assert.True(model[0] == list[0], $"{context}: first {list[0]}, expected {model[0]}");
            }

            var cut = model.Count == 0 ? 0 : model[rng.Next(0, model.Count)];
            Assert.Equal(model.TakeWhile(v => v < cut), list.TakeWhile(v => v < cut));
        }
    }

    [Fact]
    public void RefusesIndexesAndRemovalsOutOfRange()
    {
        var list = new ChunkedList<int>();
        list.Add(1);
        Assert.Throws<ArgumentOutOfRangeException>(() => list[1]);
        Assert.Throws<ArgumentOutOfRangeException>(() => list[-1]);
        Assert.Throws<ArgumentOutOfRangeException>(() => list.RemoveFirst(2));
        Assert.Equal(1, list.Count);
    }
}
