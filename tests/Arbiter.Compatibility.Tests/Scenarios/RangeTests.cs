using Arbiter.Compatibility.Tests.Fixtures;
using Arbiter.Protocol.Etcd;
using Google.Protobuf;

namespace Arbiter.Compatibility.Tests.Scenarios;

/// <summary>Range details clients depend on (Kubernetes paging among them) that the proto does not say.</summary>
public abstract class RangeTests(ServerFixture target, ITestOutputHelper output) : ScenarioBase(target, output)
{
    private static readonly string[] PutOrder = ["b", "c", "b", "c", "b", "a"];

    [Fact]
    public Task CountLimitMoreFiltersAndDefaultSortOrder() => Guard(async () =>
    {
        // versions: a=1, b=3, c=2; create order b, c, a.
        var revisions = new Dictionary<string, long>();
        foreach (var key in PutOrder)
        {
            revisions[key] = (await Target.Kv.PutAsync(new PutRequest { Key = Key(key), Value = ByteString.CopyFromUtf8("v") })).Header.Revision;
        }

        var all = new RangeRequest { Key = Key(string.Empty), RangeEnd = Key("~") };

        var limited = await Target.Kv.RangeAsync(new RangeRequest(all) { Limit = 2 });
        Assert.Equal((3L, true), (limited.Count, limited.More));
        Assert.Equal([Key("a"), Key("b")], limited.Kvs.Select(kv => kv.Key));

        // A non-KEY sort target with order NONE sorts ascending by that target.
        var byVersion = await Target.Kv.RangeAsync(new RangeRequest(all) { SortTarget = RangeRequest.Types.SortTarget.Version });
        Assert.Equal([Key("a"), Key("c"), Key("b")], byVersion.Kvs.Select(kv => kv.Key));

        // Revision filters prune kvs but count still counts the whole key range.
        var filtered = await Target.Kv.RangeAsync(new RangeRequest(all) { MinModRevision = revisions["b"] });
        Assert.Equal([Key("a"), Key("b")], filtered.Kvs.Select(kv => kv.Key));
        Assert.Equal((3L, false), (filtered.Count, filtered.More));

        var countOnly = await Target.Kv.RangeAsync(new RangeRequest(all) { CountOnly = true, Limit = 1 });
        Assert.Equal(3, countOnly.Count);
        Assert.Empty(countOnly.Kvs);

        // A read at an old revision reports the current revision in its header.
        var old = await Target.Kv.RangeAsync(new RangeRequest(all) { Revision = revisions["c"] });
        Assert.Equal([Key("b"), Key("c")], old.Kvs.Select(kv => kv.Key));
        Assert.Equal(revisions["a"], old.Header.Revision);
    });

    private ByteString Key(string name) => ByteString.CopyFromUtf8(Prefix + name);
}

[Trait("Target", "Etcd")]
public sealed class RangeTestsOnEtcd(EtcdFixture target, ITestOutputHelper output)
    : RangeTests(target, output), IClassFixture<EtcdFixture>;

[Trait("Target", "Arbiter")]
public sealed class RangeTestsOnArbiter(ArbiterFixture target, ITestOutputHelper output)
    : RangeTests(target, output), IClassFixture<ArbiterFixture>;

[Trait("Target", "ArbiterCluster")]
[Collection(ArbiterClusterCollection.Name)]
public sealed class RangeTestsOnArbiterCluster(ArbiterClusterFixture target, ITestOutputHelper output)
    : RangeTests(target, output);
