using Arbiter.Compatibility.Tests.Fixtures;
using Arbiter.Protocol.Etcd;
using Grpc.Core;
using static Arbiter.Cluster.Tests.ClusterKit;

namespace Arbiter.Cluster.Tests;

/// <summary>
/// TLS between members (issue #17 item 1): the Raft transport and the calls members make to each
/// other's client port (forwarded writes) run over TLS with the peer CA, and a member whose peer
/// certificate comes from another CA is refused both ways.
/// </summary>
public sealed class PeerTlsTests(ITestOutputHelper output)
{
    [Fact]
    public async Task ThreeMembersWithPeerTlsReplicateWritesAndFailOver()
    {
        using var certificates = new TlsCertificates();
        await using var cluster = await ArbiterCluster.StartAsync(3, new ClusterSettings { PeerTls = certificates.Set });
        try
        {
            // Through every member: followers forward to the leader's https client URL.
            foreach (var member in cluster.Members)
            {
                await PutAsync(member, $"peer-tls/{member.Name}", "v");
            }

            var (revision, _) = await WaitConvergedAsync(cluster);
            foreach (var member in cluster.Members)
            {
                Assert.Equal(3, (await ReadLocalAsync(member, "peer-tls/")).Count);
            }

            // The member-to-member services on the client port answer members only (a peer certificate), not a plain client.
            var outsider = await Assert.ThrowsAsync<RpcException>(() => CallAsync(cluster.Members[0], c => new Arbiter.Protocol.Internal.Peer.PeerClient(c)
                .ReadIndexAsync(new Arbiter.Protocol.Internal.ReadIndexRequest(), deadline: DateTime.UtcNow.AddSeconds(20)).ResponseAsync));
            Assert.Equal(StatusCode.PermissionDenied, outsider.StatusCode);

            var leader = await cluster.WaitForLeaderAsync(TimeSpan.FromSeconds(30));
            await leader.KillAsync();
            var survivors = cluster.Running.ToList();
            var next = await WaitForAgreedLeaderAsync(survivors, TimeSpan.FromSeconds(60));
            output.WriteLine($"killed leader {leader.Name}; {next.Name} took over");
            Assert.NotEqual(leader, next);

            // A write through the follower that is left, forwarded over TLS to the new leader.
            var follower = survivors.First(m => m != next);
            await WaitUntilAsync("a write through the remaining follower succeeds", TimeSpan.FromSeconds(60), async () =>
            {
                await PutAsync(follower, "peer-tls/after-failover", "v");
                return true;
            }, cluster: cluster);
            await WaitConvergedAsync(cluster, revision + 1);
            Assert.Contains("peer-tls/after-failover", (await ReadLocalAsync(next, "peer-tls/")).Keys);
        }
        catch
        {
            WriteServerProblems(cluster, output);
            throw;
        }
    }

    [Fact]
    public async Task AMemberWithAPeerCertificateFromAnotherCaIsRefused()
    {
        using var certificates = new TlsCertificates();
        await using var cluster = await ArbiterCluster.StartAsync(
            3,
            new ClusterSettings { PeerTls = certificates.Set, MemberPeerTls = name => name == "m3" ? certificates.Foreign : null },
            waitForLeader: false);
        var trusted = cluster.Members.Where(m => m.Name != "m3").ToList();
        var foreign = cluster.Members.Single(m => m.Name == "m3");
        try
        {
            // m1 and m2 are a quorum of three: they elect a leader and take writes without m3.
            ArbiterClusterMember? leader = null;
            await WaitUntilAsync("m1 and m2 agree on a leader among them", TimeSpan.FromSeconds(60), async () =>
            {
                var statuses = new List<StatusResponse>();
                foreach (var member in trusted)
                {
                    var status = await StatusAsync(member);
                    member.MemberId = status.Header.MemberId;
                    statuses.Add(status);
                }

                leader = statuses.Select(s => s.Leader).Distinct().ToList() is [var id] && id != 0 ? trusted.FirstOrDefault(m => m.MemberId == id) : null;
                return leader is not null;
            }, cluster: cluster);

            // The first write of a new term can meet the leader still settling in: retried until the deadline.
            await WaitUntilAsync("a write through the leader succeeds", TimeSpan.FromSeconds(60), async () =>
            {
                await PutAsync(leader!, "peer-tls/written", "v");
                return true;
            }, cluster: cluster);
            await WaitUntilAsync("both trusted members have the write", TimeSpan.FromSeconds(60), async () =>
            {
                foreach (var member in trusted)
                {
                    if (!(await ReadLocalAsync(member, "peer-tls/")).ContainsKey("peer-tls/written"))
                    {
                        return false;
                    }
                }

                return true;
            }, cluster: cluster);

            // The refusal, seen from both sides: m3 rejects the others' certificates and they reject its.
            await WaitUntilAsync("m3 and a trusted member log failed TLS handshakes", TimeSpan.FromSeconds(60), () => Task.FromResult(
                foreign.Log.Contains("AuthenticationException", StringComparison.Ordinal)
                && trusted.Any(m => m.Log.Contains("AuthenticationException", StringComparison.Ordinal))), cluster: cluster);

            // So m3 never joined: it knows no leader and has none of the data.
            var status = await StatusAsync(foreign);
            output.WriteLine($"m3: leader {status.Leader:x}, raft index {status.RaftIndex}");
            Assert.Equal(0UL, status.Leader);
            Assert.Empty(await ReadLocalAsync(foreign, "peer-tls/"));
        }
        catch
        {
            WriteServerProblems(cluster, output);
            throw;
        }
    }

    /// <summary>
    /// A put, repeated on the leader-loss answers as a client does (idempotent here): at load an
    /// election can follow the first one right after the start (seen in CI at load 31).
    /// </summary>
    private Task<PutResponse> PutAsync(ArbiterClusterMember member, string key, string value) =>
        RetryOnLeaderLossAsync($"put {key} via {member.Name}", () => CallAsync(member, c => new KV.KVClient(c).PutAsync(new PutRequest { Key = Bytes(key), Value = Bytes(value) }, deadline: DateTime.UtcNow.AddSeconds(20)).ResponseAsync), output);
}
