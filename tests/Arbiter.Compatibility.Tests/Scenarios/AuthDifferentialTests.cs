using System.Text;
using Arbiter.Compatibility.Tests.Etcdctl;
using Arbiter.Compatibility.Tests.Fixtures;
using Arbiter.Protocol.Auth;
using Arbiter.Protocol.Election;
using Arbiter.Protocol.Etcd;
using Arbiter.Protocol.Lock;
using Google.Protobuf;
using Grpc.Core;
using Grpc.Core.Interceptors;
using Grpc.Net.Client;

namespace Arbiter.Compatibility.Tests.Scenarios;

/// <summary>
/// etcd's authentication and RBAC, differentially: the same etcdctl script, and the same matrix of
/// RPCs × identities, run against a fresh real etcd 3.4 and a fresh Arbiter; the outputs must be
/// identical. etcd's output is the expected one: nothing here is written by hand except the calls.
/// Each test starts its own two servers (auth changes a server for good).
/// </summary>
[Trait("Target", "Differential")]
public sealed class AuthDifferentialTests(ITestOutputHelper output)
{
    private static readonly TimeSpan CommandTimeout = TimeSpan.FromSeconds(20);

    /// <summary>
    /// etcdctl user/role/auth commands, then --user root and --user alice allowed and denied,
    /// wrong passwords, root rules, a password change, auth disable: exit code, stdout and the
    /// "Error:" lines of stderr identical on both (etcdctl's other stderr lines carry timestamps).
    /// </summary>
    [Fact]
    public async Task EtcdctlUserRoleAuthScriptGivesIdenticalOutputs()
    {
        await using var etcd = new EtcdProcess("etcd-auth");
        await using var arbiter = new ArbiterProcess("arbiter-auth", ["--bcrypt-cost", "4"]);
        await Task.WhenAll(etcd.StartAsync(), arbiter.StartAsync());

        var etcdTranscript = await EtcdctlTranscript.RunAsync(new EtcdctlRunner(etcd.Endpoint), EtcdctlScript, CommandTimeout);
        var arbiterTranscript = await EtcdctlTranscript.RunAsync(new EtcdctlRunner(arbiter.Endpoint), EtcdctlScript, CommandTimeout);
        output.WriteLine(string.Join("\n", etcdTranscript));
        if (Environment.GetEnvironmentVariable("ARBITER_AUTH_TRANSCRIPT_OUT") is { Length: > 0 } path)
        {
            await File.WriteAllLinesAsync(path, ["# etcdctl 3.4.23 against etcd 3.4.23 (identical on Arbiter: the test compares every line)", .. etcdTranscript]);
        }

        Assert.Equal(EtcdctlScript.Length, etcdTranscript.Count);
        EtcdctlTranscript.AssertSame(etcdTranscript, arbiterTranscript, Tail(arbiter.Log));
    }

    /// <summary>
    /// Every etcd RPC (KV, Txn, Watch create, Lease, Cluster, Maintenance, Auth, Lock, Election) ×
    /// {no token, a made-up token, a read-only role, a read-write role, root}: the status code and
    /// text (or the watch's cancel reason) on Arbiter equal etcd's, cell by cell.
    /// </summary>
    [Fact]
    public async Task PermissionMatrixEqualsEtcds()
    {
        await using var etcd = new EtcdProcess("etcd-matrix");
        await using var arbiter = new ArbiterProcess("arbiter-matrix", ["--bcrypt-cost", "4"]);
        await Task.WhenAll(etcd.StartAsync(), arbiter.StartAsync());

        var expected = await PermissionMatrix.RunAsync(etcd.Endpoint);
        var actual = await PermissionMatrix.RunAsync(arbiter.Endpoint);
        var report = PermissionMatrix.Render(expected, actual);
        output.WriteLine(report);
        if (Environment.GetEnvironmentVariable("ARBITER_AUTH_MATRIX_OUT") is { Length: > 0 } path)
        {
            await File.WriteAllTextAsync(path, report);
        }

        var differing = expected.Where(e => actual.GetValueOrDefault(e.Key) != e.Value).Select(e => $"{e.Key}: etcd '{e.Value}', arbiter '{actual.GetValueOrDefault(e.Key)}'").ToArray();
        Assert.True(expected.Count > 100, "the matrix is too small to mean anything");
        Assert.True(differing.Length == 0, $"{differing.Length} cells differ:\n{string.Join("\n", differing)}\n\n{Tail(arbiter.Log)}");
    }

    internal static string Tail(string log) => string.Join("\n", log.Split('\n').TakeLast(40));

    /// <summary>
    /// (arguments, stdin) steps. Ends with auth off and no root user or role, so another script can
    /// follow it on the same server (<see cref="ClientCertificateAuthTests"/> does, on a cluster).
    /// </summary>
    internal static readonly (string[] Args, string? Stdin)[] EtcdctlScript =
    [
        (["auth", "enable"], null),
        (["user", "add", "root:pw"], null),
        (["auth", "enable"], null),
        (["user", "add", "root:pw"], null),
        (["user", "add", ":pw"], null),
        (["user", "get", "root"], null),
        (["role", "add", "root"], null),
        (["role", "add", "root"], null),
        (["user", "grant-role", "root", "root"], null),
        (["user", "grant-role", "root", "root"], null),
        (["user", "get", "root"], null),
        (["role", "add", "ro"], null),
        (["role", "add", "rw"], null),
        (["role", "add", "tmp"], null),
        (["role", "grant-permission", "ro", "read", "/a/", "--prefix"], null),
        (["role", "grant-permission", "rw", "readwrite", "/a/", "--prefix"], null),
        (["role", "grant-permission", "rw", "write", "/w/k"], null),
        (["role", "grant-permission", "rw", "read", "/from/", "--from-key"], null),
        (["role", "grant-permission", "rw", "read", "/r1", "/r3"], null),
        (["role", "grant-permission", "rw", "read", "/r3", "/r5"], null),
        (["role", "grant-permission", "rw", "write", "/w/k"], null),
        (["role", "grant-permission", "nosuch", "read", "x"], null),
        (["role", "get", "ro"], null),
        (["role", "get", "rw"], null),
        (["role", "get", "nosuch"], null),
        (["role", "grant-permission", "tmp", "read", "x"], null),
        (["role", "revoke-permission", "tmp", "x"], null),
        (["role", "revoke-permission", "tmp", "x"], null),
        (["role", "delete", "tmp"], null),
        (["role", "delete", "tmp"], null),
        (["role", "list"], null),
        (["user", "add", "alice:apw"], null),
        (["user", "add", "bob:bpw"], null),
        (["user", "add", "alice:other"], null),
        (["user", "add", "carol", "--interactive=false"], "cpw\n"),
        (["user", "grant-role", "alice", "ro"], null),
        (["user", "grant-role", "bob", "rw"], null),
        (["user", "grant-role", "bob", "ro"], null),
        (["user", "grant-role", "bob", "nosuch"], null),
        (["user", "grant-role", "nosuch", "ro"], null),
        (["user", "revoke-role", "bob", "ro"], null),
        (["user", "revoke-role", "bob", "ro"], null),
        (["user", "get", "alice"], null),
        (["user", "get", "bob", "--detail"], null),
        (["user", "get", "nosuch"], null),
        (["user", "passwd", "carol", "--interactive=false"], "cpw2\n"),
        (["user", "passwd", "nosuch", "--interactive=false"], "x\n"),
        (["user", "delete", "carol"], null),
        (["user", "delete", "carol"], null),
        (["user", "list"], null),
        (["auth", "enable"], null),
        (["auth", "enable"], null),
        (["put", "/a/x", "v"], null),
        (["get", "/a/x"], null),
        (["--user", "root:pw", "put", "/a/x", "v"], null),
        (["--user", "root:pw", "put", "/w/k", "v"], null),
        (["--user", "root:pw", "get", "/a/x"], null),
        (["--user", "root:wrong", "get", "/a/x"], null),
        (["--user", "nosuch:pw", "get", "/a/x"], null),
        (["--user", "alice:apw", "get", "/a/x"], null),
        (["--user", "alice:apw", "get", "/a/", "--prefix"], null),
        (["--user", "alice:apw", "get", "/a"], null),
        (["--user", "alice:apw", "get", "/", "--prefix"], null),
        (["--user", "alice:apw", "put", "/a/x", "v2"], null),
        (["--user", "alice:apw", "del", "/a/x"], null),
        (["--user", "alice:wrong", "get", "/a/x"], null),
        (["--user", "bob:bpw", "put", "/a/y", "v"], null),
        (["--user", "bob:bpw", "get", "/a/", "--prefix", "--keys-only"], null),
        (["--user", "bob:bpw", "get", "/w/k"], null),
        (["--user", "bob:bpw", "put", "/w/k", "v2"], null),
        (["--user", "bob:bpw", "put", "/w/k2", "v2"], null),
        (["--user", "bob:bpw", "get", "/from/x"], null),
        (["--user", "bob:bpw", "get", "--from-key", "/from/"], null),
        (["--user", "bob:bpw", "get", "--from-key", "/a"], null),
        (["--user", "bob:bpw", "get", "/r1", "/r5"], null),
        (["--user", "bob:bpw", "get", "/r1", "/r6"], null),
        (["--user", "bob:bpw", "get", "/r0", "/r3"], null),
        (["--user", "bob:bpw", "del", "/a/y"], null),
        (["--user", "bob:bpw", "txn", "--interactive=false"], "value(\"/a/x\") = \"v\"\n\nput /a/t yes\n\nput /a/t no\n\n"),
        (["--user", "bob:bpw", "txn", "--interactive=false"], "value(\"/w/k\") = \"v\"\n\nput /a/t yes\n\n\n"),
        (["--user", "alice:apw", "txn", "--interactive=false"], "value(\"/a/x\") = \"v\"\n\nget /a/x\n\n\n"),
        (["--user", "alice:apw", "txn", "--interactive=false"], "value(\"/a/x\") = \"v\"\n\nget /a/x\n\nput /a/x z\n\n"),
        (["--user", "alice:apw", "user", "list"], null),
        (["--user", "alice:apw", "user", "get", "alice"], null),
        (["--user", "alice:apw", "user", "get", "bob"], null),
        (["--user", "alice:apw", "role", "get", "ro"], null),
        (["--user", "alice:apw", "role", "get", "rw"], null),
        (["--user", "alice:apw", "role", "list"], null),
        (["--user", "alice:apw", "user", "add", "mallory:x"], null),
        (["--user", "alice:apw", "role", "grant-permission", "ro", "readwrite", "/", "--prefix"], null),
        (["--user", "alice:apw", "user", "passwd", "alice", "--interactive=false"], "mine\n"),
        (["--user", "alice:apw", "auth", "disable"], null),
        (["--user", "root:pw", "user", "delete", "root"], null),
        (["--user", "root:pw", "user", "revoke-role", "root", "root"], null),
        (["--user", "root:pw", "role", "delete", "root"], null),
        (["--user", "root:pw", "user", "list"], null),
        (["--user", "root:pw", "role", "list"], null),
        (["--user", "root:pw", "user", "passwd", "alice", "--interactive=false"], "npw\n"),
        (["--user", "alice:apw", "get", "/a/x"], null),
        (["--user", "alice:npw", "get", "/a/x"], null),
        (["--user", "root:pw", "role", "revoke-permission", "ro", "/a/", "/a0"], null),
        (["--user", "alice:npw", "get", "/a/x"], null),
        (["--user", "root:pw", "role", "delete", "rw"], null),
        (["--user", "root:pw", "user", "get", "bob"], null),
        (["--user", "bob:bpw", "get", "/a/x"], null),
        (["--user", "root:pw", "user", "delete", "bob"], null),
        (["--user", "bob:bpw", "get", "/a/x"], null),
        (["--user", "root:pw", "auth", "disable"], null),
        (["put", "/a/z", "v"], null),
        (["get", "/a/z"], null),
        (["--user", "root:pw", "get", "/a/z"], null),
        (["auth", "disable"], null),
        (["user", "list"], null),
        (["user", "delete", "root"], null),
        (["role", "delete", "root"], null),
    ];

    /// <summary>The RPC × identity matrix: each cell the outcome text of one call.</summary>
    private static class PermissionMatrix
    {
        private static readonly string[] Identities = ["none", "bogus-token", "reader", "writer", "root"];

        public static async Task<SortedDictionary<string, string>> RunAsync(string endpoint)
        {
            using var channel = GrpcChannel.ForAddress(endpoint);
            var invoker = channel.Intercept(new DefaultDeadlineInterceptor(TimeSpan.FromSeconds(20)));
            var auth = new Auth.AuthClient(invoker);
            var kv = new KV.KVClient(invoker);
            var cells = new SortedDictionary<string, string>(StringComparer.Ordinal);

            // Users: root (root role), reader (READ on m/), writer (READWRITE on m/).
            await auth.UserAddAsync(new AuthUserAddRequest { Name = "root", Password = "pw" });
            await auth.UserGrantRoleAsync(new AuthUserGrantRoleRequest { User = "root", Role = "root" });
            foreach (var (user, type) in new[] { ("reader", Permission.Types.Type.Read), ("writer", Permission.Types.Type.Readwrite) })
            {
                await auth.RoleAddAsync(new AuthRoleAddRequest { Name = user + "-role" });
                await auth.RoleGrantPermissionAsync(new AuthRoleGrantPermissionRequest
                {
                    Name = user + "-role",
                    Perm = new Permission { PermType = type, Key = ByteString.CopyFromUtf8("m/"), RangeEnd = ByteString.CopyFromUtf8("m0") },
                });
                await auth.UserAddAsync(new AuthUserAddRequest { Name = user, Password = "pw" });
                await auth.UserGrantRoleAsync(new AuthUserGrantRoleRequest { User = user, Role = user + "-role" });
            }

            await kv.PutAsync(new PutRequest { Key = ByteString.CopyFromUtf8("m/k"), Value = ByteString.CopyFromUtf8("v") });
            await kv.PutAsync(new PutRequest { Key = ByteString.CopyFromUtf8("other"), Value = ByteString.CopyFromUtf8("v") });
            await auth.AuthEnableAsync(new AuthEnableRequest());

            cells["Authenticate(root, wrong password)"] = await Outcome(() => auth.AuthenticateAsync(new AuthenticateRequest { Name = "root", Password = "nope" }).ResponseAsync);
            cells["Authenticate(unknown user)"] = await Outcome(() => auth.AuthenticateAsync(new AuthenticateRequest { Name = "nobody", Password = "pw" }).ResponseAsync);
            cells["Authenticate(empty name)"] = await Outcome(() => auth.AuthenticateAsync(new AuthenticateRequest { Name = "", Password = "pw" }).ResponseAsync);

            var rootToken = (await auth.AuthenticateAsync(new AuthenticateRequest { Name = "root", Password = "pw" })).Token;
            var rootHeaders = new Metadata { { "token", rootToken } };
            foreach (var identity in Identities)
            {
                Metadata? headers = identity switch
                {
                    "none" => null,
                    "bogus-token" => new Metadata { { "token", "abcdefghijklmnop.1" } },
                    "root" => rootHeaders,
                    _ => new Metadata { { "token", (await auth.AuthenticateAsync(new AuthenticateRequest { Name = identity, Password = "pw" })).Token } },
                };
                foreach (var (name, call) in Calls(invoker, headers, rootHeaders, identity))
                {
                    cells[$"{name} | {identity}"] = await Outcome(call);
                    if (Environment.GetEnvironmentVariable("ARBITER_AUTH_MATRIX_OUT") is { Length: > 0 } progress)
                    {
                        await File.AppendAllTextAsync(progress + ".progress", $"{endpoint} {name} | {identity} → {cells[$"{name} | {identity}"]}\n");
                    }
                }
            }

            return cells;
        }

        /// <summary>Side-by-side table: one line per RPC, one column per identity (etcd's outcome, and Arbiter's where it differs).</summary>
        public static string Render(SortedDictionary<string, string> expected, SortedDictionary<string, string> actual)
        {
            var text = new StringBuilder();
            text.AppendLine($"# Permission matrix: etcd 3.4.23 vs Arbiter ({expected.Count} cells, {expected.Count(e => actual.GetValueOrDefault(e.Key) == e.Value)} equal)");
            text.AppendLine("# call | identity → etcd's outcome [≠ arbiter's]");
            foreach (var (key, value) in expected)
            {
                var other = actual.GetValueOrDefault(key);
                text.AppendLine(other == value ? $"{key} → {value}" : $"{key} → {value}  ≠ ARBITER: {other}");
            }

            return text.ToString();
        }

        private static async Task<string> Outcome(Func<Task> call)
        {
            try
            {
                await call();
                return "OK";
            }
            catch (RpcException e)
            {
                return $"{e.StatusCode}: {e.Status.Detail}";
            }
            catch (WatchRefusedException e)
            {
                return "watch canceled: " + e.Message;
            }
        }

        private static async Task<string> Outcome<T>(Func<Task<T>> call) => await Outcome(async () => { await call(); });

        private static ByteString B(string s) => ByteString.CopyFromUtf8(s);

        private static IEnumerable<(string Name, Func<Task> Call)> Calls(CallInvoker invoker, Metadata? headers, Metadata rootHeaders, string identity)
        {
            var kv = new KV.KVClient(invoker);
            var lease = new Lease.LeaseClient(invoker);
            var cluster = new Cluster.ClusterClient(invoker);
            var maintenance = new Maintenance.MaintenanceClient(invoker);
            var auth = new Auth.AuthClient(invoker);
            var watch = new Watch.WatchClient(invoker);
            var locks = new Arbiter.Protocol.Lock.Lock.LockClient(invoker);
            var election = new Arbiter.Protocol.Election.Election.ElectionClient(invoker);
            var own = "m/" + identity;

            yield return ("KV.Range m/k", () => kv.RangeAsync(new RangeRequest { Key = B("m/k") }, headers).ResponseAsync);
            yield return ("KV.Range m/ prefix", () => kv.RangeAsync(new RangeRequest { Key = B("m/"), RangeEnd = B("m0") }, headers).ResponseAsync);
            yield return ("KV.Range other", () => kv.RangeAsync(new RangeRequest { Key = B("other") }, headers).ResponseAsync);
            yield return ("KV.Range all (from \\0)", () => kv.RangeAsync(new RangeRequest { Key = B("\0"), RangeEnd = B("\0") }, headers).ResponseAsync);
            yield return ("KV.Range m/k serializable", () => kv.RangeAsync(new RangeRequest { Key = B("m/k"), Serializable = true }, headers).ResponseAsync);
            yield return ("KV.Put m/", () => kv.PutAsync(new PutRequest { Key = B(own), Value = B("v") }, headers).ResponseAsync);
            yield return ("KV.Put m/ prev_kv", () => kv.PutAsync(new PutRequest { Key = B(own), Value = B("v"), PrevKv = true }, headers).ResponseAsync);
            yield return ("KV.Put other", () => kv.PutAsync(new PutRequest { Key = B("other"), Value = B("v") }, headers).ResponseAsync);
            yield return ("KV.DeleteRange m/", () => kv.DeleteRangeAsync(new DeleteRangeRequest { Key = B(own) }, headers).ResponseAsync);
            yield return ("KV.DeleteRange other", () => kv.DeleteRangeAsync(new DeleteRangeRequest { Key = B("other-none") }, headers).ResponseAsync);
            yield return ("KV.Txn read-only m/", () => kv.TxnAsync(Txn("m/k", get: "m/k"), headers).ResponseAsync);
            yield return ("KV.Txn compare other", () => kv.TxnAsync(Txn("other", get: "m/k"), headers).ResponseAsync);
            yield return ("KV.Txn put m/", () => kv.TxnAsync(Txn("m/k", put: own), headers).ResponseAsync);
            yield return ("KV.Txn put other (failure branch)", () => kv.TxnAsync(Txn("m/k", put: own, failurePut: "other"), headers).ResponseAsync);
            yield return ("KV.Compact", () => kv.CompactAsync(new CompactionRequest { Revision = 1 }, headers).ResponseAsync);
            yield return ("Watch.Create m/k", () => WatchOnce(watch, "m/k", "", headers));
            yield return ("Watch.Create m/ prefix", () => WatchOnce(watch, "m/", "m0", headers));
            yield return ("Watch.Create other", () => WatchOnce(watch, "other", "", headers));
            yield return ("Lease.Grant", () => lease.LeaseGrantAsync(new LeaseGrantRequest { TTL = 60 }, headers).ResponseAsync);
            yield return ("Lease.Revoke (m/ key attached)", async () =>
            {
                var id = (await lease.LeaseGrantAsync(new LeaseGrantRequest { TTL = 60 }, rootHeaders)).ID;
                await kv.PutAsync(new PutRequest { Key = B(own + "-leased"), Lease = id }, rootHeaders);
                await lease.LeaseRevokeAsync(new LeaseRevokeRequest { ID = id }, headers);
            }
            );
            yield return ("Lease.Revoke (other key attached)", async () =>
            {
                var id = (await lease.LeaseGrantAsync(new LeaseGrantRequest { TTL = 60 }, rootHeaders)).ID;
                await kv.PutAsync(new PutRequest { Key = B("other-" + identity), Lease = id }, rootHeaders);
                await lease.LeaseRevokeAsync(new LeaseRevokeRequest { ID = id }, headers);
            }
            );
            yield return ("Lease.Revoke (unknown)", () => lease.LeaseRevokeAsync(new LeaseRevokeRequest { ID = 987654321 }, headers).ResponseAsync);
            yield return ("Lease.KeepAlive", async () =>
            {
                var id = (await lease.LeaseGrantAsync(new LeaseGrantRequest { TTL = 60 }, rootHeaders)).ID;
                using var stream = lease.LeaseKeepAlive(headers, DateTime.UtcNow.AddSeconds(10));
                await stream.RequestStream.WriteAsync(new LeaseKeepAliveRequest { ID = id });
                if (!await stream.ResponseStream.MoveNext(CancellationToken.None))
                {
                    throw new RpcException(new Status(StatusCode.Unknown, "no keep-alive response"));
                }

                await stream.RequestStream.CompleteAsync();
            }
            );
            yield return ("Lease.TimeToLive", () => lease.LeaseTimeToLiveAsync(new LeaseTimeToLiveRequest { ID = 987654321 }, headers).ResponseAsync);
            yield return ("Lease.Leases", () => lease.LeaseLeasesAsync(new LeaseLeasesRequest(), headers).ResponseAsync);
            yield return ("Cluster.MemberList", () => cluster.MemberListAsync(new MemberListRequest(), headers).ResponseAsync);
            yield return ("Maintenance.Status", () => maintenance.StatusAsync(new StatusRequest(), headers).ResponseAsync);
            yield return ("Maintenance.Alarm GET", () => maintenance.AlarmAsync(new AlarmRequest { Action = AlarmRequest.Types.AlarmAction.Get }, headers).ResponseAsync);
            yield return ("Maintenance.Hash", () => maintenance.HashAsync(new HashRequest(), headers).ResponseAsync);
            yield return ("Maintenance.HashKV", () => maintenance.HashKVAsync(new HashKVRequest(), headers).ResponseAsync);
            yield return ("Maintenance.Defragment", () => maintenance.DefragmentAsync(new DefragmentRequest(), headers).ResponseAsync);
            yield return ("Maintenance.Snapshot", async () =>
            {
                using var stream = maintenance.Snapshot(new SnapshotRequest(), headers, DateTime.UtcNow.AddSeconds(10));
                await stream.ResponseStream.MoveNext(CancellationToken.None);
            }
            );
            yield return ("Auth.AuthEnable", () => auth.AuthEnableAsync(new AuthEnableRequest(), headers).ResponseAsync);
            yield return ("Auth.UserList", () => auth.UserListAsync(new AuthUserListRequest(), headers).ResponseAsync);
            yield return ("Auth.RoleList", () => auth.RoleListAsync(new AuthRoleListRequest(), headers).ResponseAsync);
            yield return ("Auth.UserGet self", () => auth.UserGetAsync(new AuthUserGetRequest { Name = identity }, headers).ResponseAsync);
            yield return ("Auth.UserGet root", () => auth.UserGetAsync(new AuthUserGetRequest { Name = "root" }, headers).ResponseAsync);
            yield return ("Auth.RoleGet reader-role", () => auth.RoleGetAsync(new AuthRoleGetRequest { Role = "reader-role" }, headers).ResponseAsync);
            yield return ("Auth.RoleGet root", () => auth.RoleGetAsync(new AuthRoleGetRequest { Role = "root" }, headers).ResponseAsync);
            yield return ("Auth.UserAdd", () => auth.UserAddAsync(new AuthUserAddRequest { Name = "new-" + identity, Password = "x" }, headers).ResponseAsync);
            yield return ("Auth.UserAdd empty name", () => auth.UserAddAsync(new AuthUserAddRequest { Name = "", Password = "x" }, headers).ResponseAsync);
            yield return ("Auth.RoleAdd", () => auth.RoleAddAsync(new AuthRoleAddRequest { Name = "role-" + identity }, headers).ResponseAsync);
            yield return ("Auth.RoleGrantPermission", () => auth.RoleGrantPermissionAsync(
                new AuthRoleGrantPermissionRequest { Name = "reader-role", Perm = new Permission { Key = B("z/" + identity) } }, headers).ResponseAsync);
            yield return ("Auth.RoleRevokePermission", () => auth.RoleRevokePermissionAsync(
                new AuthRoleRevokePermissionRequest { Role = "reader-role", Key = B("z/" + identity) }, headers).ResponseAsync);
            yield return ("Auth.UserGrantRole", () => auth.UserGrantRoleAsync(new AuthUserGrantRoleRequest { User = "reader", Role = "reader-role" }, headers).ResponseAsync);
            yield return ("Auth.UserRevokeRole root", () => auth.UserRevokeRoleAsync(new AuthUserRevokeRoleRequest { Name = "root", Role = "root" }, headers).ResponseAsync);
            yield return ("Auth.UserDelete unknown", () => auth.UserDeleteAsync(new AuthUserDeleteRequest { Name = "nobody" }, headers).ResponseAsync);
            yield return ("Auth.RoleDelete root", () => auth.RoleDeleteAsync(new AuthRoleDeleteRequest { Role = "root" }, headers).ResponseAsync);
            yield return ("Lock.Lock m/ (root's lease)", async () =>
            {
                var id = (await lease.LeaseGrantAsync(new LeaseGrantRequest { TTL = 60 }, rootHeaders)).ID;
                var response = await locks.LockAsync(new LockRequest { Name = B("m/lock-" + identity), Lease = id }, headers, DateTime.UtcNow.AddSeconds(10));
                await locks.UnlockAsync(new UnlockRequest { Key = response.Key }, headers);
            }
            );
            yield return ("Election.Leader m/ (none)", () => election.LeaderAsync(new LeaderRequest { Name = B("m/election-" + identity) }, headers, DateTime.UtcNow.AddSeconds(10)).ResponseAsync);

            // Last: it changes the password and so ends the caller's token.
            yield return ("Auth.UserChangePassword self (same)", () => auth.UserChangePasswordAsync(new AuthUserChangePasswordRequest { Name = identity == "bogus-token" || identity == "none" ? "reader" : identity, Password = "pw" }, headers).ResponseAsync);
        }

        private static TxnRequest Txn(string compareKey, string? get = null, string? put = null, string? failurePut = null)
        {
            var txn = new TxnRequest();
            txn.Compare.Add(new Compare { Key = B(compareKey), Target = Compare.Types.CompareTarget.Version, Result = Compare.Types.CompareResult.Greater, Version = 0 });
            if (get is not null)
            {
                txn.Success.Add(new RequestOp { RequestRange = new RangeRequest { Key = B(get) } });
            }

            if (put is not null)
            {
                txn.Success.Add(new RequestOp { RequestPut = new PutRequest { Key = B(put), Value = B("t") } });
            }

            if (failurePut is not null)
            {
                txn.Failure.Add(new RequestOp { RequestPut = new PutRequest { Key = B(failurePut), Value = B("t") } });
            }

            return txn;
        }

        private static async Task WatchOnce(Watch.WatchClient watch, string key, string rangeEnd, Metadata? headers)
        {
            using var call = watch.Watch(headers, DateTime.UtcNow.AddSeconds(10));
            await call.RequestStream.WriteAsync(new WatchRequest { CreateRequest = new WatchCreateRequest { Key = B(key), RangeEnd = B(rangeEnd) } });
            if (!await call.ResponseStream.MoveNext(CancellationToken.None))
            {
                throw new RpcException(new Status(StatusCode.Unknown, "watch stream ended without a response"));
            }

            var response = call.ResponseStream.Current;
            await call.RequestStream.CompleteAsync();
            if (response.Canceled)
            {
                throw new WatchRefusedException($"id {response.WatchId}, created {response.Created}: {response.CancelReason}");
            }
        }
    }

    private sealed class WatchRefusedException(string message) : Exception(message);
}
