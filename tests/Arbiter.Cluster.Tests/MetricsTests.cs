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
                var key = $"metrics/{i}";
                await ClusterKit.RetryOnLeaderLossAsync(key, () => ClusterKit.CallAsync(leader, c => new KV.KVClient(c).PutAsync(new PutRequest { Key = ByteString.CopyFromUtf8(key), Value = ByteString.CopyFromUtf8("v") }, deadline: DateTime.UtcNow.AddSeconds(30)).ResponseAsync), output);
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

    /// <summary>
    /// <c>arbiter_crdt_peer_lag_deltas</c>: one series per peer; a peer that acknowledged everything
    /// is at 0, a killed peer's lag grows with every update it misses.
    /// </summary>
    [Fact]
    public async Task Crdt_peer_lag_is_zero_for_a_live_peer_and_counts_what_a_killed_peer_missed()
    {
        await using var cluster = await ArbiterCluster.StartAsync(3);
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(30) };
        var members = cluster.Running.ToList();
        var writer = members[0];
        var live = members[1];
        var killed = members[2];
        string Id(ArbiterClusterMember member) => member.MemberId.ToString("x16", System.Globalization.CultureInfo.InvariantCulture);
        await using var client = new Arbiter.Client.ArbiterClient(new Arbiter.Client.GrpcArbiterClient(writer.Endpoint));
        await client.Crdt.Counter("lag").IncrementAsync();

        var seen = string.Empty;
        await ClusterKit.WaitUntilAsync("both peers acknowledged the first update", ClusterKit.ConvergeTimeout, async () =>
        {
            var scrape = await PrometheusText.ScrapeAsync(http, writer.Endpoint);
            var series = scrape.Samples.Where(s => s.Name == "arbiter_crdt_peer_lag_deltas").ToList();
            seen = string.Join(", ", series.Select(s => $"{s.Labels["member"]}={s.Value}")) + $" (live {Id(live)}, killed {Id(killed)}, writer {Id(writer)})";
            return series.Count == 2 && series.All(s => s.Value == 0)
                && series.Any(s => s.Labels["member"] == Id(live)) && series.Any(s => s.Labels["member"] == Id(killed));
        }, () => seen, cluster);
        output.WriteLine($"converged: {seen}");

        await killed.KillAsync();
        const int Missed = 5;
        for (var i = 0; i < Missed; i++)
        {
            await client.Crdt.Counter("lag").IncrementAsync();
        }

        await ClusterKit.WaitUntilAsync("the live peer is back at 0 and the killed one counts what it missed", ClusterKit.ConvergeTimeout, async () =>
        {
            var scrape = await PrometheusText.ScrapeAsync(http, writer.Endpoint);
            var liveLag = scrape.Sum("arbiter_crdt_peer_lag_deltas", ("member", Id(live)));
            var killedLag = scrape.Sum("arbiter_crdt_peer_lag_deltas", ("member", Id(killed)));
            seen = $"live {liveLag}, killed {killedLag}";
            return liveLag == 0 && killedLag >= Missed;
        }, () => seen, cluster);
        output.WriteLine($"after the kill: {seen}");
    }
}
