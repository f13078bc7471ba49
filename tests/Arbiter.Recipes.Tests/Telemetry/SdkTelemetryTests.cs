using System.Collections.Concurrent;
using System.Diagnostics;
using System.Diagnostics.Metrics;
using Arbiter.Client;
using Arbiter.Client.Diagnostics;
using Arbiter.Compatibility.Tests.Fixtures;

namespace Arbiter.Recipes.Tests.Telemetry;

/// <summary>
/// The ActivityListener and MeterListener are process-wide: the collection runs alone so that what
/// they see comes from these tests only.
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class TelemetryCollection
{
    public const string Name = "sdk-telemetry";
}

/// <summary>
/// The SDK's traces and metrics (ActivitySource and Meter "Arbiter.Client") against real processes:
/// an <c>arbiter serve</c> exporting its own spans over OTLP to an in-test collector, so that the
/// link between the SDK's spans (seen by an in-process ActivityListener) and the server's spans is
/// checked on what really crossed the wire (the W3C <c>traceparent</c>); and a real etcd 3.4, which
/// ignores the header, with tracing on.
/// </summary>
[Collection(TelemetryCollection.Name)]
public sealed class SdkTelemetryTests(ITestOutputHelper output)
{
    /// <summary>The test's own root spans, so that a trace id marks everything a test did.</summary>
    private const string TestSourceName = "Arbiter.Recipes.Tests.Telemetry";

    private static readonly ActivitySource TestSource = new(TestSourceName);

    [Fact]
    public async Task Lock_acquire_is_traced_and_the_servers_spans_are_children_of_the_sdk_call_spans()
    {
        using var collector = new OtlpCollector();
        var environment = new Dictionary<string, string> { ["OTEL_BSP_SCHEDULE_DELAY"] = "200" };
        await using var server = new ArbiterProcess("sdk-otlp", ["--otlp-endpoint", collector.Url, "--otlp-protocol", "http/protobuf"], environment);
        await server.StartAsync();
        using var spans = new SpanRecorder();
        try
        {
            await using var client = ArbiterClient.Connect(server.Endpoint);
            string traceId;
            DistributedLockHandle handle;
            using (var root = TestSource.StartActivity("test.lock"))
            {
                Assert.NotNull(root);
                traceId = root.TraceId.ToHexString();
                handle = await new DistributedMutex(client, "telemetry/lock").AcquireAsync(TestSupport.Deadline).Within();
            }

            // Released outside the test's trace: everything in the trace is the acquisition.
            var fencingToken = handle.FencingToken;
            await handle.DisposeAsync();

            var mine = spans.InTrace(traceId);
            var acquire = Assert.Single(mine, s => s.OperationName == "arbiter.lock.acquire");
            Assert.Equal("acquired", acquire.GetTagItem("arbiter.lock.outcome"));
            Assert.Equal("mutex", acquire.GetTagItem("arbiter.lock.kind"));
            Assert.Equal("telemetry/lock/", acquire.GetTagItem("arbiter.lock.name"));
            Assert.Equal(fencingToken, acquire.GetTagItem("arbiter.lock.fencing_token"));
            Assert.IsType<long>(acquire.GetTagItem("arbiter.lock.wait_ms"));

            // The calls the lock made are client spans under it, tagged as OpenTelemetry's RPC conventions say.
            var calls = mine.Where(s => s.Kind == ActivityKind.Client && s.OperationName.StartsWith("etcdserverpb.", StringComparison.Ordinal)).ToList();
            Assert.NotEmpty(calls);
            var uri = new Uri(server.Endpoint);
            foreach (var call in calls)
            {
                Assert.Equal("grpc", call.GetTagItem("rpc.system"));
                Assert.Equal(uri.Host, call.GetTagItem("server.address"));
                Assert.Equal(uri.Port, call.GetTagItem("server.port"));
                Assert.Equal(0, call.GetTagItem("rpc.grpc.status_code"));
                Assert.True(IsUnder(call, acquire, mine), $"{call.OperationName} is not under the lock span");
            }

            // Every server span of this trace hangs off an SDK call span, the one for the same RPC.
            var grant = Assert.Single(calls, c => c.OperationName == "etcdserverpb.Lease/LeaseGrant");
            var serverGrant = await collector.WaitForSpanAsync(s => s.TraceId == traceId && s.Name == grant.OperationName, TestSupport.Deadline);
            Assert.Equal(grant.SpanId.ToHexString(), serverGrant.ParentSpanId);
            foreach (var call in calls)
            {
                var served = await collector.WaitForSpanAsync(s => s.TraceId == traceId && s.ParentSpanId == call.SpanId.ToHexString(), TestSupport.Deadline);
                Assert.Equal(call.OperationName, served.Name);
            }

            var callIds = calls.Select(c => c.SpanId.ToHexString()).ToHashSet();
            Assert.All(collector.Spans.Where(s => s.TraceId == traceId && s.Name.StartsWith("etcdserverpb.", StringComparison.Ordinal)), s => Assert.Contains(s.ParentSpanId, callIds));
        }
        catch (Exception)
        {
            output.WriteLine(server.Log);
            throw;
        }
    }

    [Fact]
    public async Task Lock_wait_and_locks_held_are_measured_and_a_retry_after_a_stopped_endpoint_is_counted()
    {
        await using var server = new ArbiterProcess("sdk-metrics");
        await server.StartAsync();
        using var metrics = new MeasurementRecorder();
        using var spans = new SpanRecorder();
        try
        {
            // The first endpoint has nothing listening (a stopped member): the read is refused there and retried on the next.
            var stopped = $"http://127.0.0.1:{PortAllocator.FreePort()}";
            var options = new ArbiterClientOptions { RetryDelayMs = 10 };
            options.Endpoints.Add(stopped);
            options.Endpoints.Add(server.Endpoint);
            await using var client = ArbiterClient.Connect(options);
            string traceId;
            using (var root = TestSource.StartActivity("test.retry"))
            {
                traceId = root!.TraceId.ToHexString();
                Assert.Null(await client.GetAsync("telemetry/absent").Within());
            }

            var retry = Assert.Single(metrics.Of("arbiter.client.retries"));
            Assert.Equal(1L, retry.Value);
            Assert.Equal("Range", retry.Tags["rpc.method"]);
            Assert.Equal(14, retry.Tags["rpc.grpc.status_code"]);
            var range = Assert.Single(spans.InTrace(traceId), s => s.OperationName == "etcdserverpb.KV/Range");
            var retryEvent = Assert.Single(range.Events);
            Assert.Equal("retry", retryEvent.Name);
            Assert.Contains(metrics.Of("arbiter.client.call.duration"), m => (string?)m.Tags["rpc.method"] == "Range" && (int?)m.Tags["rpc.grpc.status_code"] == 0);

            // A lock: its wait is measured with its outcome, and it counts as held until released.
            var mutex = new DistributedMutex(client, "telemetry/metrics-lock");
            var handle = await mutex.AcquireAsync(TestSupport.Deadline).Within();
            Assert.Equal(1L, metrics.Sum("arbiter.client.locks.held"));
            await handle.DisposeAsync();
            Assert.Equal(0L, metrics.Sum("arbiter.client.locks.held"));
            var wait = Assert.Single(metrics.Of("arbiter.client.lock.wait.duration"));
            Assert.Equal("mutex", wait.Tags["arbiter.lock.kind"]);
            Assert.Equal("acquired", wait.Tags["arbiter.lock.outcome"]);
            var waitedSeconds = Convert.ToDouble(wait.Value, System.Globalization.CultureInfo.InvariantCulture);
            Assert.True(waitedSeconds > 0 && waitedSeconds < TestSupport.Deadline.TotalSeconds, $"lock wait {waitedSeconds} s");

            // A lock held elsewhere: a try with no wait times out, and is measured as such.
            var holder = await mutex.AcquireAsync(TestSupport.Deadline).Within();
            await using (holder)
            {
                Assert.Null(await new DistributedMutex(client, "telemetry/metrics-lock").TryAcquireAsync(TimeSpan.Zero).Within());
            }

            Assert.Contains(metrics.Of("arbiter.client.lock.wait.duration"), m => (string?)m.Tags["arbiter.lock.outcome"] == "timeout");
        }
        catch (Exception)
        {
            output.WriteLine(server.Log);
            throw;
        }
    }

    [Fact]
    public async Task The_sdk_works_against_a_real_etcd_with_tracing_on()
    {
        await using var etcd = new EtcdProcess("etcd-telemetry");
        await etcd.StartAsync();
        using var spans = new SpanRecorder();
        try
        {
            await using var client = ArbiterClient.Connect(etcd.Endpoint);
            string traceId;
            using (var root = TestSource.StartActivity("test.etcd"))
            {
                traceId = root!.TraceId.ToHexString();
                await client.PutAsync("telemetry/etcd/k", "v").Within();
                Assert.Equal("v", await client.GetStringAsync("telemetry/etcd/k").Within());
                var mutex = new DistributedMutex(client, "telemetry/etcd/lock");
                await using var handle = await mutex.AcquireAsync(TestSupport.Deadline).Within();
                Assert.True(await handle.FencedPutAsync("telemetry/etcd/fenced", "x").Within());
            }

            var mine = spans.InTrace(traceId);
            var put = Assert.Single(mine, s => s.OperationName == "etcdserverpb.KV/Put");
            Assert.Equal("telemetry/etcd/", put.GetTagItem("arbiter.key_prefix"));
            Assert.Equal(ActivityStatusCode.Unset, put.Status);
            Assert.Equal("acquired", Assert.Single(mine, s => s.OperationName == "arbiter.lock.acquire").GetTagItem("arbiter.lock.outcome"));
        }
        catch (Exception)
        {
            output.WriteLine(etcd.Log);
            throw;
        }
    }

    private static bool IsUnder(Activity span, Activity ancestor, IReadOnlyList<Activity> all)
    {
        var byId = all.ToDictionary(a => a.SpanId);
        for (var parent = span.ParentSpanId; byId.TryGetValue(parent, out var next); parent = next.ParentSpanId)
        {
            if (next.SpanId == ancestor.SpanId)
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>Records every finished span of the SDK's source and the test's own.</summary>
    private sealed class SpanRecorder : IDisposable
    {
        private readonly ConcurrentQueue<Activity> _stopped = new();
        private readonly ActivityListener _listener;

        public SpanRecorder()
        {
            _listener = new ActivityListener
            {
                // By name: comparing with TestSource could run while that field is being initialized.
                ShouldListenTo = source => source.Name is ArbiterTelemetry.ActivitySourceName or TestSourceName,
                Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllDataAndRecorded,
                ActivityStopped = _stopped.Enqueue,
            };
            ActivitySource.AddActivityListener(_listener);
        }

        public IReadOnlyList<Activity> InTrace(string traceId) => [.. _stopped.Where(a => a.TraceId.ToHexString() == traceId)];

        public void Dispose() => _listener.Dispose();
    }

    /// <summary>A measurement with its tags.</summary>
    private sealed record Measured(string Instrument, object Value, IReadOnlyDictionary<string, object?> Tags);

    /// <summary>Records every measurement of the SDK's meter.</summary>
    private sealed class MeasurementRecorder : IDisposable
    {
        private readonly ConcurrentQueue<Measured> _measured = new();
        private readonly MeterListener _listener = new();

        public MeasurementRecorder()
        {
            _listener.InstrumentPublished = (instrument, listener) =>
            {
                if (instrument.Meter.Name == ArbiterTelemetry.MeterName)
                {
                    listener.EnableMeasurementEvents(instrument);
                }
            };
            _listener.SetMeasurementEventCallback<long>((instrument, value, tags, _) => Record(instrument, value, tags));
            _listener.SetMeasurementEventCallback<double>((instrument, value, tags, _) => Record(instrument, value, tags));
            _listener.Start();
        }

        public IReadOnlyList<Measured> Of(string instrument) => [.. _measured.Where(m => m.Instrument == instrument)];

        public long Sum(string instrument) => Of(instrument).Sum(m => Convert.ToInt64(m.Value, System.Globalization.CultureInfo.InvariantCulture));

        public void Dispose() => _listener.Dispose();

        private void Record(Instrument instrument, object value, ReadOnlySpan<KeyValuePair<string, object?>> tags)
        {
            var copy = new Dictionary<string, object?>(StringComparer.Ordinal);
            foreach (var tag in tags)
            {
                copy[tag.Key] = tag.Value;
            }

            _measured.Enqueue(new Measured(instrument.Name, value, copy));
        }
    }
}
