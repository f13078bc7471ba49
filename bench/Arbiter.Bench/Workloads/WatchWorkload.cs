using System.Buffers.Binary;
using System.Diagnostics;
using Arbiter.Protocol.Etcd;
using Google.Protobuf;
using Grpc.Core;

namespace Arbiter.Bench.Workloads;

/// <summary>
/// <c>watch</c>: fan-out latency. <c>--watchers</c> Watch streams (spread over the channels) watch one
/// key prefix; one writer puts keys under it (closed loop, or at <c>--rate</c>), each value starting with
/// the writer's Stopwatch timestamp. An operation is one event delivered to one watcher; its latency is
/// put-start to event-received, so it includes the put's own commit. Events never delivered are
/// errors ("MissingEvents").
/// </summary>
public sealed class WatchWorkload : Workload
{
    /// <inheritdoc />
    public override string Name => "watch";

    /// <inheritdoc />
    public override Task ExecuteAsync(WorkloadContext context, BenchClient client, CancellationToken cancellationToken) =>
        throw new NotSupportedException("the watch workload drives its own writer");

    /// <inheritdoc />
    public override async Task<WorkloadResult> RunAsync(WorkloadContext context, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(context);
        var options = context.Options;
        var measurement = context.Measurement;
        var prefix = context.KeyPrefix;
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);

        // Watchers: one stream each; wait until every watch is created before writing.
        var watchers = new List<(AsyncDuplexStreamingCall<WatchRequest, WatchResponse> Call, Task<long> Reader)>();
        long deliveredMeasured = 0;
        var recordingFlags = new ConcurrentRecording();
        for (var i = 0; i < options.Watchers; i++)
        {
            var client = context.NewClient(i);
            var call = client.Watch.Watch(cancellationToken: stop.Token);
            await call.RequestStream.WriteAsync(new WatchRequest
            {
                CreateRequest = new WatchCreateRequest { Key = ByteString.CopyFromUtf8(prefix), RangeEnd = PrefixEnd(prefix) },
            }, cancellationToken);
            if (!await call.ResponseStream.MoveNext(cancellationToken) || !call.ResponseStream.Current.Created)
            {
                throw new InvalidOperationException("watch was not created");
            }

            watchers.Add((call, Task.Run(() => ReadEventsAsync(call, measurement, recordingFlags, stop.Token), CancellationToken.None)));
        }

        // The writer: one client, closed loop or rate-limited.
        var writer = context.NewClient(0);
        var value = new byte[Math.Max(options.ValueSizeBytes, 9)];
        long writesMeasured = 0;
        long writes = 0;
        var startedUtc = DateTime.UtcNow;
        var startTicks = Stopwatch.GetTimestamp();
        var warmupTicks = options.TotalOps > 0 ? 0 : (long)(options.WarmupS * Stopwatch.Frequency);
        var endTicks = options.TotalOps > 0 ? long.MaxValue : startTicks + warmupTicks + (long)(options.DurationS * Stopwatch.Frequency);
        var ticksPerWrite = options.RateOpsPerSecond > 0 ? Stopwatch.Frequency / options.RateOpsPerSecond : 0;
        long measureStartTicks = 0;
        measurement.Recording = warmupTicks == 0;
        if (measurement.Recording)
        {
            measureStartTicks = startTicks;
        }

        using (context.StartProgress(Name, measurement))
        {
            while (!cancellationToken.IsCancellationRequested)
            {
                var now = Stopwatch.GetTimestamp();
                if (!measurement.Recording && now - startTicks >= warmupTicks)
                {
                    measureStartTicks = now;
                    measurement.Recording = true;
                }

                if (now >= endTicks || (options.TotalOps > 0 && writes >= options.TotalOps))
                {
                    break;
                }

                var dueTicks = ticksPerWrite > 0 ? startTicks + (long)(writes * ticksPerWrite) : now;
                if (dueTicks > now)
                {
                    await Task.Delay(TimeSpan.FromSeconds((double)(dueTicks - now) / Stopwatch.Frequency), cancellationToken);
                }

                // Marker byte 1 = "count this event"; warm-up events carry 0 so late deliveries are not counted.
                var measured = measurement.Recording;
                BinaryPrimitives.WriteInt64LittleEndian(value, dueTicks);
                value[8] = measured ? (byte)1 : (byte)0;
                try
                {
                    await writer.Kv.PutAsync(new PutRequest { Key = Key(prefix, (int)(writes % options.KeySpace)), Value = ByteString.CopyFrom(value) }, writer.Call(cancellationToken));
                    if (measured)
                    {
                        writesMeasured++;
                    }
                }
                catch (RpcException ex)
                {
                    measurement.RecordError(ex);
                }

                writes++;
            }

            var writeEndTicks = Stopwatch.GetTimestamp();

            // Let the last events arrive (bounded), then close the streams.
            var expected = writesMeasured * options.Watchers;
            var drainDeadline = Stopwatch.GetTimestamp() + (5 * Stopwatch.Frequency);
            while (recordingFlags.Delivered < expected && Stopwatch.GetTimestamp() < drainDeadline)
            {
                await Task.Delay(10, cancellationToken);
            }

            measurement.Recording = false;
            deliveredMeasured = recordingFlags.Delivered;
            if (deliveredMeasured < expected)
            {
                measurement.RecordError("MissingEvents", expected - deliveredMeasured);
            }

            await stop.CancelAsync();
            foreach (var (call, reader) in watchers)
            {
                try
                {
                    await reader;
                }
                catch (RpcException)
                {
                    // Canceled by us.
                }
                catch (OperationCanceledException)
                {
                    // Canceled by us.
                }

                call.Dispose();
            }

            var measuredS = (double)(writeEndTicks - measureStartTicks) / Stopwatch.Frequency;
            Extra["writesPerSecond"] = measuredS > 0 ? Math.Round(writesMeasured / measuredS, 1) : 0;
            Extra["eventsDelivered"] = deliveredMeasured;
            return context.Result(Name, measurement, measuredS, startedUtc, Extra);
        }
    }

    private static async Task<long> ReadEventsAsync(
        AsyncDuplexStreamingCall<WatchRequest, WatchResponse> call, Measurement measurement, ConcurrentRecording counts, CancellationToken cancellationToken)
    {
        long received = 0;
        while (await call.ResponseStream.MoveNext(cancellationToken))
        {
            var now = Stopwatch.GetTimestamp();
            foreach (var e in call.ResponseStream.Current.Events)
            {
                var span = e.Kv.Value.Span;
                if (span.Length < 9 || span[8] != 1)
                {
                    continue;
                }

                var sentTicks = BinaryPrimitives.ReadInt64LittleEndian(span);
                measurement.RecordSuccess(now - sentTicks);
                counts.Add();
                received++;
            }
        }

        return received;
    }

    private sealed class ConcurrentRecording
    {
        private long _delivered;

        public long Delivered => Interlocked.Read(ref _delivered);

        public void Add() => Interlocked.Increment(ref _delivered);
    }
}
