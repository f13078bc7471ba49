using Arbiter.Compatibility.Tests.Fixtures;
using Arbiter.Protocol.Etcd;
using Google.Protobuf;

namespace Arbiter.Cluster.Tests;

/// <summary>A 3-member cluster answers on every member: writes through a follower, reads everywhere.</summary>
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
            var put = await new KV.KVClient(channel).PutAsync(
                new PutRequest { Key = ByteString.CopyFromUtf8("k"), Value = ByteString.CopyFromUtf8("v") },
                deadline: DateTime.UtcNow.AddSeconds(30));
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
    }
}
