using Arbiter.Client;

namespace Arbiter.Recipes.Tests.Contract;

public abstract partial class ContractSuite
{
    [Fact]
    public async Task Mutex_key_is_name_slash_lease_hex_and_tokens_grow()
    {
        var client = NewClient();
        var mutex = new DistributedMutex(client, Prefix + "m");
        long first;
        await using (var handle = await mutex.AcquireAsync(TestSupport.Deadline))
        {
            Assert.Equal(Prefix + "m/" + Keys.LeaseHex(handle.Session.LeaseId), handle.Key);
            var kv = await client.GetAsync(handle.Key);
            Assert.Equal(handle.FencingToken, kv!.CreateRevision);
            first = handle.FencingToken;
        }

        await using var again = await mutex.AcquireAsync(TestSupport.Deadline);
        Assert.True(again.FencingToken > first);
    }

    [Fact]
    public async Task Mutex_excludes_and_try_acquire_times_out_with_null_leaving_no_waiter_key()
    {
        var mutex = new DistributedMutex(NewClient(), Prefix + "m");
        await using var held = await mutex.AcquireAsync(TestSupport.Deadline);
        var other = new DistributedMutex(NewClient(), Prefix + "m");
        Assert.Null(await other.TryAcquireAsync());
        Assert.Null(await other.TryAcquireAsync(TimeSpan.FromMilliseconds(300)));
        await Assert.ThrowsAsync<TimeoutException>(() => other.AcquireAsync(TimeSpan.FromMilliseconds(300)));
        Assert.Equal(1, await CountKeysAsync(Prefix + "m/"));
    }

    [Fact]
    public async Task Mutex_cancelled_wait_leaves_no_waiter_key()
    {
        var mutex = new DistributedMutex(NewClient(), Prefix + "m");
        await using var held = await mutex.AcquireAsync(TestSupport.Deadline);
        using var cts = new CancellationTokenSource();
        var waiting = new DistributedMutex(NewClient(), Prefix + "m").AcquireAsync(cancellationToken: cts.Token);
        await TestSupport.EventuallyAsync(async () => await CountKeysAsync(Prefix + "m/") == 2, TestSupport.Deadline, "the waiter's key");
        await cts.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => waiting.Within());
        Assert.Equal(1, await CountKeysAsync(Prefix + "m/"));
    }

    [Fact]
    public async Task Semaphore_and_rwlock_cancelled_or_timed_out_waits_leave_no_waiter_keys()
    {
        await using var permit = await new DistributedSemaphore(NewClient(), Prefix + "s", 1).AcquireAsync(TestSupport.Deadline);
        Assert.Null(await new DistributedSemaphore(NewClient(), Prefix + "s", 1).TryAcquireAsync(TimeSpan.FromMilliseconds(200)));
        using (var cts = new CancellationTokenSource())
        {
            var waiting = new DistributedSemaphore(NewClient(), Prefix + "s", 1).AcquireAsync(cancellationToken: cts.Token);
            await TestSupport.EventuallyAsync(async () => await CountKeysAsync(Prefix + "s/") == 2, TestSupport.Deadline, "semaphore waiter queued");
            await cts.CancelAsync();
            await Assert.ThrowsAnyAsync<OperationCanceledException>(() => waiting.Within());
        }

        Assert.Equal(1, await CountKeysAsync(Prefix + "s/"));

        await using var writer = await new DistributedReaderWriterLock(NewClient(), Prefix + "rw").AcquireWriteLockAsync(TestSupport.Deadline);
        Assert.Null(await new DistributedReaderWriterLock(NewClient(), Prefix + "rw").TryAcquireReadLockAsync(TimeSpan.FromMilliseconds(200)));
        Assert.Null(await new DistributedReaderWriterLock(NewClient(), Prefix + "rw").TryAcquireWriteLockAsync(TimeSpan.FromMilliseconds(200)));
        Assert.Equal(1, await CountKeysAsync(Prefix + "rw/"));
    }

    [Fact]
    public async Task Mutex_grants_in_fifo_order_of_arrival()
    {
        var name = Prefix + "fifo";
        var holder = await new DistributedMutex(NewClient(), name).AcquireAsync(TestSupport.Deadline);
        var order = new List<int>();
        var waiters = new List<Task>();
        for (var i = 0; i < 4; i++)
        {
            var index = i;
            var mutex = new DistributedMutex(NewClient(), name);
            waiters.Add(Task.Run(async () =>
            {
                await using var handle = await mutex.AcquireAsync(TestSupport.Deadline);
                lock (order)
                {
                    order.Add(index);
                }
            }));

            // Arrival order is the order of the waiter keys: wait for each before starting the next.
            await TestSupport.EventuallyAsync(async () => await CountKeysAsync(name + "/") == index + 2, TestSupport.Deadline, $"waiter {index} queued");
        }

        await holder.DisposeAsync();
        await Task.WhenAll(waiters).Within();
        Assert.Equal([0, 1, 2, 3], order);
    }

    [Fact]
    public async Task Mutex_waits_out_an_abandoned_holder_whose_lease_expires()
    {
        // A "crashed" holder: etcd's key format under a lease nobody keeps alive.
        var client = NewClient();
        var lease = await client.GrantLeaseAsync(TimeSpan.FromSeconds(2));
        var name = Prefix + "abandoned";
        var put = await client.PutAsync(name + "/" + Keys.LeaseHex(lease), string.Empty, lease);
        var mutex = new DistributedMutex(NewClient(), name);
        Assert.Null(await mutex.TryAcquireAsync());
        await using var handle = await mutex.AcquireAsync(TestSupport.Deadline);
        Assert.True(handle.FencingToken > put.Header.Revision);
    }

    [Fact]
    public async Task Fenced_write_of_a_holder_whose_lease_is_gone_is_rejected_and_new_token_is_larger()
    {
        // A short TTL so the keep-alive (every TTL/3) notices the loss quickly.
        var stale = await new DistributedMutex(NewClient(), Prefix + "f", new RecipeOptions { SessionTtlSeconds = 3 }).AcquireAsync(TestSupport.Deadline);
        Assert.True(await stale.FencedPutAsync(Prefix + "data", "v1"));

        // Simulate expiry of the holder's lease (what a long pause causes), then a new holder.
        await NewClient().RevokeLeaseAsync(stale.Session.LeaseId);
        await using var fresh = await new DistributedMutex(NewClient(), Prefix + "f").AcquireAsync(TestSupport.Deadline);
        Assert.True(fresh.FencingToken > stale.FencingToken);
        Assert.False(await stale.FencedPutAsync(Prefix + "data", "stale"));
        Assert.True(await fresh.FencedPutAsync(Prefix + "data", "v2"));
        Assert.Equal("v2", await NewClient().GetStringAsync(Prefix + "data"));
        await TestSupport.EventuallyAsync(() => Task.FromResult(stale.HandleLostToken.IsCancellationRequested), TestSupport.Deadline, "stale handle lost");
        await stale.DisposeAsync();
    }

    [Fact]
    public async Task Semaphore_never_exceeds_its_count_under_contention()
    {
        var seed = TestSupport.Seed(Output);
        var random = new Random(seed);
        const int Permits = 2;
        var inside = 0;
        var maxInside = 0;
        var holds = 0;
        var workers = Enumerable.Range(0, 5).Select(w =>
        {
            var semaphore = new DistributedSemaphore(NewClient(), Prefix + "sem", Permits);
            var pauses = Enumerable.Range(0, 4).Select(_ => random.Next(0, 30)).ToArray();
            return Task.Run(async () =>
            {
                foreach (var pause in pauses)
                {
                    await using var permit = await semaphore.AcquireAsync(TestSupport.Deadline);
                    var now = Interlocked.Increment(ref inside);
                    InterlockedMax(ref maxInside, now);
                    Interlocked.Increment(ref holds);
                    await Task.Delay(pause);
                    Interlocked.Decrement(ref inside);
                }
            });
        }).ToArray();
        await Task.WhenAll(workers).Within(TimeSpan.FromSeconds(60));
        Assert.Equal(20, holds);
        Assert.InRange(maxInside, 1, Permits);
        Assert.Equal(0, await CountKeysAsync(Prefix + "sem/"));
    }

    [Fact]
    public async Task Semaphore_admits_in_order_when_permits_are_released_out_of_order()
    {
        // Waiters watch only the MaxCount keys just ahead of them: check that departures from
        // further ahead, and from inside that window, each admit exactly the right waiter.
        const int Permits = 2;
        DistributedSemaphore Make() => new(NewClient(), Prefix + "win", Permits);
        var h0 = await Make().AcquireAsync(TestSupport.Deadline);
        var h1 = await Make().AcquireAsync(TestSupport.Deadline);
        var w2 = Make().AcquireAsync(TestSupport.Deadline);
        await TestSupport.EventuallyAsync(async () => await CountKeysAsync(Prefix + "win/") == 3, TestSupport.Deadline, "w2 queued");
        var w3 = Make().AcquireAsync(TestSupport.Deadline);
        await TestSupport.EventuallyAsync(async () => await CountKeysAsync(Prefix + "win/") == 4, TestSupport.Deadline, "w3 queued");
        Assert.False(w2.IsCompleted);
        Assert.False(w3.IsCompleted);

        await h0.DisposeAsync(); // outside w3's window: admits w2 only
        var p2 = await w2.Within();
        Assert.True(p2.FencingToken > h1.FencingToken);
        Assert.False(w3.IsCompleted);

        await p2.DisposeAsync(); // inside w3's window while h1 stays: admits w3
        await using var p3 = await w3.Within();
        Assert.True(p3.FencingToken > p2.FencingToken);
        Assert.Equal(2, await CountKeysAsync(Prefix + "win/"));
        await h1.DisposeAsync();
    }

    [Fact]
    public async Task Semaphore_permit_of_a_lost_holder_returns()
    {
        var semaphore = new DistributedSemaphore(NewClient(), Prefix + "sem", 1);
        var crashed = await semaphore.AcquireAsync(TestSupport.Deadline);
        var waiter = new DistributedSemaphore(NewClient(), Prefix + "sem", 1).AcquireAsync(TestSupport.Deadline);
        await TestSupport.EventuallyAsync(async () => await CountKeysAsync(Prefix + "sem/") == 2, TestSupport.Deadline, "waiter queued");
        Assert.False(waiter.IsCompleted);
        await NewClient().RevokeLeaseAsync(crashed.Session.LeaseId);
        await using var permit = await waiter.Within();
        await crashed.DisposeAsync();
    }

    [Fact]
    public async Task ReaderWriterLock_readers_share_writers_exclude_and_a_waiting_writer_blocks_new_readers()
    {
        var name = Prefix + "rw";
        var reader1 = await new DistributedReaderWriterLock(NewClient(), name).AcquireReadLockAsync(TestSupport.Deadline);
        await using var reader2 = await new DistributedReaderWriterLock(NewClient(), name).AcquireReadLockAsync(TestSupport.Deadline);
        Assert.Null(await new DistributedReaderWriterLock(NewClient(), name).TryAcquireWriteLockAsync(TimeSpan.FromMilliseconds(200)));
        var writer = new DistributedReaderWriterLock(NewClient(), name).AcquireWriteLockAsync(TestSupport.Deadline);
        await TestSupport.EventuallyAsync(async () => await CountKeysAsync(name + "/write/") == 1, TestSupport.Deadline, "writer queued");

        // Writer-preferring: a reader arriving after the waiting writer queues behind it.
        Assert.Null(await new DistributedReaderWriterLock(NewClient(), name).TryAcquireReadLockAsync(TimeSpan.FromMilliseconds(200)));
        await reader1.DisposeAsync();
        await reader2.DisposeAsync();
        await using var w = await writer.Within();
        Assert.Equal(1, await CountKeysAsync(name + "/"));
    }

    [Fact]
    public async Task MultiLock_is_all_or_nothing()
    {
        var blocker = await new DistributedMutex(NewClient(), Prefix + "b").AcquireAsync(TestSupport.Deadline);
        var multi = new DistributedMultiLock(NewClient(), [Prefix + "c", Prefix + "a", Prefix + "b"]);
        Assert.Equal([Prefix + "a", Prefix + "b", Prefix + "c"], multi.Names);
        Assert.Null(await multi.TryAcquireAsync(TimeSpan.FromMilliseconds(300)));
        Assert.Equal(0, await CountKeysAsync(Prefix + "a/"));
        Assert.Equal(1, await CountKeysAsync(Prefix + "b/"));
        var pending = multi.AcquireAsync(TestSupport.Deadline);
        await blocker.DisposeAsync();
        await using var all = await pending.Within();
        Assert.Equal(3, all.Handles.Count);
        Assert.Null(await new DistributedMutex(NewClient(), Prefix + "c").TryAcquireAsync());
    }

    private static void InterlockedMax(ref int target, int value)
    {
        int seen;
        while ((seen = Volatile.Read(ref target)) < value && Interlocked.CompareExchange(ref target, value, seen) != seen)
        {
        }
    }
}
