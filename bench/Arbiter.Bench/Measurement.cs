using System.Collections.Concurrent;
using System.Diagnostics;
using Grpc.Core;
using HdrHistogram;

namespace Arbiter.Bench;

/// <summary>Thread-safe latency histogram (microseconds), operation count and errors by status code.</summary>
public sealed class Measurement
{
    /// <summary>Largest latency recorded; longer ones are clamped to it.</summary>
    public const long LatencyUsMax = 120_000_000;

    private readonly LongConcurrentHistogram _histogram = new(1, LatencyUsMax, 3);
    private readonly ConcurrentDictionary<string, long> _errors = new(StringComparer.Ordinal);
    private long _ops;
    private long _errorCount;
    private volatile bool _recording;

    /// <summary>Whether completions are counted (off during warm-up and after the deadline).</summary>
    public bool Recording
    {
        get => _recording;
        set => _recording = value;
    }

    /// <summary>Operations recorded so far.</summary>
    public long Ops => Interlocked.Read(ref _ops);

    /// <summary>Errors recorded so far.</summary>
    public long ErrorCount => Interlocked.Read(ref _errorCount);

    /// <summary>The latency histogram (microseconds).</summary>
    public HistogramBase Histogram => _histogram;

    /// <summary>Errors by gRPC status code (or exception type for non-RPC failures).</summary>
    public IReadOnlyDictionary<string, long> Errors => _errors;

    /// <summary>Records one successful operation that took <paramref name="elapsedTicks"/> Stopwatch ticks.</summary>
    public void RecordSuccess(long elapsedTicks)
    {
        if (!_recording)
        {
            return;
        }

        _histogram.RecordValue(Math.Clamp(TicksToUs(elapsedTicks), 1, LatencyUsMax));
        Interlocked.Increment(ref _ops);
    }

    /// <summary>Records a failed operation.</summary>
    public void RecordError(Exception error)
    {
        ArgumentNullException.ThrowIfNull(error);
        if (!_recording)
        {
            return;
        }

        RecordError(error is RpcException rpc ? rpc.StatusCode.ToString() : error.GetType().Name, 1);
    }

    /// <summary>Records <paramref name="count"/> failures of kind <paramref name="code"/> (recorded even when not <see cref="Recording"/>).</summary>
    public void RecordError(string code, long count)
    {
        _errors.AddOrUpdate(code, count, (_, n) => n + count);
        Interlocked.Add(ref _errorCount, count);
    }

    /// <summary>Converts Stopwatch ticks to microseconds.</summary>
    public static long TicksToUs(long ticks) => (long)(ticks * 1_000_000.0 / Stopwatch.Frequency);
}
