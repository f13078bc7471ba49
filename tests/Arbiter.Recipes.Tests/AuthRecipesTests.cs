using Arbiter.Client;
using Arbiter.Compatibility.Tests.Fixtures;
using Arbiter.Protocol.Auth;
using Arbiter.Protocol.Etcd;
using Arbiter.Recipes;
using Google.Protobuf;
using Grpc.Net.Client;

namespace Arbiter.Recipes.Tests;

/// <summary>
/// The SDK's recipes for a user whose role grants READWRITE only on <c>app/</c>, on a real
/// <c>arbiter serve</c> with auth on (the SDK authenticates with UserName/Password): mutex,
/// reader-writer lock, semaphore, election, barrier, queue and service registry work under that
/// prefix, and a recipe outside it is refused with etcd's "permission denied".
/// </summary>
public sealed class AuthRecipesTests(ITestOutputHelper output)
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(30);

    [Fact]
    public async Task Recipes_work_for_a_prefix_only_user_and_are_refused_outside_the_prefix()
    {
        await using var server = new ArbiterProcess("recipes-auth", ["--bcrypt-cost", "4"]);
        await server.StartAsync();
        try
        {
            await SetUpAsync(server.Endpoint);
            var options = new ArbiterClientOptions { UserName = "alice", Password = "pw" };
            options.Endpoints.Add(server.Endpoint);
            await using var client = ArbiterClient.Connect(options);

            await using (var held = await new DistributedMutex(client, "app/mutex").AcquireAsync(Wait))
            {
                Assert.Null(await new DistributedMutex(client, "app/mutex").TryAcquireAsync());
            }

            var rw = new DistributedReaderWriterLock(client, "app/rw");
            await using (await rw.AcquireReadLockAsync(Wait))
            await using (await rw.AcquireReadLockAsync(Wait))
            {
                Assert.Null(await rw.TryAcquireWriteLockAsync());
            }

            await using (var writer = await rw.AcquireWriteLockAsync(Wait))
            {
                Assert.Null(await rw.TryAcquireReadLockAsync());
            }

            var semaphore = new DistributedSemaphore(client, "app/sem", 2);
            await using (await semaphore.AcquireAsync(Wait))
            await using (await semaphore.AcquireAsync(Wait))
            {
                Assert.Null(await semaphore.TryAcquireAsync());
            }

            await using (var leadership = await new LeaderElection(client, "app/election").CampaignAsync("alice-1", Wait))
            {
                Assert.Null(await new LeaderElection(client, "app/election").TryCampaignAsync("alice-2", TimeSpan.FromMilliseconds(200)));
            }

            var barrier = new DistributedBarrier(client, "app/barrier");
            Assert.True(await barrier.HoldAsync());
            Assert.False(await barrier.WaitAsync(TimeSpan.FromMilliseconds(200)));
            await barrier.ReleaseAsync();
            Assert.True(await barrier.WaitAsync(Wait));

            var queue = new DistributedQueue(client, "app/queue");
            await queue.EnqueueAsync("first");
            await queue.EnqueueAsync("second");
            Assert.Equal("first", await queue.TryDequeueAsync(Wait));
            Assert.Equal("second", await queue.TryDequeueAsync(Wait));

            var registry = new ServiceRegistry(client, "app/services");
            await using (await registry.RegisterAsync("api", "i1", "10.0.0.1:80"))
            {
                Assert.Equal("10.0.0.1:80", Assert.Single(await registry.ResolveAsync("api")).Address);
            }

            // Outside the prefix: refused, clearly.
            foreach (var (what, attempt) in new (string, Func<Task>)[]
            {
                ("mutex", async () => await new DistributedMutex(client, "other/mutex").TryAcquireAsync()),
                ("semaphore", async () => await new DistributedSemaphore(client, "other/sem", 2).TryAcquireAsync()),
                ("election", async () => await new LeaderElection(client, "other/election").TryCampaignAsync("x", TimeSpan.FromMilliseconds(200))),
                ("barrier", async () => await new DistributedBarrier(client, "other/barrier").HoldAsync()),
                ("queue", () => new DistributedQueue(client, "other/queue").EnqueueAsync("x")),
            })
            {
                var e = await Assert.ThrowsAnyAsync<Exception>(attempt);
                output.WriteLine($"{what} outside app/: {e.GetType().Name}: {e.Message}");
                Assert.Contains("permission denied", e.Message, StringComparison.Ordinal);
            }
        }
        catch
        {
            output.WriteLine(server.Log);
            throw;
        }
    }

    private static async Task SetUpAsync(string endpoint)
    {
        using var channel = GrpcChannel.ForAddress(endpoint);
        var auth = new Auth.AuthClient(channel);
        var deadline = DateTime.UtcNow.AddSeconds(30);
        await auth.UserAddAsync(new AuthUserAddRequest { Name = "root", Password = "pw" }, deadline: deadline);
        await auth.UserGrantRoleAsync(new AuthUserGrantRoleRequest { User = "root", Role = "root" }, deadline: deadline);
        await auth.RoleAddAsync(new AuthRoleAddRequest { Name = "app" }, deadline: deadline);
        await auth.RoleGrantPermissionAsync(
            new AuthRoleGrantPermissionRequest { Name = "app", Perm = new Permission { PermType = Permission.Types.Type.Readwrite, Key = ByteString.CopyFromUtf8("app/"), RangeEnd = ByteString.CopyFromUtf8("app0") } },
            deadline: deadline);
        await auth.UserAddAsync(new AuthUserAddRequest { Name = "alice", Password = "pw" }, deadline: deadline);
        await auth.UserGrantRoleAsync(new AuthUserGrantRoleRequest { User = "alice", Role = "app" }, deadline: deadline);
        await auth.AuthEnableAsync(new AuthEnableRequest(), deadline: deadline);
    }
}
