using Arbiter.Client;
using Arbiter.Protocol.Etcd;
using Arbiter.Protocol.Mvcc;
using Arbiter.Server.Tests.Infrastructure;
using Google.Protobuf;

namespace Arbiter.Server.Tests;

/// <summary>Watch semantics through the client abstraction; run in-process and over gRPC.</summary>
public abstract class WatchContractTests(bool overGrpc) : IAsyncLifetime
{
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(10);
    private Backend _backend = null!;

    private IArbiterClient Client => _backend.Client;

    public async Task InitializeAsync() =>
        _backend = await Backend.StartAsync(overGrpc, new Node.NodeOptions { WatchProgressNotifyIntervalMs = 200 });

    public async Task DisposeAsync() => await _backend.DisposeAsync();

    private static ByteString B(string s) => ByteString.CopyFromUtf8(s);

    private Task<PutResponse> Put(string key, string value) => Client.PutAsync(new PutRequest { Key = B(key), Value = B(value) });

    /// <summary>Reads responses until <paramref name="done"/> says so, with a deadline.</summary>
    private static async Task<List<WatchResponse>> ReadUntil(IAsyncEnumerator<WatchResponse> responses, Func<List<WatchResponse>, bool> done)
    {
        var seen = new List<WatchResponse>();
        using var cts = new CancellationTokenSource(Deadline);
        while (!done(seen))
        {
            var moved = await responses.MoveNextAsync().AsTask().WaitAsync(cts.Token);
            Assert.True(moved, "watch stream ended early");
            seen.Add(responses.Current);
        }

        return seen;
    }

    private static IEnumerable<Event> Events(List<WatchResponse> responses, long watchId) =>
        responses.Where(r => r.WatchId == watchId).SelectMany(r => r.Events);

    [Fact]
    public async Task CreatedPrecedesEventsAndReplaysHistoryFromRevision()
    {
        var first = await Put("w/a", "1");
        await Put("w/b", "2");
        await Client.DeleteRangeAsync(new DeleteRangeRequest { Key = B("w/a") });

        await using var session = Client.OpenWatch();
        await using var responses = session.ReadAllAsync().GetAsyncEnumerator();
        await session.CreateAsync(new WatchCreateRequest { Key = B("w/"), RangeEnd = B("w0"), StartRevision = first.Header.Revision, PrevKv = true });
        var seen = await ReadUntil(responses, r => Events(r, 0).Count() >= 3);

        Assert.True(seen[0].Created);
        var events = Events(seen, 0).ToList();
        Assert.Equal(["w/a", "w/b", "w/a"], events.Select(e => e.Kv.Key.ToStringUtf8()));
        Assert.Equal([Event.Types.EventType.Put, Event.Types.EventType.Put, Event.Types.EventType.Delete], events.Select(e => e.Type));
        Assert.Equal("1", events[2].PrevKv.Value.ToStringUtf8());
        Assert.Equal(first.Header.Revision + 2, events[2].Kv.ModRevision);

        // Live events after catch-up, with no gap and no repeat.
        var live = await Put("w/c", "3");
        seen = await ReadUntil(responses, r => Events(r, 0).Any());
        var e = Assert.Single(Events(seen, 0));
        Assert.Equal(live.Header.Revision, e.Kv.ModRevision);
    }

    [Fact]
    public async Task FiltersAndPrevKvAreHonoured()
    {
        await using var session = Client.OpenWatch();
        await using var responses = session.ReadAllAsync().GetAsyncEnumerator();
        var noPut = new WatchCreateRequest { Key = B("f/"), RangeEnd = B("f0") };
        noPut.Filters.Add(WatchCreateRequest.Types.FilterType.Noput);
        await session.CreateAsync(noPut);
        await session.CreateAsync(new WatchCreateRequest { Key = B("f/k") });
        await ReadUntil(responses, r => r.Count(x => x.Created) == 2);

        await Put("f/k", "v1");
        await Put("f/k", "v2");
        await Client.DeleteRangeAsync(new DeleteRangeRequest { Key = B("f/k") });
        var seen = await ReadUntil(responses, r => Events(r, 1).Count() == 3 && Events(r, 0).Count() == 1);

        var deleteOnly = Assert.Single(Events(seen, 0));
        Assert.Equal(Event.Types.EventType.Delete, deleteOnly.Type);
        Assert.Null(deleteOnly.PrevKv);
        Assert.All(Events(seen, 1), e => Assert.Null(e.PrevKv));
    }

    [Fact]
    public async Task CreatesAreAnsweredInArrivalOrderAndCancelStopsEvents()
    {
        await using var session = Client.OpenWatch();
        await using var responses = session.ReadAllAsync().GetAsyncEnumerator();
        for (var i = 0; i < 20; i++)
        {
            await session.CreateAsync(new WatchCreateRequest { Key = B($"m/{i}") });
        }

        var created = await ReadUntil(responses, r => r.Count(x => x.Created) == 20);
        Assert.Equal(Enumerable.Range(0, 20).Select(i => (long)i), created.Where(r => r.Created).Select(r => r.WatchId));

        await session.CancelAsync(3);
        var canceled = await ReadUntil(responses, r => r.Any(x => x.Canceled));
        Assert.Equal(3, canceled.Single(x => x.Canceled).WatchId);

        await Put("m/3", "ignored");
        var put = await Put("m/4", "seen");
        var after = await ReadUntil(responses, r => r.Any(x => x.Events.Count > 0));
        var only = Assert.Single(after, x => x.Events.Count > 0);
        Assert.Equal(4, only.WatchId);
        Assert.Equal(put.Header.Revision, only.Header.Revision);
    }

    [Fact]
    public async Task DuplicateIdAndEmptyRangeAreRefused()
    {
        await using var session = Client.OpenWatch();
        await using var responses = session.ReadAllAsync().GetAsyncEnumerator();
        await session.CreateAsync(new WatchCreateRequest { Key = B("d"), WatchId = 7 });
        await session.CreateAsync(new WatchCreateRequest { Key = B("d"), WatchId = 7 });
        await session.CreateAsync(new WatchCreateRequest { Key = B("z"), RangeEnd = B("a") });
        var seen = await ReadUntil(responses, r => r.Count == 3);

        Assert.Equal(7, seen[0].WatchId);
        Assert.False(seen[0].Canceled);
        Assert.True(seen[1].Canceled && seen[1].Created);
        Assert.Equal(-1, seen[1].WatchId);
        Assert.Equal("mvcc: duplicate watch ID provided on the WatchStream", seen[1].CancelReason);
        Assert.Equal("mvcc: watcher range is empty", seen[2].CancelReason);
    }

    [Fact]
    public async Task CompactedStartRevisionCancelsWithCompactRevision()
    {
        await Put("c/a", "1");
        await Put("c/a", "2");
        var last = await Put("c/a", "3");
        await Client.CompactAsync(new CompactionRequest { Revision = last.Header.Revision });

        await using var session = Client.OpenWatch();
        await using var responses = session.ReadAllAsync().GetAsyncEnumerator();
        await session.CreateAsync(new WatchCreateRequest { Key = B("c/a"), StartRevision = 1 });
        var seen = await ReadUntil(responses, r => r.Any(x => x.Canceled));

        var canceled = seen.Single(x => x.Canceled);
        Assert.Equal(last.Header.Revision, canceled.CompactRevision);
    }

    [Fact]
    public async Task ProgressRequestReportsCurrentRevision()
    {
        var put = await Put("p", "1");
        await using var session = Client.OpenWatch();
        await using var responses = session.ReadAllAsync().GetAsyncEnumerator();
        await session.CreateAsync(new WatchCreateRequest { Key = B("p") });
        await ReadUntil(responses, r => r.Count == 1);
        await session.RequestProgressAsync();
        var seen = await ReadUntil(responses, r => r.Count == 1);

        Assert.Equal(-1, seen[0].WatchId);
        Assert.Empty(seen[0].Events);
        Assert.Equal(put.Header.Revision, seen[0].Header.Revision);
    }

    [Fact]
    public async Task ProgressNotifyArrivesForAnIdleWatcherThatAskedForIt()
    {
        var put = await Put("pn/x", "1");
        await using var session = Client.OpenWatch();
        await using var responses = session.ReadAllAsync().GetAsyncEnumerator();
        await session.CreateAsync(new WatchCreateRequest { Key = B("pn/y"), ProgressNotify = true });
        await session.CreateAsync(new WatchCreateRequest { Key = B("pn/z") });
        var seen = await ReadUntil(responses, r => r.Any(x => !x.Created));

        var progress = seen.First(x => !x.Created);
        Assert.Equal(0, progress.WatchId);
        Assert.Empty(progress.Events);
        Assert.Equal(put.Header.Revision, progress.Header.Revision);
    }

    [Fact]
    public async Task LargeResponsesAreFragmentedWhenAsked()
    {
        var value = ByteString.CopyFrom(new byte[512 * 1024]);
        var start = (await Client.PutAsync(new PutRequest { Key = B("big/0"), Value = value })).Header.Revision;
        for (var i = 1; i < 5; i++)
        {
            await Client.PutAsync(new PutRequest { Key = B($"big/{i}"), Value = value });
        }

        await using var session = Client.OpenWatch();
        await using var responses = session.ReadAllAsync().GetAsyncEnumerator();
        await session.CreateAsync(new WatchCreateRequest { Key = B("big/"), RangeEnd = B("big0"), StartRevision = start, Fragment = true });
        var seen = await ReadUntil(responses, r => Events(r, 0).Count() == 5);

        var withEvents = seen.Where(r => r.Events.Count > 0).ToList();
        Assert.True(withEvents.Count > 1, "expected the 2.5 MiB catch-up to arrive in fragments");
        Assert.All(withEvents.SkipLast(1), r => Assert.True(r.Fragment));
        Assert.False(withEvents[^1].Fragment);
    }
}

public sealed class WatchContractTestsEmbedded() : WatchContractTests(overGrpc: false);

public sealed class WatchContractTestsGrpc() : WatchContractTests(overGrpc: true);
