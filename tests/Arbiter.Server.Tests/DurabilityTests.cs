using Arbiter.Client;
using Arbiter.Embedded;
using Arbiter.Node;
using Arbiter.Protocol.Etcd;
using Arbiter.Server.Tests.Infrastructure;
using Google.Protobuf;

namespace Arbiter.Server.Tests;

/// <summary>An embedded node on disk: state survives a restart, through snapshots and log replay.</summary>
public sealed class DurabilityTests : IDisposable
{
    private readonly string _directory = Path.Combine(Path.GetTempPath(), "arbiter-durability-" + Guid.NewGuid().ToString("N"));

    private static ByteString B(string s) => ByteString.CopyFromUtf8(s);

    [Fact]
    public async Task RestartRecoversEveryAcknowledgedWriteAcrossSnapshots()
    {
        var options = new NodeOptions { DataDirectory = _directory, SnapshotEveryEntries = 50 };
        long revision;
        await using (var client = await EmbeddedArbiterClient.StartAsync(options))
        {
            await client.LeaseGrantAsync(new LeaseGrantRequest { ID = 99, TTL = 3600 });
            var writes = Enumerable.Range(0, 300).Select(i => client.PutAsync(new PutRequest { Key = B($"k/{i:D4}"), Value = B($"v{i}"), Lease = i % 10 == 0 ? 99 : 0 }));
            await Task.WhenAll(writes);
            await client.DeleteRangeAsync(new DeleteRangeRequest { Key = B("k/0000") });
            revision = (await client.RangeAsync(new RangeRequest { Key = B("k/"), RangeEnd = B("k0"), CountOnly = true })).Header.Revision;
        }

        await using (var client = await EmbeddedArbiterClient.StartAsync(options))
        {
            var all = await client.RangeAsync(new RangeRequest { Key = B("k/"), RangeEnd = B("k0") });
            Assert.Equal(299, all.Count);
            Assert.Equal(revision, all.Header.Revision);
            Assert.Equal("v299", all.Kvs[^1].Value.ToStringUtf8());
            var ttl = await client.LeaseTimeToLiveAsync(new LeaseTimeToLiveRequest { ID = 99, Keys = true });
            Assert.Equal(29, ttl.Keys.Count);
            Assert.Equal(3600, ttl.GrantedTTL);
        }
    }

    [Fact]
    public async Task WritesRacingAStopAreEitherDurableOrRefused()
    {
        // Writers on many threads (so some write the log themselves and some queue behind them)
        // while the node stops: every acknowledged put must be there after a restart.
        var options = new NodeOptions { DataDirectory = _directory, SnapshotEveryEntries = 64 };
        var acknowledged = new System.Collections.Concurrent.ConcurrentBag<int>();
        var node = await ArbiterNode.StartAsync(options);
        var writers = Enumerable.Range(0, 8).Select(w => Task.Run(async () =>
        {
            for (var i = 0; ; i++)
            {
                var n = (w * 100_000) + i;
                try
                {
                    await node.PutAsync(new PutRequest { Key = B($"r/{n:D7}"), Value = B("v") });
                }
                catch (Arbiter.Core.EtcdException)
                {
                    return;
                }

                acknowledged.Add(n);
            }
        })).ToList();
        await Eventually.TrueAsync(() => Task.FromResult(acknowledged.Count >= 400), TimeSpan.FromSeconds(30), "400 acknowledged puts");
        await node.DisposeAsync();
        await Task.WhenAll(writers);

        await using var client = await EmbeddedArbiterClient.StartAsync(options);
        var all = await client.RangeAsync(new RangeRequest { Key = B("r/"), RangeEnd = B("r0"), KeysOnly = true });
        var present = all.Kvs.Select(kv => int.Parse(kv.Key.ToStringUtf8()[2..], System.Globalization.CultureInfo.InvariantCulture)).ToHashSet();
        var lost = acknowledged.Where(n => !present.Contains(n)).ToList();
        Assert.True(lost.Count == 0, $"{lost.Count} acknowledged puts lost, e.g. {string.Join(", ", lost.Take(5))}");
    }

    [Fact]
    public async Task DefragmentReturnsOnceItsSnapshotIsOnDiskWhileWritesGoOn()
    {
        // Snapshots are written in the background; a requested one (Defragment) still answers only
        // once its file is in place, and writes racing it are all kept.
        var options = new NodeOptions { DataDirectory = _directory, SnapshotEveryEntries = 25 };
        var snapshots = Path.Combine(_directory, "member", "wal");
        await using (var node = await ArbiterNode.StartAsync(options))
        {
            var writes = Enumerable.Range(0, 400).Select(i => node.PutAsync(new PutRequest { Key = B($"d/{i:D4}"), Value = B("v") })).ToList();
            await node.DefragmentAsync(new DefragmentRequest(), CancellationToken.None);
            await Task.WhenAll(writes);
            Assert.NotEmpty(Directory.GetFiles(snapshots, "snap-*.snap"));
            await node.PutAsync(new PutRequest { Key = B("last"), Value = B("v") });
            var appliedIndex = (await node.StatusAsync(new StatusRequest())).RaftAppliedIndex;
            await node.DefragmentAsync(new DefragmentRequest(), CancellationToken.None);
            var newest = Directory.GetFiles(snapshots, "snap-*.snap").Max();
            Assert.EndsWith($"{appliedIndex:D20}.snap", newest, StringComparison.Ordinal);
        }

        await using var client = await EmbeddedArbiterClient.StartAsync(options);
        var all = await client.RangeAsync(new RangeRequest { Key = B("d/"), RangeEnd = B("d0"), CountOnly = true });
        Assert.Equal(400, all.Count);
    }

    [Fact]
    public async Task SecondNodeOnTheSameDirectoryIsRefused()
    {
        var options = new NodeOptions { DataDirectory = _directory };
        await using var first = await EmbeddedArbiterClient.StartAsync(options);
        await Assert.ThrowsAnyAsync<IOException>(() => EmbeddedArbiterClient.StartAsync(options));
    }

    public void Dispose()
    {
        if (Directory.Exists(_directory))
        {
            Directory.Delete(_directory, recursive: true);
        }
    }
}
