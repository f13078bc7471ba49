using Arbiter.Core;
using Arbiter.Node;
using Arbiter.Protocol.Consistency;
using Arbiter.Protocol.Etcd;
using Grpc.Core;
using Grpc.Core.Interceptors;

namespace Arbiter.Server;

/// <summary>
/// Turns <see cref="EtcdException"/> into etcd's gRPC status (code and exact text), and honours
/// the <c>hasleader</c> metadata: a client that requires a leader gets <c>etcdserver: no leader</c>
/// from a member that has none. Every unary response carries the consistency token of the state
/// it reflects as the <c>arbiter-token</c> trailer (ignored by etcd clients), and a read refused
/// for its consistency level carries the numbers that say why (<see cref="ConsistencyException"/>).
/// The call's deadline is handed to the node (<see cref="CallDeadline"/>), so that a cluster
/// member answers a write it could not finish with etcd's error before the client's deadline.
/// </summary>
public sealed class EtcdErrorInterceptor(ArbiterNode node, ServerOptions options) : Interceptor
{
    /// <summary>Member-to-member calls (<c>arbiter.internal.v1</c>): no token trailer, no client reads them.</summary>
    private const string InternalMethodPrefix = "/arbiter.internal.";

    /// <summary>gRPC's receive limit as etcd sets it: the request limit plus framing overhead.</summary>
    private int ReceiveSizeBytesMax => node.Options.Limits.RequestSizeBytesMax + options.GrpcOverheadBytes;

    /// <summary>The trailer that carries a transaction error's detail (serialized arbiter.v1.TransactionError).</summary>
    public const string TransactionErrorTrailer = "arbiter-transaction-error-bin";

    /// <summary>Maps an etcd error to the RpcException clients expect (a transaction error's detail in a trailer).</summary>
    public static RpcException ToRpcException(EtcdError error)
    {
        ArgumentNullException.ThrowIfNull(error);
        var status = new Status((StatusCode)(int)error.StatusCode, error.Message);
        if (error.Transaction is null)
        {
            return new RpcException(status);
        }

        return new RpcException(status, new Metadata { { TransactionErrorTrailer, Google.Protobuf.MessageExtensions.ToByteArray(error.Transaction) } });
    }

    /// <summary>Maps a refused consistency level to its status, with the kind and revisions as trailers.</summary>
    public static RpcException ToRpcException(ConsistencyException error)
    {
        ArgumentNullException.ThrowIfNull(error);
        var trailers = new Metadata
        {
            { ConsistencyMetadata.ErrorKindKey, error.Kind.ToString() },
            { ConsistencyMetadata.AppliedRevisionKey, error.AppliedRevision.ToString(System.Globalization.CultureInfo.InvariantCulture) },
            { ConsistencyMetadata.RequiredRevisionKey, error.RequiredRevision.ToString(System.Globalization.CultureInfo.InvariantCulture) },
        };
        return new RpcException(new Status(error.StatusCode, error.Message), trailers);
    }

    /// <inheritdoc />
    public override async Task<TResponse> UnaryServerHandler<TRequest, TResponse>(
        TRequest request, ServerCallContext context, UnaryServerMethod<TRequest, TResponse> continuation)
    {
        ArgumentNullException.ThrowIfNull(continuation);
        CheckLeader(context);
        CheckReceiveSize(request);
        using var callDeadline = CallDeadline.Enter(context.Deadline == DateTime.MaxValue ? null : context.Deadline);
        try
        {
            var response = await continuation(request, context).ConfigureAwait(false);
            if (!context.Method.StartsWith(InternalMethodPrefix, StringComparison.Ordinal))
            {
                context.ResponseTrailers.Add(ConsistencyMetadata.TokenKey, node.TokenFor(HeaderOf(response)).ToString());
            }

            return response;
        }
        catch (EtcdException e)
        {
            throw ToRpcException(e.Error);
        }
        catch (ConsistencyException e)
        {
            throw ToRpcException(e);
        }
    }

    /// <summary>The etcd response header of the KV and lease responses (null for others: the member's revision is used).</summary>
    private static ResponseHeader? HeaderOf(object? response) => response switch
    {
        RangeResponse r => r.Header,
        PutResponse r => r.Header,
        DeleteRangeResponse r => r.Header,
        TxnResponse r => r.Header,
        CompactionResponse r => r.Header,
        LeaseGrantResponse r => r.Header,
        LeaseRevokeResponse r => r.Header,
        _ => null,
    };

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
        catch (ConsistencyException e)
        {
            throw ToRpcException(e);
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
        catch (ConsistencyException e)
        {
            throw ToRpcException(e);
        }
    }

    /// <summary>
    /// Refuses a message over gRPC's receive limit with grpc-go's exact text, as etcd answers.
    /// (grpc-dotnet's own limit is set higher, as a hard cap, so that this check gets to run.)
    /// </summary>
    private void CheckReceiveSize<TRequest>(TRequest request)
    {
        if (request is Google.Protobuf.IMessage message && TooLarge(message, ReceiveSizeBytesMax) is { } error)
        {
            throw error;
        }
    }

    /// <summary>grpc-go's error for a message over <paramref name="sizeBytesMax"/>, or null if it fits.</summary>
    internal static RpcException? TooLarge(Google.Protobuf.IMessage message, int sizeBytesMax)
    {
        var sizeBytes = message.CalculateSize();
        return sizeBytes <= sizeBytesMax ? null : new RpcException(new Status(
            StatusCode.ResourceExhausted,
            $"grpc: received message larger than max ({sizeBytes} vs. {sizeBytesMax})"));
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
