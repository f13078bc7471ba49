using Arbiter.Client;
using Arbiter.Node;
using Arbiter.Protocol.Etcd;
using Arbiter.Protocol.Transactions;
using Arbiter.Server.Tests.Infrastructure;
using Google.Protobuf;
using Grpc.Core;
using Grpc.Net.Client;

namespace Arbiter.Server.Tests.Transactions;

/// <summary>
/// The Transactions.Session stream at its edges: the server's limit of calls in flight (refused
/// past it, and the client goes unary instead), a cancel message, and a stream cut by the server's
/// stop (its calls fail as Unavailable, as unary calls cut off with their connection do).
/// </summary>
public sealed class TransactionSessionTests
{
    private static ByteString B(string s) => ByteString.CopyFromUtf8(s);

    private static LockRequest ExclusiveLock(long txnId, string key) => new() { TxnId = txnId, Key = B(key), Mode = LockMode.Exclusive };

    private static async Task<(long Holder, long[] Waiters)> HolderAndWaitersAsync(ArbiterNode node, string key, int waiters)
    {
        var lease = (await node.LeaseGrantAsync(new LeaseGrantRequest { TTL = 60 })).ID;
        var holder = (await node.TxnBeginAsync(new BeginRequest { Lease = lease })).TxnId;
        await node.TxnLockAsync(ExclusiveLock(holder, key));
        var ids = new long[waiters];
        for (var i = 0; i < waiters; i++)
        {
            ids[i] = (await node.TxnBeginAsync(new BeginRequest { Lease = lease })).TxnId;
        }

        return (holder, ids);
    }

    private static Task WaitersQueuedAsync(ArbiterNode node, int count) =>
        Eventually.TrueAsync(
            async () => (await node.TxnStatusAsync()).Locks.Count(l => !l.Granted) == count,
            TimeSpan.FromSeconds(10),
            $"{count} lock requests queued");

    [Fact(Timeout = 60_000)]
    public async Task The_server_refuses_a_call_past_its_limit_and_the_stream_carries_on()
    {
        await using var backend = await Backend.StartAsync(overGrpc: true, new NodeOptions { TransactionSessionCallsInFlightMax = 2 });
        var (holder, waiters) = await HolderAndWaitersAsync(backend.Node, "k", 3);
        using var channel = GrpcChannel.ForAddress(backend.Endpoint!);
        using var session = new Protocol.Transactions.Transactions.TransactionsClient(channel).Session();
        var headers = await session.ResponseHeadersAsync;
        Assert.Equal("2", headers.GetValue(SessionMetadata.CallsInFlightMaxHeader));

        for (var i = 0; i < 3; i++)
        {
            await session.RequestStream.WriteAsync(new SessionRequest { CallId = (ulong)(i + 1), Lock = ExclusiveLock(waiters[i], "k") });
        }

        // Two wait for the lock; the third is answered at once.
        Assert.True(await session.ResponseStream.MoveNext());
        var refused = session.ResponseStream.Current;
        Assert.Equal(3UL, refused.CallId);
        Assert.Equal((int)StatusCode.ResourceExhausted, refused.Error.Code);
        Assert.Contains("limit 2", refused.Error.Message, StringComparison.Ordinal);
        await WaitersQueuedAsync(backend.Node, 2);

        // A call id still in flight is refused; a message with no call is refused.
        await session.RequestStream.WriteAsync(new SessionRequest { CallId = 1, Abort = new AbortRequest { TxnId = waiters[2] } });
        await session.RequestStream.WriteAsync(new SessionRequest { CallId = 9 });
        Assert.True(await session.ResponseStream.MoveNext());
        Assert.Equal((1UL, (int)StatusCode.InvalidArgument), (session.ResponseStream.Current.CallId, session.ResponseStream.Current.Error.Code));
        Assert.True(await session.ResponseStream.MoveNext());
        Assert.Equal((9UL, (int)StatusCode.InvalidArgument), (session.ResponseStream.Current.CallId, session.ResponseStream.Current.Error.Code));

        // The holder commits: the first waiter is granted on the same stream.
        await backend.Node.TxnCommitAsync(new CommitRequest { TxnId = holder });
        Assert.True(await session.ResponseStream.MoveNext());
        var granted = session.ResponseStream.Current;
        Assert.Equal((1UL, SessionResponse.ResultOneofCase.Lock), (granted.CallId, granted.ResultCase));
        Assert.True(granted.Lock.FencingToken > 0);

        // A cancel message ends the other wait: it is answered Cancelled.
        await session.RequestStream.WriteAsync(new SessionRequest { CallId = 2, Cancel = new SessionCancel() });
        Assert.True(await session.ResponseStream.MoveNext());
        Assert.Equal((2UL, (int)StatusCode.Cancelled), (session.ResponseStream.Current.CallId, session.ResponseStream.Current.Error.Code));

        // The client half-closes: the server answers what it was sent and ends the stream cleanly.
        await session.RequestStream.WriteAsync(new SessionRequest { CallId = 10, Range = new RangeRequest { Key = B("k") } });
        await session.RequestStream.CompleteAsync();
        Assert.True(await session.ResponseStream.MoveNext());
        Assert.Equal((10UL, SessionResponse.ResultOneofCase.Range), (session.ResponseStream.Current.CallId, session.ResponseStream.Current.ResultCase));
        Assert.False(await session.ResponseStream.MoveNext());
        Assert.Equal(StatusCode.OK, session.GetStatus().StatusCode);
    }

    [Fact(Timeout = 60_000)]
    public async Task A_client_past_the_servers_limit_calls_unary_instead_of_failing()
    {
        await using var backend = await Backend.StartAsync(overGrpc: true, new NodeOptions { TransactionSessionCallsInFlightMax = 2 });
        var (holder, waiters) = await HolderAndWaitersAsync(backend.Node, "k", 3);
        var client = (GrpcArbiterClient)backend.Client;

        // Three lock waits at once from one client: two on its session, the third unary.
        var locks = waiters.ToDictionary(id => client.TxnLockAsync(ExclusiveLock(id, "k")), id => id);
        await WaitersQueuedAsync(backend.Node, 3);
        await backend.Node.TxnCommitAsync(new CommitRequest { TxnId = holder });

        // Granted one at a time, in the order the waits were queued: each commits to let the next in.
        while (locks.Count > 0)
        {
            var granted = await Task.WhenAny(locks.Keys);
            Assert.True((await granted).FencingToken > 0);
            await client.TxnCommitAsync(new CommitRequest { TxnId = locks[granted] });
            locks.Remove(granted);
        }
    }

    [Fact(Timeout = 60_000)]
    public async Task A_cancelled_call_ends_at_once_and_the_session_carries_on()
    {
        await using var backend = await Backend.StartAsync(overGrpc: true);
        var (holder, waiters) = await HolderAndWaitersAsync(backend.Node, "k", 1);
        var client = (GrpcArbiterClient)backend.Client;
        using var cancel = new CancellationTokenSource();
        var wait = client.TxnLockAsync(ExclusiveLock(waiters[0], "k"), cancel.Token);
        await WaitersQueuedAsync(backend.Node, 1);
        await cancel.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => wait);

        // The stream is fine: the holder's commit and a read go through it.
        await client.TxnCommitAsync(new CommitRequest { TxnId = holder });
        var read = await client.ForTransactions().RangeAsync(new RangeRequest { Key = B("k") });
        Assert.Empty(read.Kvs);
    }

    [Fact(Timeout = 60_000)]
    public async Task A_session_cut_by_the_servers_stop_fails_its_calls_as_unavailable()
    {
        await using var backend = await Backend.StartAsync(overGrpc: true);
        var (_, waiters) = await HolderAndWaitersAsync(backend.Node, "k", 1);
        var client = (GrpcArbiterClient)backend.Client;
        var wait = client.TxnLockAsync(ExclusiveLock(waiters[0], "k"));
        await WaitersQueuedAsync(backend.Node, 1);

        await backend.StopServerAsync();
        var error = await Assert.ThrowsAsync<RpcException>(() => wait);
        Assert.Equal(StatusCode.Unavailable, error.StatusCode);
    }
}
