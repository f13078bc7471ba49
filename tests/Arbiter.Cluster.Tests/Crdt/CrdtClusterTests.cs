using System.Diagnostics;
using Arbiter.Client;
using Arbiter.Client.Crdt;
using Arbiter.Cluster.Tests.Faults;
using Arbiter.Compatibility.Tests.Fixtures;
using Arbiter.Protocol.Crdt;
using Arbiter.Protocol.Etcd;
using Grpc.Core;

namespace Arbiter.Cluster.Tests.Crdt;

/// <summary>
/// The eventual tier on real members: available on both sides of a real partition (while the CP
/// keyspace refuses writes on the minority), converging exactly after healing; nothing an update's
/// answer acknowledged is lost to kill -9; a wiped member is rebuilt from its peers.
/// </summary>
public sealed class CrdtClusterTests(ITestOutputHelper output)
{
    private static readonly TimeSpan Converge = ClusterKit.ConvergeTimeout;

    [IptablesFact]
    [Trait("Category", "Partition")]
    public async Task Counters_and_sets_accept_updates_on_both_sides_of_a_partition_and_converge_exactly_after_healing()
    {
        await using var cluster = await ArbiterCluster.StartAsync(3, new ClusterSettings { RunMembersAsSeparateUsers = true });
        var members = cluster.Running.ToList();
        var clients = members.Select(m => new ArbiterClient(new GrpcArbiterClient(m.Endpoint))).ToList();
        try
        {
            var crdt = clients.Select(c => c.Crdt).ToList();
            var expected = 0L;
            foreach (var client in crdt)
            {
                await client.Counter("likes").IncrementAsync();
                expected++;
            }

            await crdt[0].Set("cart").AddAsync("kept", "removed-on-majority", "re-added-on-minority");
            await WaitAllAsync(crdt, "the first updates reach every member", async c =>
                await c.Counter("likes").GetAsync() == expected && (await c.Set("cart").GetStringsAsync()).Count == 3);

            var isolated = members[0];
            var majority = members.Skip(1).ToList();
            using (var partition = IptablesPartition.Isolate(isolated, majority))
            {
                output.WriteLine(partition.ToString());

                // Both sides keep accepting updates, at once, with local writes.
                for (var i = 0; i < 5; i++)
                {
                    await crdt[0].Counter("likes").IncrementAsync();
                    expected++;
                }

                for (var i = 0; i < 7; i++)
                {
                    await crdt[1].Counter("likes").AddAsync(2);
                    await crdt[2].Counter("likes").DecrementAsync();
                    expected += 1;
                }

                await crdt[0].Set("cart").AddAsync("minority-only", "re-added-on-minority");
                await crdt[1].Set("cart").RemoveAsync("removed-on-majority", "re-added-on-minority");
                await crdt[2].Set("cart").AddAsync("majority-only");

                // A majority write on the cut-off member times out and says that nothing was rolled back.
                var timedOut = await Assert.ThrowsAsync<RpcException>(() => crdt[0].Counter("likes").AddAsync(
                    100, new CrdtCallOptions { Write = CrdtWriteLevel.WriteMajority, TimeoutMs = 1500 }));
                expected += 100;
                output.WriteLine($"majority write on the minority: {timedOut.StatusCode} \"{timedOut.Status.Detail}\"");
                Assert.Equal(StatusCode.DeadlineExceeded, timedOut.StatusCode);
                Assert.Contains("nothing is rolled back", timedOut.Status.Detail, StringComparison.Ordinal);

                // A majority write on the majority side succeeds with two replicas.
                var majorityWrite = await crdt[1].UpdateAsync("likes", CrdtType.PnCounter, new CrdtOperation { CounterAdd = new CounterAdd { Delta = 10 } }, new CrdtCallOptions { Write = CrdtWriteLevel.WriteMajority });
                expected += 10;
                Assert.True(majorityWrite.ReplicasAcknowledged >= 2, $"acknowledged by {majorityWrite.ReplicasAcknowledged}");

                // Meanwhile the CP keyspace refuses writes on the minority (PACELC's contrast).
                var refused = await Assert.ThrowsAsync<RpcException>(() => clients[0].Raw.PutAsync(
                    new PutRequest { Key = ClusterKit.Bytes("cp"), Value = ClusterKit.Bytes("x") },
                    new CancellationTokenSource(TimeSpan.FromSeconds(20)).Token));
                output.WriteLine($"CP put on the minority: {refused.StatusCode} \"{refused.Status.Detail}\"");
                Assert.True(refused.StatusCode is StatusCode.Unavailable or StatusCode.DeadlineExceeded or StatusCode.Cancelled, refused.Status.ToString());

                // Each side sees only its own updates.
                Assert.NotEqual(expected, await crdt[0].Counter("likes").GetAsync());
                partition.Heal();
            }

            var healed = Stopwatch.StartNew();
            string[] expectedCart = ["kept", "majority-only", "minority-only", "re-added-on-minority"];
            await WaitAllAsync(crdt, $"every member converges to {expected} likes and the cart {{{string.Join(", ", expectedCart)}}}", async c =>
                await c.Counter("likes").GetAsync() == expected && (await c.Set("cart").GetStringsAsync()).SequenceEqual(expectedCart));
            output.WriteLine($"converged {healed.ElapsedMilliseconds} ms after healing: likes = {expected} on every member; add-wins kept re-added-on-minority, the observed remove dropped removed-on-majority");
        }
        finally
        {
            foreach (var client in clients)
            {
                await client.DisposeAsync();
            }
        }
    }

    [Fact]
    public async Task A_member_killed_while_updating_and_gossiping_loses_nothing_it_acknowledged_and_a_wiped_member_is_rebuilt()
    {
        await using var cluster = await ArbiterCluster.StartAsync(3);
        var members = cluster.Running.ToList();
        var victim = members[0];
        await using var victimClient = new ArbiterClient(new GrpcArbiterClient(victim.Endpoint));
        await using var otherClient = new ArbiterClient(new GrpcArbiterClient(members[1].Endpoint));

        // Increments stream into the victim while it gossips them; it is killed mid-way.
        var acknowledged = 0;
        var unknown = 0;
        using var stop = new CancellationTokenSource();
        var writers = Enumerable.Range(0, 4).Select(_ => Task.Run(async () =>
        {
            while (!stop.IsCancellationRequested)
            {
                try
                {
                    await victimClient.Crdt.Counter("hits").IncrementAsync();
                    Interlocked.Increment(ref acknowledged);
                }
                catch (RpcException)
                {
                    Interlocked.Increment(ref unknown); // the member died with it in flight: outcome unknown
                    return;
                }
            }
        })).ToList();
        await ClusterKit.WaitUntilAsync("200 increments acknowledged", Converge, () => Task.FromResult(Volatile.Read(ref acknowledged) >= 200));
        await victim.KillAsync();
        await Task.WhenAll(writers);
        var acked = Volatile.Read(ref acknowledged);
        output.WriteLine($"killed {victim.Name} after {acked} acknowledged increments ({unknown} in flight)");

        await victim.StartAsync(isRestart: true);
        await ClusterKit.WaitUntilAsync(
            $"every member has the {acked} acknowledged increments (at most {acked + unknown})",
            Converge,
            async () =>
            {
                var values = new List<long>();
                foreach (var member in members)
                {
                    await using var client = new ArbiterClient(new GrpcArbiterClient(member.Endpoint));
                    values.Add(await client.Crdt.Counter("hits").GetAsync());
                }

                return values.Distinct().Count() == 1 && values[0] >= acked && values[0] <= acked + unknown;
            });

        // A member that lost its disk comes back as a new replica and is rebuilt from its peers.
        var wiped = members[2];
        await otherClient.Crdt.Set("members").AddAsync("before-wipe");
        await wiped.StopAsync(TimeSpan.FromSeconds(30));
        wiped.WipeData();
        wiped.InitialClusterState = "existing";
        await wiped.StartAsync(isRestart: true);
        await using var wipedClient = new ArbiterClient(new GrpcArbiterClient(wiped.Endpoint));
        var total = await otherClient.Crdt.Counter("hits").GetAsync();
        var rebuilt = await ClusterKit.WaitUntilAsync(
            "the wiped member is rebuilt with every key",
            Converge,
            async () => await wipedClient.Crdt.Counter("hits").GetAsync() == total
                && (await wipedClient.Crdt.Set("members").GetStringsAsync()).Contains("before-wipe"));
        output.WriteLine($"wiped {wiped.Name} rebuilt from its peers in {rebuilt.TotalMilliseconds:F0} ms");

        // It issues new dots under its new replica id: an increment there adds to the total.
        await wipedClient.Crdt.Counter("hits").IncrementAsync();
        await ClusterKit.WaitUntilAsync("the new replica's increment reaches another member", Converge, async () => await otherClient.Crdt.Counter("hits").GetAsync() == total + 1);
    }

    private static async Task WaitAllAsync(IReadOnlyList<CrdtClient> clients, string what, Func<CrdtClient, Task<bool>> condition)
    {
        await ClusterKit.WaitUntilAsync(what, Converge, async () =>
        {
            foreach (var client in clients)
            {
                if (!await condition(client))
                {
                    return false;
                }
            }

            return true;
        });
    }
}
