using System.Diagnostics;
using System.Diagnostics.Metrics;
using Grpc.Core;
using Grpc.Core.Interceptors;

namespace Arbiter.Server.Metrics;

/// <summary>
/// go-grpc-prometheus's server counters, which etcd exports: <c>grpc_server_started_total</c>
/// (labels <c>grpc_type</c>, <c>grpc_service</c>, <c>grpc_method</c>) and
/// <c>grpc_server_handled_total</c> (the same plus <c>grpc_code</c>, Go's code names). The
/// outermost interceptor, so a call refused by a later one is counted with its real code.
/// Meter <see cref="MeterName"/>, one per server, disposed with it. While something listens to
/// <see cref="ActivitySourceName"/> (an OpenTelemetry tracer provider, see docs/operations.md), each call
/// is also a server span named <c>package.Service/Method</c> with OpenTelemetry's <c>rpc.*</c>
/// attributes, the child of the caller's span when the request carries a W3C <c>traceparent</c>.
/// </summary>
public sealed class GrpcMetricsInterceptor : Interceptor, IDisposable
{
    /// <summary>The meter's name, for an OpenTelemetry <c>AddMeter</c>.</summary>
    public const string MeterName = "Arbiter.Server";

    /// <summary>The name of the server's <see cref="ActivitySource"/>, for an OpenTelemetry <c>AddSource</c>.</summary>
    public const string ActivitySourceName = "Arbiter.Server";

    private static readonly ActivitySource Tracing = new(ActivitySourceName, typeof(GrpcMetricsInterceptor).Assembly.GetName().Version?.ToString());

    private readonly Meter _meter = new(MeterName);
    private readonly Counter<long> _started;
    private readonly Counter<long> _handled;
    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, (string Service, string Method)> _methods = new(StringComparer.Ordinal);

    /// <summary>Creates the counters.</summary>
    public GrpcMetricsInterceptor()
    {
        _started = _meter.CreateCounter<long>("grpc_server_started_total", description: "Total number of RPCs started on the server.");
        _handled = _meter.CreateCounter<long>("grpc_server_handled_total", description: "Total number of RPCs completed on the server, regardless of success or failure.");
    }

    /// <inheritdoc />
    public override async Task<TResponse> UnaryServerHandler<TRequest, TResponse>(TRequest request, ServerCallContext context, UnaryServerMethod<TRequest, TResponse> continuation)
    {
        ArgumentNullException.ThrowIfNull(continuation);
        var call = Start("unary", context);
        try
        {
            var response = await continuation(request, context).ConfigureAwait(false);
            Handled(call, context.Status.StatusCode);
            return response;
        }
        catch (Exception e)
        {
            Handled(call, CodeOf(e));
            throw;
        }
    }

    /// <inheritdoc />
    public override async Task<TResponse> ClientStreamingServerHandler<TRequest, TResponse>(IAsyncStreamReader<TRequest> requestStream, ServerCallContext context, ClientStreamingServerMethod<TRequest, TResponse> continuation)
    {
        ArgumentNullException.ThrowIfNull(continuation);
        var call = Start("client_stream", context);
        try
        {
            var response = await continuation(requestStream, context).ConfigureAwait(false);
            Handled(call, context.Status.StatusCode);
            return response;
        }
        catch (Exception e)
        {
            Handled(call, CodeOf(e));
            throw;
        }
    }

    /// <inheritdoc />
    public override async Task ServerStreamingServerHandler<TRequest, TResponse>(TRequest request, IServerStreamWriter<TResponse> responseStream, ServerCallContext context, ServerStreamingServerMethod<TRequest, TResponse> continuation)
    {
        ArgumentNullException.ThrowIfNull(continuation);
        var call = Start("server_stream", context);
        try
        {
            await continuation(request, responseStream, context).ConfigureAwait(false);
            Handled(call, context.Status.StatusCode);
        }
        catch (Exception e)
        {
            Handled(call, CodeOf(e));
            throw;
        }
    }

    /// <inheritdoc />
    public override async Task DuplexStreamingServerHandler<TRequest, TResponse>(IAsyncStreamReader<TRequest> requestStream, IServerStreamWriter<TResponse> responseStream, ServerCallContext context, DuplexStreamingServerMethod<TRequest, TResponse> continuation)
    {
        ArgumentNullException.ThrowIfNull(continuation);
        var call = Start("bidi_stream", context);
        try
        {
            await continuation(requestStream, responseStream, context).ConfigureAwait(false);
            Handled(call, context.Status.StatusCode);
        }
        catch (Exception e)
        {
            Handled(call, CodeOf(e));
            throw;
        }
    }

    /// <inheritdoc />
    public void Dispose() => _meter.Dispose();

    /// <summary>Go's name of a status code (grpc-go's <c>codes.Code.String()</c>), as etcd's label values.</summary>
    public static string GoCodeName(StatusCode code) => code switch
    {
        StatusCode.OK => "OK",
        StatusCode.Cancelled => "Canceled",
        StatusCode.Unknown => "Unknown",
        StatusCode.InvalidArgument => "InvalidArgument",
        StatusCode.DeadlineExceeded => "DeadlineExceeded",
        StatusCode.NotFound => "NotFound",
        StatusCode.AlreadyExists => "AlreadyExists",
        StatusCode.PermissionDenied => "PermissionDenied",
        StatusCode.ResourceExhausted => "ResourceExhausted",
        StatusCode.FailedPrecondition => "FailedPrecondition",
        StatusCode.Aborted => "Aborted",
        StatusCode.OutOfRange => "OutOfRange",
        StatusCode.Unimplemented => "Unimplemented",
        StatusCode.Internal => "Internal",
        StatusCode.Unavailable => "Unavailable",
        StatusCode.DataLoss => "DataLoss",
        StatusCode.Unauthenticated => "Unauthenticated",
        _ => "Code(" + ((int)code).ToString(System.Globalization.CultureInfo.InvariantCulture) + ")",
    };

    private static StatusCode CodeOf(Exception e) => e switch
    {
        RpcException rpc => rpc.StatusCode,
        OperationCanceledException => StatusCode.Cancelled,
        _ => StatusCode.Unknown,
    };

    private Call Start(string type, ServerCallContext context)
    {
        var counting = _started.Enabled || _handled.Enabled;
        var tracing = Tracing.HasListeners();
        if (!counting && !tracing)
        {
            return default;
        }

        // context.Method is "/package.Service/Method"; split once per method, not per call.
        var (service, method) = _methods.GetOrAdd(context.Method, static full =>
        {
            var slash = full.LastIndexOf('/');
            return slash > 0 ? (full[1..slash], full[(slash + 1)..]) : (full.TrimStart('/'), full);
        });
        var activity = tracing ? StartSpan(context, service, method) : null;
        if (counting)
        {
            _started.Add(1, new("grpc_type", type), new("grpc_service", service), new("grpc_method", method));
        }

        return new Call(counting ? type : null, service, method, activity);
    }

    private static Activity? StartSpan(ServerCallContext context, string service, string method)
    {
        // ASP.NET Core's own request activity, when it made one, already carries the caller's context.
        var parent = Activity.Current is null && context.RequestHeaders.GetValue("traceparent") is { } traceParent &&
            ActivityContext.TryParse(traceParent, context.RequestHeaders.GetValue("tracestate"), isRemote: true, out var remote)
            ? remote
            : default;
        var activity = Tracing.StartActivity($"{service}/{method}", ActivityKind.Server, parent);
        if (activity is { IsAllDataRequested: true })
        {
            activity.SetTag("rpc.system", "grpc");
            activity.SetTag("rpc.service", service);
            activity.SetTag("rpc.method", method);
        }

        return activity;
    }

    private void Handled(Call call, StatusCode code)
    {
        if (call.Activity is { } activity)
        {
            activity.SetTag("rpc.grpc.status_code", (int)code);
            if (code != StatusCode.OK)
            {
                activity.SetStatus(ActivityStatusCode.Error, GoCodeName(code));
            }

            activity.Dispose();
        }

        if (call.Type is null)
        {
            return;
        }

        var tags = new System.Diagnostics.TagList
        {
            { "grpc_type", call.Type },
            { "grpc_service", call.Service },
            { "grpc_method", call.Method },
            { "grpc_code", GoCodeName(code) },
        };
        _handled.Add(1, in tags);
    }

    private readonly record struct Call(string? Type, string Service, string Method, Activity? Activity);
}
