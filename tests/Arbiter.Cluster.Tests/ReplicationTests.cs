using Arbiter.Compatibility.Tests.Fixtures;
using Arbiter.Protocol.Etcd;
using Google.Protobuf;

namespace Arbiter.Cluster.Tests;

/// <summary>
/// A 3-member cluster answers on every member: writes through a follower, reads everywhere; and its
/// start, members coming up one by one, logs no warning or error (peers not up yet are Information).
/// </summary>
public sealed class ReplicationTests(ITestOutputHelper output)
{
    [Fact]
    public async Task Write_through_a_follower_is_read_linearizably_on_every_member()
    {
        await using var cluster = await ArbiterCluster.StartAsync(3);
        var leader = await cluster.WaitForLeaderAsync(TimeSpan.FromSeconds(30));
        var follower = cluster.Running.First(m => m != leader);
        output.WriteLine($"leader {leader.Name}, writing through {follower.Name}");

        using (var channel = follower.OpenChannel())
        {
            // On a loaded machine the first leader may step down and be elected again just after
            // the start; a put caught in that answers "outcome unknown" (Unavailable) and is sent
            // again (it is idempotent). Surviving elections is FailoverTests' subject, not this one's.
            var kv = new KV.KVClient(channel);
            var until = DateTime.UtcNow.AddSeconds(30);
            PutResponse put;
            while (true)
            {
                try
                {
                    put = await kv.PutAsync(new PutRequest { Key = ByteString.CopyFromUtf8("k"), Value = ByteString.CopyFromUtf8("v") }, deadline: until);
                    break;
                }
                catch (Grpc.Core.RpcException e) when (e.StatusCode == Grpc.Core.StatusCode.Unavailable && DateTime.UtcNow < until)
                {
                    output.WriteLine($"put through {follower.Name}: {e.Status.Detail}; again");
                }
            }

            Assert.Equal(follower.MemberId, put.Header.MemberId);
            Assert.True(put.Header.RaftTerm > 0);
        }

        foreach (var member in cluster.Running)
        {
            using var channel = member.OpenChannel();
            var got = await new KV.KVClient(channel).RangeAsync(
                new RangeRequest { Key = ByteString.CopyFromUtf8("k") }, deadline: DateTime.UtcNow.AddSeconds(30));
            Assert.Equal("v", Assert.Single(got.Kvs).Value.ToStringUtf8());
        }

        foreach (var member in cluster.Running)
        {
            var alarming = member.Log.Split('\n')
                .Where(line => line.StartsWith("[err]", StringComparison.Ordinal) || line.Contains(" warn: ", StringComparison.Ordinal)
                    || line.Contains(" fail: ", StringComparison.Ordinal) || line.Contains(" crit: ", StringComparison.Ordinal))
                .ToList();
            Assert.True(alarming.Count == 0, $"{member.Name} logged at start:\n{string.Join('\n', alarming)}");
        }
    }
    /// <summary>
    /// A write through a follower carries the command's own result (the leader's, in the forwarded
    /// answer, given once the follower has applied the write too) with the follower's header.
    /// Writes alternate between a follower and the leader on one key: each put's previous value is
    /// the write before it and the revision climbs by one; then a compare-and-swap and a lease
    /// grant through the follower answer as the leader's state says.
    /// </summary>
    [Fact]
    public async Task Answers_through_a_follower_carry_the_commands_own_results()
    {
        await using var cluster = await ArbiterCluster.StartAsync(3);
        var leader = await cluster.WaitForLeaderAsync(TimeSpan.FromSeconds(30));
        var follower = cluster.Running.First(m => m != leader);
        using var followerChannel = follower.OpenChannel();
        using var leaderChannel = leader.OpenChannel();
        var viaFollower = new KV.KVClient(followerChannel);
        var viaLeader = new KV.KVClient(leaderChannel);
        var key = ByteString.CopyFromUtf8("answers/k");
        output.WriteLine($"leader {leader.Name}, follower {follower.Name}");

        var (lastValue, lastRevision) = await ReadLatestAsync(viaLeader, key);
        for (var i = 0; i < 20; i++)
        {
            var via = i % 2 == 0 ? follower : leader;
            PutResponse put;
            try
            {
                put = await (via == follower ? viaFollower : viaLeader).PutAsync(
                    new PutRequest { Key = key, Value = ByteString.CopyFromUtf8($"v{i}"), PrevKv = true }, deadline: DateTime.UtcNow.AddSeconds(30));
            }
            catch (Grpc.Core.RpcException e) when (e.StatusCode == Grpc.Core.StatusCode.Unavailable)
            {
                // A leader change on a loaded machine: the put may or may not have applied; start
                // the expectations again from what the cluster holds.
                output.WriteLine($"put {i} through {via.Name}: {e.Status.Detail}; reading the key again");
                (lastValue, lastRevision) = await ReadLatestAsync(viaLeader, key);
                continue;
            }

            Assert.Equal(via.MemberId, put.Header.MemberId);
            Assert.Equal(lastValue, put.PrevKv?.Value.ToStringUtf8());
            Assert.Equal(lastRevision + 1, put.Header.Revision);
            (lastValue, lastRevision) = ($"v{i}", put.Header.Revision);
        }

        var swap = await viaFollower.TxnAsync(
            new TxnRequest
            {
                Compare = { new Compare { Key = key, Target = Compare.Types.CompareTarget.Value, Result = Compare.Types.CompareResult.Equal, Value = ByteString.CopyFromUtf8(lastValue!) } },
                Success = { new RequestOp { RequestPut = new PutRequest { Key = key, Value = ByteString.CopyFromUtf8("swapped") } } },
            },
            deadline: DateTime.UtcNow.AddSeconds(30));
        Assert.True(swap.Succeeded, $"the compare-and-swap through {follower.Name} did not see {lastValue}");
        Assert.Equal(lastRevision + 1, swap.Header.Revision);

        var grant = await new Lease.LeaseClient(followerChannel).LeaseGrantAsync(new LeaseGrantRequest { TTL = 60 }, deadline: DateTime.UtcNow.AddSeconds(30));
        Assert.NotEqual(0, grant.ID);
        Assert.Equal(60, grant.TTL);
        var live = await new Lease.LeaseClient(leaderChannel).LeaseTimeToLiveAsync(new LeaseTimeToLiveRequest { ID = grant.ID }, deadline: DateTime.UtcNow.AddSeconds(30));
        Assert.True(live.TTL > 0, $"lease {grant.ID} granted through {follower.Name} is not on the leader (TTL {live.TTL})");
    }

    private static async Task<(string? Value, long Revision)> ReadLatestAsync(KV.KVClient kv, ByteString key)
    {
        var got = await kv.RangeAsync(new RangeRequest { Key = key }, deadline: DateTime.UtcNow.AddSeconds(30));
        return (got.Kvs.Count == 0 ? null : got.Kvs[0].Value.ToStringUtf8(), got.Header.Revision);
    }
}
