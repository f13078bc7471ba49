using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using Arbiter.Bench.Workloads;
using Arbiter.Node;
using Arbiter.Server;
using Microsoft.AspNetCore.Builder;

namespace Arbiter.Bench.Tests;

/// <summary>The load generator's smoke mode against an in-process Arbiter server on loopback.</summary>
public sealed class LoadGeneratorSmokeTests
{
    [Fact]
    public async Task Smoke_mode_runs_every_workload_without_errors_and_writes_the_result_file()
    {
        var url = $"http://127.0.0.1:{FreePort()}";
        var outDir = Directory.CreateTempSubdirectory("arbiter-bench-smoke-");
        var outPath = Path.Combine(outDir.FullName, "smoke.json");
        await using var node = await ArbiterNode.StartAsync(new NodeOptions());
        await using var app = ArbiterServer.Build(node, new ServerOptions { ListenClientUrls = [url] });
        await app.StartAsync();
        try
        {
            var options = BenchOptions.Parse(["--smoke", "--endpoints", url, "--total", "100", "--label", "arbiter", "--out", outPath, "--quiet"]);
            using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(2));

            var results = await BenchCli.RunWorkloadsAsync(options, progress: null, timeout.Token);

            Assert.Equal(WorkloadCatalog.Names, results.Select(r => r.Workload));
            foreach (var result in results)
            {
                Assert.True(result.Ops > 0, $"{result.Workload}: no operations completed");
                Assert.True(result.ErrorCount == 0, $"{result.Workload}: {BenchCli.Summary(result)}");
                Assert.True(result.LatencyMs.P50 > 0, $"{result.Workload}: no latency recorded");
            }

            // Watch: every write's event reaches every watcher.
            var watch = results.Single(r => r.Workload == "watch");
            Assert.Equal(100 * options.Watchers, watch.Ops);

            var file = JsonSerializer.Deserialize<ResultFile>(await File.ReadAllTextAsync(outPath, timeout.Token), BenchCli.JsonOptions);
            Assert.NotNull(file);
            Assert.Equal(results.Count, file.Results.Count);
            Assert.Equal("arbiter", file.Results[0].Label);
        }
        finally
        {
            await app.StopAsync();
            outDir.Delete(recursive: true);
        }
    }

    [Fact]
    public async Task The_session_and_bounded_range_workloads_run_without_errors()
    {
        var url = $"http://127.0.0.1:{FreePort()}";
        await using var node = await ArbiterNode.StartAsync(new NodeOptions());
        await using var app = ArbiterServer.Build(node, new ServerOptions { ListenClientUrls = [url] });
        await app.StartAsync();
        try
        {
            var options = BenchOptions.Parse(["--smoke", "--endpoints", url, "--total", "100", "--workload", "range-session,range-bounded", "--quiet"]);
            using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(2));

            var results = await BenchCli.RunWorkloadsAsync(options, progress: null, timeout.Token);

            Assert.Equal(["range-session", "range-bounded"], results.Select(r => r.Workload));
            Assert.All(results, r => Assert.True(r.Ops > 0 && r.ErrorCount == 0, BenchCli.Summary(r)));
        }
        finally
        {
            await app.StopAsync();
        }
    }

    [Fact]
    public async Task Fill_writes_every_key_of_the_key_space_once_per_pass()
    {
        var url = $"http://127.0.0.1:{FreePort()}";
        await using var node = await ArbiterNode.StartAsync(new NodeOptions());
        await using var app = ArbiterServer.Build(node, new ServerOptions { ListenClientUrls = [url] });
        await app.StartAsync();
        try
        {
            // Two passes over 37 keys (not a multiple of the 4 clients), as bench/memory.sh runs them.
            var options = BenchOptions.Parse(["--endpoints", url, "--workload", "fill", "--clients", "4", "--key-space", "37", "--total", "74", "--warmup", "0", "--quiet"]);
            using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(2));

            var results = await BenchCli.RunWorkloadsAsync(options, progress: null, timeout.Token);

            Assert.True(results.Single().Ops == 74 && results.Single().ErrorCount == 0, BenchCli.Summary(results.Single()));
            var keys = await node.RangeAsync(
                new Arbiter.Protocol.Etcd.RangeRequest { Key = Google.Protobuf.ByteString.CopyFromUtf8("/bench/fill/"), RangeEnd = Google.Protobuf.ByteString.CopyFromUtf8("/bench/fill0") },
                timeout.Token);
            Assert.Equal(Enumerable.Range(0, 37).Select(i => $"/bench/fill/{i:D10}"), keys.Kvs.Select(kv => kv.Key.ToStringUtf8()));
            Assert.All(keys.Kvs, kv => Assert.Equal(2, kv.Version));
        }
        finally
        {
            await app.StopAsync();
        }
    }

    [Fact]
    public void The_consistency_option_picks_the_range_level()
    {
        Assert.Equal(["put", "range-session"], BenchOptions.Parse(["--workload", "put,range", "--consistency", "session"]).Workloads);
        Assert.Equal(["range-bounded"], BenchOptions.Parse(["--consistency", "bounded", "--workload", "range"]).Workloads);
        Assert.Throws<ArgumentException>(() => BenchOptions.Parse(["--workload", "range", "--consistency", "eventual"]));
    }

    [Fact]
    public void Options_reject_unknown_workloads_and_bad_numbers()
    {
        Assert.Throws<ArgumentException>(() => BenchOptions.Parse(["--workload", "nope"]));
        Assert.Throws<ArgumentException>(() => BenchOptions.Parse(["--clients", "0"]));
        Assert.Throws<ArgumentException>(() => BenchOptions.Parse(["--read-ratio", "1.5"]));
        Assert.Equal(WorkloadCatalog.Names, BenchOptions.Parse(["--workload", "all"]).Workloads);
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
