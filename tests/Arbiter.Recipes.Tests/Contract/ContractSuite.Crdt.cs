using Arbiter.Client.Crdt;
using Arbiter.Protocol.Crdt;

namespace Arbiter.Recipes.Tests.Contract;

/// <summary>The eventual tier's typed SDK on every backend; on a real etcd it refuses plainly.</summary>
public abstract partial class ContractSuite
{
    [Fact]
    public async Task Crdt_counter_set_and_register_through_the_typed_client_or_not_supported_on_etcd()
    {
        var client = NewClient();
        var likes = client.Crdt.Counter(Prefix + "likes");
        if (IsEtcd)
        {
            var refused = await Assert.ThrowsAsync<NotSupportedException>(() => likes.IncrementAsync());
            Output.WriteLine(refused.Message);
            return;
        }

        // Read-your-writes on the member the client talks to; majority writes reach 2 of 3 in a cluster.
        await likes.IncrementAsync();
        await likes.AddAsync(4, new CrdtCallOptions { Write = CrdtWriteLevel.WriteMajority });
        Assert.Equal(5, await likes.GetAsync(new CrdtCallOptions { Read = CrdtReadLevel.ReadMajority }));

        var cart = client.Crdt.Set(Prefix + "cart");
        await cart.AddAsync("book", "pen");
        await cart.RemoveAsync("pen");
        Assert.Equal(["book"], await cart.GetStringsAsync());

        var name = client.Crdt.LwwRegister(Prefix + "name");
        await name.SetAsync("first");
        await name.SetAsync("second");
        Assert.Equal("second", await name.GetStringAsync());
        Assert.NotNull(client.Crdt.CausalToken);

        // The watch starts with the current value and follows changes.
        using var watching = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        var seen = new System.Collections.Concurrent.ConcurrentQueue<long>();
        var watch = Task.Run(async () =>
        {
            await foreach (var value in client.Crdt.WatchAsync(Prefix + "likes", watching.Token))
            {
                seen.Enqueue(value.Counter);
                if (value.Counter == 6)
                {
                    return;
                }
            }
        });
        await TestSupport.EventuallyAsync(() => Task.FromResult(!seen.IsEmpty), TestSupport.Deadline, "the watch's first value");
        await likes.IncrementAsync();
        await watch.WaitAsync(TimeSpan.FromSeconds(30));
        Assert.Equal(5, seen.First());
        Assert.Equal(6, seen.Last());
    }
}
