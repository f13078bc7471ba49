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
}
