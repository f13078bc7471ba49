using Arbiter.Compatibility.Tests.Fixtures;
using Arbiter.Protocol.Etcd;
using Google.Protobuf;
using Grpc.Core;
using Grpc.Net.Client;

namespace Arbiter.Compatibility.Tests.Operations;

/// <summary>
/// <c>/metrics</c> and <c>/health</c> of a real <c>arbiter serve</c>, on the client port and on
/// <c>--listen-metrics-urls</c>: parsed as Prometheus text, every promised family there with its type,
/// counters that move with work, and the etcd-named families typed and labelled as a real etcd's.
/// </summary>
public sealed class MetricsTests(ITestOutputHelper output)
{
    /// <summary>Families named after etcd's (same meaning), with etcd 3.4's type.</summary>
    public static readonly IReadOnlyDictionary<string, string> EtcdFamilies = new Dictionary<string, string>
    {
        ["etcd_server_has_leader"] = "gauge",
        ["etcd_server_is_leader"] = "gauge",
        ["etcd_server_leader_changes_seen_total"] = "counter",
        ["etcd_server_proposals_committed_total"] = "gauge",
        ["etcd_server_proposals_applied_total"] = "gauge",
        ["etcd_server_proposals_failed_total"] = "counter",
        ["etcd_server_id"] = "gauge",
        ["etcd_server_version"] = "gauge",
        ["etcd_disk_wal_fsync_duration_seconds"] = "histogram",
        ["etcd_mvcc_db_total_size_in_bytes"] = "gauge",
        ["etcd_mvcc_db_total_size_in_use_in_bytes"] = "gauge",
        ["etcd_debugging_mvcc_keys_total"] = "gauge",
        ["etcd_debugging_mvcc_watcher_total"] = "gauge",
        ["etcd_debugging_mvcc_current_revision"] = "gauge",
        ["etcd_debugging_mvcc_compact_revision"] = "gauge",
        ["etcd_mvcc_put_total"] = "counter",
        ["etcd_mvcc_range_total"] = "counter",
        ["etcd_mvcc_delete_total"] = "counter",
        ["etcd_mvcc_txn_total"] = "counter",
        ["grpc_server_started_total"] = "counter",
        ["grpc_server_handled_total"] = "counter",
    };

    /// <summary>Arbiter's own families.</summary>
    public static readonly IReadOnlyDictionary<string, string> ArbiterFamilies = new Dictionary<string, string>
    {
        ["arbiter_value_spill_bytes"] = "gauge",
        ["arbiter_leases_alive"] = "gauge",
        ["arbiter_transactions_open"] = "gauge",
        ["arbiter_locks_held"] = "gauge",
        ["arbiter_locks_waiting"] = "gauge",
        ["arbiter_transactions_begun_total"] = "counter",
        ["arbiter_transactions_committed_total"] = "counter",
        ["arbiter_transactions_aborted_total"] = "counter",
        ["arbiter_transactions_deadlocks_total"] = "counter",
        ["arbiter_transactions_lock_timeouts_total"] = "counter",
        ["arbiter_optimistic_commits_total"] = "counter",
        ["arbiter_optimistic_conflicts_total"] = "counter",
        ["arbiter_crdt_gossip_bytes_total"] = "counter",
        ["arbiter_crdt_updates_total"] = "counter",
    };

    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(30);

    [Fact]
    public async Task Metrics_on_the_client_port_and_the_metrics_url_have_every_family_and_counters_move_with_work()
    {
        var metricsPort = PortAllocator.FreePort();
        var metricsUrl = $"http://127.0.0.1:{metricsPort}";
        await using var server = new ArbiterProcess("metrics", ["--listen-metrics-urls", metricsUrl]);
        await server.StartAsync();
        using var http = new HttpClient { Timeout = Deadline };
        using var channel = GrpcChannel.ForAddress(server.Endpoint);
        var kv = new KV.KVClient(channel);
        var watch = new Watch.WatchClient(channel);
        try
        {
            // A first call so that the gRPC families have samples.
            await kv.PutAsync(new PutRequest { Key = ByteString.CopyFromUtf8("metrics/warm"), Value = ByteString.CopyFromUtf8("v") }, deadline: DateTime.UtcNow + Deadline);
            using var watchCall = watch.Watch(deadline: DateTime.UtcNow + Deadline);
            await watchCall.RequestStream.WriteAsync(new WatchRequest { CreateRequest = new WatchCreateRequest { Key = ByteString.CopyFromUtf8("metrics/") } });
            Assert.True(await watchCall.ResponseStream.MoveNext(CancellationToken.None));

            foreach (var url in new[] { server.Endpoint, metricsUrl })
            {
                var scrape = await PrometheusText.ScrapeAsync(http, url);
                foreach (var (name, type) in EtcdFamilies.Concat(ArbiterFamilies))
                {
                    Assert.True(scrape.Types.TryGetValue(name, out var served), $"{url}/metrics lacks {name}");
                    Assert.Equal((name, type), (name, served));
                }

                Assert.Equal(1, scrape.Sum("etcd_server_has_leader"));
                Assert.Equal(1, scrape.Sum("etcd_server_is_leader"));
                Assert.Equal(1, scrape.Sum("etcd_debugging_mvcc_watcher_total"));
                Assert.Single(scrape.Samples, s => s.Name == "etcd_server_id" && s.Labels["server_id"].Length > 0);
                Assert.Contains(scrape.Samples, s => s.Name == "etcd_disk_wal_fsync_duration_seconds_bucket" && s.Labels["le"] == "8.192");

                var health = await http.GetAsync(new Uri($"{url}/health"));
                Assert.Equal(System.Net.HttpStatusCode.OK, health.StatusCode);
                Assert.Equal("{\"health\":\"true\"}", await health.Content.ReadAsStringAsync());
            }

            // The metrics URL serves nothing else.
            Assert.Equal(System.Net.HttpStatusCode.NotFound, (await http.GetAsync(new Uri($"{metricsUrl}/v3/kv/range"))).StatusCode);
            using (var metricsChannel = GrpcChannel.ForAddress(metricsUrl))
            {
                await Assert.ThrowsAsync<RpcException>(async () => await new KV.KVClient(metricsChannel).RangeAsync(new RangeRequest { Key = ByteString.CopyFromUtf8("a") }, deadline: DateTime.UtcNow + Deadline));
            }

            // Work moves the counters: puts, a delete, a txn, ranges, the gRPC counters and the fsync histogram.
            var before = await PrometheusText.ScrapeAsync(http, metricsUrl);
            const int puts = 7;
            for (var i = 0; i < puts; i++)
            {
                await kv.PutAsync(new PutRequest { Key = ByteString.CopyFromUtf8($"metrics/k{i}"), Value = ByteString.CopyFromUtf8("v") }, deadline: DateTime.UtcNow + Deadline);
            }

            await kv.DeleteRangeAsync(new DeleteRangeRequest { Key = ByteString.CopyFromUtf8("metrics/k0") }, deadline: DateTime.UtcNow + Deadline);
            await kv.TxnAsync(new TxnRequest { Success = { new RequestOp { RequestPut = new PutRequest { Key = ByteString.CopyFromUtf8("metrics/t"), Value = ByteString.CopyFromUtf8("v") } } } }, deadline: DateTime.UtcNow + Deadline);
            await kv.RangeAsync(new RangeRequest { Key = ByteString.CopyFromUtf8("metrics/k1") }, deadline: DateTime.UtcNow + Deadline);
            var bad = await Assert.ThrowsAsync<RpcException>(async () => await kv.PutAsync(new PutRequest(), deadline: DateTime.UtcNow + Deadline));
            Assert.Equal(StatusCode.InvalidArgument, bad.StatusCode);
            var after = await PrometheusText.ScrapeAsync(http, server.Endpoint);

            double Delta(string name, params (string, string)[] labels) => after.Sum(name, labels) - before.Sum(name, labels);
            output.WriteLine($"put_total +{Delta("etcd_mvcc_put_total")}, fsyncs +{Delta("etcd_disk_wal_fsync_duration_seconds_count")}");
            Assert.Equal(puts, Delta("etcd_mvcc_put_total")); // the refused put never reached the store
            Assert.Equal(1, Delta("etcd_mvcc_delete_total"));
            Assert.Equal(1, Delta("etcd_mvcc_txn_total"));
            Assert.True(Delta("etcd_mvcc_range_total") >= 1);
            Assert.Equal(puts, Delta("grpc_server_handled_total", ("grpc_method", "Put"), ("grpc_code", "OK"), ("grpc_service", "etcdserverpb.KV"), ("grpc_type", "unary")));
            Assert.Equal(1, Delta("grpc_server_handled_total", ("grpc_method", "Put"), ("grpc_code", "InvalidArgument")));
            Assert.Equal(puts + 1, Delta("grpc_server_started_total", ("grpc_method", "Put"), ("grpc_service", "etcdserverpb.KV"), ("grpc_type", "unary")));
            Assert.True(Delta("etcd_disk_wal_fsync_duration_seconds_count") >= 1, "no fsync was measured");
            Assert.Equal(after.Sum("etcd_server_proposals_committed_total"), after.Sum("etcd_server_proposals_applied_total"));
            Assert.True(Delta("etcd_server_proposals_applied_total") >= puts + 2);
            Assert.Equal(puts + 1, after.Sum("etcd_debugging_mvcc_keys_total")); // warm + k1..k6 + t
            Assert.Equal(after.Sum("etcd_debugging_mvcc_current_revision"), (await kv.RangeAsync(new RangeRequest { Key = ByteString.CopyFromUtf8("x") })).Header.Revision);

            await watchCall.RequestStream.CompleteAsync();
        }
        catch (Exception)
        {
            output.WriteLine(server.Log);
            throw;
        }
    }

    /// <summary>Every etcd-named family has, on Arbiter, the type and the label names that a real etcd 3.4 gives it.</summary>
    [Fact]
    public async Task Etcd_named_families_have_the_type_and_labels_of_a_real_etcd()
    {
        await using var etcd = new EtcdProcess("metrics-etcd");
        await using var arbiter = new ArbiterProcess("metrics-arbiter");
        await Task.WhenAll(etcd.StartAsync(), arbiter.StartAsync());
        using var http = new HttpClient { Timeout = Deadline };
        var scrapes = new Dictionary<string, PrometheusText>();
        foreach (var (name, server) in new (string, ServerProcess)[] { ("etcd", etcd), ("arbiter", arbiter) })
        {
            using var channel = GrpcChannel.ForAddress(server.Endpoint);
            var kv = new KV.KVClient(channel);
            await kv.PutAsync(new PutRequest { Key = ByteString.CopyFromUtf8("k"), Value = ByteString.CopyFromUtf8("v") }, deadline: DateTime.UtcNow + Deadline);
            await kv.RangeAsync(new RangeRequest { Key = ByteString.CopyFromUtf8("k") }, deadline: DateTime.UtcNow + Deadline);
            scrapes[name] = await PrometheusText.ScrapeAsync(http, server.Endpoint);
        }

        var mismatches = CompareWithEtcd(scrapes["etcd"], scrapes["arbiter"]);
        foreach (var mismatch in mismatches)
        {
            output.WriteLine(mismatch);
        }

        Assert.Empty(mismatches);
        Assert.Equal(scrapes["etcd"].Sum("etcd_mvcc_put_total"), scrapes["arbiter"].Sum("etcd_mvcc_put_total"));
    }

    /// <summary>The comparison above catches a family whose type or labels differ (planted in a copy of a real scrape).</summary>
    [Fact]
    public void The_etcd_comparison_catches_a_wrong_type_and_a_wrong_label()
    {
        const string etcd = """
            # TYPE etcd_mvcc_put_total counter
            etcd_mvcc_put_total 1
            # TYPE grpc_server_handled_total counter
            grpc_server_handled_total{grpc_code="OK",grpc_method="Put",grpc_service="etcdserverpb.KV",grpc_type="unary"} 1
            """;
        const string planted = """
            # TYPE etcd_mvcc_put_total gauge
            etcd_mvcc_put_total 1
            # TYPE grpc_server_handled_total counter
            grpc_server_handled_total{code="OK",grpc_method="Put",grpc_service="etcdserverpb.KV",grpc_type="unary"} 1
            """;
        var mismatches = CompareWithEtcd(PrometheusText.Parse(etcd), PrometheusText.Parse(planted), ["etcd_mvcc_put_total", "grpc_server_handled_total"]);
        Assert.Equal(2, mismatches.Count);
        Assert.Empty(CompareWithEtcd(PrometheusText.Parse(etcd), PrometheusText.Parse(etcd), ["etcd_mvcc_put_total", "grpc_server_handled_total"]));
        Assert.Throws<FormatException>(() => PrometheusText.Parse("etcd_mvcc_put_total 1\n"));
        Assert.Throws<FormatException>(() => PrometheusText.Parse("# TYPE x counter\nx{a=\"b\" 1\n"));
    }

    private static List<string> CompareWithEtcd(PrometheusText etcd, PrometheusText arbiter, IEnumerable<string>? families = null)
    {
        var mismatches = new List<string>();
        foreach (var family in families ?? EtcdFamilies.Keys)
        {
            if (!etcd.Types.TryGetValue(family, out var etcdType))
            {
                // Not every name exists in etcd 3.4 (none today); say so rather than pass silently.
                mismatches.Add($"{family}: not exported by the real etcd");
                continue;
            }

            if (!arbiter.Types.TryGetValue(family, out var ourType) || ourType != etcdType)
            {
                mismatches.Add($"{family}: etcd {etcdType}, arbiter {ourType ?? "(missing)"}");
                continue;
            }

            var etcdLabels = string.Join(",", etcd.LabelNames(family).Order(StringComparer.Ordinal));
            var ourLabels = string.Join(",", arbiter.LabelNames(family).Order(StringComparer.Ordinal));
            if (etcdLabels != ourLabels)
            {
                mismatches.Add($"{family}: etcd labels [{etcdLabels}], arbiter [{ourLabels}]");
            }
        }

        return mismatches;
    }
}
