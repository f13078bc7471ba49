using Arbiter.Compatibility.Tests.Fixtures;
using Arbiter.Protocol.Etcd;
using Google.Protobuf;
using Grpc.Core;

namespace Arbiter.Compatibility.Tests.Scenarios;

/// <summary>
/// Invalid, oversized and odd requests sent over gRPC. Each must get etcd's exact answer (status code
/// and text), the server must stay up, and the visible state must not change.
/// </summary>
public abstract class MalformedRequestTests(ServerFixture target, ITestOutputHelper output) : ScenarioBase(target, output)
{
    private const string TooLarge = "etcdserver: request is too large";
    private const string EmptyKey = "etcdserver: key is not provided";

    /// <summary>etcd's raft limit: --max-request-bytes default 1.5 MiB.</summary>
    private const int RequestSizeBytesMax = 1536 * 1024;

    private KV.KVClient Kv => Target.Kv;

    private Lease.LeaseClient Leases => Target.Lease;

    [Fact]
    public Task PutJustOverRequestLimitIsTooLarge() => Guard(() =>
        ExpectRejectedAsync(
            () => Kv.PutAsync(Put("big", new string('x', RequestSizeBytesMax + 1))).ResponseAsync,
            StatusCode.InvalidArgument,
            TooLarge));

    [Fact]
    public Task PutOverGrpcReceiveLimitIsResourceExhausted() => Guard(async () =>
    {
        // etcd's gRPC receive limit is max-request-bytes + 512 KiB = 2 MiB; past it gRPC itself refuses.
        var request = Put("huge", new string('x', 3 * 1024 * 1024));
        await ExpectRejectedAsync(
            () => Kv.PutAsync(request).ResponseAsync,
            StatusCode.ResourceExhausted,
            $"grpc: received message larger than max ({request.CalculateSize()} vs. 2097152)");
    });

    [Fact]
    public Task TxnWithTooManyOperations() => Guard(async () =>
    {
        var puts = new TxnRequest();
        puts.Success.AddRange(Enumerable.Range(0, 129).Select(i => new RequestOp { RequestPut = Put($"op{i}", "v") }));
        await ExpectRejectedAsync(() => Kv.TxnAsync(puts).ResponseAsync, StatusCode.InvalidArgument, "etcdserver: too many operations in txn request");

        var compares = new TxnRequest();
        compares.Compare.AddRange(Enumerable.Range(0, 129).Select(i => new Compare { Key = Key($"c{i}"), Target = Compare.Types.CompareTarget.Version }));
        await ExpectRejectedAsync(() => Kv.TxnAsync(compares).ResponseAsync, StatusCode.InvalidArgument, "etcdserver: too many operations in txn request");

        var failures = new TxnRequest();
        failures.Failure.AddRange(Enumerable.Range(0, 129).Select(i => new RequestOp { RequestRange = new RangeRequest { Key = Key($"r{i}") } }));
        await ExpectRejectedAsync(() => Kv.TxnAsync(failures).ResponseAsync, StatusCode.InvalidArgument, "etcdserver: too many operations in txn request");
    });

    [Fact]
    public Task TxnWithDuplicateKeys() => Guard(async () =>
    {
        const string Duplicate = "etcdserver: duplicate key given in txn request";
        var twoPuts = new TxnRequest();
        twoPuts.Success.Add(new RequestOp { RequestPut = Put("d", "1") });
        twoPuts.Success.Add(new RequestOp { RequestPut = Put("d", "2") });
        await ExpectRejectedAsync(() => Kv.TxnAsync(twoPuts).ResponseAsync, StatusCode.InvalidArgument, Duplicate);

        var putAndDelete = new TxnRequest();
        putAndDelete.Failure.Add(new RequestOp { RequestDeleteRange = new DeleteRangeRequest { Key = Key("a"), RangeEnd = Key("z") } });
        putAndDelete.Failure.Add(new RequestOp { RequestPut = Put("m", "1") });
        await ExpectRejectedAsync(() => Kv.TxnAsync(putAndDelete).ResponseAsync, StatusCode.InvalidArgument, Duplicate);

        var nested = new TxnRequest();
        var inner = new TxnRequest();
        inner.Success.Add(new RequestOp { RequestPut = Put("n", "inner") });
        nested.Success.Add(new RequestOp { RequestTxn = inner });
        nested.Success.Add(new RequestOp { RequestPut = Put("n", "outer") });
        await ExpectRejectedAsync(() => Kv.TxnAsync(nested).ResponseAsync, StatusCode.InvalidArgument, Duplicate);
    });

    [Fact]
    public Task EmptyKeys() => Guard(async () =>
    {
        await ExpectRejectedAsync(() => Kv.PutAsync(new PutRequest { Value = ByteString.CopyFromUtf8("v") }).ResponseAsync, StatusCode.InvalidArgument, EmptyKey);
        await ExpectRejectedAsync(() => Kv.RangeAsync(new RangeRequest()).ResponseAsync, StatusCode.InvalidArgument, EmptyKey);
        await ExpectRejectedAsync(() => Kv.DeleteRangeAsync(new DeleteRangeRequest()).ResponseAsync, StatusCode.InvalidArgument, EmptyKey);

        var compare = new TxnRequest();
        compare.Compare.Add(new Compare { Target = Compare.Types.CompareTarget.Version });
        await ExpectRejectedAsync(() => Kv.TxnAsync(compare).ResponseAsync, StatusCode.InvalidArgument, EmptyKey);

        var op = new TxnRequest();
        op.Success.Add(new RequestOp { RequestPut = new PutRequest { Value = ByteString.CopyFromUtf8("v") } });
        await ExpectRejectedAsync(() => Kv.TxnAsync(op).ResponseAsync, StatusCode.InvalidArgument, EmptyKey);
    });

    [Fact]
    public Task IgnoreValueAndIgnoreLeaseMisuse() => Guard(async () =>
    {
        var withValue = Put("iv", "value");
        withValue.IgnoreValue = true;
        await ExpectRejectedAsync(() => Kv.PutAsync(withValue).ResponseAsync, StatusCode.InvalidArgument, "etcdserver: value is provided");

        var withLease = Put("il", string.Empty);
        withLease.IgnoreLease = true;
        withLease.Lease = 12345;
        await ExpectRejectedAsync(() => Kv.PutAsync(withLease).ResponseAsync, StatusCode.InvalidArgument, "etcdserver: lease is provided");

        // Ignoring the value of a key that does not exist has nothing to keep.
        var missing = new PutRequest { Key = Key("missing"), IgnoreValue = true };
        await ExpectRejectedAsync(() => Kv.PutAsync(missing).ResponseAsync, StatusCode.InvalidArgument, "etcdserver: key not found");

        var missingLease = new PutRequest { Key = Key("missing"), Value = ByteString.CopyFromUtf8("v"), IgnoreLease = true };
        await ExpectRejectedAsync(() => Kv.PutAsync(missingLease).ResponseAsync, StatusCode.InvalidArgument, "etcdserver: key not found");
    });

    [Fact]
    public Task PutWithUnknownLease() => Guard(async () =>
    {
        var request = Put("leased", "v");
        request.Lease = 0x7eadbeef;
        await ExpectRejectedAsync(() => Kv.PutAsync(request).ResponseAsync, StatusCode.NotFound, "etcdserver: requested lease not found");
    });

    [Fact]
    public Task LeaseTtlBounds() => Guard(async () =>
    {
        await ExpectRejectedAsync(
            () => Leases.LeaseGrantAsync(new LeaseGrantRequest { ID = 0x51000001, TTL = 9_000_000_001 }).ResponseAsync,
            StatusCode.OutOfRange,
            "etcdserver: too large lease TTL");

        // The maximum itself is accepted.
        var max = await Leases.LeaseGrantAsync(new LeaseGrantRequest { ID = 0x51000002, TTL = 9_000_000_000 });
        Assert.Equal((0x51000002L, 9_000_000_000L), (max.ID, max.TTL));
        await Leases.LeaseRevokeAsync(new LeaseRevokeRequest { ID = 0x51000002 });

        // Zero, negative and too-short TTLs are raised to the minimum, ⌈1.5 × election timeout⌉ = 2 s.
        foreach (var (id, ttl) in new[] { (0x51000003L, -5L), (0x51000004L, 0L), (0x51000005L, 1L) })
        {
            var state = await StoreState.ReadAsync(Kv);
            var granted = await Leases.LeaseGrantAsync(new LeaseGrantRequest { ID = id, TTL = ttl });
            Assert.Equal((id, 2L), (granted.ID, granted.TTL));
            Assert.Empty(granted.Error);
            var timeToLive = await Leases.LeaseTimeToLiveAsync(new LeaseTimeToLiveRequest { ID = id });
            Assert.Equal(2, timeToLive.GrantedTTL);
            await Leases.LeaseRevokeAsync(new LeaseRevokeRequest { ID = id });
            Assert.Equal(state, await StoreState.ReadAsync(Kv));
        }
    });

    [Fact]
    public Task LeaseUnknownIdsAndDuplicates() => Guard(async () =>
    {
        await ExpectRejectedAsync(
            () => Leases.LeaseRevokeAsync(new LeaseRevokeRequest { ID = 0x52000001 }).ResponseAsync,
            StatusCode.NotFound,
            "etcdserver: requested lease not found");

        // TimeToLive of an unknown lease is not an error: TTL -1.
        var timeToLive = await Leases.LeaseTimeToLiveAsync(new LeaseTimeToLiveRequest { ID = 0x52000001, Keys = true });
        Assert.Equal((0x52000001L, -1L, 0L), (timeToLive.ID, timeToLive.TTL, timeToLive.GrantedTTL));
        Assert.Empty(timeToLive.Keys);

        // KeepAlive of an unknown lease answers TTL 0 on the stream.
        using (var stream = Leases.LeaseKeepAlive(deadline: DateTime.UtcNow.Add(Deadline)))
        {
            await stream.RequestStream.WriteAsync(new LeaseKeepAliveRequest { ID = 0x52000001 });
            Assert.True(await stream.ResponseStream.MoveNext(CancellationToken.None));
            Assert.Equal((0x52000001L, 0L), (stream.ResponseStream.Current.ID, stream.ResponseStream.Current.TTL));
            await stream.RequestStream.CompleteAsync();
        }

        await Leases.LeaseGrantAsync(new LeaseGrantRequest { ID = 0x52000002, TTL = 600 });
        try
        {
            await ExpectRejectedAsync(
                () => Leases.LeaseGrantAsync(new LeaseGrantRequest { ID = 0x52000002, TTL = 60 }).ResponseAsync,
                StatusCode.FailedPrecondition,
                "etcdserver: lease already exists");
            Assert.Equal(600, (await Leases.LeaseTimeToLiveAsync(new LeaseTimeToLiveRequest { ID = 0x52000002 })).GrantedTTL);
        }
        finally
        {
            await Leases.LeaseRevokeAsync(new LeaseRevokeRequest { ID = 0x52000002 });
        }
    });

    [Fact]
    public Task UndefinedEnumValues() => Guard(async () =>
    {
        await Kv.PutAsync(Put("e/b", "2"));
        await Kv.PutAsync(Put("e/a", "1"));
        var state = await StoreState.ReadAsync(Kv);

        var unknownOrder = new RangeRequest { Key = Key("e/"), RangeEnd = Key("e0"), SortOrder = (RangeRequest.Types.SortOrder)99 };
        var unknownResult = new TxnRequest();
        unknownResult.Compare.Add(new Compare { Key = Key("e/a"), Target = Compare.Types.CompareTarget.Value, Value = ByteString.CopyFromUtf8("nope"), Result = (Compare.Types.CompareResult)42 });
        unknownResult.Success.Add(new RequestOp { RequestPut = Put("e/written", "x") });
        var unknownTarget = new TxnRequest();
        unknownTarget.Compare.Add(new Compare { Key = Key("e/a"), Target = (Compare.Types.CompareTarget)42, Result = Compare.Types.CompareResult.Equal });

        if (Target.TargetName == "etcd")
        {
            // etcd does not validate enums: an unknown sort order leaves key order, an unknown
            // compare result counts as true (so the put happens), an unknown target compares equal.
            var sorted = await Kv.RangeAsync(unknownOrder);
            Assert.Equal([Prefix + "e/a", Prefix + "e/b"], sorted.Kvs.Select(kv => kv.Key.ToStringUtf8()));
            Assert.True((await Kv.TxnAsync(unknownResult)).Succeeded);
            Assert.True((await Kv.TxnAsync(unknownTarget)).Succeeded);
            return;
        }

        // Arbiter refuses them on purpose (docs/api.md): a compare that silently passes can make a
        // write happen that should not.
        await ExpectRejectedAsync(() => Kv.RangeAsync(unknownOrder).ResponseAsync, StatusCode.InvalidArgument, "etcdserver: invalid sort order in range request");
        await ExpectRejectedAsync(() => Kv.TxnAsync(unknownResult).ResponseAsync, StatusCode.InvalidArgument, "etcdserver: invalid compare result in txn request");
        await ExpectRejectedAsync(() => Kv.TxnAsync(unknownTarget).ResponseAsync, StatusCode.InvalidArgument, "etcdserver: invalid compare target in txn request");

        await ExpectAliveAndUnchangedAsync(state);
    });

    [Fact]
    public Task RangeEndBeforeKeySelectsNothing() => Guard(async () =>
    {
        await Kv.PutAsync(Put("r/m", "v"));
        var state = await StoreState.ReadAsync(Kv);

        var range = await Kv.RangeAsync(new RangeRequest { Key = Key("r/z"), RangeEnd = Key("r/a") });
        Assert.Empty(range.Kvs);
        Assert.Equal(0, range.Count);

        var delete = await Kv.DeleteRangeAsync(new DeleteRangeRequest { Key = Key("r/z"), RangeEnd = Key("r/a"), PrevKv = true });
        Assert.Equal(0, delete.Deleted);
        Assert.Equal(state.Revision, delete.Header.Revision);

        await ExpectAliveAndUnchangedAsync(state);
    });

    [Fact]
    public Task CompactFutureAndAlreadyCompacted() => Guard(async () =>
    {
        var state = await StoreState.ReadAsync(Kv);
        await ExpectRejectedAsync(
            () => Kv.CompactAsync(new CompactionRequest { Revision = state.Revision + 1 }).ResponseAsync,
            StatusCode.OutOfRange,
            "etcdserver: mvcc: required revision is a future revision");

        await Kv.PutAsync(Put("c", "1"));
        var current = (await Kv.PutAsync(Put("c", "2"))).Header.Revision;
        await Kv.CompactAsync(new CompactionRequest { Revision = current - 1 });
        await ExpectRejectedAsync(
            () => Kv.CompactAsync(new CompactionRequest { Revision = current - 1 }).ResponseAsync,
            StatusCode.OutOfRange,
            "etcdserver: mvcc: required revision has been compacted");
        await ExpectRejectedAsync(
            () => Kv.RangeAsync(new RangeRequest { Key = Key("c"), Revision = current - 2 }).ResponseAsync,
            StatusCode.OutOfRange,
            "etcdserver: mvcc: required revision has been compacted");
        await ExpectRejectedAsync(
            () => Kv.RangeAsync(new RangeRequest { Key = Key("c"), Revision = current + 1 }).ResponseAsync,
            StatusCode.OutOfRange,
            "etcdserver: mvcc: required revision is a future revision");
    });

    private ByteString Key(string name) => ByteString.CopyFromUtf8(Prefix + name);

    private PutRequest Put(string name, string value) => new() { Key = Key(name), Value = ByteString.CopyFromUtf8(value) };

    /// <summary>The call must fail with exactly this status and text, and change nothing.</summary>
    private async Task ExpectRejectedAsync<T>(Func<Task<T>> call, StatusCode code, string detail)
    {
        var before = await StoreState.ReadAsync(Kv);
        var error = await Assert.ThrowsAsync<RpcException>(call);
        Assert.Equal((code, detail), (error.StatusCode, error.Status.Detail));
        await ExpectAliveAndUnchangedAsync(before);
    }

    private async Task ExpectAliveAndUnchangedAsync(StoreState before)
    {
        await Target.Maintenance.StatusAsync(new StatusRequest(), deadline: DateTime.UtcNow.Add(Deadline));
        Assert.Equal(before, await StoreState.ReadAsync(Kv));
    }
}

[Trait("Target", "Etcd")]
public sealed class MalformedRequestTestsOnEtcd(EtcdFixture target, ITestOutputHelper output)
    : MalformedRequestTests(target, output), IClassFixture<EtcdFixture>;

[Trait("Target", "Arbiter")]
public sealed class MalformedRequestTestsOnArbiter(ArbiterFixture target, ITestOutputHelper output)
    : MalformedRequestTests(target, output), IClassFixture<ArbiterFixture>;

[Trait("Target", "ArbiterCluster")]
[Collection(ArbiterClusterCollection.Name)]
public sealed class MalformedRequestTestsOnArbiterCluster(ArbiterClusterFixture target, ITestOutputHelper output)
    : MalformedRequestTests(target, output);
