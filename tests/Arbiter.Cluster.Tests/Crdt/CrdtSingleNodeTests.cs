using Arbiter.Client;
using Arbiter.Client.Crdt;
using Arbiter.Compatibility.Tests.Fixtures;
using Arbiter.Protocol.Crdt;
using Grpc.Core;

namespace Arbiter.Cluster.Tests.Crdt;

/// <summary>
/// The eventual tier on one real <c>arbiter serve</c> process: every type answers through the
/// typed SDK, bad input is refused with nothing applied, and an acknowledged local write is on
/// disk (it survives kill -9).
/// </summary>
public sealed class CrdtSingleNodeTests(ITestOutputHelper output)
{
    [Fact]
    public async Task Acknowledged_updates_survive_kill_9()
    {
        await using var server = new ArbiterProcess("arbiter-crdt-kill");
        await server.StartAsync();
        var acknowledged = 0;
        var unknown = 0;
        await using (var client = new ArbiterClient(new GrpcArbiterClient(server.Endpoint)))
        {
            using var stop = new CancellationTokenSource();
            var writers = Enumerable.Range(0, 4).Select(i => Task.Run(async () =>
            {
                var set = client.Crdt.Set("seen");
                for (var n = 0; ; n++)
                {
                    try
                    {
                        await client.Crdt.Counter("hits").IncrementAsync();
                        await set.AddAsync($"w{i}-{n}");
                        Interlocked.Increment(ref acknowledged);
                    }
                    catch (RpcException)
                    {
                        Interlocked.Increment(ref unknown);
                        return;
                    }
                }
            })).ToList();
            await ClusterKit.WaitUntilAsync("300 updates acknowledged", ClusterKit.ConvergeTimeout, () => Task.FromResult(Volatile.Read(ref acknowledged) >= 300));
            await server.KillAsync();
            await Task.WhenAll(writers);
        }

        var acked = Volatile.Read(ref acknowledged);
        output.WriteLine($"killed with {acked} acknowledged counter+set updates, {unknown} in flight");
        await server.StartAsync(isRestart: true);
        await using var after = new ArbiterClient(new GrpcArbiterClient(server.Endpoint));
        var hits = await after.Crdt.Counter("hits").GetAsync();
        var seen = await after.Crdt.Set("seen").GetStringsAsync();
        output.WriteLine($"after restart: hits = {hits}, set has {seen.Count} elements");
        Assert.InRange(hits, acked, acked + unknown);
        Assert.InRange(seen.Count, acked, acked + unknown);
    }

    [Fact]
    public async Task Every_type_answers_and_bad_input_changes_nothing()
    {
        await using var server = new ArbiterProcess("arbiter-crdt-types");
        await server.StartAsync();
        await using var client = new ArbiterClient(new GrpcArbiterClient(server.Endpoint));
        var crdt = client.Crdt;

        Assert.Equal(3, await crdt.GrowOnlyCounter("g").AddAsync(3));
        Assert.Equal(-2, await crdt.Counter("pn").AddAsync(-2));
        await crdt.Set("s").AddAsync("b", "a");
        await crdt.Set("s").RemoveAsync("b");
        Assert.Equal(["a"], await crdt.Set("s").GetStringsAsync());
        await crdt.LwwRegister("r").SetAsync("first");
        await crdt.LwwRegister("r").SetAsync("second");
        Assert.Equal("second", await crdt.LwwRegister("r").GetStringAsync());
        var blind = await crdt.MvRegister("mv").SetAsync(ClusterKit.Bytes("x"), Google.Protobuf.ByteString.Empty);
        Assert.Single(blind.Siblings);
        await crdt.Flag("f").SetAsync(true);
        Assert.True(await crdt.Flag("f").GetAsync());
        await crdt.Map("m").AddAsync("apples", 4);
        Assert.Equal(4, (await crdt.Map("m").GetAsync())["apples"].Counter);

        // Wrong type for the key, negative grow-only increment, unknown type, no operation: InvalidArgument, nothing applied.
        var wrongType = await Assert.ThrowsAsync<RpcException>(() => crdt.Set("g").AddAsync("x"));
        Assert.Equal(StatusCode.InvalidArgument, wrongType.StatusCode);
        output.WriteLine($"wrong type: {wrongType.Status.Detail}");
        var negative = await Assert.ThrowsAsync<RpcException>(() => crdt.GrowOnlyCounter("g").AddAsync(-1));
        Assert.Equal(StatusCode.InvalidArgument, negative.StatusCode);
        output.WriteLine($"negative grow-only increment: {negative.Status.Detail}");
        var unknownType = await Assert.ThrowsAsync<RpcException>(() => crdt.UpdateAsync("u", (CrdtType)99, new CrdtOperation { CounterAdd = new CounterAdd { Delta = 1 } }));
        Assert.Equal(StatusCode.InvalidArgument, unknownType.StatusCode);
        var noOperation = await Assert.ThrowsAsync<RpcException>(() => crdt.UpdateAsync("u", CrdtType.PnCounter, new CrdtOperation()));
        Assert.Equal(StatusCode.InvalidArgument, noOperation.StatusCode);
        var oversize = await Assert.ThrowsAsync<RpcException>(() => crdt.Set("s").AddAsync([Google.Protobuf.ByteString.CopyFrom(new byte[1024 * 1024])]));
        Assert.Equal(StatusCode.InvalidArgument, oversize.StatusCode);
        output.WriteLine($"oversize element: {oversize.Status.Detail}");
        var malformedContext = await Assert.ThrowsAsync<RpcException>(() => crdt.MvRegister("mv").SetAsync(ClusterKit.Bytes("y"), Google.Protobuf.ByteString.CopyFrom(1, 2, 3)));
        Assert.Equal(StatusCode.InvalidArgument, malformedContext.StatusCode);
        output.WriteLine($"malformed context: {malformedContext.Status.Detail}");

        Assert.Equal(3, await crdt.GrowOnlyCounter("g").GetAsync());
        Assert.Equal(["a"], await crdt.Set("s").GetStringsAsync());
        Assert.Equal(["x"], (await crdt.MvRegister("mv").GetAsync()).Siblings.Select(b => b.ToStringUtf8()));
        Assert.Equal(CrdtType.Unspecified, (await crdt.GetAsync("u")).Type);
    }
}
