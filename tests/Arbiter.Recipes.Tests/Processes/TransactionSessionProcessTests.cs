using System.Globalization;
using Arbiter.Client;
using Arbiter.Compatibility.Tests.Fixtures;
using Arbiter.Protocol.Auth;
using Arbiter.Protocol.Etcd;
using Arbiter.Recipes.Transactions;
using Google.Protobuf;
using Grpc.Core;
using Grpc.Net.Client;

namespace Arbiter.Recipes.Tests.Processes;

/// <summary>
/// The transaction SDK over a real <c>arbiter serve</c>: its calls, and the reads and Txns it makes
/// for them, go on one Transactions.Session stream per client, as the server's own gRPC counters
/// show; with sessions turned off they are unary; errors are the same either way; and a stream
/// opened with a token that went stale is replaced without the caller seeing an error.
/// </summary>
public sealed class TransactionSessionProcessTests(ITestOutputHelper output)
{
    private const string TransactionsService = "arbiter.v1.Transactions";

    private static ArbiterClient Connect(string endpoint, bool sessions, string? user = null)
    {
        var options = new ArbiterClientOptions { TransactionSessions = sessions, UserName = user, Password = user is null ? null : "pw" };
        options.Endpoints.Add(endpoint);
        return ArbiterClient.Connect(options);
    }

    /// <summary>Adds user root (password "pw", role root) and turns auth on.</summary>
    private static async Task EnableAuthWithRootAsync(string endpoint)
    {
        using var channel = GrpcChannel.ForAddress(endpoint);
        var auth = new Auth.AuthClient(channel);
        var deadline = DateTime.UtcNow.AddSeconds(30);
        await auth.UserAddAsync(new AuthUserAddRequest { Name = "root", Password = "pw" }, deadline: deadline);
        await auth.UserGrantRoleAsync(new AuthUserGrantRoleRequest { User = "root", Role = "root" }, deadline: deadline);
        await auth.AuthEnableAsync(new AuthEnableRequest(), deadline: deadline);
    }

    /// <summary>One transfer of each family the SDK has (pessimistic, optimistic, STM, UpdateAsync).</summary>
    private static async Task TransferEachWayAsync(TransactionClient txns, string prefix)
    {
        static long Parse(string? value) => value is null ? 0 : long.Parse(value, CultureInfo.InvariantCulture);
        static string Text(long value) => value.ToString(CultureInfo.InvariantCulture);
        var (a, b) = (prefix + "a", prefix + "b");
        async Task TransferAsync(Transaction t, CancellationToken ct)
        {
            var from = Parse(await t.GetAsync(a, ct));
            t.Put(a, Text(from - 1));
            t.Put(b, Text(Parse(await t.GetAsync(b, ct)) + 1));
        }

        await txns.RunTransactionAsync(TransferAsync, options: new TransactionOptions { Mode = TransactionMode.Pessimistic });
        await txns.RunTransactionAsync(TransferAsync, options: new TransactionOptions { Mode = TransactionMode.Optimistic });
        await txns.AtomicallyAsync(async (stm, ct) =>
        {
            var from = Parse(await stm.GetAsync(a, ct));
            stm.Put(a, Text(from - 1));
            stm.Put(b, Text(Parse(await stm.GetAsync(b, ct)) + 1));
        });
        await txns.UpdateAsync(a, old => Text(Parse(old) - 1));
    }

    [Fact]
    public async Task Transaction_calls_and_their_reads_share_one_stream_and_go_unary_with_sessions_off()
    {
        await using var server = new ArbiterProcess("txn-session");
        await server.StartAsync();
        using var http = new HttpClient();
        try
        {
            var before = await PrometheusText.ScrapeAsync(http, server.Endpoint);
            await using (var client = Connect(server.Endpoint, sessions: true))
            await using (var txns = new TransactionClient(client))
            {
                await TransferEachWayAsync(txns, "on/");
                Assert.Equal("-4", await client.GetStringAsync("on/a"));
            }

            var on = await PrometheusText.ScrapeAsync(http, server.Endpoint);
            double Started(PrometheusText scrape, string service, string method) => scrape.Sum("grpc_server_started_total", ("grpc_service", service), ("grpc_method", method));
            double Delta(PrometheusText from, PrometheusText to, string service, string method) => Started(to, service, method) - Started(from, service, method);
            output.WriteLine($"sessions on: Session +{Delta(before, on, TransactionsService, "Session")}, Begin +{Delta(before, on, TransactionsService, "Begin")}, Range +{Delta(before, on, "etcdserverpb.KV", "Range")}, Txn +{Delta(before, on, "etcdserverpb.KV", "Txn")}");
            Assert.Equal(1, Delta(before, on, TransactionsService, "Session"));
            foreach (var method in new[] { "Begin", "Lock", "Commit", "Abort", "OptimisticCommit" })
            {
                Assert.Equal(0, Delta(before, on, TransactionsService, method));
            }

            // The client's own read of the result above is its one unary Range: the transactions' reads were not.
            Assert.Equal(1, Delta(before, on, "etcdserverpb.KV", "Range"));
            Assert.Equal(0, Delta(before, on, "etcdserverpb.KV", "Txn"));

            await using (var client = Connect(server.Endpoint, sessions: false))
            await using (var txns = new TransactionClient(client))
            {
                await TransferEachWayAsync(txns, "off/");
            }

            var off = await PrometheusText.ScrapeAsync(http, server.Endpoint);
            output.WriteLine($"sessions off: Session +{Delta(on, off, TransactionsService, "Session")}, Begin +{Delta(on, off, TransactionsService, "Begin")}, Commit +{Delta(on, off, TransactionsService, "Commit")}, OptimisticCommit +{Delta(on, off, TransactionsService, "OptimisticCommit")}");
            Assert.Equal(0, Delta(on, off, TransactionsService, "Session"));
            Assert.Equal(1, Delta(on, off, TransactionsService, "Begin"));
            Assert.Equal(1, Delta(on, off, TransactionsService, "Commit"));
            Assert.Equal(1, Delta(on, off, TransactionsService, "OptimisticCommit"));
            Assert.True(Delta(on, off, "etcdserverpb.KV", "Txn") >= 3, "the STM's reads and commit and UpdateAsync's commit are unary Txns");
        }
        catch (Exception)
        {
            output.WriteLine(server.Log);
            throw;
        }
    }

    [Fact]
    public async Task A_failed_call_fails_alike_on_the_session_and_unary()
    {
        await using var server = new ArbiterProcess("txn-session-errors");
        await server.StartAsync();
        await using var onClient = Connect(server.Endpoint, sessions: true);
        await using var offClient = Connect(server.Endpoint, sessions: false);
        var on = (ITransactionsClient)onClient.Raw;
        var off = (ITransactionsClient)offClient.Raw;
        var lease = (await onClient.Raw.LeaseGrantAsync(new LeaseGrantRequest { TTL = 60 })).ID;
        var aborted = (await on.TxnBeginAsync(new Protocol.Transactions.BeginRequest { Lease = lease })).TxnId;
        await on.TxnAbortAsync(new Protocol.Transactions.AbortRequest { TxnId = aborted });
        var open = (await on.TxnBeginAsync(new Protocol.Transactions.BeginRequest { Lease = lease })).TxnId;

        var failures = new (string What, Func<ITransactionsClient, Task> Call)[]
        {
            ("lock in an unknown transaction", c => c.TxnLockAsync(new Protocol.Transactions.LockRequest { TxnId = 987_654, Key = ByteString.CopyFromUtf8("k") })),
            ("commit after abort", c => c.TxnCommitAsync(new Protocol.Transactions.CommitRequest { TxnId = aborted })),
            ("lock on an empty key", c => c.TxnLockAsync(new Protocol.Transactions.LockRequest { TxnId = open })),
            ("lock on an inverted range", c => c.TxnLockAsync(new Protocol.Transactions.LockRequest { TxnId = open, Key = ByteString.CopyFromUtf8("b"), RangeEnd = ByteString.CopyFromUtf8("a") })),
            ("write outside the locks", c => c.TxnCommitAsync(new Protocol.Transactions.CommitRequest { TxnId = open, Writes = { new RequestOp { RequestPut = new PutRequest { Key = ByteString.CopyFromUtf8("x"), Value = ByteString.CopyFromUtf8("v") } } } })),
            ("begin on a lease that does not exist", c => c.TxnBeginAsync(new Protocol.Transactions.BeginRequest { Lease = 123_456 })),
        };

        foreach (var (what, call) in failures)
        {
            var viaSession = await Assert.ThrowsAsync<RpcException>(() => call(on));
            var viaUnary = await Assert.ThrowsAsync<RpcException>(() => call(off));
            output.WriteLine($"{what}: {viaSession.StatusCode} \"{viaSession.Status.Detail}\" [{string.Join(", ", viaSession.Trailers.Select(t => t.Key))}]");
            Assert.Equal((viaUnary.StatusCode, viaUnary.Status.Detail), (viaSession.StatusCode, viaSession.Status.Detail));
            var transactionTrailer = viaUnary.Trailers.Get(TransactionErrorMetadata.Trailer)?.ValueBytes;
            Assert.Equal(transactionTrailer, viaSession.Trailers.Get(TransactionErrorMetadata.Trailer)?.ValueBytes);
        }

        // The SDK types them alike: an unknown transaction is UnknownTransactionException either way.
        Assert.IsType<UnknownTransactionException>(TransactionException.FromRpc(await Assert.ThrowsAsync<RpcException>(() => failures[0].Call(on)), "test"));
    }

    [Fact]
    public async Task A_session_opened_with_a_token_that_went_stale_is_replaced_and_the_call_goes_through()
    {
        await using var server = new ArbiterProcess("txn-session-auth", ["--bcrypt-cost", "4"]);
        await server.StartAsync();
        using var http = new HttpClient();
        await EnableAuthWithRootAsync(server.Endpoint);
        using var channel = GrpcChannel.ForAddress(server.Endpoint);
        var auth = new Auth.AuthClient(channel);

        await using var client = Connect(server.Endpoint, sessions: true, user: "root");
        await using var txns = new TransactionClient(client);
        var before = await PrometheusText.ScrapeAsync(http, server.Endpoint);
        await TransferEachWayAsync(txns, "auth/");

        // An auth change moves the auth store's revision: the session's token is now stale.
        var rootChannelHeaders = new Metadata { { "token", (await auth.AuthenticateAsync(new AuthenticateRequest { Name = "root", Password = "pw" })).Token } };
        await auth.UserAddAsync(new AuthUserAddRequest { Name = "bob", Password = "pw" }, rootChannelHeaders, deadline: DateTime.UtcNow.AddSeconds(30));

        await TransferEachWayAsync(txns, "auth/");
        Assert.Equal("-8", await client.GetStringAsync("auth/a"));
        var after = await PrometheusText.ScrapeAsync(http, server.Endpoint);
        var sessions = after.Sum("grpc_server_started_total", ("grpc_service", TransactionsService), ("grpc_method", "Session"))
            - before.Sum("grpc_server_started_total", ("grpc_service", TransactionsService), ("grpc_method", "Session"));
        output.WriteLine($"sessions opened: {sessions}");
        Assert.Equal(2, sessions);
    }

    [Fact]
    public async Task A_session_refused_as_it_opens_for_an_expired_token_leaves_the_call_unary_and_the_next_one_reopens()
    {
        const int TokenTtlSeconds = 1;
        await using var server = new ArbiterProcess("txn-session-ttl", ["--bcrypt-cost", "4", "--auth-token-ttl", TokenTtlSeconds.ToString(CultureInfo.InvariantCulture)]);
        await server.StartAsync();
        using var http = new HttpClient();
        await EnableAuthWithRootAsync(server.Endpoint);

        // The raw client alone: nothing of its own renews the token behind the test's back.
        await using var client = new GrpcArbiterClient([server.Endpoint], createHandler: null, "root", "pw");
        var lease = (await client.LeaseGrantAsync(new LeaseGrantRequest { TTL = 300 })).ID;

        // Unused for longer than its TTL, the token expires on the server (an idle TTL on the
        // monotonic clock, so this wait is a bound, not a hope): the first session opens with it.
        await Task.Delay(TimeSpan.FromSeconds(TokenTtlSeconds * 2.5));
        var txn = await client.TxnBeginAsync(new Protocol.Transactions.BeginRequest { Lease = lease, Locks = { Protocol.Transactions.LockTarget.Exclusive("ttl/k") } });
        await client.TxnCommitAsync(new Protocol.Transactions.CommitRequest { TxnId = txn.TxnId, Writes = { new RequestOp { RequestPut = new PutRequest { Key = ByteString.CopyFromUtf8("ttl/k"), Value = ByteString.CopyFromUtf8("v") } } } });
        Assert.Single((await client.RangeAsync(new RangeRequest { Key = ByteString.CopyFromUtf8("ttl/k") })).Kvs);

        var scrape = await PrometheusText.ScrapeAsync(http, server.Endpoint);
        double Sessions(string metric, params (string, string)[] labels) => scrape.Sum(metric, [("grpc_service", TransactionsService), ("grpc_method", "Session"), .. labels]);
        double Unary(string method) => scrape.Sum("grpc_server_started_total", ("grpc_service", TransactionsService), ("grpc_method", method));
        output.WriteLine($"sessions started {Sessions("grpc_server_started_total")}, refused as they opened {Sessions("grpc_server_handled_total", ("grpc_code", "Unauthenticated"))}; unary Begin {Unary("Begin")}, Commit {Unary("Commit")}");
        Assert.Equal(1, Sessions("grpc_server_handled_total", ("grpc_code", "Unauthenticated")));
        Assert.Equal(2, Sessions("grpc_server_started_total"));
        Assert.Equal((1, 0), (Unary("Begin"), Unary("Commit")));
    }

    [Fact]
    public async Task Every_call_on_a_session_is_checked_against_its_users_permissions_as_unary()
    {
        await using var server = new ArbiterProcess("txn-session-permissions", ["--bcrypt-cost", "4"]);
        await server.StartAsync();
        using (var channel = GrpcChannel.ForAddress(server.Endpoint))
        {
            var auth = new Auth.AuthClient(channel);
            var deadline = DateTime.UtcNow.AddSeconds(30);
            await auth.RoleAddAsync(new AuthRoleAddRequest { Name = "reader" }, deadline: deadline);
            await auth.RoleGrantPermissionAsync(new AuthRoleGrantPermissionRequest { Name = "reader", Perm = new Permission { PermType = Permission.Types.Type.Read, Key = ByteString.CopyFromUtf8("a/"), RangeEnd = ByteString.CopyFromUtf8("a0") } }, deadline: deadline);
            await auth.UserAddAsync(new AuthUserAddRequest { Name = "bob", Password = "pw" }, deadline: deadline);
            await auth.UserGrantRoleAsync(new AuthUserGrantRoleRequest { User = "bob", Role = "reader" }, deadline: deadline);
        }

        await EnableAuthWithRootAsync(server.Endpoint);
        await using var onClient = Connect(server.Endpoint, sessions: true, user: "bob");
        await using var offClient = Connect(server.Endpoint, sessions: false, user: "bob");
        await using var anonymous = Connect(server.Endpoint, sessions: true);
        var lease = (await onClient.Raw.LeaseGrantAsync(new LeaseGrantRequest { TTL = 60 })).ID;

        // bob may read a/ (a shared lock is a read), nothing else; no user may not even begin.
        async Task<string> OutcomeAsync(ArbiterClient client, Func<ITransactionsClient, IArbiterClient, long, Task> call)
        {
            var raw = (ITransactionsClient)client.Raw;
            var txn = (await raw.TxnBeginAsync(new Protocol.Transactions.BeginRequest { Lease = lease })).TxnId;
            try
            {
                await call(raw, raw.KvForTransactions, txn);
                return "OK";
            }
            catch (RpcException e)
            {
                return $"{e.StatusCode} {e.Status.Detail}";
            }
            finally
            {
                await raw.TxnAbortAsync(new Protocol.Transactions.AbortRequest { TxnId = txn });
            }
        }

        var calls = new (string What, string Expected, Func<ITransactionsClient, IArbiterClient, long, Task> Call)[]
        {
            ("shared lock on a/k", "OK", (t, _, txn) => t.TxnLockAsync(new Protocol.Transactions.LockRequest { TxnId = txn, Key = ByteString.CopyFromUtf8("a/k"), Mode = Protocol.Transactions.LockMode.Shared })),
            ("exclusive lock on a/k", "PermissionDenied", (t, _, txn) => t.TxnLockAsync(new Protocol.Transactions.LockRequest { TxnId = txn, Key = ByteString.CopyFromUtf8("a/k"), Mode = Protocol.Transactions.LockMode.Exclusive })),
            ("shared lock on b/k", "PermissionDenied", (t, _, txn) => t.TxnLockAsync(new Protocol.Transactions.LockRequest { TxnId = txn, Key = ByteString.CopyFromUtf8("b/k"), Mode = Protocol.Transactions.LockMode.Shared })),
            ("read of a/k", "OK", (_, kv, _) => kv.RangeAsync(new RangeRequest { Key = ByteString.CopyFromUtf8("a/k") })),
            ("read of b/k", "PermissionDenied", (_, kv, _) => kv.RangeAsync(new RangeRequest { Key = ByteString.CopyFromUtf8("b/k") })),
            ("optimistic write to a/k", "PermissionDenied", (t, _, _) => t.TxnOptimisticCommitAsync(new Protocol.Transactions.OptimisticCommitRequest { Writes = { new RequestOp { RequestPut = new PutRequest { Key = ByteString.CopyFromUtf8("a/k"), Value = ByteString.CopyFromUtf8("v") } } } })),
            ("txn writing a/k", "PermissionDenied", (_, kv, _) => kv.TxnAsync(new TxnRequest { Success = { new RequestOp { RequestPut = new PutRequest { Key = ByteString.CopyFromUtf8("a/k"), Value = ByteString.CopyFromUtf8("v") } } } })),
        };

        foreach (var (what, expected, call) in calls)
        {
            var viaSession = await OutcomeAsync(onClient, call);
            var viaUnary = await OutcomeAsync(offClient, call);
            output.WriteLine($"bob, {what}: session {viaSession}; unary {viaUnary}");
            Assert.StartsWith(expected, viaSession, StringComparison.Ordinal);
            Assert.Equal(viaUnary, viaSession);
        }

        var refused = await Assert.ThrowsAsync<RpcException>(() => ((ITransactionsClient)anonymous.Raw).TxnBeginAsync(new Protocol.Transactions.BeginRequest { Lease = lease }));
        Assert.Equal((StatusCode.InvalidArgument, "etcdserver: user name is empty"), (refused.StatusCode, refused.Status.Detail));
    }
}
