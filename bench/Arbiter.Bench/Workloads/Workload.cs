using System.Diagnostics;
using System.Globalization;
using Arbiter.Protocol.Etcd;
using Google.Protobuf;

namespace Arbiter.Bench.Workloads;

/// <summary>
/// A workload: per-client set-up, one operation, tear-down. The default <see cref="RunAsync"/> is a
/// closed loop per client with an optional whole-run rate limit; under a rate limit, latency is
/// measured from each operation's scheduled start, so a stalled server is not hidden
/// (coordinated omission).
/// </summary>
public abstract class Workload
{
    /// <summary>Workload name as given to <c>--workload</c>.</summary>
    public abstract string Name { get; }

    /// <summary>Figures beyond ops and latency (e.g. txn conflicts), added to the result.</summary>
    protected Dictionary<string, double> Extra { get; } = new(StringComparer.Ordinal);

    /// <summary>Prepares shared state (e.g. preloads keys) before any client starts.</summary>
    public virtual Task SetupAsync(WorkloadContext context, CancellationToken cancellationToken) => Task.CompletedTask;

    /// <summary>Prepares one client (e.g. grants its lease).</summary>
    public virtual Task SetupClientAsync(WorkloadContext context, BenchClient client, CancellationToken cancellationToken) => Task.CompletedTask;

    /// <summary>Runs one operation; throws on failure.</summary>
    public abstract Task ExecuteAsync(WorkloadContext context, BenchClient client, CancellationToken cancellationToken);

    /// <summary>Releases one client's resources (untimed).</summary>
    public virtual Task CleanupClientAsync(WorkloadContext context, BenchClient client, CancellationToken cancellationToken) => Task.CompletedTask;

    /// <summary>Runs the workload and returns its measurement.</summary>
    public virtual async Task<WorkloadResult> RunAsync(WorkloadContext context, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(context);
        var options = context.Options;
        await SetupAsync(context, cancellationToken);
        var clients = new BenchClient[options.Clients];
        for (var i = 0; i < clients.Length; i++)
        {
            clients[i] = context.NewClient(i);
        }

        await Task.WhenAll(clients.Select(c => SetupClientAsync(context, c, cancellationToken)));

        var control = new LoopControl(options);
        var measurement = context.Measurement;
        measurement.Recording = options.WarmupS <= 0 || options.TotalOps > 0;
        var startedUtc = DateTime.UtcNow;
        control.Start();
        var loops = clients.Select(c => Task.Run(() => ClientLoopAsync(context, c, control, cancellationToken), cancellationToken)).ToArray();
        using (context.StartProgress(Name, measurement))
        {
            await control.DriveAsync(measurement, Task.WhenAll(loops), cancellationToken);
            await Task.WhenAll(loops);
        }

        await Task.WhenAll(clients.Select(c => CleanupClientAsync(context, c, CancellationToken.None)));
        return context.Result(Name, measurement, control.MeasuredS, startedUtc, Extra);
    }

    private async Task ClientLoopAsync(WorkloadContext context, BenchClient client, LoopControl control, CancellationToken cancellationToken)
    {
        var measurement = context.Measurement;
        while (!control.Stopped && !cancellationToken.IsCancellationRequested)
        {
            if (!control.TryTakeTicket(out var dueTicks))
            {
                return;
            }

            var waitTicks = dueTicks - Stopwatch.GetTimestamp();
            if (waitTicks > 0)
            {
                await Task.Delay(TimeSpan.FromSeconds((double)waitTicks / Stopwatch.Frequency), cancellationToken);
            }

            var startTicks = dueTicks > 0 ? dueTicks : Stopwatch.GetTimestamp();
            try
            {
                await ExecuteAsync(context, client, cancellationToken);
                measurement.RecordSuccess(Stopwatch.GetTimestamp() - startTicks);
            }
            catch (Exception ex) when (!cancellationToken.IsCancellationRequested)
            {
                measurement.RecordError(ex);
                // A failing server must not turn the loop into a busy spin.
                await Task.Delay(1, cancellationToken);
            }
        }
    }

    /// <summary>The key for slot <paramref name="slot"/> under <paramref name="prefix"/>.</summary>
    protected static ByteString Key(string prefix, int slot) =>
        ByteString.CopyFromUtf8(prefix + slot.ToString("D8", CultureInfo.InvariantCulture));

    /// <summary>A value of <paramref name="sizeBytes"/> pseudo-random bytes.</summary>
    protected static ByteString Value(int sizeBytes, int seed)
    {
        var bytes = new byte[sizeBytes];
        new Random(seed).NextBytes(bytes);
        return ByteString.CopyFrom(bytes);
    }

    /// <summary>The range_end that selects every key starting with <paramref name="prefix"/>.</summary>
    protected static ByteString PrefixEnd(string prefix)
    {
        var bytes = System.Text.Encoding.UTF8.GetBytes(prefix);
        bytes[^1]++;
        return ByteString.CopyFrom(bytes);
    }

    /// <summary>Makes sure keys 0..keySpace-1 exist under <paramref name="prefix"/> (puts 100 per txn).</summary>
    protected static async Task PreloadAsync(WorkloadContext context, string prefix, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(context);
        var options = context.Options;
        var client = context.NewClient(0);
        var count = await client.Kv.RangeAsync(
            new RangeRequest { Key = ByteString.CopyFromUtf8(prefix), RangeEnd = PrefixEnd(prefix), CountOnly = true },
            client.Call(cancellationToken));
        if (count.Count >= options.KeySpace)
        {
            return;
        }

        const int BatchKeys = 100;
        var value = Value(options.ValueSizeBytes, 1);
        var batches = Enumerable.Range(0, (options.KeySpace + BatchKeys - 1) / BatchKeys);
        await Parallel.ForEachAsync(batches, new ParallelOptions { MaxDegreeOfParallelism = 8, CancellationToken = cancellationToken }, async (batch, ct) =>
        {
            var txn = new TxnRequest();
            for (var slot = batch * BatchKeys; slot < Math.Min(options.KeySpace, (batch + 1) * BatchKeys); slot++)
            {
                txn.Success.Add(new RequestOp { RequestPut = new PutRequest { Key = Key(prefix, slot), Value = value } });
            }

            await client.Kv.TxnAsync(txn, client.Call(ct));
        });
    }

    private sealed class LoopControl(BenchOptions options)
    {
        private readonly double _ticksPerOp = options.RateOpsPerSecond > 0 ? Stopwatch.Frequency / options.RateOpsPerSecond : 0;
        private long _tickets;
        private long _startTicks;
        private long _measureStartTicks;
        private long _measureEndTicks;
        private volatile bool _stopped;

        public bool Stopped => _stopped;

        public double MeasuredS => (double)(_measureEndTicks - _measureStartTicks) / Stopwatch.Frequency;

        public void Start()
        {
            _startTicks = Stopwatch.GetTimestamp();
            _measureStartTicks = _startTicks;
        }

        // With --total, the tickets are the operations; with a rate, each ticket has a due time.
        public bool TryTakeTicket(out long dueTicks)
        {
            var ticket = Interlocked.Increment(ref _tickets) - 1;
            dueTicks = _ticksPerOp > 0 ? _startTicks + (long)(ticket * _ticksPerOp) : 0;
            return options.TotalOps <= 0 || ticket < options.TotalOps;
        }

        public async Task DriveAsync(Measurement measurement, Task loops, CancellationToken cancellationToken)
        {
            if (options.TotalOps > 0)
            {
                await loops.WaitAsync(cancellationToken);
                _measureEndTicks = Stopwatch.GetTimestamp();
                _stopped = true;
                return;
            }

            if (options.WarmupS > 0)
            {
                await Task.WhenAny(loops, Task.Delay(TimeSpan.FromSeconds(options.WarmupS), cancellationToken));
                _measureStartTicks = Stopwatch.GetTimestamp();
                measurement.Recording = true;
            }

            await Task.WhenAny(loops, Task.Delay(TimeSpan.FromSeconds(options.DurationS), cancellationToken));
            // Completions after the deadline are not counted: the window is exactly DurationS.
            measurement.Recording = false;
            _measureEndTicks = Stopwatch.GetTimestamp();
            _stopped = true;
        }
    }
}
