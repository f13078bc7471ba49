using Arbiter.Client;
using Arbiter.Node;
using Arbiter.Protocol.Etcd;
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
