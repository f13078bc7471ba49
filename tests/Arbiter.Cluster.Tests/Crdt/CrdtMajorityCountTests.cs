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

    /// <summary>
    /// A majority read retries a member that refused at first, as a majority write does: both
    /// peers are down when the read starts (connections refused), one comes back while it waits,
    /// and the read then succeeds with that member's state. Before, each peer was asked once and the
    /// read failed at once with "reached 1 of the 2 replicas" (run with that rule restored: the read
    /// throws before the peer is back).
    /// </summary>
    [Fact]
    public async Task A_majority_read_waits_for_a_member_that_comes_back_within_its_timeout()
    {
        await using var cluster = await ArbiterCluster.StartAsync(3);
        var members = cluster.Running.ToList();
        var reader = members[0];
        var returning = members[1];

        await using var local = new ArbiterClient(new GrpcArbiterClient(reader.Endpoint));
        await local.Crdt.Counter("views").IncrementAsync();

        // The returning member holds it (gossip) before the peers go down.
        await ClusterKit.WaitUntilAsync("the returning member holds the increment", ClusterKit.ConvergeTimeout, async () =>
        {
            await using var client = new ArbiterClient(new GrpcArbiterClient(returning.Endpoint));
            return await client.Crdt.Counter("views").GetAsync() == 1;
        });

        foreach (var peer in members.Skip(1))
        {
            await peer.KillAsync();
        }

        var read = local.Crdt.GetAsync("views", new CrdtCallOptions { Read = CrdtReadLevel.ReadMajority, TimeoutMs = 120_000 });

        // Still waiting while no peer can answer: the old rule failed it within milliseconds (both
        // connections refused); the rule under test cannot finish it without a peer.
        await Task.WhenAny(read, Task.Delay(TimeSpan.FromSeconds(2)));
        Assert.False(read.IsCompleted, read.IsFaulted ? $"the majority read failed before a peer came back: {read.Exception!.InnerException!.Message}" : "the majority read finished before a peer came back");

        await returning.StartAsync(isRestart: true);
        var value = await read.WaitAsync(TimeSpan.FromSeconds(150));
        output.WriteLine($"majority read after the member came back: {value}");
        Assert.Equal(1L, value.Counter);
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
