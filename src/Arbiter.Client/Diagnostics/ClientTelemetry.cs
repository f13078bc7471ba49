using System.Diagnostics;
using System.Diagnostics.Metrics;
using Grpc.Core;

namespace Arbiter.Client.Diagnostics;

/// <summary>
/// The typed client's span per call and its call-duration and retry instruments. Starting a span
/// returns null and the instruments skip their work while nobody listens.
/// </summary>
internal static class ClientTelemetry
{
    public static readonly ActivitySource Source = new(ArbiterTelemetry.ActivitySourceName, ArbiterTelemetry.Version);

    private static readonly Meter Meter = new(ArbiterTelemetry.MeterName, ArbiterTelemetry.Version);

    /// <summary>Seconds from the first attempt of an SDK call to its answer, retries included.</summary>
    public static readonly Histogram<double> CallDuration = Meter.CreateHistogram<double>(
        "arbiter.client.call.duration", unit: "s", description: "Duration of SDK calls (all attempts), by rpc.method and rpc.grpc.status_code.");

    /// <summary>Attempts repeated after a failure.</summary>
    public static readonly Counter<long> Retries = Meter.CreateCounter<long>(
        "arbiter.client.retries", unit: "{retry}", description: "SDK calls repeated after a failure, by rpc.method and the rpc.grpc.status_code that caused it.");

    /// <summary>Starts the client span of one call: <c>etcdserverpb.KV/Put</c> with OpenTelemetry's rpc.* attributes.</summary>
    public static Activity? StartCall(RpcMethod method, IArbiterClient raw, Google.Protobuf.ByteString? key)
    {
        var activity = Source.StartActivity(method.SpanName, ActivityKind.Client);
        if (activity is { IsAllDataRequested: true })
        {
            TagServer(activity, raw);
            activity.SetTag("rpc.service", method.Service);
            activity.SetTag("rpc.method", method.Method);
            if (key is not null && ArbiterTelemetry.KeyPrefixOf(key.Span) is { } prefix)
            {
                activity.SetTag("arbiter.key_prefix", prefix);
            }
        }

        return activity;
    }

    /// <summary>Tags where the call goes: gRPC and the current endpoint, or the embedded node.</summary>
    public static void TagServer(Activity activity, IArbiterClient raw)
    {
        if (raw is GrpcArbiterClient grpc)
        {
            activity.SetTag("rpc.system", "grpc");
            // The channel's target is the authority ("host:port"), not a URL.
            if (Uri.TryCreate("http://" + grpc.CurrentEndpoint, UriKind.Absolute, out var uri))
            {
                activity.SetTag("server.address", uri.Host);
                activity.SetTag("server.port", uri.Port);
            }
        }
        else
        {
            activity.SetTag("arbiter.transport", "embedded");
        }
    }

    /// <summary>Records a retry: an event on the call's span and the retries counter.</summary>
    public static void Retried(Activity? activity, RpcMethod method, RpcException error, int attempt, int delayMs)
    {
        activity?.AddEvent(new ActivityEvent("retry", tags: new ActivityTagsCollection
        {
            ["arbiter.retry.attempt"] = attempt,
            ["rpc.grpc.status_code"] = (int)error.StatusCode,
            ["arbiter.retry.delay_ms"] = delayMs,
        }));
        if (Retries.Enabled)
        {
            Retries.Add(1, new("rpc.method", method.Method), new("rpc.grpc.status_code", (int)error.StatusCode));
        }
    }

    /// <summary>Ends a call: its status on the span (Error with the gRPC code), its duration on the histogram.</summary>
    public static void Finished(Activity? activity, RpcMethod method, long startTimestamp, Exception? error)
    {
        var code = error switch
        {
            null => StatusCode.OK,
            RpcException rpc => rpc.StatusCode,
            OperationCanceledException => StatusCode.Cancelled,
            _ => StatusCode.Unknown,
        };
        if (activity is not null)
        {
            activity.SetTag("rpc.grpc.status_code", (int)code);
            if (error is not null)
            {
                activity.SetStatus(ActivityStatusCode.Error, code.ToString());
                activity.SetTag("error.type", error is RpcException ? code.ToString() : error.GetType().FullName);
            }

            activity.Dispose();
        }

        if (CallDuration.Enabled)
        {
            CallDuration.Record(
                Stopwatch.GetElapsedTime(startTimestamp).TotalSeconds,
                new("rpc.method", method.Method),
                new("rpc.grpc.status_code", (int)code));
        }
    }
}

/// <summary>A gRPC method as spans and metrics name it: service <c>etcdserverpb.KV</c>, method <c>Put</c>.</summary>
internal sealed record RpcMethod(string Service, string Method)
{
    public static readonly RpcMethod Range = new("etcdserverpb.KV", "Range");
    public static readonly RpcMethod Put = new("etcdserverpb.KV", "Put");
    public static readonly RpcMethod DeleteRange = new("etcdserverpb.KV", "DeleteRange");
    public static readonly RpcMethod Txn = new("etcdserverpb.KV", "Txn");
    public static readonly RpcMethod Compact = new("etcdserverpb.KV", "Compact");
    public static readonly RpcMethod LeaseGrant = new("etcdserverpb.Lease", "LeaseGrant");
    public static readonly RpcMethod LeaseRevoke = new("etcdserverpb.Lease", "LeaseRevoke");
    public static readonly RpcMethod LeaseKeepAlive = new("etcdserverpb.Lease", "LeaseKeepAlive");
    public static readonly RpcMethod LeaseTimeToLive = new("etcdserverpb.Lease", "LeaseTimeToLive");
    public static readonly RpcMethod Watch = new("etcdserverpb.Watch", "Watch");

    /// <summary>The span name OpenTelemetry's RPC conventions give: <c>service/method</c>.</summary>
    public string SpanName { get; } = Service + "/" + Method;
}
