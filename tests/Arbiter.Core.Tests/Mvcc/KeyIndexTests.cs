using Arbiter.Core.Mvcc;
using Google.Protobuf;
using Xunit.Abstractions;

namespace Arbiter.Core.Tests.Mvcc;

/// <summary>The key index (a treap whose nodes are the key records) against a sorted set, seeded: replay one seed with ARBITER_TEST_SEED=n.</summary>
public class KeyIndexTests(ITestOutputHelper output)
{
    public static TheoryData<int> Seeds() => TestSeeds.FromEnvironmentOr(1, 2, 3);

    [Theory]
    [MemberData(nameof(Seeds))]
    public void Adds_removals_and_ranges_match_a_sorted_set(int seed)
    {
        output.WriteLine($"seed {seed} (replay with ARBITER_TEST_SEED={seed})");
        var rng = new Random(seed);
        var index = new KeyIndex();
        var model = new SortedSet<string>(StringComparer.Ordinal);
        var removed = new List<KeyRecord>();
        for (var step = 0; step < 5000; step++)
        {
            var key = $"k{rng.Next(400):D3}";
            if (rng.Next(3) == 0)
            {
                if (index.Get(Bytes(key)) is { } record)
                {
                    Assert.True(index.Remove(record), $"step {step}: remove {key}");
                    removed.Add(record);
                }

                Assert.False(index.Remove(new KeyRecord(Bytes(key))), $"step {step}: a record not in the index was removed");
                model.Remove(key);
            }
            else
            {
                var record = index.GetOrAdd(Bytes(key));
                Assert.Same(record, index.GetOrAdd(Bytes(key)));
                model.Add(key);
            }

            Assert.Equal(model.Count, index.Count);
            if (step % 250 == 0)
            {
                var from = $"k{rng.Next(400):D3}";
                var to = $"k{rng.Next(400):D3}";
                Assert.Equal(model.ToList(), index.Range(ByteString.Empty, null).Select(r => r.Key.ToStringUtf8()).ToList());
                Assert.Equal(
                    model.Where(k => string.CompareOrdinal(k, from) >= 0 && string.CompareOrdinal(k, to) < 0).ToList(),
                    index.Range(Bytes(from), Bytes(to)).Select(r => r.Key.ToStringUtf8()).ToList());
            }
        }

        // A removed record (the event history may still hold it) keeps no part of the tree alive.
        Assert.NotEmpty(removed);
        Assert.All(removed, r => Assert.True(r.TreapLeft is null && r.TreapRight is null));
    }

    private static ByteString Bytes(string key) => ByteString.CopyFromUtf8(key);
}
