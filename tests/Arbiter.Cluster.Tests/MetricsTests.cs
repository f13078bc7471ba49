using Arbiter.Compatibility.Tests.Fixtures;
using Arbiter.Protocol.Etcd;
using Google.Protobuf;

namespace Arbiter.Cluster.Tests;

/// <summary><c>/metrics</c> of a real three-member cluster: leadership gauges, leader changes, the Raft log flush.</summary>
public sealed class MetricsTests(ITestOutputHelper output)
{
    [Fact]
    public async Task Killing_the_leader_moves_leader_changes_seen_and_followers_measure_their_log_flush()
    {
        await using var cluster = await ArbiterCluster.StartAsync(3);
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(30) };
        try
        {
            var leader = await cluster.WaitForLeaderAsync(ClusterKit.ConvergeTimeout);
            for (var i = 0; i < 5; i++)
            {
                await ClusterKit.CallAsync(leader, c => new KV.KVClient(c).PutAsync(new PutRequest { Key = ByteString.CopyFromUtf8($"metrics/{i}"), Value = ByteString.CopyFromUtf8("v") }, deadline: DateTime.UtcNow.AddSeconds(30)).ResponseAsync);
            }

            // Every member has a leader, exactly one says it is the leader, and followers measured the
            // flush of the entries they appended (etcd_disk_wal_fsync_duration_seconds).
            var seen = string.Empty;
            await ClusterKit.WaitUntilAsync("every member's metrics agree on one leader", ClusterKit.ConvergeTimeout, async () =>
            {
                var scrapes = new List<(ArbiterClusterMember Member, PrometheusText Scrape)>();
                foreach (var member in cluster.Running)
                {
                    scrapes.Add((member, await PrometheusText.ScrapeAsync(http, member.Endpoint)));
                }

                seen = string.Join("; ", scrapes.Select(s => $"{s.Member.Name}: has {s.Scrape.Sum("etcd_server_has_leader")} is {s.Scrape.Sum("etcd_server_is_leader")} changes {s.Scrape.Sum("etcd_server_leader_changes_seen_total")} fsyncs {s.Scrape.Sum("etcd_disk_wal_fsync_duration_seconds_count")}"));
                return scrapes.All(s => s.Scrape.Sum("etcd_server_has_leader") == 1 && s.Scrape.Sum("etcd_server_leader_changes_seen_total") >= 1)
                    && scrapes.Single(s => s.Scrape.Sum("etcd_server_is_leader") == 1).Member == leader
                    && scrapes.Where(s => s.Member != leader).All(s => s.Scrape.Sum("etcd_disk_wal_fsync_duration_seconds_count") >= 1);
            }, () => seen, cluster);
            output.WriteLine($"before: {seen}");

            var survivor = cluster.Running.First(m => m != leader);
            var changesBefore = (await PrometheusText.ScrapeAsync(http, survivor.Endpoint)).Sum("etcd_server_leader_changes_seen_total");
            await leader.KillAsync();
            var newLeader = await cluster.WaitForLeaderAsync(ClusterKit.ConvergeTimeout);
            Assert.NotSame(leader, newLeader);
            await ClusterKit.WaitUntilAsync("the survivor counts the leader change", ClusterKit.ConvergeTimeout, async () =>
            {
                var scrape = await PrometheusText.ScrapeAsync(http, survivor.Endpoint);
                var newLeaderScrape = await PrometheusText.ScrapeAsync(http, newLeader.Endpoint);
                seen = $"survivor changes {scrape.Sum("etcd_server_leader_changes_seen_total")} (before {changesBefore}), new leader is_leader {newLeaderScrape.Sum("etcd_server_is_leader")}";
                return scrape.Sum("etcd_server_leader_changes_seen_total") > changesBefore && newLeaderScrape.Sum("etcd_server_is_leader") == 1;
            }, () => seen, cluster);
            output.WriteLine($"after: {seen}");
        }
        catch (Exception)
        {
            output.WriteLine(cluster.Logs);
            throw;
        }
    }
}
