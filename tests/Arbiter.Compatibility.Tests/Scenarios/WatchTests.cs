using Arbiter.Compatibility.Tests.Fixtures;
using Arbiter.Protocol.Etcd;
using Arbiter.Protocol.Mvcc;
using Google.Protobuf;

namespace Arbiter.Compatibility.Tests.Scenarios;

/// <summary>Watch protocol details over raw gRPC: create/cancel/progress responses, filters, compaction.</summary>
public abstract class WatchTests(ServerFixture target, ITestOutputHelper output) : ScenarioBase(target, output)
{
    private KV.KVClient Kv => Target.Kv;

    [Fact]
    public Task CreateAnswersWithCurrentRevisionAndDeliversEventsWithPrevKv() => Guard(async () =>
    {
        var first = (await Kv.PutAsync(Put("a", "1"))).Header.Revision;
        await using var watch = new WatchStream(Target.Channel);
        await watch.CreateAsync(new WatchCreateRequest { Key = Key("a"), RangeEnd = Key("b"), PrevKv = true });
        var created = await watch.ReadAsync(Deadline);
        Assert.True(created.Created);
        Assert.False(created.Canceled);
        Assert.Equal(0, created.WatchId);
        Assert.Equal(first, created.Header.Revision);
        Assert.Empty(created.Events);

        await Kv.PutAsync(Put("a", "2"));
        await Kv.PutAsync(Put("b", "outside"));
        var deleted = (await Kv.DeleteRangeAsync(new DeleteRangeRequest { Key = Key("a") })).Header.Revision;

        var events = await watch.ReadEventsAsync(2, Deadline);
        Assert.Equal(Event.Types.EventType.Put, events[0].Type);
        Assert.Equal(("2", 2L, first), (events[0].Kv.Value.ToStringUtf8(), events[0].Kv.Version, events[0].Kv.CreateRevision));
        Assert.Equal("1", events[0].PrevKv.Value.ToStringUtf8());
        Assert.Equal(Event.Types.EventType.Delete, events[1].Type);
        // A delete event's kv has only the key and the deletion's mod revision.
        Assert.Equal(new KeyValue { Key = Key("a"), ModRevision = deleted }, events[1].Kv);
        Assert.Equal("2", events[1].PrevKv.Value.ToStringUtf8());
    });

    [Fact]
    public Task SecondWatchOnStreamGetsNextIdAndCancelIsConfirmed() => Guard(async () =>
    {
        await using var watch = new WatchStream(Target.Channel);
        await watch.CreateAsync(new WatchCreateRequest { Key = Key("x") });
        await watch.CreateAsync(new WatchCreateRequest { Key = Key("y") });
        // Creates are answered in order (the Go client matches them FIFO).
        var first = await watch.ReadAsync(Deadline);
        var second = await watch.ReadAsync(Deadline);
        Assert.Equal((true, 0L, true, 1L), (first.Created, first.WatchId, second.Created, second.WatchId));

        await watch.SendAsync(new WatchRequest { CancelRequest = new WatchCancelRequest { WatchId = 0 } });
        var canceled = await watch.ReadAsync(Deadline);
        Assert.Equal((true, false, 0L), (canceled.Canceled, canceled.Created, canceled.WatchId));

        // Only watch 1 remains: a put to x is not delivered, a put to y is.
        await Kv.PutAsync(Put("x", "1"));
        var revision = (await Kv.PutAsync(Put("y", "1"))).Header.Revision;
        var response = await watch.ReadAsync(Deadline);
        Assert.Equal(1, response.WatchId);
        var only = Assert.Single(response.Events);
        Assert.Equal((Key("y"), revision), (only.Kv.Key, only.Kv.ModRevision));
    });

    [Fact]
    public Task ClientChosenWatchIdsAndDuplicates() => Guard(async () =>
    {
        await using var watch = new WatchStream(Target.Channel);
        await watch.CreateAsync(new WatchCreateRequest { Key = Key("k"), WatchId = 7 });
        var created = await watch.ReadAsync(Deadline);
        Assert.Equal((true, false, 7L), (created.Created, created.Canceled, created.WatchId));

        await watch.CreateAsync(new WatchCreateRequest { Key = Key("k"), WatchId = 7 });
        var duplicate = await watch.ReadAsync(Deadline);
        Assert.Equal((true, true, -1L), (duplicate.Created, duplicate.Canceled, duplicate.WatchId));
        Assert.Equal("mvcc: duplicate watch ID provided on the WatchStream", duplicate.CancelReason);

        // key >= range_end is an empty range: refused the same way.
        await watch.CreateAsync(new WatchCreateRequest { Key = Key("z"), RangeEnd = Key("a") });
        var empty = await watch.ReadAsync(Deadline);
        Assert.Equal((true, true, -1L), (empty.Created, empty.Canceled, empty.WatchId));
        Assert.Equal("mvcc: watcher range is empty", empty.CancelReason);
    });

    [Fact]
    public Task ProgressRequestAnswersWithCurrentRevision() => Guard(async () =>
    {
        await using var watch = new WatchStream(Target.Channel);
        await watch.CreateAsync(new WatchCreateRequest { Key = Key("p") });
        await watch.ReadAsync(Deadline);
        var revision = (await Kv.PutAsync(Put("elsewhere", "v"))).Header.Revision;

        await watch.SendAsync(new WatchRequest { ProgressRequest = new WatchProgressRequest() });
        var progress = await watch.ReadAsync(Deadline);
        Assert.Equal((-1L, false, false, revision), (progress.WatchId, progress.Created, progress.Canceled, progress.Header.Revision));
        Assert.Empty(progress.Events);
    });

    [Fact]
    public Task FiltersAndFromKeyRange() => Guard(async () =>
    {
        await using var noPut = new WatchStream(Target.Channel);
        await noPut.CreateAsync(new WatchCreateRequest { Key = Key("f/"), RangeEnd = ByteString.CopyFrom(0), Filters = { WatchCreateRequest.Types.FilterType.Noput } });
        Assert.True((await noPut.ReadAsync(Deadline)).Created);
        await using var noDelete = new WatchStream(Target.Channel);
        await noDelete.CreateAsync(new WatchCreateRequest { Key = Key("f/"), RangeEnd = Key("f0"), Filters = { WatchCreateRequest.Types.FilterType.Nodelete } });
        Assert.True((await noDelete.ReadAsync(Deadline)).Created);

        await Kv.PutAsync(Put("f/1", "v"));
        await Kv.DeleteRangeAsync(new DeleteRangeRequest { Key = Key("f/1") });
        await Kv.PutAsync(Put("f/2", "v"));

        var deletes = await noPut.ReadEventsAsync(1, Deadline);
        Assert.Equal((Event.Types.EventType.Delete, Key("f/1")), (deletes[0].Type, deletes[0].Kv.Key));
        var puts = await noDelete.ReadEventsAsync(2, Deadline);
        Assert.Equal([Key("f/1"), Key("f/2")], puts.Select(e => e.Kv.Key));
        Assert.All(puts, e => Assert.Equal(Event.Types.EventType.Put, e.Type));
    });

    [Fact]
    public Task WatchFromFutureRevisionWaitsForIt() => Guard(async () =>
    {
        var now = (await Kv.PutAsync(Put("fut", "0"))).Header.Revision;
        await using var watch = new WatchStream(Target.Channel);
        await watch.CreateAsync(new WatchCreateRequest { Key = Key("fut"), StartRevision = now + 2 });
        Assert.True((await watch.ReadAsync(Deadline)).Created);
        await Kv.PutAsync(Put("fut", "1"));
        await Kv.PutAsync(Put("fut", "2"));
        var events = await watch.ReadEventsAsync(1, Deadline);
        Assert.Equal(("2", now + 2), (events[0].Kv.Value.ToStringUtf8(), events[0].Kv.ModRevision));
    });

    [Fact]
    public Task WatchFromCompactedRevisionIsCanceledWithCompactRevision() => Guard(async () =>
    {
        var old = (await Kv.PutAsync(Put("c", "1"))).Header.Revision;
        var current = (await Kv.PutAsync(Put("c", "2"))).Header.Revision;
        await Kv.CompactAsync(new CompactionRequest { Revision = current, Physical = true });

        await using var watch = new WatchStream(Target.Channel);
        await watch.CreateAsync(new WatchCreateRequest { Key = Key("c"), StartRevision = old });
        var created = await watch.ReadAsync(Deadline);
        Assert.Equal((true, false), (created.Created, created.Canceled));
        var canceled = await watch.ReadAsync(Deadline);
        Assert.Equal((true, current, created.WatchId), (canceled.Canceled, canceled.CompactRevision, canceled.WatchId));
        Assert.Empty(canceled.Events);
    });

    private ByteString Key(string name) => ByteString.CopyFromUtf8(Prefix + name);

    private PutRequest Put(string name, string value) => new() { Key = Key(name), Value = ByteString.CopyFromUtf8(value) };
}

[Trait("Target", "Etcd")]
public sealed class WatchTestsOnEtcd(EtcdFixture target, ITestOutputHelper output)
    : WatchTests(target, output), IClassFixture<EtcdFixture>;

[Trait("Target", "Arbiter")]
public sealed class WatchTestsOnArbiter(ArbiterFixture target, ITestOutputHelper output)
    : WatchTests(target, output), IClassFixture<ArbiterFixture>;

[Trait("Target", "ArbiterCluster")]
[Collection(ArbiterClusterCollection.Name)]
public sealed class WatchTestsOnArbiterCluster(ArbiterClusterFixture target, ITestOutputHelper output)
    : WatchTests(target, output);
