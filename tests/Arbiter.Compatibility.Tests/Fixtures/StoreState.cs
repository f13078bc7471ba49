using Arbiter.Protocol.Etcd;
using Google.Protobuf;

namespace Arbiter.Compatibility.Tests.Fixtures;

/// <summary>Everything a client can see of the keyspace: revision and all key-values (as JSON).</summary>
public sealed record StoreState(long Revision, string KvsJson)
{
    /// <summary>key "\0" with range_end "\0" selects every key.</summary>
    public static async Task<StoreState> ReadAsync(KV.KVClient kv)
    {
        var all = await kv.RangeAsync(new RangeRequest { Key = ByteString.CopyFrom(0), RangeEnd = ByteString.CopyFrom(0) });
        var kvs = string.Join('\n', all.Kvs.Select(k => JsonFormatter.Default.Format(k)));
        return new StoreState(all.Header.Revision, kvs);
    }
}
