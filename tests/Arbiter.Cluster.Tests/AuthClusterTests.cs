using Arbiter.Compatibility.Tests.Fixtures;
using Arbiter.Core.Auth;
using Arbiter.Protocol.Auth;
using Arbiter.Protocol.Etcd;
using Grpc.Core;

namespace Arbiter.Cluster.Tests;

/// <summary>
/// Auth on a real 3-member cluster: a simple token from one member works on the others (tokens
/// are assigned through the log); users, roles and permissions survive a member kill -9 and restart
/// (it catches up from the leader's log) and a leader kill -9.
/// </summary>
/// <remarks>
/// The second test does the same through a snapshot install (snapshot every 25 entries): the
/// restarted member gets users, roles, permissions and the tokens assigned while it was down from
/// the leader's snapshot, not from the log.
/// </remarks>
public sealed class AuthClusterTests(ITestOutputHelper output)
{
    private static readonly TimeSpan CallTimeout = TimeSpan.FromSeconds(30);

    [Fact]
    public async Task Users_roles_permissions_and_tokens_arrive_with_a_snapshot_install()
    {
        await using var cluster = await ArbiterCluster.StartAsync(3, new ClusterSettings { SnapshotCount = 25, ExtraArguments = ["--bcrypt-cost", "4"] });
        try
        {
            var leader = await cluster.WaitForLeaderAsync(TimeSpan.FromSeconds(60));
            await SetUpAsync(leader);
            var followers = cluster.Members.Where(m => m != leader).ToArray();
            var lagging = followers[1];
            var readerToken = await AuthenticateAsync(followers[0], "reader");
            await WaitSameRevisionAsync(cluster);

            // Down while the log moves on well past several snapshots, the auth store changes and tokens are assigned.
            await lagging.KillAsync();
            var rootToken = await AuthenticateAsync(leader, "root");
            for (var i = 0; i < 150; i++)
            {
                await PutAsync(leader, rootToken, $"m/filler-{i}");
            }

            await AddUserAsync(leader, rootToken, "late", "writer-role");
            var writerToken = await AuthenticateAsync(followers[0], "writer"); // assigned through the log while it is down
            for (var i = 0; i < 60; i++)
            {
                await PutAsync(leader, rootToken, $"m/more-{i}");
            }

            var logBefore = lagging.Log.Length;
            await lagging.StartAsync(isRestart: true);
            await WaitSameRevisionAsync(cluster);
            Assert.Contains("Installed Raft snapshot", lagging.Log[logBefore..], StringComparison.Ordinal);
            ClusterKit.WriteSnapshotActivity(cluster, output);

            await AssertAuthStateAsync(lagging, "after catching up by snapshot");
            await PutAsync(lagging, writerToken, "m/token-from-the-snapshot");
            await PutAsync(lagging, await AuthenticateAsync(lagging, "late"), "m/by-late-after-the-install");
            Assert.Equal(StatusCode.PermissionDenied, (await Assert.ThrowsAsync<RpcException>(() => PutAsync(lagging, readerToken, "m/denied"))).StatusCode);
            Assert.Equal(StatusCode.PermissionDenied, (await Assert.ThrowsAsync<RpcException>(() => PutAsync(lagging, writerToken, "outside/m"))).StatusCode);
            Assert.Equal(StatusCode.Unauthenticated, (await Assert.ThrowsAsync<RpcException>(() => PutAsync(lagging, "not-a-token", "m/x"))).StatusCode);
        }
        catch
        {
            output.WriteLine(cluster.Logs.Length > 20_000 ? cluster.Logs[^20_000..] : cluster.Logs);
            throw;
        }
    }

    [Fact]
    public async Task Users_roles_and_tokens_hold_across_members_a_member_restart_and_a_leader_kill()
    {
        await using var cluster = await ArbiterCluster.StartAsync(3, new ClusterSettings { ExtraArguments = ["--bcrypt-cost", "4"] });
        try
        {
            var leader = await cluster.WaitForLeaderAsync(TimeSpan.FromSeconds(60));
            await SetUpAsync(leader);

            // A token from one member is honoured by every other (assigned through the log).
            var followers = cluster.Members.Where(m => m != leader).ToArray();
            var writerToken = await AuthenticateAsync(followers[0], "writer");
            await PutAsync(followers[1], writerToken, "m/from-another-member");
            await PutAsync(leader, writerToken, "m/on-the-leader");
            var readerToken = await AuthenticateAsync(followers[1], "reader");
            Assert.Equal(StatusCode.PermissionDenied, (await Assert.ThrowsAsync<RpcException>(() => PutAsync(followers[0], readerToken, "m/denied"))).StatusCode);

            // A member down while the log moves on (and the auth store changes): it catches up on restart.
            var lagging = followers[1];
            await lagging.KillAsync();
            var rootToken = await AuthenticateAsync(leader, "root");
            for (var i = 0; i < 60; i++)
            {
                await PutAsync(leader, rootToken, $"m/filler-{i}");
            }

            await AddUserAsync(leader, rootToken, "late", "writer-role");
            await lagging.StartAsync(isRestart: true);
            await WaitSameRevisionAsync(cluster);
            ClusterKit.WriteSnapshotActivity(cluster, output);
            await AssertAuthStateAsync(lagging, "after a kill and restart");
            await PutAsync(lagging, await AuthenticateAsync(lagging, "late"), "m/by-late-on-the-restarted-member");

            // The leader killed: the survivors keep users, roles, permissions; new tokens work.
            await leader.KillAsync();
            var newLeader = await ClusterKit.WaitForAgreedLeaderAsync([.. cluster.Running], TimeSpan.FromSeconds(60));
            output.WriteLine($"{leader.Name} killed; {newLeader.Name} leads");
            foreach (var member in cluster.Running)
            {
                await AssertAuthStateAsync(member, "after the leader kill");
            }

            await PutAsync(newLeader, await AuthenticateAsync(newLeader, "writer"), "m/after-failover");
            Assert.Equal(
                StatusCode.PermissionDenied,
                (await Assert.ThrowsAsync<RpcException>(() => PutAsync(newLeader, readerToken, "m/still-denied"))).StatusCode);

            // And the killed leader comes back with the same auth state.
            await leader.StartAsync(isRestart: true);
            await WaitSameRevisionAsync(cluster);
            await AssertAuthStateAsync(leader, "after the old leader restarted");
        }
        catch
        {
            output.WriteLine(cluster.Logs.Length > 20_000 ? cluster.Logs[^20_000..] : cluster.Logs);
            throw;
        }
    }

    /// <summary>Every running member at one store revision (Status needs no credentials; HashKV, which ClusterKit's convergence uses, needs root).</summary>
    private static Task<TimeSpan> WaitSameRevisionAsync(ArbiterCluster cluster) =>
        ClusterKit.WaitUntilAsync("every running member at the same revision", ClusterKit.ConvergeTimeout, async () =>
        {
            var revisions = new List<long>();
            foreach (var member in cluster.Running)
            {
                revisions.Add((await ClusterKit.StatusAsync(member)).Header.Revision);
            }

            return revisions.Distinct().Count() == 1;
        });

    private static Auth.AuthClient AuthOf(ArbiterClusterMember member, out IDisposable channel)
    {
        var c = member.OpenChannel();
        channel = c;
        return new Auth.AuthClient(c);
    }

    /// <summary>
    /// Users root, reader and writer, their roles and permissions, then auth on. Each step is asked
    /// again on a leader-loss answer (a fresh cluster may change leader on a busy machine): this
    /// test is about auth, not failover.
    /// </summary>
    private static async Task SetUpAsync(ArbiterClusterMember member)
    {
        var auth = AuthOf(member, out var channel);
        using (channel)
        {
            await LeaderLossRetry.AddOnceAsync("add user root", AuthErrors.UserAlreadyExist, () => auth.UserAddAsync(new AuthUserAddRequest { Name = "root", Password = "pw" }, deadline: Deadline()).ResponseAsync);
            await LeaderLossRetry.RetryAsync("grant root the root role", () => auth.UserGrantRoleAsync(new AuthUserGrantRoleRequest { User = "root", Role = "root" }, deadline: Deadline()).ResponseAsync);
            foreach (var (user, type) in new[] { ("reader", Permission.Types.Type.Read), ("writer", Permission.Types.Type.Readwrite) })
            {
                var role = user + "-role";
                await LeaderLossRetry.AddOnceAsync($"add role {role}", AuthErrors.RoleAlreadyExist, () => auth.RoleAddAsync(new AuthRoleAddRequest { Name = role }, deadline: Deadline()).ResponseAsync);
                await LeaderLossRetry.RetryAsync($"grant {role} its permission", () => auth.RoleGrantPermissionAsync(
                    new AuthRoleGrantPermissionRequest { Name = role, Perm = new Permission { PermType = type, Key = ClusterKit.Bytes("m/"), RangeEnd = ClusterKit.Bytes("m0") } },
                    deadline: Deadline()).ResponseAsync);
                await AddUserAsync(auth, headers: null, user, role);
            }

            // Once auth is on, a repeat without root's token is refused: a retry first asks whether it is on.
            await LeaderLossRetry.ChangeOnceAsync(
                "enable auth",
                () => auth.AuthEnableAsync(new AuthEnableRequest(), deadline: Deadline()).ResponseAsync,
                async () => (await auth.AuthStatusAsync(new AuthStatusRequest(), deadline: Deadline())).Enabled);
        }
    }

    private static async Task AddUserAsync(ArbiterClusterMember member, string rootToken, string user, string role)
    {
        var auth = AuthOf(member, out var channel);
        using (channel)
        {
            await AddUserAsync(auth, new Metadata { { "token", rootToken } }, user, role);
        }
    }

    /// <summary>A user with one role; both steps asked again on a leader-loss answer.</summary>
    private static async Task AddUserAsync(Auth.AuthClient auth, Metadata? headers, string user, string role)
    {
        await LeaderLossRetry.AddOnceAsync($"add user {user}", AuthErrors.UserAlreadyExist, () => auth.UserAddAsync(new AuthUserAddRequest { Name = user, Password = "pw" }, headers, Deadline()).ResponseAsync);
        await LeaderLossRetry.RetryAsync($"grant {user} {role}", () => auth.UserGrantRoleAsync(new AuthUserGrantRoleRequest { User = user, Role = role }, headers, Deadline()).ResponseAsync);
    }

    private static DateTime Deadline() => DateTime.UtcNow.Add(CallTimeout);

    private static async Task<string> AuthenticateAsync(ArbiterClusterMember member, string user)
    {
        var auth = AuthOf(member, out var channel);
        using (channel)
        {
            var answer = await LeaderLossRetry.RetryAsync($"authenticate {user}", () => auth.AuthenticateAsync(new AuthenticateRequest { Name = user, Password = "pw" }, deadline: Deadline()).ResponseAsync);
            return answer.Token;
        }
    }

    /// <summary>A put with <paramref name="token"/>, asked again on a leader-loss answer (a put is safe to repeat): this test is about auth, not failover.</summary>
    private static async Task PutAsync(ArbiterClusterMember member, string token, string key)
    {
        using var channel = member.OpenChannel();
        await LeaderLossRetry.RetryAsync($"put {key} via {member.Name}", () => new KV.KVClient(channel).PutAsync(
            new PutRequest { Key = ClusterKit.Bytes(key), Value = ClusterKit.Bytes("v") },
            new Metadata { { "token", token } },
            Deadline()).ResponseAsync);
    }

    private async Task AssertAuthStateAsync(ArbiterClusterMember member, string when)
    {
        var rootToken = await AuthenticateAsync(member, "root");
        var auth = AuthOf(member, out var channel);
        using (channel)
        {
            var headers = new Metadata { { "token", rootToken } };
            var users = await auth.UserListAsync(new AuthUserListRequest(), headers, Deadline());
            Assert.Equal(["late", "reader", "root", "writer"], users.Users);
            var role = await auth.RoleGetAsync(new AuthRoleGetRequest { Role = "reader-role" }, headers, Deadline());
            Assert.Equal("m/", Assert.Single(role.Perm).Key.ToStringUtf8());
            Assert.Equal(["writer-role"], (await auth.UserGetAsync(new AuthUserGetRequest { Name = "late" }, headers, Deadline())).Roles);
            var status = await auth.AuthStatusAsync(new AuthStatusRequest(), headers, Deadline());
            Assert.True(status.Enabled);
            output.WriteLine($"{member.Name} {when}: users {string.Join(",", users.Users)}, auth revision {status.AuthRevision}");
        }
    }
}
