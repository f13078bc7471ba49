using Arbiter.Core;
using Arbiter.Node;
using Grpc.Core;
using Grpc.Core.Interceptors;

namespace Arbiter.Server;

/// <summary>
/// Turns <see cref="EtcdException"/> into etcd's gRPC status (code and exact text), and honours
/// the <c>hasleader</c> metadata: a client that requires a leader gets <c>etcdserver: no leader</c>
/// from a member that has none.
/// </summary>
public sealed class EtcdErrorInterceptor(ArbiterNode node) : Interceptor
{
    /// <summary>Maps an etcd error to the RpcException clients expect.</summary>
    public static RpcException ToRpcException(EtcdError error) =>
        new(new Status((StatusCode)(int)error.StatusCode, error.Message));

    /// <inheritdoc />
    public override async Task<TResponse> UnaryServerHandler<TRequest, TResponse>(
        TRequest request, ServerCallContext context, UnaryServerMethod<TRequest, TResponse> continuation)
    {
        ArgumentNullException.ThrowIfNull(continuation);
        CheckLeader(context);
        try
        {
            return await continuation(request, context).ConfigureAwait(false);
        }
        catch (EtcdException e)
        {
            throw ToRpcException(e.Error);
        }
    }

    /// <inheritdoc />
    public override async Task ServerStreamingServerHandler<TRequest, TResponse>(
        TRequest request, IServerStreamWriter<TResponse> responseStream, ServerCallContext context, ServerStreamingServerMethod<TRequest, TResponse> continuation)
    {
        ArgumentNullException.ThrowIfNull(continuation);
        CheckLeader(context);
        try
        {
            await continuation(request, responseStream, context).ConfigureAwait(false);
        }
        catch (EtcdException e)
        {
            throw ToRpcException(e.Error);
        }
    }

    /// <inheritdoc />
    public override async Task DuplexStreamingServerHandler<TRequest, TResponse>(
        IAsyncStreamReader<TRequest> requestStream, IServerStreamWriter<TResponse> responseStream, ServerCallContext context, DuplexStreamingServerMethod<TRequest, TResponse> continuation)
    {
        ArgumentNullException.ThrowIfNull(continuation);
        CheckLeader(context);
        try
        {
            await continuation(requestStream, responseStream, context).ConfigureAwait(false);
        }
        catch (EtcdException e)
        {
            throw ToRpcException(e.Error);
        }
    }

    private void CheckLeader(ServerCallContext context)
    {
        var hasLeader = context.RequestHeaders.GetValue("hasleader");
        if (hasLeader is not null && hasLeader.Equals("true", StringComparison.OrdinalIgnoreCase) && !node.HasLeader)
        {
            throw ToRpcException(EtcdError.NoLeader);
        }
    }
}
