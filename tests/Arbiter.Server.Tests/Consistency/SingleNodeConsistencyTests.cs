using Arbiter.Client;
using Arbiter.Protocol.Consistency;
using Arbiter.Protocol.Etcd;
using Arbiter.Server.Tests.Infrastructure;
using Google.Protobuf;
using Grpc.Core;
using Grpc.Net.Client;

namespace Arbiter.Server.Tests.Consistency;

/// <summary>
/// On a single node every level collapses to "read the state": writes are applied before they are
/// acknowledged. What remains to check: every level reads its own writes, every response carries
/// a token (header and trailer agree), bad tokens are refused with typed errors, and etcd's own
/// requests (no metadata) behave as before.
/// </summary>
public sealed class SingleNodeConsistencyTests
{
    private static ByteString B(string s) => ByteString.CopyFromUtf8(s);

    public static TheoryData<bool> Transports => new() { false, true };

    [Theory]
    [MemberData(nameof(Transports))]
    public async Task Every_level_reads_the_write_just_made(bool overGrpc)
    {
        await using var backend = await Backend.StartAsync(overGrpc);
        var put = await backend.Client.PutAsync(new PutRequest { Key = B("k"), Value = B("v") });
        var token = new ConsistencyToken(put.Header.ClusterId, put.Header.Revision);
        foreach (var consistency in new[]
        {
            ReadConsistency.Linearizable,
            ReadConsistency.Serializable,
            ReadConsistency.Session(token),
            ReadConsistency.Session(null),
            ReadConsistency.Causal(token),
            ReadConsistency.BoundedStaleness(TimeSpan.FromMilliseconds(1)),
            ReadConsistency.AtRevision(put.Header.Revision),
        })
        {
            var range = await backend.Client.RangeAsync(new RangeRequest { Key = B("k") }, consistency);
            Assert.True(range.Kvs.Count == 1 && range.Kvs[0].Value.ToStringUtf8() == "v", consistency.ToString());
            Assert.Equal(put.Header.Revision, range.Header.Revision);

            var txn = new TxnRequest();
            txn.Success.Add(new RequestOp { RequestRange = new RangeRequest { Key = B("k") } });
            var read = await backend.Client.TxnAsync(txn, consistency);
            Assert.Equal("v", read.Responses[0].ResponseRange.Kvs[0].Value.ToStringUtf8());
        }
    }

    [Theory]
    [MemberData(nameof(Transports))]
    public async Task Bad_tokens_are_refused_with_typed_errors(bool overGrpc)
    {
        await using var backend = await Backend.StartAsync(overGrpc);
        var put = await backend.Client.PutAsync(new PutRequest { Key = B("k"), Value = B("v") });
        var request = new RangeRequest { Key = B("k") };

        var otherCluster = await Assert.ThrowsAsync<ReadConsistencyException>(() => backend.Client.RangeAsync(request, ReadConsistency.Causal(new ConsistencyToken(put.Header.ClusterId ^ 1, 1))));
        Assert.Equal(ConsistencyErrorKind.OtherClusterToken, otherCluster.Kind);
        Assert.Equal(StatusCode.FailedPrecondition, otherCluster.StatusCode);
        Assert.Contains("another cluster", otherCluster.Status.Detail, StringComparison.Ordinal);

        var future = await Assert.ThrowsAsync<ReadConsistencyException>(() => backend.Client.RangeAsync(request, ReadConsistency.Session(new ConsistencyToken(put.Header.ClusterId, put.Header.Revision + 5))));
        Assert.Equal(ConsistencyErrorKind.FutureToken, future.Kind);
        Assert.Equal(StatusCode.OutOfRange, future.StatusCode);
        Assert.Equal(put.Header.Revision, future.AppliedRevision);
        Assert.Equal(put.Header.Revision + 5, future.RequiredRevision);
        Assert.Contains("from the future", future.Status.Detail, StringComparison.Ordinal);

        var txn = new TxnRequest();
        txn.Success.Add(new RequestOp { RequestRange = request });
        var futureTxn = await Assert.ThrowsAsync<ReadConsistencyException>(() => backend.Client.TxnAsync(txn, ReadConsistency.Causal(new ConsistencyToken(put.Header.ClusterId, put.Header.Revision + 1))));
        Assert.Equal(ConsistencyErrorKind.FutureToken, futureTxn.Kind);

        var atFuture = await Assert.ThrowsAsync<RpcException>(() => backend.Client.RangeAsync(request, ReadConsistency.AtRevision(put.Header.Revision + 1)));
        Assert.Equal("etcdserver: mvcc: required revision is a future revision", atFuture.Status.Detail);
    }

    [Fact]
    public async Task Over_grpc_every_response_carries_its_token_and_malformed_metadata_is_refused()
    {
        await using var backend = await Backend.StartAsync(overGrpc: true);
        using var channel = GrpcChannel.ForAddress(backend.Endpoint!);
        var kv = new KV.KVClient(channel);

        using var put = kv.PutAsync(new PutRequest { Key = B("k"), Value = B("v") });
        var written = await put.ResponseAsync;
        var token = ConsistencyToken.Parse(put.GetTrailers().GetValue(ConsistencyMetadata.TokenKey));
        Assert.Equal(new ConsistencyToken(written.Header.ClusterId, written.Header.Revision), token);

        // An etcd request (no metadata) gets a token too, and the header agrees with it.
        using var get = kv.RangeAsync(new RangeRequest { Key = B("k") });
        var read = await get.ResponseAsync;
        Assert.Equal(token, ConsistencyToken.Parse(get.GetTrailers().GetValue(ConsistencyMetadata.TokenKey)));
        Assert.Equal("v", read.Kvs[0].Value.ToStringUtf8());

        // The token string handed on as it is: a causal read with it.
        var causal = await kv.RangeAsync(new RangeRequest { Key = B("k") }, new Metadata { { ConsistencyMetadata.LevelKey, "causal" }, { ConsistencyMetadata.TokenKey, token.ToString() } });
        Assert.Equal("v", causal.Kvs[0].Value.ToStringUtf8());

        foreach (var (metadata, kind) in new (Metadata, ConsistencyErrorKind)[]
        {
            (new Metadata { { ConsistencyMetadata.LevelKey, "causal" }, { ConsistencyMetadata.TokenKey, "not-a-token" } }, ConsistencyErrorKind.MalformedToken),
            (new Metadata { { ConsistencyMetadata.LevelKey, "session" }, { ConsistencyMetadata.TokenKey, "arb1.00000000000000zz.1" } }, ConsistencyErrorKind.MalformedToken),
            (new Metadata { { ConsistencyMetadata.LevelKey, "causal" } }, ConsistencyErrorKind.MalformedToken),
            (new Metadata { { ConsistencyMetadata.LevelKey, "strong-ish" } }, ConsistencyErrorKind.InvalidLevel),
            (new Metadata { { ConsistencyMetadata.LevelKey, "bounded" }, { ConsistencyMetadata.MaxStalenessMsKey, "-1" } }, ConsistencyErrorKind.InvalidLevel),
        })
        {
            var error = await Assert.ThrowsAsync<RpcException>(() => kv.RangeAsync(new RangeRequest { Key = B("k") }, metadata).ResponseAsync);
            Assert.Equal(StatusCode.InvalidArgument, error.StatusCode);
            Assert.Equal(kind.ToString(), error.Trailers.GetValue(ConsistencyMetadata.ErrorKindKey));
            Assert.StartsWith("arbiter: ", error.Status.Detail, StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task A_snapshot_honours_a_consistency_level()
    {
        await using var backend = await Backend.StartAsync(overGrpc: true);
        var put = await backend.Client.PutAsync(new PutRequest { Key = B("k"), Value = B("v") });
        using var channel = GrpcChannel.ForAddress(backend.Endpoint!);
        var maintenance = new Maintenance.MaintenanceClient(channel);
        var token = new ConsistencyToken(put.Header.ClusterId, put.Header.Revision);

        async Task<int> ChunksAsync(ConsistencyToken at)
        {
            using var call = maintenance.Snapshot(new SnapshotRequest(), GrpcArbiterClient.Headers(ReadConsistency.Causal(at)));
            var chunks = 0;
            while (await call.ResponseStream.MoveNext(CancellationToken.None))
            {
                chunks++;
            }

            return chunks;
        }

        Assert.True(await ChunksAsync(token) > 0);
        var future = await Assert.ThrowsAsync<RpcException>(() => ChunksAsync(token with { Revision = token.Revision + 1 }));
        Assert.Equal(StatusCode.OutOfRange, future.StatusCode);
        Assert.Equal(nameof(ConsistencyErrorKind.FutureToken), future.Trailers.GetValue(ConsistencyMetadata.ErrorKindKey));
    }

    [Theory]
    [MemberData(nameof(Transports))]
    public async Task A_session_moves_with_its_writes_and_a_token_handed_on_carries_them(bool overGrpc)
    {
        await using var backend = await Backend.StartAsync(overGrpc);
        await using var client = new ArbiterClient(backend.Client, ownsRaw: false);
        var alice = client.StartSession();
        Assert.Null(alice.Token);

        var put = await alice.PutAsync("question", "why?");
        Assert.Equal(put.Header.Revision, alice.CurrentToken!.Value.Revision);
        Assert.Equal("why?", await alice.GetStringAsync("question"));

        var bob = client.StartSession(alice.Token);
        Assert.Equal(alice.CurrentToken, bob.CurrentToken);
        Assert.Equal("why?", await bob.GetStringAsync("question"));
        await bob.PutAsync("answer", "because");
        Assert.True(bob.CurrentToken!.Value.Revision > alice.CurrentToken!.Value.Revision);

        var malformed = Assert.Throws<ReadConsistencyException>(() => client.StartSession("arb1.garbage"));
        Assert.Equal(ConsistencyErrorKind.MalformedToken, malformed.Kind);
        var otherCluster = Assert.Throws<ReadConsistencyException>(() => bob.Observe(new ConsistencyToken(put.Header.ClusterId ^ 1, 1).ToString()));
        Assert.Equal(ConsistencyErrorKind.OtherClusterToken, otherCluster.Kind);

        // A session watch: its events move the token on.
        using var cancel = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        var later = await client.PutAsync("answer", "later");
        var events = alice.WatchAsync("answer", new WatchOptions { StartRevision = later.Header.Revision }, cancel.Token).GetAsyncEnumerator(cancel.Token);
        Assert.True(await events.MoveNextAsync());
        Assert.Equal("later", events.Current.Value);
        Assert.Equal(later.Header.Revision, alice.CurrentToken!.Value.Revision);
        await events.DisposeAsync();
    }

    [Theory]
    [MemberData(nameof(Transports))]
    public async Task A_watch_with_a_bad_token_fails_instead_of_reconnecting_forever(bool overGrpc)
    {
        await using var backend = await Backend.StartAsync(overGrpc);
        await using var client = new ArbiterClient(backend.Client, ownsRaw: false);
        var put = await client.PutAsync("k", "v");
        using var cancel = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        var options = new WatchOptions { Consistency = ReadConsistency.Causal(new ConsistencyToken(put.Header.ClusterId, put.Header.Revision + 100)) };
        var error = await Assert.ThrowsAsync<ReadConsistencyException>(async () =>
        {
            await foreach (var e in client.WatchAsync("k", options, cancel.Token))
            {
                Assert.Fail("no event expected, got " + e);
            }
        });
        Assert.Equal(ConsistencyErrorKind.FutureToken, error.Kind);
    }
}
