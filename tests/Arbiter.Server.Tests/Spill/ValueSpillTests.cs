using Arbiter.Node;
using Arbiter.Protocol.Etcd;
using Google.Protobuf;

namespace Arbiter.Server.Tests.Spill;

/// <summary>
/// A node with a data directory pages its versions out to unlinked files (FileValueSpill): every
/// revision still reads back exactly, across restarts from the log and from snapshots, with and
/// without the spill's copy of the bytes paged out last; nothing is left in the data directory,
/// and compaction gives the space back.
/// </summary>
public sealed class ValueSpillTests : IDisposable
{
    private readonly string _directory = Path.Combine(Path.GetTempPath(), "arbiter-spill-" + Guid.NewGuid().ToString("N"));

    private static ByteString B(string s) => ByteString.CopyFromUtf8(s);

    private static ByteString Value(int key, int version, int sizeBytes) =>
        ByteString.CopyFrom(Enumerable.Range(0, sizeBytes).Select(i => (byte)((key * 31) + (version * 7) + i)).ToArray());

    [Theory]
    [InlineData(Arbiter.Node.Spill.FileValueSpill.DefaultRecentSizeBytes)]
    [InlineData(0)]
    public async Task Old_revisions_read_back_exactly_from_the_spill_across_restarts(int recentSizeBytes)
    {
        var writes = new List<(long Revision, string Key, ByteString Value)>();
        var options = new NodeOptions { DataDirectory = _directory, SnapshotEveryEntries = 64, RecentValuesCacheSizeBytes = recentSizeBytes };
        long memoryHash;
        await using (var twin = await ArbiterNode.StartAsync(new NodeOptions { DataDirectory = _directory + "-twin", KeepHistoryInMemory = true }))
        await using (var node = await ArbiterNode.StartAsync(options))
        {
            for (var version = 0; version < 12; version++)
            {
                for (var key = 0; key < 10; key++)
                {
                    var value = Value(key, version, 300);
                    var put = await node.PutAsync(new PutRequest { Key = B($"k{key}"), Value = value });
                    await twin.PutAsync(new PutRequest { Key = B($"k{key}"), Value = value });
                    writes.Add((put.Header.Revision, $"k{key}", value));
                }

                await node.DeleteRangeAsync(new DeleteRangeRequest { Key = B($"k{version % 10}") });
                await twin.DeleteRangeAsync(new DeleteRangeRequest { Key = B($"k{version % 10}") });
            }

            Assert.True(node.ValueSpillAppendedBytes > 100 * 300, $"only {node.ValueSpillAppendedBytes} bytes were spilled");
            Assert.Equal(0, twin.ValueSpillAppendedBytes);
            Assert.Empty(Directory.EnumerateFiles(Path.Combine(_directory, "member", "spill")));
            memoryHash = (await twin.HashKvAsync(new HashKVRequest())).Hash;
            Assert.Equal(memoryHash, (await node.HashKvAsync(new HashKVRequest())).Hash);
            await AssertHistoryAsync(node, writes);
        }

        // Restarted: from the newest snapshot (every 64 entries) and the log after it.
        await using (var node = await ArbiterNode.StartAsync(options))
        {
            Assert.True(node.ValueSpillAppendedBytes > 100 * 300, $"only {node.ValueSpillAppendedBytes} bytes were spilled after the restart");
            Assert.Equal(memoryHash, (await node.HashKvAsync(new HashKVRequest())).Hash);
            await AssertHistoryAsync(node, writes);
        }
    }

    [Fact]
    public async Task Compaction_gives_the_spill_files_space_back()
    {
        await using var node = await ArbiterNode.StartAsync(new NodeOptions { DataDirectory = _directory });

        // 40 versions of 1 MiB superseded: two 32 MiB segments, one of them full.
        var value = Value(1, 1, 1 << 20);
        PutResponse? last = null;
        for (var i = 0; i < 41; i++)
        {
            last = await node.PutAsync(new PutRequest { Key = B("big"), Value = value });
        }

        Assert.True(node.ValueSpillAppendedBytes > 40L << 20);
        Assert.Equal(node.ValueSpillAppendedBytes, node.ValueSpillLiveBytes);
        Assert.Equal(2, OpenSpillSegments());

        await node.CompactAsync(new CompactionRequest { Revision = last!.Header.Revision });
        await Infrastructure.Eventually.TrueAsync(
            () =>
            {
                GC.Collect();
                GC.WaitForPendingFinalizers();
                return Task.FromResult(OpenSpillSegments() == 1 && node.ValueSpillLiveBytes < 16L << 20);
            },
            TimeSpan.FromSeconds(10),
            "the full segment, which compaction left without versions, is closed and no longer counted (only the active one stays open)");
    }

    public void Dispose()
    {
        foreach (var directory in new[] { _directory, _directory + "-twin" })
        {
            if (Directory.Exists(directory))
            {
                Directory.Delete(directory, recursive: true);
            }
        }
    }

    private static async Task AssertHistoryAsync(ArbiterNode node, List<(long Revision, string Key, ByteString Value)> writes)
    {
        foreach (var (revision, key, value) in writes)
        {
            var range = await node.RangeAsync(new RangeRequest { Key = B(key), Revision = revision });
            Assert.Equal(value, Assert.Single(range.Kvs).Value);
        }
    }

    /// <summary>This process's open, unlinked spill files (Linux: /proc/self/fd).</summary>
    private int OpenSpillSegments()
    {
        var spill = Path.Combine(_directory, "member", "spill");
        var count = 0;
        foreach (var fd in Directory.EnumerateFileSystemEntries("/proc/self/fd"))
        {
            try
            {
                if (new FileInfo(fd).LinkTarget is { } target && target.StartsWith(spill, StringComparison.Ordinal) && target.EndsWith("(deleted)", StringComparison.Ordinal))
                {
                    count++;
                }
            }
            catch (IOException)
            {
                // The descriptor closed while it was listed.
            }
        }

        return count;
    }
}
