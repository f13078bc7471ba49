using Arbiter.Compatibility.Tests.Fixtures;
using Arbiter.Protocol.Etcd;
using Google.Protobuf;

namespace Arbiter.Cluster.Tests;

/// <summary>
/// A new three-member cluster restored from one backup of a single node (each member restored with its
/// own name and peer URL, as with etcdctl snapshot restore): every member serves the backup's keys,
/// revisions, versions and lease; new writes replicate on top; a member added later gets the state too.
/// </summary>
public sealed class RestoreTests(ITestOutputHelper output)
{
    [Fact]
    public async Task A_cluster_restored_from_one_snapshot_converges_takes_writes_and_a_later_member_catches_up()
    {
        var work = Directory.CreateTempSubdirectory("arbiter-restore-");
        ArbiterCluster? cluster = null;
        try
        {
            var file = Path.Combine(work.FullName, "backup.db");
            long revision, compacted, leaseId;
            string source;
            await using (var single = new ArbiterProcess("restore-source"))
            {
                await single.StartAsync();
                (revision, compacted, leaseId) = await StoreHistory.WriteAsync(single.Endpoint);
                var saved = await ArbiterCli.RunAsync("snapshot", "save", file, "--endpoints", single.Endpoint);
                Assert.True(saved.ExitCode == 0, saved.ToString());

                // The source keeps running below as the reference to compare with.
                source = single.Endpoint;
                cluster = await ArbiterCluster.StartAsync(3, beforeStart: async (c, member) =>
                {
                    var restored = await ArbiterCli.RunAsync(
                        "snapshot", "restore", file, "--data-dir", member.DataDir, "--name", member.Name,
                        "--initial-cluster", c.InitialClusterFor(member), "--initial-advertise-peer-urls", member.PeerUrl);
                    Assert.True(restored.ExitCode == 0, restored.ToString());
                    output.WriteLine(restored.Stdout.Trim());
                });

                await ClusterKit.WaitConvergedAsync(cluster, revision);
                foreach (var member in cluster.Running)
                {
                    await StoreHistory.AssertSameAsync(source, member.Endpoint, revision, compacted, leaseId, serializable: true);
                }

                // Writes continue from the restored revision and replicate. Right after the start a
                // second election can follow the first (CI at load 30: a new term 3.5 s after the
                // start), so the write is repeated on leader-loss answers, as a client does; it
                // creates the key only if absent, so a repeat after an unknown outcome cannot write
                // twice, and the key's revision says where the first write landed.
                var leader = await cluster.WaitForLeaderAsync(ClusterKit.ConvergeTimeout);
                var key = ByteString.CopyFromUtf8("after/restore");
                await ClusterKit.RetryOnLeaderLossAsync("first write after the restore", () => ClusterKit.CallAsync(leader, c => new KV.KVClient(c).TxnAsync(
                    new TxnRequest
                    {
                        Compare = { new Compare { Key = key, Target = Compare.Types.CompareTarget.Create, Result = Compare.Types.CompareResult.Equal, CreateRevision = 0 } },
                        Success = { new RequestOp { RequestPut = new PutRequest { Key = key, Value = ByteString.CopyFromUtf8("v") } } },
                    },
                    deadline: DateTime.UtcNow.AddSeconds(30)).ResponseAsync), output);
                var written = await ClusterKit.RetryOnLeaderLossAsync("read it back", () => ClusterKit.CallAsync(leader, c => new KV.KVClient(c).RangeAsync(new RangeRequest { Key = key }, deadline: DateTime.UtcNow.AddSeconds(30)).ResponseAsync), output);
                Assert.Equal(revision + 1, Assert.Single(written.Kvs).ModRevision);
                var (converged, _) = await ClusterKit.WaitConvergedAsync(cluster, revision + 1);
                Assert.Equal(revision + 1, converged);

                // A member added afterwards (empty data dir, member add) must get the restored state, not only the new log.
                var joiner = await cluster.AddMemberAsync(leader);
                await ClusterKit.WaitJoinedAsync(cluster, joiner, ClusterKit.ConvergeTimeout);
                await ClusterKit.WaitConvergedAsync(cluster, revision + 1);
                for (var at = compacted; at <= revision; at++)
                {
                    Assert.Equal(
                        StoreHistory.DescribeAll(await StoreHistory.ReadAllAsync(source, at)),
                        StoreHistory.DescribeAll(await StoreHistory.ReadAllAsync(joiner.Endpoint, at, serializable: true)));
                }
            }
        }
        catch (Exception)
        {
            if (cluster is not null)
            {
                output.WriteLine(cluster.Logs);
            }

            throw;
        }
        finally
        {
            if (cluster is not null)
            {
                await cluster.DisposeAsync();
            }

            work.Delete(recursive: true);
        }
    }
}
