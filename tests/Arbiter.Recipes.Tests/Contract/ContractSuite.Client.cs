using Arbiter.Client;
using Grpc.Core;

namespace Arbiter.Recipes.Tests.Contract;

public abstract partial class ContractSuite
{
    [Fact]
    public async Task Client_put_get_delete_and_prefix()
    {
        var client = NewClient();
        await client.PutAsync(Prefix + "a", "1");
        await client.PutAsync(Prefix + "b", "2");
        Assert.Equal("1", await client.GetStringAsync(Prefix + "a"));
        Assert.Null(await client.GetAsync(Prefix + "missing"));
        Assert.Equal(["1", "2"], (await client.GetPrefixAsync(Prefix)).Select(kv => kv.Value.ToStringUtf8()));
        Assert.Equal(1, await client.DeleteAsync(Prefix + "a"));
        Assert.Equal(1, await client.DeletePrefixAsync(Prefix));
        Assert.Empty(await client.GetPrefixAsync(Prefix));
    }

    [Fact]
    public async Task Client_txn_builder_takes_then_or_else_branch()
    {
        var client = NewClient();
        var key = Prefix + "k";
        var first = await client.Txn().If(Cmp.Version(key) == 0).Then(Op.Put(key, "created")).Else(Op.Get(key)).CommitAsync();
        Assert.True(first.Succeeded);
        var second = await client.Txn().If(Cmp.Version(key) == 0).Then(Op.Put(key, "again")).Else(Op.Get(key)).CommitAsync();
        Assert.False(second.Succeeded);
        Assert.Equal("created", second.Responses[0].ResponseRange.Kvs[0].Value.ToStringUtf8());
        var byValue = await client.Txn().If(Cmp.Value(key) == "created").Then(Op.Put(key, "changed")).CommitAsync();
        Assert.True(byValue.Succeeded);
        Assert.Equal("changed", await client.GetStringAsync(key));
    }

    [Fact]
    public async Task Client_watch_streams_events_in_order_from_a_revision()
    {
        var client = NewClient();
        var start = await client.PutAsync(Prefix + "w", "0");
        await client.PutAsync(Prefix + "w", "1");
        await client.DeleteAsync(Prefix + "w");
        var events = new List<WatchEvent>();
        await foreach (var e in client.WatchAsync(Prefix, new WatchOptions { Prefix = true, StartRevision = start.Header.Revision }).Within())
        {
            events.Add(e);
            if (events.Count == 3)
            {
                break;
            }
        }

        Assert.Equal([WatchEventKind.Put, WatchEventKind.Put, WatchEventKind.Delete], events.Select(e => e.Kind));
        Assert.Equal(["0", "1", string.Empty], events.Select(e => e.Value));
        Assert.True(events[0].Revision < events[1].Revision && events[1].Revision < events[2].Revision);
    }

    [Fact]
    public async Task Client_watch_from_a_compacted_revision_throws_typed_exception()
    {
        var client = NewClient();
        var first = await client.PutAsync(Prefix + "c", "0");
        var last = await client.PutAsync(Prefix + "c", "1");
        await client.CompactAsync(last.Header.Revision);
        var e = await Assert.ThrowsAsync<WatchCompactedException>(async () =>
        {
            await foreach (var _ in client.WatchAsync(Prefix + "c", new WatchOptions { StartRevision = first.Header.Revision }).Within())
            {
            }
        });
        Assert.Equal(last.Header.Revision, e.CompactRevision);
    }

    [Fact]
    public async Task Client_session_keeps_its_lease_alive_past_the_ttl_and_revokes_on_dispose()
    {
        var client = NewClient();
        var session = await client.CreateSessionAsync(TimeSpan.FromSeconds(2));
        await client.PutAsync(Prefix + "s", "x", session.LeaseId);

        // Wait until the server reports a renewal (remaining TTL back near full) after the first TTL third.
        var granted = DateTime.UtcNow;
        await TestSupport.EventuallyAsync(async () => DateTime.UtcNow - granted > TimeSpan.FromSeconds(3) && await client.TimeToLiveAsync(session.LeaseId) > 0, TestSupport.Deadline, "3 s of life on a 2 s lease");
        Assert.False(session.IsLost);
        Assert.NotNull(await client.GetAsync(Prefix + "s"));
        await session.DisposeAsync();
        Assert.Null(await client.GetAsync(Prefix + "s"));
    }

    [Fact]
    public async Task Client_session_lost_token_fires_when_the_lease_is_revoked_elsewhere()
    {
        var client = NewClient();
        await using var session = await client.CreateSessionAsync(TimeSpan.FromSeconds(3));
        var lost = new TaskCompletionSource();
        session.LostToken.Register(() => lost.TrySetResult());
        await NewClient().RevokeLeaseAsync(session.LeaseId);
        await lost.Task.Within();
        Assert.True(session.IsLost);
    }

    [Fact]
    public async Task Client_unknown_leases_and_errors_match_etcd()
    {
        var client = NewClient();
        Assert.Equal(0, await client.KeepAliveOnceAsync(0x7fff_0000_0000_0001));
        Assert.Equal(-1, await client.TimeToLiveAsync(0x7fff_0000_0000_0001));
        var future = await Assert.ThrowsAsync<RpcException>(() => client.RangeAsync(new Protocol.Etcd.RangeRequest { Key = Keys.From(Prefix), Revision = 1_000_000_000 }));
        Assert.Equal(StatusCode.OutOfRange, future.StatusCode);
        Assert.Equal("etcdserver: mvcc: required revision is a future revision", future.Status.Detail);
    }
}
