using Arbiter.Client;
using Arbiter.Client.Crdt;
using Arbiter.Compatibility.Tests.Fixtures;
using Arbiter.Protocol.Crdt;
using Grpc.Core;

namespace Arbiter.Cluster.Tests.Crdt;

/// <summary>
/// WRITE_MAJORITY, READ_MAJORITY and the ALL levels count every member of the Raft configuration,
/// reachable or not. Deterministic: the member under test is restarted after both of its peers
/// were killed, so it has never read their metadata (client URLs) in this life and never can. The
/// old rule (the peers whose client URL could be read, plus this member) counted 1 member here and
/// acknowledged a majority write alone; the test fails on it (run with that rule restored: "No
/// exception was thrown").
/// </summary>
public sealed class CrdtMajorityCountTests(ITestOutputHelper output)
{
    /// <summary>Short on purpose: nobody else can answer, only the count is under test.</summary>
    private const uint TimeoutMs = 1000;

    [Fact]
    public async Task A_member_that_cannot_read_its_peers_urls_does_not_acknowledge_a_majority_or_all_call_alone()
    {
        await using var cluster = await ArbiterCluster.StartAsync(3);
        var members = cluster.Running.ToList();
        var alone = members[0];
        await using (var client = new ArbiterClient(new GrpcArbiterClient(alone.Endpoint)))
        {
            await client.Crdt.Counter("likes").IncrementAsync();
        }

        // All three hold it before the peers go (gossip), so that a later read has something to miss.
        await ClusterKit.WaitUntilAsync("every member holds the first increment", ClusterKit.ConvergeTimeout, async () =>
        {
            foreach (var member in members)
            {
                await using var client = new ArbiterClient(new GrpcArbiterClient(member.Endpoint));
                if (await client.Crdt.Counter("likes").GetAsync() != 1)
                {
                    return false;
                }
            }

            return true;
        });

        foreach (var peer in members.Skip(1))
        {
            await peer.KillAsync();
        }

        // A fresh process: no peer metadata cached, and no peer left to give it.
        await alone.KillAsync();
        await alone.StartAsync(isRestart: true);
        await using var lone = new ArbiterClient(new GrpcArbiterClient(alone.Endpoint));

        // Available: a local write and a local read still work.
        var local = await lone.Crdt.UpdateAsync("likes", CrdtType.PnCounter, new CrdtOperation { CounterAdd = new CounterAdd { Delta = 1 } });
        Assert.Equal(1u, local.ReplicasAcknowledged);
        Assert.Equal(2, await lone.Crdt.Counter("likes").GetAsync());

        await AssertShortAsync("a majority write", "reached 1 of the 2 replicas", "nothing is rolled back", () => lone.Crdt.UpdateAsync(
            "likes", CrdtType.PnCounter, new CrdtOperation { CounterAdd = new CounterAdd { Delta = 10 } }, new CrdtCallOptions { Write = CrdtWriteLevel.WriteMajority, TimeoutMs = TimeoutMs }));
        await AssertShortAsync("an all write", "reached 1 of the 3 replicas", "nothing is rolled back", () => lone.Crdt.UpdateAsync(
            "likes", CrdtType.PnCounter, new CrdtOperation { CounterAdd = new CounterAdd { Delta = 100 } }, new CrdtCallOptions { Write = CrdtWriteLevel.WriteAll, TimeoutMs = TimeoutMs }));
        await AssertShortAsync("a majority read", "reached 1 of the 2 replicas", "read", () => lone.Crdt.GetAsync(
            "likes", new CrdtCallOptions { Read = CrdtReadLevel.ReadMajority, TimeoutMs = TimeoutMs }));
        await AssertShortAsync("an all read", "reached 1 of the 3 replicas", "read", () => lone.Crdt.GetAsync(
            "likes", new CrdtCallOptions { Read = CrdtReadLevel.ReadAll, TimeoutMs = TimeoutMs }));

        // The timed-out writes stay applied here (a timeout never rolls back).
        Assert.Equal(112, await lone.Crdt.Counter("likes").GetAsync());
    }

    private async Task AssertShortAsync(string what, string count, string detail, Func<Task> call)
    {
        var refused = await Assert.ThrowsAsync<RpcException>(call);
        output.WriteLine($"{what} on the lone member: {refused.StatusCode} \"{refused.Status.Detail}\"");
        Assert.Equal(StatusCode.DeadlineExceeded, refused.StatusCode);
        Assert.Contains(count, refused.Status.Detail, StringComparison.Ordinal);
        Assert.Contains(detail, refused.Status.Detail, StringComparison.Ordinal);
    }
}
