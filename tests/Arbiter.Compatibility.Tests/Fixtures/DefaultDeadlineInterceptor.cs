using Grpc.Core;
using Grpc.Core.Interceptors;

namespace Arbiter.Compatibility.Tests.Fixtures;

/// <summary>
/// Gives every unary call without a deadline a default one, so a server that never answers fails the
/// test instead of hanging the run.
/// </summary>
public sealed class DefaultDeadlineInterceptor(TimeSpan timeout) : Interceptor
{
    public override AsyncUnaryCall<TResponse> AsyncUnaryCall<TRequest, TResponse>(
        TRequest request,
        ClientInterceptorContext<TRequest, TResponse> context,
        AsyncUnaryCallContinuation<TRequest, TResponse> continuation)
    {
        if (context.Options.Deadline == null)
        {
            context = new ClientInterceptorContext<TRequest, TResponse>(
                context.Method, context.Host, context.Options.WithDeadline(DateTime.UtcNow + timeout));
        }

        return continuation(request, context);
    }
}
