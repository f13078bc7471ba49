using Arbiter.Compatibility.Tests.Fixtures;
using Arbiter.Protocol.Auth;
using Arbiter.Protocol.Crdt;
using Arbiter.Protocol.Etcd;
using Arbiter.Protocol.Transactions;
using Google.Protobuf;
using Grpc.Core;
using Grpc.Net.Client;
using CrdtService = Arbiter.Protocol.Crdt.Crdt;

namespace Arbiter.Cluster.Tests.Security;

/// <summary>
/// Who may do what on the arbiter.v1 services with auth on, on a real <c>arbiter serve</c>, by
/// analogy with etcd's key-level rules (docs/security.md): Transactions — Begin/Abort need an
/// authenticated user, Lock needs READ (shared) or WRITE (exclusive) on the key, Commit WRITE on each
/// written key, OptimisticCommit READ on each read range and WRITE on each written key; Crdt — Get
/// READ, Update WRITE on the CRDT's key. alice may read and write <c>a/</c>; bob may only read it; carol may only write it.
/// </summary>
public sealed class ArbiterV1PermissionTests(ITestOutputHelper output)
{
    private static readonly TimeSpan CallTimeout = TimeSpan.FromSeconds(30);

    [Fact]
    public async Task Transactions_and_Crdt_are_checked_by_key_for_each_user()
    {
        await using var server = new ArbiterProcess("v1-permissions", ["--bcrypt-cost", "4"]);
        await server.StartAsync();
        try
        {
            using var channel = GrpcChannel.ForAddress(server.Endpoint, ServerFixture.ChannelOptions);
            await SetUpAsync(channel);
            var alice = new Metadata { { "token", await TokenAsync(channel, "alice") } };
            var bob = new Metadata { { "token", await TokenAsync(channel, "bob") } };
            var txns = new Transactions.TransactionsClient(channel);
            var crdt = new CrdtService.CrdtClient(channel);
            var lease = (await new Lease.LeaseClient(channel).LeaseGrantAsync(new LeaseGrantRequest { TTL = 60 }, alice, Deadline())).ID;

            // No token: not even Begin.
            await RefusedAsync(StatusCode.InvalidArgument, () => txns.BeginAsync(new BeginRequest { Lease = lease, TimeLimitMs = 30_000 }, deadline: Deadline()).ResponseAsync, "Begin without a token", "user name is empty");

            // alice: her prefix, exclusive lock, commit a write there.
            var mine = await txns.BeginAsync(new BeginRequest { Lease = lease, TimeLimitMs = 30_000 }, alice, Deadline());
            await txns.LockAsync(new LockRequest { TxnId = mine.TxnId, Key = B("a/k"), Mode = LockMode.Exclusive }, alice, Deadline());
            await RefusedAsync(StatusCode.PermissionDenied, () => txns.LockAsync(new LockRequest { TxnId = mine.TxnId, Key = B("b/k"), Mode = LockMode.Shared }, alice, Deadline()).ResponseAsync, "alice locks b/k");
            // Several targets (a Lock's `more`, a Begin's `locks`): each one is checked, so one outside her prefix refuses all.
            await RefusedAsync(StatusCode.PermissionDenied, () => txns.LockAsync(new LockRequest { TxnId = mine.TxnId, Key = B("a/m"), Mode = LockMode.Exclusive, More = { new LockTarget { Key = B("b/m"), Mode = LockMode.Shared } } }, alice, Deadline()).ResponseAsync, "alice locks a/m and b/m");
            await RefusedAsync(StatusCode.PermissionDenied, () => txns.BeginAsync(new BeginRequest { Lease = lease, TimeLimitMs = 30_000, Locks = { new LockTarget { Key = B("a/n"), Mode = LockMode.Exclusive }, new LockTarget { Key = B("b/n"), Mode = LockMode.Exclusive } } }, alice, Deadline()).ResponseAsync, "alice begins locking a/n and b/n");
            var both = await txns.LockAsync(new LockRequest { TxnId = mine.TxnId, Key = B("a/m"), Mode = LockMode.Exclusive, More = { new LockTarget { Key = B("a/n"), Mode = LockMode.Shared } } }, alice, Deadline());
            Assert.Equal(2, both.FencingTokens.Count);
            await RefusedAsync(StatusCode.PermissionDenied, () => txns.CommitAsync(new CommitRequest { TxnId = mine.TxnId, Writes = { Put("b/k") } }, alice, Deadline()).ResponseAsync, "alice commits a write to b/k");
            await txns.CommitAsync(new CommitRequest { TxnId = mine.TxnId, Writes = { Put("a/k") } }, alice, Deadline());

            // bob: a shared lock on a/ is a read; an exclusive one is a write.
            var his = await txns.BeginAsync(new BeginRequest { Lease = lease, TimeLimitMs = 30_000 }, bob, Deadline());
            await txns.LockAsync(new LockRequest { TxnId = his.TxnId, Key = B("a/k"), Mode = LockMode.Shared }, bob, Deadline());
            await RefusedAsync(StatusCode.PermissionDenied, () => txns.LockAsync(new LockRequest { TxnId = his.TxnId, Key = B("a/j"), Mode = LockMode.Exclusive }, bob, Deadline()).ResponseAsync, "bob locks a/j exclusively");
            await RefusedAsync(StatusCode.PermissionDenied, () => txns.LockAsync(new LockRequest { TxnId = his.TxnId, Key = B("a/k"), Mode = LockMode.Shared, More = { new LockTarget { Key = B("a/j"), Mode = LockMode.Exclusive } } }, bob, Deadline()).ResponseAsync, "bob locks a/k shared and a/j exclusively");
            await RefusedAsync(StatusCode.PermissionDenied, () => txns.CommitAsync(new CommitRequest { TxnId = his.TxnId, Writes = { Put("a/k") } }, bob, Deadline()).ResponseAsync, "bob commits a write to a/k");
            await txns.AbortAsync(new AbortRequest { TxnId = his.TxnId }, bob, Deadline());

            // Locked keys read with the grant: only for a caller who may read them. carol may only
            // write a/: her exclusive lock is granted, with nothing read ahead (and her read refused).
            var carol = new Metadata { { "token", await TokenAsync(channel, "carol") } };
            var read = await txns.BeginAsync(new BeginRequest { Lease = lease, TimeLimitMs = 30_000, ReadLockedKeys = true, Locks = { new LockTarget { Key = B("a/k"), Mode = LockMode.Shared } } }, bob, Deadline());
            Assert.True(read.LockedKeysRead);
            Assert.Equal("a/k", Assert.Single(read.Kvs).Key.ToStringUtf8());
            await txns.AbortAsync(new AbortRequest { TxnId = read.TxnId }, bob, Deadline());
            var blind = await txns.BeginAsync(new BeginRequest { Lease = lease, TimeLimitMs = 30_000, ReadLockedKeys = true, Locks = { new LockTarget { Key = B("a/k"), Mode = LockMode.Exclusive } } }, carol, Deadline());
            Assert.False(blind.LockedKeysRead);
            Assert.Empty(blind.Kvs);
            await RefusedAsync(StatusCode.PermissionDenied, () => new KV.KVClient(channel).RangeAsync(new RangeRequest { Key = B("a/k") }, carol, Deadline()).ResponseAsync, "carol reads a/k");
            await txns.AbortAsync(new AbortRequest { TxnId = blind.TxnId }, carol, Deadline());

            // Optimistic: reads need READ, writes WRITE.
            var revision = (await new KV.KVClient(channel).RangeAsync(new RangeRequest { Key = B("a/k") }, alice, Deadline())).Header.Revision;
            await new Transactions.TransactionsClient(channel).OptimisticCommitAsync(Optimistic(revision, read: "a/", write: "a/o"), alice, Deadline());
            await RefusedAsync(StatusCode.PermissionDenied, () => txns.OptimisticCommitAsync(Optimistic(revision, read: "b/", write: "a/o"), alice, Deadline()).ResponseAsync, "alice reads b/ optimistically");
            await RefusedAsync(StatusCode.PermissionDenied, () => txns.OptimisticCommitAsync(Optimistic(revision, read: "a/", write: "a/o"), bob, Deadline()).ResponseAsync, "bob writes a/o optimistically");

            // Crdt: Update is a write, Get a read, on the CRDT's key.
            await crdt.UpdateAsync(Increment("a/likes"), alice, Deadline());
            await RefusedAsync(StatusCode.PermissionDenied, () => crdt.UpdateAsync(Increment("b/likes"), alice, Deadline()).ResponseAsync, "alice updates b/likes");
            await RefusedAsync(StatusCode.PermissionDenied, () => crdt.UpdateAsync(Increment("a/likes"), bob, Deadline()).ResponseAsync, "bob updates a/likes");
            Assert.Equal(1, (await crdt.GetAsync(new CrdtGetRequest { Key = "a/likes" }, bob, Deadline())).Value.Counter);
            await RefusedAsync(StatusCode.PermissionDenied, () => crdt.GetAsync(new CrdtGetRequest { Key = "b/likes" }, bob, Deadline()).ResponseAsync, "bob reads b/likes");

            // What was refused changed nothing: only alice's writes are there.
            var keys = await new KV.KVClient(channel).RangeAsync(new RangeRequest { Key = B("a"), RangeEnd = B("c") }, new Metadata { { "token", await TokenAsync(channel, "root") } }, Deadline());
            Assert.Equal(["a/k", "a/o"], keys.Kvs.Select(kv => kv.Key.ToStringUtf8()));
            Assert.All(keys.Kvs, kv => Assert.Equal("by alice", kv.Value.ToStringUtf8()));
        }
        catch
        {
            output.WriteLine(server.Log);
            throw;
        }
    }

    private static DateTime Deadline() => DateTime.UtcNow.Add(CallTimeout);

    private static ByteString B(string text) => ByteString.CopyFromUtf8(text);

    private static RequestOp Put(string key) => new() { RequestPut = new PutRequest { Key = B(key), Value = B("by alice") } };

    private static OptimisticCommitRequest Optimistic(long revision, string read, string write) => new()
    {
        ReadRevision = revision,
        Reads = { new KeyRange { Key = B(read), RangeEnd = ClusterKit.PrefixEnd(read) } },
        Writes = { Put(write) },
        IdempotencyKey = B(Guid.NewGuid().ToString("N")),
    };

    private static CrdtUpdateRequest Increment(string key) => new()
    {
        Key = key,
        Type = CrdtType.PnCounter,
        Operation = new CrdtOperation { CounterAdd = new CounterAdd { Delta = 1 } },
    };

    private async Task RefusedAsync(StatusCode expected, Func<Task> call, string what, string detail = "permission denied")
    {
        var e = await Assert.ThrowsAsync<RpcException>(call);
        Assert.True(e.StatusCode == expected && e.Status.Detail.Contains(detail, StringComparison.Ordinal), $"{what}: {e.StatusCode} {e.Status.Detail} (expected {expected}, '{detail}')");
        output.WriteLine($"{what}: {e.StatusCode} {e.Status.Detail}");
    }

    private static async Task SetUpAsync(GrpcChannel channel)
    {
        var auth = new Auth.AuthClient(channel);
        await auth.UserAddAsync(new AuthUserAddRequest { Name = "root", Password = "pw" }, deadline: Deadline());
        await auth.UserGrantRoleAsync(new AuthUserGrantRoleRequest { User = "root", Role = "root" }, deadline: Deadline());
        foreach (var (user, type) in new[] { ("alice", Permission.Types.Type.Readwrite), ("bob", Permission.Types.Type.Read), ("carol", Permission.Types.Type.Write) })
        {
            await auth.RoleAddAsync(new AuthRoleAddRequest { Name = user + "-role" }, deadline: Deadline());
            await auth.RoleGrantPermissionAsync(
                new AuthRoleGrantPermissionRequest { Name = user + "-role", Perm = new Permission { PermType = type, Key = B("a/"), RangeEnd = ClusterKit.PrefixEnd("a/") } },
                deadline: Deadline());
            await auth.UserAddAsync(new AuthUserAddRequest { Name = user, Password = "pw" }, deadline: Deadline());
            await auth.UserGrantRoleAsync(new AuthUserGrantRoleRequest { User = user, Role = user + "-role" }, deadline: Deadline());
        }

        await auth.AuthEnableAsync(new AuthEnableRequest(), deadline: Deadline());
    }

    private static async Task<string> TokenAsync(GrpcChannel channel, string user) =>
        (await new Auth.AuthClient(channel).AuthenticateAsync(new AuthenticateRequest { Name = user, Password = "pw" }, deadline: Deadline())).Token;
}
