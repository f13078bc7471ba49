using Arbiter.Protocol.Etcd;
using Arbiter.Protocol.Mvcc;
using Google.Protobuf;
using Grpc.Core;
using Grpc.Net.Client;

namespace Arbiter.Compatibility.Tests.Fixtures;

/// <summary>A store with history (versions, a delete and re-create, a lease, a compaction) and a comparison of two stores, for backup and restore tests.</summary>
public static class StoreHistory
{
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(30);

    /// <summary>
    /// Keys over several revisions (several versions of one, a delete, a re-create), a lease with a key
    /// attached, and a compaction: returns the final revision, the compacted one and the lease id.
    /// </summary>
    public static async Task<(long Revision, long Compacted, long LeaseId)> WriteAsync(string endpoint)
    {
        using var channel = GrpcChannel.ForAddress(endpoint);
        var kv = new KV.KVClient(channel);
        var lease = new Lease.LeaseClient(channel);
        async Task<long> Put(string key, string value, long leaseId = 0) =>
            (await kv.PutAsync(new PutRequest { Key = Utf8(key), Value = Utf8(value), Lease = leaseId }, deadline: DateTime.UtcNow + Deadline)).Header.Revision;

        for (var i = 0; i < 5; i++)
        {
            await Put("app/config", $"v{i}");
            await Put($"app/item/{i}", $"item {i}");
        }

        var compacted = await Put("app/doomed", "x");
        await kv.DeleteRangeAsync(new DeleteRangeRequest { Key = Utf8("app/doomed") }, deadline: DateTime.UtcNow + Deadline);
        await Put("app/doomed", "back");
        await Put("bin/\u00ff\u0001", "binary key");
        var granted = await lease.LeaseGrantAsync(new LeaseGrantRequest { TTL = 600 }, deadline: DateTime.UtcNow + Deadline);
        await Put("app/session", "held", granted.ID);
        await kv.CompactAsync(new CompactionRequest { Revision = compacted, Physical = true }, deadline: DateTime.UtcNow + Deadline);
        await Put("app/config", "latest");
        var revision = await Put("app/item/0", "updated");
        return (revision, compacted, granted.ID);
    }

    /// <summary>Both stores read the same: every key at the head and at each revision since the compaction, the leases, the compaction itself.</summary>
    public static async Task AssertSameAsync(string expectedEndpoint, string actualEndpoint, long revision, long compacted, long leaseId, bool serializable = false)
    {
        for (var at = compacted; at <= revision; at++)
        {
            var expected = await ReadAllAsync(expectedEndpoint, at);
            var actual = await ReadAllAsync(actualEndpoint, at, serializable);
            Assert.Equal(DescribeAll(expected), DescribeAll(actual));
        }

        var head = await ReadAllAsync(actualEndpoint, 0, serializable);
        Assert.Equal(DescribeAll(await ReadAllAsync(expectedEndpoint, 0)), DescribeAll(head));
        Assert.Contains(head, kv => kv.Lease == leaseId);
        using var channel = GrpcChannel.ForAddress(actualEndpoint);
        var kvClient = new KV.KVClient(channel);
        var range = await kvClient.RangeAsync(new RangeRequest { Key = Utf8("\0"), RangeEnd = Utf8("\0"), Serializable = serializable }, deadline: DateTime.UtcNow + Deadline);
        Assert.Equal(revision, range.Header.Revision);
        var old = await Assert.ThrowsAsync<RpcException>(async () => await kvClient.RangeAsync(new RangeRequest { Key = Utf8("app/config"), Revision = compacted - 1, Serializable = serializable }, deadline: DateTime.UtcNow + Deadline));
        Assert.Contains("compacted", old.Status.Detail, StringComparison.Ordinal);
        var lease = new Lease.LeaseClient(channel);
        // Lease reads go through a cluster's leader: a leader change after a restore is no failure.
        var leases = await LeaderLossRetry.RetryAsync("lease list", () => lease.LeaseLeasesAsync(new LeaseLeasesRequest(), deadline: DateTime.UtcNow + Deadline).ResponseAsync);
        Assert.Equal([leaseId], leases.Leases.Select(l => l.ID));
        var ttl = await LeaderLossRetry.RetryAsync("lease time to live", () => lease.LeaseTimeToLiveAsync(new LeaseTimeToLiveRequest { ID = leaseId, Keys = true }, deadline: DateTime.UtcNow + Deadline).ResponseAsync);
        Assert.Equal((600L, Utf8("app/session")), (ttl.GrantedTTL, ttl.Keys.Single()));
    }

    public static async Task<List<KeyValue>> ReadAllAsync(string endpoint, long revision, bool serializable = false)
    {
        using var channel = GrpcChannel.ForAddress(endpoint);
        var response = await new KV.KVClient(channel).RangeAsync(new RangeRequest { Key = Utf8("\0"), RangeEnd = Utf8("\0"), Revision = revision, Serializable = serializable }, deadline: DateTime.UtcNow + Deadline);
        return [.. response.Kvs];
    }

    public static List<string> DescribeAll(IEnumerable<KeyValue> kvs) =>
        [.. kvs.Select(kv => $"{Convert.ToHexString(kv.Key.Span)}={Convert.ToHexString(kv.Value.Span)} create {kv.CreateRevision} mod {kv.ModRevision} version {kv.Version} lease {kv.Lease}")];

    private static ByteString Utf8(string text) => ByteString.CopyFromUtf8(text);
}
