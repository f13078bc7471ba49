using System.Diagnostics;
using Grpc.Core;
using Grpc.Core.Interceptors;

namespace Arbiter.Client.Diagnostics;

/// <summary>
/// Puts the current span's W3C trace context (<c>traceparent</c>, <c>tracestate</c>, through
/// <see cref="DistributedContextPropagator.Current"/>) on every call, so that the server's span is a
/// child of the SDK's call span. Needed: left to itself, the HTTP stack sends the context of an
/// activity that grpc-dotnet or HttpClient start under ours and that no one exports, so the server's
/// span pointed at a parent missing from the trace (seen in tests/Arbiter.Recipes.Tests' SdkTelemetryTests).
/// Headers a caller set itself are kept. Without a current span nothing is added.
/// </summary>
internal sealed class TraceContextInterceptor : Interceptor
{
    /// <inheritdoc />
    public override AsyncUnaryCall<TResponse> AsyncUnaryCall<TRequest, TResponse>(
        TRequest request, ClientInterceptorContext<TRequest, TResponse> context, AsyncUnaryCallContinuation<TRequest, TResponse> continuation) =>
        continuation(request, WithTraceContext(context));

    /// <inheritdoc />
    public override TResponse BlockingUnaryCall<TRequest, TResponse>(
        TRequest request, ClientInterceptorContext<TRequest, TResponse> context, BlockingUnaryCallContinuation<TRequest, TResponse> continuation) =>
        continuation(request, WithTraceContext(context));

    /// <inheritdoc />
    public override AsyncServerStreamingCall<TResponse> AsyncServerStreamingCall<TRequest, TResponse>(
        TRequest request, ClientInterceptorContext<TRequest, TResponse> context, AsyncServerStreamingCallContinuation<TRequest, TResponse> continuation) =>
        continuation(request, WithTraceContext(context));

    /// <inheritdoc />
    public override AsyncClientStreamingCall<TRequest, TResponse> AsyncClientStreamingCall<TRequest, TResponse>(
        ClientInterceptorContext<TRequest, TResponse> context, AsyncClientStreamingCallContinuation<TRequest, TResponse> continuation) =>
        continuation(WithTraceContext(context));

    /// <inheritdoc />
    public override AsyncDuplexStreamingCall<TRequest, TResponse> AsyncDuplexStreamingCall<TRequest, TResponse>(
        ClientInterceptorContext<TRequest, TResponse> context, AsyncDuplexStreamingCallContinuation<TRequest, TResponse> continuation) =>
        continuation(WithTraceContext(context));

    private static ClientInterceptorContext<TRequest, TResponse> WithTraceContext<TRequest, TResponse>(ClientInterceptorContext<TRequest, TResponse> context)
        where TRequest : class
        where TResponse : class
    {
        if (Activity.Current is not { } activity)
        {
            return context;
        }

        var headers = new Metadata();
        if (context.Options.Headers is { } existing)
        {
            foreach (var entry in existing)
            {
                headers.Add(entry);
            }
        }

        DistributedContextPropagator.Current.Inject(activity, headers, static (carrier, name, value) =>
        {
            var metadata = (Metadata)carrier!;
            if (value is not null && metadata.Get(name) is null)
            {
                metadata.Add(name, value);
            }
        });
        return new ClientInterceptorContext<TRequest, TResponse>(context.Method, context.Host, context.Options.WithHeaders(headers));
    }
}
