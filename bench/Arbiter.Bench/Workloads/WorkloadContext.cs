using System.Globalization;

namespace Arbiter.Bench.Workloads;

/// <summary>What a workload runs against: options, channels, its measurement and key prefix.</summary>
public sealed class WorkloadContext
{
    private readonly TextWriter? _progress;

    /// <summary>Creates the context for one workload run.</summary>
    public WorkloadContext(BenchOptions options, EtcdConnections connections, string keyPrefix, TextWriter? progress)
    {
        Options = options ?? throw new ArgumentNullException(nameof(options));
        Connections = connections ?? throw new ArgumentNullException(nameof(connections));
        KeyPrefix = keyPrefix;
        _progress = progress;
        Measurement = new Measurement(options.ServerPid);
    }

    /// <summary>Run options.</summary>
    public BenchOptions Options { get; }

    /// <summary>Channels.</summary>
    public EtcdConnections Connections { get; }

    /// <summary>Prefix for every key this workload touches (ends with '/').</summary>
    public string KeyPrefix { get; }

    /// <summary>Latency, ops and errors of this run.</summary>
    public Measurement Measurement { get; }

    /// <summary>A client on the channel its index maps to.</summary>
    public BenchClient NewClient(int index) =>
        new(index, Connections.For(index), Options.RequestTimeoutMs, seed: (index + 1) * 7919);

    /// <summary>Prints one line per second (ops/s in the last second, totals, p99 so far) until disposed.</summary>
    public IDisposable StartProgress(string workload, Measurement measurement)
    {
        ArgumentNullException.ThrowIfNull(measurement);
        if (_progress is null || !Options.ProgressEnabled)
        {
            return new Timer(_ => { });
        }

        var started = DateTime.UtcNow;
        long lastOps = 0;
        var lastTime = started;
        return new Timer(_ =>
        {
            var now = DateTime.UtcNow;
            var ops = measurement.Ops;
            var rate = (ops - lastOps) / Math.Max(0.001, (now - lastTime).TotalSeconds);
            lastOps = ops;
            lastTime = now;
            var p99Ms = measurement.Histogram.TotalCount > 0 ? measurement.Histogram.GetValueAtPercentile(99) / 1000.0 : 0;
            var phase = measurement.Recording ? "" : " (warm-up)";
            _progress.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"[{Options.Label}{(Options.Label.Length > 0 ? " " : "")}{workload} c={Options.Clients}] {(now - started).TotalSeconds,5:F0}s  {rate,9:F0} ops/s  ops={ops}  errors={measurement.ErrorCount}  p99={p99Ms:F2}ms{phase}"));
        }, null, TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(1));
    }

    /// <summary>Builds the result record.</summary>
    public WorkloadResult Result(string workload, Measurement measurement, double measuredS, DateTime startedUtc, IReadOnlyDictionary<string, double> extra)
    {
        ArgumentNullException.ThrowIfNull(measurement);
        var allExtra = extra.ToDictionary(e => e.Key, e => e.Value, StringComparer.Ordinal);
        if (!double.IsNaN(measurement.ServerCpuS))
        {
            allExtra["serverCpuS"] = Math.Round(measurement.ServerCpuS, 3);
            allExtra["serverCpuUsPerOp"] = measurement.Ops > 0 ? Math.Round(measurement.ServerCpuS * 1e6 / measurement.Ops, 1) : 0;
            allExtra["serverRssMiB"] = Math.Round(measurement.ServerRssMiB, 1);
        }

        return new WorkloadResult
        {
            Workload = workload,
            Label = Options.Label,
            Endpoints = Options.Endpoints,
            Clients = Options.Clients,
            Connections = Options.Connections,
            Watchers = workload == "watch" ? Options.Watchers : 0,
            KeySpace = Options.KeySpace,
            ValueSizeBytes = Options.ValueSizeBytes,
            RateOpsPerSecond = Options.RateOpsPerSecond,
            ReadRatio = workload == "mixed" ? Options.ReadRatio : 0,
            DurationS = Math.Round(measuredS, 3),
            Ops = measurement.Ops,
            OpsPerSecond = measuredS > 0 ? Math.Round(measurement.Ops / measuredS, 1) : 0,
            ErrorCount = measurement.ErrorCount,
            Errors = new SortedDictionary<string, long>(measurement.Errors.ToDictionary(e => e.Key, e => e.Value), StringComparer.Ordinal),
            LatencyMs = LatencySummary.From(measurement.Histogram),
            Extra = new SortedDictionary<string, double>(allExtra, StringComparer.Ordinal),
            StartedUtc = startedUtc.ToString("O", CultureInfo.InvariantCulture),
            LoadAverage = ReadLoadAverage(),
        };
    }

    /// <summary>/proc/loadavg's first three fields, or empty off Linux.</summary>
    public static string ReadLoadAverage()
    {
        try
        {
            var text = File.ReadAllText("/proc/loadavg").Split(' ');
            return string.Join(' ', text.Take(3));
        }
        catch (IOException)
        {
            return "";
        }
        catch (UnauthorizedAccessException)
        {
            return "";
        }
    }
}
