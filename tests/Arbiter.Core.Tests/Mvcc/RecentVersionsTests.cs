using Arbiter.Core.Mvcc;
using Arbiter.Protocol.Mvcc;
using Google.Protobuf;

namespace Arbiter.Core.Tests.Mvcc;

public class RecentVersionsTests
{
    private static KeyValue Version(int i) => new()
    {
        Key = ByteString.CopyFromUtf8($"key-{i}"),
        Value = ByteString.CopyFrom(new byte[100]),
        CreateRevision = 2,
        ModRevision = 2 + i,
        Version = 1 + i,
    };

    [Fact]
    public void KeepsTheVersionsWrittenLastWithinItsBudget()
    {
        var spill = new MemoryValueSpill();
        var recent = new RecentVersions(2048);
        var written = Enumerable.Range(0, 100).Select(Version).ToArray();
        var stored = written.Select(kv => ((StoredVersion)kv).SpillTo(spill, recent)).ToArray();

        Assert.All(stored, s => Assert.True(s.IsSpilled));
        Assert.InRange(recent.SizeBytes, 1, recent.SizeBytesMax);
        Assert.InRange(recent.Count, 2, 20);

        // The last ones read back as the very key-values written; the others from the spill, equal.
        var cachedFrom = stored.Length - recent.Count;
        for (var i = 0; i < stored.Length; i++)
        {
            var loaded = stored[i].Load();
            Assert.Equal(written[i], loaded);
            Assert.Equal(i >= cachedFrom, ReferenceEquals(written[i], loaded));
        }

        Assert.Equal(cachedFrom, spill.Reads);
    }

    [Fact]
    public void CachesNothingLargerThanItsBudget()
    {
        var spill = new MemoryValueSpill();
        var recent = new RecentVersions(100);
        var kv = Version(1);
        var stored = ((StoredVersion)kv).SpillTo(spill, recent);
        Assert.Equal(0, recent.Count);
        Assert.False(ReferenceEquals(kv, stored.Load()));
    }
}
