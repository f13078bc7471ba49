using System.Diagnostics;
using Arbiter.Compatibility.Tests.Fixtures;
using Arbiter.Protocol.Etcd;
using Google.Protobuf;
using Grpc.Core;
using Grpc.Net.Client;

namespace Arbiter.Compatibility.Tests.Operations;

/// <summary>
/// OpenTelemetry export from a real <c>arbiter serve</c>: with <c>--otlp-endpoint</c> (HTTP/protobuf)
/// pointing at a collector this test plays (an HTTP listener that decodes the OTLP protobuf bodies the
/// server's OpenTelemetry SDK posts), a put carrying a W3C <c>traceparent</c> becomes a server span
/// <c>etcdserverpb.KV/Put</c> in the caller's trace with the caller's span as parent, and an
/// <c>arbiter.propose</c> span under it; the same meters <c>/metrics</c> shows arrive on
/// <c>/v1/metrics</c>. Without an endpoint nothing is pushed.
/// </summary>
public sealed class OpenTelemetryExportTests(ITestOutputHelper output)
{
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(30);

    [Fact]
    public async Task Spans_join_the_callers_trace_and_metrics_are_pushed_over_otlp()
    {
        using var collector = new OtlpCollector();
        var environment = new Dictionary<string, string>
        {
            // Export promptly (the defaults are 5 s for spans and 60 s for metrics).
            ["OTEL_BSP_SCHEDULE_DELAY"] = "200",
            ["OTEL_METRIC_EXPORT_INTERVAL"] = "500",
        };
        await using var server = new ArbiterProcess("otlp", ["--otlp-endpoint", collector.Url, "--otlp-protocol", "http/protobuf"], environment);
        await server.StartAsync();
        try
        {
            var traceId = ActivityTraceId.CreateRandom();
            var callerSpan = ActivitySpanId.CreateRandom();
            using var channel = GrpcChannel.ForAddress(server.Endpoint);
            var headers = new Metadata { { "traceparent", $"00-{traceId.ToHexString()}-{callerSpan.ToHexString()}-01" } };
            await new KV.KVClient(channel).PutAsync(new PutRequest { Key = ByteString.CopyFromUtf8("traced"), Value = ByteString.CopyFromUtf8("v") }, headers, DateTime.UtcNow + Deadline);

            var put = await collector.WaitForSpanAsync(s => s.Name == "etcdserverpb.KV/Put" && s.TraceId == traceId.ToHexString(), Deadline);
            Assert.Equal(callerSpan.ToHexString(), put.ParentSpanId);
            Assert.Equal("grpc", put.Attributes["rpc.system"]);
            Assert.Equal("Put", put.Attributes["rpc.method"]);
            var propose = await collector.WaitForSpanAsync(s => s.Name == "arbiter.propose" && s.TraceId == traceId.ToHexString(), Deadline);
            Assert.Equal(put.SpanId, propose.ParentSpanId);
            Assert.Equal("Put", propose.Attributes["arbiter.command"]);

            // A call without a traceparent starts its own trace.
            await new KV.KVClient(channel).RangeAsync(new RangeRequest { Key = ByteString.CopyFromUtf8("traced") }, deadline: DateTime.UtcNow + Deadline);
            var range = await collector.WaitForSpanAsync(s => s.Name == "etcdserverpb.KV/Range", Deadline);
            Assert.NotEqual(traceId.ToHexString(), range.TraceId);
            Assert.Equal(string.Empty, range.ParentSpanId);

            // The meters /metrics shows are pushed too.
            await collector.WaitForMetricAsync("grpc_server_handled_total", Deadline);
            await collector.WaitForMetricAsync("etcd_server_has_leader", Deadline);
        }
        catch (Exception)
        {
            output.WriteLine(server.Log);
            throw;
        }
    }
}
