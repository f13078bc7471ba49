using System.Diagnostics.Metrics;

namespace Arbiter.Storage;

/// <summary>
/// The storage layer's instruments (<see cref="System.Diagnostics.Metrics"/>, meter
/// <see cref="MeterName"/>), named as etcd names the same measurement so that etcd's dashboards
/// and alerts read them unchanged. Process-wide: a process normally holds one member.
/// </summary>
public static class StorageMetrics
{
    /// <summary>The meter's name, for an OpenTelemetry <c>AddMeter</c>.</summary>
    public const string MeterName = "Arbiter.Storage";

    /// <summary>etcd's fsync buckets: 1 ms doubling to 8.192 s (prometheus.ExponentialBuckets(0.001, 2, 14)).</summary>
    public static readonly IReadOnlyList<double> FsyncBucketBoundariesSeconds =
        [0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128, 0.256, 0.512, 1.024, 2.048, 4.096, 8.192];

    private static readonly Meter Meter = new(MeterName);

    /// <summary>
    /// <c>etcd_disk_wal_fsync_duration_seconds</c>: how long each log sync took — the single node's
    /// write-ahead log fsync, or a cluster member's Raft log flush.
    /// </summary>
    public static Histogram<double> WalFsyncDurationSeconds { get; } = Meter.CreateHistogram(
        "etcd_disk_wal_fsync_duration_seconds",
        unit: "s",
        description: "The latency distributions of fsync called by WAL.",
        tags: null,
        advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = FsyncBucketBoundariesSeconds });
}
