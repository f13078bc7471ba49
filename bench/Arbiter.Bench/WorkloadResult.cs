using HdrHistogram;

namespace Arbiter.Bench;

/// <summary>One workload's outcome against one system; what the JSON result file holds.</summary>
public sealed record WorkloadResult
{
    /// <summary>Workload name.</summary>
    public required string Workload { get; init; }

    /// <summary>System label (<c>--label</c>).</summary>
    public string Label { get; init; } = "";

    /// <summary>Endpoints loaded.</summary>
    public IReadOnlyList<string> Endpoints { get; init; } = [];

    /// <summary>Concurrent clients.</summary>
    public int Clients { get; init; }

    /// <summary>gRPC channels.</summary>
    public int Connections { get; init; }

    /// <summary>Watchers (watch workload only).</summary>
    public int Watchers { get; init; }

    /// <summary>Distinct keys.</summary>
    public int KeySpace { get; init; }

    /// <summary>Value size.</summary>
    public int ValueSizeBytes { get; init; }

    /// <summary>Rate limit (0: none).</summary>
    public double RateOpsPerSecond { get; init; }

    /// <summary>Read fraction (mixed only).</summary>
    public double ReadRatio { get; init; }

    /// <summary>Measured seconds.</summary>
    public double DurationS { get; init; }

    /// <summary>Successful operations in the measured window.</summary>
    public long Ops { get; init; }

    /// <summary>Throughput.</summary>
    public double OpsPerSecond { get; init; }

    /// <summary>Failed operations.</summary>
    public long ErrorCount { get; init; }

    /// <summary>Failures by gRPC status code.</summary>
    public IReadOnlyDictionary<string, long> Errors { get; init; } = new Dictionary<string, long>();

    /// <summary>Latency percentiles of successful operations.</summary>
    public LatencySummary LatencyMs { get; init; } = new();

    /// <summary>Workload-specific figures (e.g. txn conflicts, writer rate).</summary>
    public IReadOnlyDictionary<string, double> Extra { get; init; } = new Dictionary<string, double>();

    /// <summary>Start time (UTC, ISO 8601).</summary>
    public string StartedUtc { get; init; } = "";

    /// <summary>/proc/loadavg at the end of the run.</summary>
    public string LoadAverage { get; init; } = "";
}

/// <summary>Latency percentiles in milliseconds.</summary>
public sealed record LatencySummary
{
    /// <summary>Median.</summary>
    public double P50 { get; init; }

    /// <summary>90th percentile.</summary>
    public double P90 { get; init; }

    /// <summary>99th percentile.</summary>
    public double P99 { get; init; }

    /// <summary>99.9th percentile.</summary>
    public double P999 { get; init; }

    /// <summary>Largest.</summary>
    public double Max { get; init; }

    /// <summary>Mean.</summary>
    public double Mean { get; init; }

    /// <summary>Summarizes a microsecond histogram.</summary>
    public static LatencySummary From(HistogramBase histogram)
    {
        ArgumentNullException.ThrowIfNull(histogram);
        if (histogram.TotalCount == 0)
        {
            return new LatencySummary();
        }

        static double Ms(long us) => Math.Round(us / 1000.0, 3);
        return new LatencySummary
        {
            P50 = Ms(histogram.GetValueAtPercentile(50)),
            P90 = Ms(histogram.GetValueAtPercentile(90)),
            P99 = Ms(histogram.GetValueAtPercentile(99)),
            P999 = Ms(histogram.GetValueAtPercentile(99.9)),
            Max = Ms(histogram.GetMaxValue()),
            Mean = Math.Round(histogram.GetMean() / 1000.0, 3),
        };
    }
}

/// <summary>The JSON result file: every workload result of one run.</summary>
public sealed record ResultFile
{
    /// <summary>Results, in run order.</summary>
    public IReadOnlyList<WorkloadResult> Results { get; init; } = [];
}
