using Arbiter.Compatibility.Tests.Fixtures;
using Arbiter.Protocol.Etcd;
using Google.Protobuf;

namespace Arbiter.Cluster.Tests;

/// <summary>
/// <c>--snapshot-log-bytes</c>: a member snapshots (and drops its Raft log, kept in memory by
/// default) once the log since the last snapshot holds that many bytes, long before
/// <c>--snapshot-count</c> entries; with 0, only the entry count decides, as in etcd.
/// </summary>
public sealed class RaftLogByteBoundTests(ITestOutputHelper output)
{
    private const int ValueSizeBytes = 64 * 1024;
    private const int Writes = 48; // 3 MiB of values: three times the bound below

    [Theory]
    [InlineData(1024 * 1024, true)]
    [InlineData(0, false)]
    public async Task A_member_snapshots_once_its_log_holds_the_byte_bound(long snapshotLogBytes, bool snapshotExpected)
    {
        await using var cluster = await ArbiterCluster.StartAsync(3, new ClusterSettings
        {
            ExtraArguments = ["--snapshot-log-bytes", snapshotLogBytes.ToString(System.Globalization.CultureInfo.InvariantCulture)],
        });
        var leader = await cluster.WaitForLeaderAsync(ClusterKit.ConvergeTimeout);
        var value = ByteString.CopyFrom(new byte[ValueSizeBytes]);
        long revision = 0;
        for (var i = 0; i < Writes; i++)
        {
            var key = ClusterKit.Bytes($"large/{i % 4}");
            var put = await ClusterKit.RetryOnLeaderLossAsync($"put {i}", () => ClusterKit.CallAsync(leader, c => new KV.KVClient(c).PutAsync(
                new PutRequest { Key = key, Value = value }, deadline: DateTime.UtcNow.AddSeconds(30)).ResponseAsync), output);
            revision = put.Header.Revision;
        }

        await ClusterKit.WaitConvergedAsync(cluster, revision);
        foreach (var member in cluster.Running)
        {
            if (snapshotExpected)
            {
                // The image is written just after the entry that made the snapshot due is applied.
                await ClusterKit.WaitUntilAsync($"{member.Name} took a snapshot", TimeSpan.FromSeconds(30), () => Task.FromResult(SnapshotImagesOf(member).Count > 0), cluster: cluster);
            }
            else
            {
                Assert.Empty(SnapshotImagesOf(member));
            }

            output.WriteLine($"{member.Name}: snapshot images {string.Join(", ", SnapshotImagesOf(member).DefaultIfEmpty("none"))}");
        }
    }

    /// <summary>The images of the snapshots a member took or installed (named index-term).</summary>
    private static List<string> SnapshotImagesOf(ArbiterClusterMember member)
    {
        var directory = new DirectoryInfo(Path.Combine(member.DataDir, "member", "snap-images"));
        return directory.Exists ? [.. directory.EnumerateFiles("*.img").Select(f => f.Name).Order(StringComparer.Ordinal)] : [];
    }
}
