using System.Text.Json;
using System.Text.Json.Serialization;
using Arbiter.Bench.Probing;
using Arbiter.Bench.Reporting;
using Arbiter.Bench.Workloads;

namespace Arbiter.Bench;

/// <summary>The <c>arbiter-bench</c> command: <c>run</c>, <c>report</c>, <c>probe</c>, <c>failover-load</c>, <c>failover-report</c>, <c>transactions</c>, <c>transactions-report</c>.</summary>
public static class BenchCli
{
    /// <summary>JSON shape of result files (camelCase, indented).</summary>
    public static JsonSerializerOptions JsonOptions { get; } = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.CamelCase,
        WriteIndented = true,
        DefaultIgnoreCondition = JsonIgnoreCondition.Never,
    };

    /// <summary>Runs the command; returns the process exit code (0 ok, 1 errors occurred, 2 bad usage).</summary>
    public static async Task<int> RunAsync(IReadOnlyList<string> args, TextWriter output, TextWriter progress, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(args);
        ArgumentNullException.ThrowIfNull(output);
        var command = args.Count > 0 && !args[0].StartsWith("--", StringComparison.Ordinal) ? args[0] : "run";
        var rest = args.Count > 0 && command == args[0] ? args.Skip(1).ToArray() : args.ToArray();
        try
        {
            return command switch
            {
                "run" => await RunWorkloadsAsync(BenchOptions.Parse(rest), output, progress, cancellationToken),
                "report" => await ReportWriter.RunAsync(rest, output, cancellationToken),
                "probe" => await MachineProbe.RunAsync(rest, output, cancellationToken),
                "failover-load" => await Failover.FailoverLoad.RunAsync(rest, output, cancellationToken),
                "failover-report" => await Failover.FailoverReport.RunAsync(rest, output, cancellationToken),
                "transactions" => await Transactions.TransactionBench.RunAsync(rest, output, cancellationToken),
                "transactions-report" => await Transactions.TransactionBench.ReportAsync(rest, output, cancellationToken),
                "help" or "--help" or "-h" => Help(output, 0),
                _ => throw new ArgumentException($"unknown command '{command}'"),
            };
        }
        catch (ArgumentException ex)
        {
            await output.WriteLineAsync("error: " + ex.Message);
            return Help(output, 2);
        }
    }

    /// <summary>Runs every workload in <paramref name="options"/> and writes the result file.</summary>
    public static async Task<IReadOnlyList<WorkloadResult>> RunWorkloadsAsync(BenchOptions options, TextWriter? progress, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(options);
        var results = new List<WorkloadResult>();
        using var connections = new EtcdConnections(options.Endpoints, options.Connections, options.CaFile, options.CertFile, options.KeyFile);
        foreach (var name in options.Workloads)
        {
            var workload = WorkloadCatalog.Create(name);
            var context = new WorkloadContext(options, connections, $"{options.Prefix}{workload.Name}/", progress);
            results.Add(await workload.RunAsync(context, cancellationToken));
        }

        if (options.OutPath is not null)
        {
            var directory = Path.GetDirectoryName(Path.GetFullPath(options.OutPath));
            if (directory is not null)
            {
                Directory.CreateDirectory(directory);
            }

            await File.WriteAllTextAsync(options.OutPath, JsonSerializer.Serialize(new ResultFile { Results = results }, JsonOptions), cancellationToken);
        }

        return results;
    }

    private static async Task<int> RunWorkloadsAsync(BenchOptions options, TextWriter output, TextWriter progress, CancellationToken cancellationToken)
    {
        var results = await RunWorkloadsAsync(options, progress, cancellationToken);
        foreach (var r in results)
        {
            await output.WriteLineAsync(Summary(r));
        }

        return results.Any(r => r.ErrorCount > 0) ? 1 : 0;
    }

    /// <summary>One line per result: throughput, latency percentiles, errors.</summary>
    public static string Summary(WorkloadResult result)
    {
        ArgumentNullException.ThrowIfNull(result);
        var l = result.LatencyMs;
        var errors = result.ErrorCount == 0 ? "0" : $"{result.ErrorCount} ({string.Join(", ", result.Errors.Select(e => $"{e.Key}={e.Value}"))})";
        var extra = result.Extra.Count == 0 ? "" : "  " + string.Join(" ", result.Extra.Select(e => FormattableString.Invariant($"{e.Key}={e.Value}")));
        return FormattableString.Invariant(
            $"{result.Label}{(result.Label.Length > 0 ? " " : "")}{result.Workload,-18} clients={result.Clients,-3} ops={result.Ops,-8} {result.OpsPerSecond,10:F1} ops/s  p50={l.P50:F3} p90={l.P90:F3} p99={l.P99:F3} p99.9={l.P999:F3} max={l.Max:F3} ms  errors={errors}{extra}");
    }

    private static int Help(TextWriter output, int exitCode)
    {
        output.WriteLine(BenchOptions.Usage);
        return exitCode;
    }
}
