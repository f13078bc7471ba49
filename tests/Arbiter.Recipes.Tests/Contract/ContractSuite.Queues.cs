using System.Threading.RateLimiting;

namespace Arbiter.Recipes.Tests.Contract;

public abstract partial class ContractSuite
{
    [Fact]
    public async Task Queue_is_fifo_and_a_waiting_consumer_wakes_on_enqueue()
    {
        var queue = new DistributedQueue(NewClient(), Prefix + "q");
        foreach (var v in new[] { "a", "b", "c" })
        {
            await queue.EnqueueAsync(v);
        }

        Assert.Equal("a", await queue.TryDequeueAsync(TimeSpan.Zero));
        Assert.Equal("b", await queue.TryDequeueAsync(TimeSpan.Zero));
        Assert.Equal("c", await queue.TryDequeueAsync(TimeSpan.Zero));
        Assert.Null(await queue.TryDequeueAsync(TimeSpan.FromMilliseconds(200)));
        var waiting = new DistributedQueue(NewClient(), Prefix + "q").TryDequeueAsync(TestSupport.Deadline);
        await queue.EnqueueAsync("d");
        Assert.Equal("d", await waiting.Within());
    }

    [Fact]
    public async Task Queue_concurrent_consumers_take_each_item_once()
    {
        var queue = new DistributedQueue(NewClient(), Prefix + "q");
        for (var i = 0; i < 20; i++)
        {
            await queue.EnqueueAsync(i.ToString(System.Globalization.CultureInfo.InvariantCulture));
        }

        var taken = new System.Collections.Concurrent.ConcurrentBag<string>();
        await Task.WhenAll(Enumerable.Range(0, 3).Select(_ => Task.Run(async () =>
        {
            var consumer = new DistributedQueue(NewClient(), Prefix + "q");
            while (await consumer.TryDequeueAsync(TimeSpan.Zero) is { } item)
            {
                taken.Add(item);
            }
        }))).Within();
        Assert.Equal(20, taken.Count);
        Assert.Equal(20, taken.Distinct().Count());
    }

    [Fact]
    public async Task Queue_claim_returns_abandoned_or_expired_items_and_complete_removes()
    {
        var client = NewClient();
        var queue = new DistributedQueue(client, Prefix + "q");
        await queue.EnqueueAsync("job1");
        await queue.EnqueueAsync("job2");
        var crashed = await client.CreateSessionAsync(TimeSpan.FromSeconds(10));
        var claim1 = await queue.TryClaimAsync(crashed, TimeSpan.Zero);
        Assert.Equal("job1", claim1!.Value);

        await using var worker = await NewClient().CreateSessionAsync(TimeSpan.FromSeconds(10));
        var other = new DistributedQueue(NewClient(), Prefix + "q");
        await using (var claim2 = await other.TryClaimAsync(worker, TimeSpan.Zero))
        {
            Assert.Equal("job2", claim2!.Value);
            Assert.Null(await other.TryClaimAsync(worker, TimeSpan.Zero));
        }

        // job2 was abandoned (dispose without complete): it is handed out again.
        var again = await other.TryClaimAsync(worker, TimeSpan.Zero);
        Assert.Equal("job2", again!.Value);
        Assert.True(await again.CompleteAsync());

        // The first consumer "dies": its lease goes, its claim with it, and job1 returns.
        var waiting = other.TryClaimAsync(worker, TestSupport.Deadline);
        await NewClient().RevokeLeaseAsync(crashed.LeaseId);
        var reclaimed = await waiting.Within();
        Assert.Equal("job1", reclaimed!.Value);
        Assert.False(await claim1.CompleteAsync());
        Assert.True(await reclaimed.CompleteAsync());
        Assert.Equal(0, await queue.CountAsync());
        await crashed.DisposeAsync();
    }

    [Fact]
    public async Task Bounded_queue_waits_for_room()
    {
        var queue = new DistributedQueue(NewClient(), Prefix + "bq", capacity: 2);
        Assert.True(await queue.TryEnqueueAsync("1", TimeSpan.Zero));
        Assert.True(await queue.TryEnqueueAsync("2", TimeSpan.Zero));
        Assert.False(await queue.TryEnqueueAsync("3", TimeSpan.FromMilliseconds(200)));
        var blocked = new DistributedQueue(NewClient(), Prefix + "bq", capacity: 2).TryEnqueueAsync("3", TestSupport.Deadline);
        Assert.Equal("1", await queue.TryDequeueAsync(TimeSpan.Zero));
        Assert.True(await blocked.Within());
        Assert.Equal(2, await queue.CountAsync());
        Assert.Equal("2", await queue.TryDequeueAsync(TimeSpan.Zero));
        Assert.Equal("3", await queue.TryDequeueAsync(TimeSpan.Zero));
    }

    [Fact]
    public async Task RateLimiters_concurrency_over_semaphore_and_token_bucket()
    {
        using var limiter = new DistributedConcurrencyLimiter(new DistributedSemaphore(NewClient(), Prefix + "lim", 1), TimeSpan.FromMilliseconds(200));
        using (var first = await limiter.AcquireAsync())
        {
            Assert.True(first.IsAcquired);
            using var second = await limiter.AcquireAsync();
            Assert.False(second.IsAcquired);
        }

        using var third = await limiter.AcquireAsync();
        Assert.True(third.IsAcquired);

        var time = new ManualTime(DateTimeOffset.UnixEpoch.AddDays(20000));
        var bucket = new DistributedTokenBucket(NewClient(), Prefix + "bucket", capacity: 3, tokensPerSecond: 1, time);
        Assert.True(await bucket.TryTakeAsync(3));
        Assert.False(await bucket.TryTakeAsync());
        time.Advance(TimeSpan.FromSeconds(1));
        Assert.True(await bucket.TryTakeAsync());
        Assert.False(await bucket.TryTakeAsync());
        time.Advance(TimeSpan.FromSeconds(100));
        Assert.True(await bucket.TryTakeAsync(3));
        Assert.False(await bucket.TryTakeAsync());
    }

    private sealed class ManualTime(DateTimeOffset start) : TimeProvider
    {
        private DateTimeOffset _now = start;

        public override DateTimeOffset GetUtcNow() => _now;

        public void Advance(TimeSpan by) => _now += by;
    }
}
