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
    private double _serverCpuStartS = double.NaN;

    /// <summary>Creates a measurement; with <paramref name="serverPid"/> &gt; 0 it also tracks that process's CPU time.</summary>
    public Measurement(int serverPid = 0) => ServerPid = serverPid;

    /// <summary>Server process watched for CPU time (0: none).</summary>
    public int ServerPid { get; }

    /// <summary>Server CPU seconds (user + system) over the measured window, or NaN.</summary>
    public double ServerCpuS { get; private set; } = double.NaN;

    /// <summary>Server resident set size at the end of the window, or NaN.</summary>
    public double ServerRssMiB { get; private set; } = double.NaN;

    /// <summary>Whether completions are counted (off during warm-up and after the deadline).</summary>
    public bool Recording
    {
        get => _recording;
        set
        {
            if (value == _recording)
            {
                return;
            }

            // The window's edges are where the server's CPU time is sampled.
            if (value)
            {
                _serverCpuStartS = ProcessStats.CpuSeconds(ServerPid);
            }
            else
            {
                ServerCpuS = ProcessStats.CpuSeconds(ServerPid) - _serverCpuStartS;
                ServerRssMiB = ProcessStats.RssMiB(ServerPid);
            }

            _recording = value;
        }
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
