using System.Globalization;
using System.Text;
using System.Text.Json;
using Arbiter.Bench.Workloads;

namespace Arbiter.Bench.Reporting;

/// <summary>
/// <c>report --in DIR [--out DIR] [--baseline etcd] [--candidate arbiter]</c>: reads every result JSON
/// file under DIR, writes <c>results.md</c> (workload × clients × system, with candidate/baseline
/// ratios; DIR/machine.md is included when present) and <c>chart.png</c>.
/// </summary>
public static class ReportWriter
{
    /// <summary>Runs the report command.</summary>
    public static async Task<int> RunAsync(IReadOnlyList<string> args, TextWriter output, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(args);
        ArgumentNullException.ThrowIfNull(output);
        string? input = null;
        string? outDir = null;
        var baseline = "etcd";
        var candidate = "arbiter";
        for (var i = 0; i < args.Count; i++)
        {
            string Value() => i + 1 < args.Count ? args[++i] : throw new ArgumentException($"{args[i]} needs a value");
            switch (args[i])
            {
                case "--in": input = Value(); break;
                case "--out": outDir = Value(); break;
                case "--baseline": baseline = Value(); break;
                case "--candidate": candidate = Value(); break;
                default: throw new ArgumentException($"unknown report option '{args[i]}'");
            }
        }

        if (input is null || !Directory.Exists(input))
        {
            throw new ArgumentException("report needs --in DIR (an existing directory of result JSON files)");
        }

        outDir ??= input;
        var results = new List<WorkloadResult>();
        foreach (var file in Directory.EnumerateFiles(input, "*.json", SearchOption.AllDirectories).Order(StringComparer.Ordinal))
        {
            var text = await File.ReadAllTextAsync(file, cancellationToken);
            if (!text.Contains("\"results\"", StringComparison.Ordinal))
            {
                continue;
            }

            var parsed = JsonSerializer.Deserialize<ResultFile>(text, BenchCli.JsonOptions);
            results.AddRange(parsed?.Results ?? []);
        }

        var rows = BuildRows(results, baseline, candidate);
        var machinePath = Path.Combine(input, "machine.md");
        var machine = File.Exists(machinePath) ? await File.ReadAllTextAsync(machinePath, cancellationToken) : null;
        Directory.CreateDirectory(outDir);
        await File.WriteAllTextAsync(Path.Combine(outDir, "results.md"), Markdown(rows, baseline, candidate, machine), cancellationToken);
        ChartWriter.Write(rows, baseline, candidate, Path.Combine(outDir, "chart.png"));
        await output.WriteLineAsync($"wrote {Path.Combine(outDir, "results.md")} and chart.png ({rows.Count} rows from {results.Count} results)");
        return 0;
    }

    /// <summary>One table row per (workload, clients): both systems' figures.</summary>
    public static IReadOnlyList<ReportRow> BuildRows(IReadOnlyList<WorkloadResult> results, string baseline, string candidate)
    {
        ArgumentNullException.ThrowIfNull(results);
        var order = WorkloadCatalog.Names.Select((n, i) => (n, i)).ToDictionary(x => x.n, x => x.i, StringComparer.Ordinal);
        return results
            .GroupBy(r => (r.Workload, Clients: Concurrency(r)))
            .OrderBy(g => order.GetValueOrDefault(g.Key.Workload, int.MaxValue))
            .ThenBy(g => g.Key.Clients)
            .Select(g => new ReportRow(
                g.Key.Workload,
                g.Key.Clients,
                Median(g.Where(r => r.Label == baseline)),
                Median(g.Where(r => r.Label == candidate))))
            .ToList();
    }

    /// <summary>The concurrency a result is filed under: watchers for <c>watch</c>, clients otherwise.</summary>
    public static int Concurrency(WorkloadResult result) =>
        result?.Workload == "watch" ? result.Watchers : result?.Clients ?? 0;

    private static WorkloadResult? Median(IEnumerable<WorkloadResult> runs)
    {
        var sorted = runs.OrderBy(r => r.OpsPerSecond).ToList();
        return sorted.Count == 0 ? null : sorted[sorted.Count / 2];
    }

    private static string Markdown(IReadOnlyList<ReportRow> rows, string baseline, string candidate, string? machine)
    {
        var md = new StringBuilder();
        var inv = CultureInfo.InvariantCulture;
        md.AppendLine("# Arbiter vs etcd — load generator results").AppendLine();
        if (machine is not null)
        {
            md.AppendLine(machine.TrimEnd()).AppendLine();
        }

        md.AppendLine(inv, $"Ratios are {candidate}/{baseline}: throughput > 1 means {candidate} is faster; p99 < 1 means {candidate} has the lower tail. Latencies in ms. Server CPU is user+system time of the server process over the measured window divided by operations (both servers may use both cores). For `watch`, \"clients\" is the number of watchers and ops/s counts delivered events; latency is put-start to event received.").AppendLine();
        md.AppendLine(inv, $"| workload | clients | {baseline} ops/s | {candidate} ops/s | throughput ratio | {baseline} p50 | {candidate} p50 | {baseline} p99 | {candidate} p99 | p99 ratio | server CPU µs/op ({baseline}/{candidate}) | errors ({baseline}/{candidate}) | load avg ({baseline}/{candidate}) |");
        md.AppendLine("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|---|");
        foreach (var row in rows)
        {
            md.AppendLine(inv,
                $"| {row.Workload} | {row.Clients} | {F(row.Baseline?.OpsPerSecond, "F0")} | {F(row.Candidate?.OpsPerSecond, "F0")} | {F(row.ThroughputRatio, "F2")} | {F(row.Baseline?.LatencyMs.P50, "F2")} | {F(row.Candidate?.LatencyMs.P50, "F2")} | {F(row.Baseline?.LatencyMs.P99, "F2")} | {F(row.Candidate?.LatencyMs.P99, "F2")} | {F(row.P99Ratio, "F2")} | {Cpu(row.Baseline)}/{Cpu(row.Candidate)} | {row.Baseline?.ErrorCount.ToString(inv) ?? "–"}/{row.Candidate?.ErrorCount.ToString(inv) ?? "–"} | {row.Baseline?.LoadAverage.Split(' ')[0] ?? "–"}/{row.Candidate?.LoadAverage.Split(' ')[0] ?? "–"} |");
        }

        md.AppendLine().AppendLine("![Arbiter/etcd ratios](chart.png)").AppendLine();
        md.AppendLine("Raw results: `raw/*.json` (one file per cell; every percentile, errors by status code, extras such as txn conflicts).");
        return md.ToString();
    }

    private static string Cpu(WorkloadResult? result) =>
        F(result?.Extra.GetValueOrDefault("serverCpuUsPerOp", double.NaN), "F0");

    private static string F(double? value, string format) =>
        value is { } v && !double.IsNaN(v) && !double.IsInfinity(v) ? v.ToString(format, CultureInfo.InvariantCulture) : "–";
}

/// <summary>One (workload, clients) cell with each system's median result.</summary>
public sealed record ReportRow(string Workload, int Clients, WorkloadResult? Baseline, WorkloadResult? Candidate)
{
    /// <summary>candidate ops/s ÷ baseline ops/s.</summary>
    public double? ThroughputRatio =>
        Baseline is { OpsPerSecond: > 0 } b && Candidate is { } c ? c.OpsPerSecond / b.OpsPerSecond : null;

    /// <summary>candidate p99 ÷ baseline p99.</summary>
    public double? P99Ratio =>
        Baseline is { } b && b.LatencyMs.P99 > 0 && Candidate is { } c ? c.LatencyMs.P99 / b.LatencyMs.P99 : null;
}
