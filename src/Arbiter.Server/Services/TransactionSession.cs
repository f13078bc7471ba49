using System.Collections.Concurrent;
using Arbiter.Core;
using Arbiter.Node;
using Arbiter.Protocol.Consistency;
using Arbiter.Protocol.Transactions;
using Google.Protobuf;
using Grpc.Core;
using Microsoft.Extensions.Logging;

namespace Arbiter.Server.Services;

/// <summary>
/// One Transactions.Session stream: each request is a call with its unary form's meaning, run at
/// once and concurrently with the others (a lock wait must not hold up another transaction's
/// commit); each response is written by its call as it ends, one at a time (a gRPC stream takes one
/// write at a time; a queue and a writer loop would cost every response a thread hop). Errors become <see cref="SessionError"/>s with the status and
/// trailers the unary call would have failed with, so a client maps both alike. The stream's
/// credentials were read when it opened (<see cref="Auth.AuthInterceptor"/>) and flow to every call.
/// </summary>
internal sealed class TransactionSession : IDisposable
{
    private readonly ArbiterNode _node;
    private readonly ServerShutdown _shutdown;
    private readonly ILogger _logger;
    private readonly int _requestSizeBytesMax;
    private readonly int _callsInFlightMax;
    private readonly ConcurrentDictionary<ulong, CancellationTokenSource> _calls = new();

    /// <summary>
    /// One write at a time. A client that does not read holds its writers here, at most one per
    /// call in flight, and the reader too (refusals are written inline), so HTTP/2 flow control
    /// pushes back on the client.
    /// </summary>
    private readonly SemaphoreSlim _writeGate = new(1, 1);

    public TransactionSession(ArbiterNode node, ServerShutdown shutdown, ServerOptions options, ILogger logger)
    {
        _node = node;
        _shutdown = shutdown;
        _logger = logger;
        _requestSizeBytesMax = node.Options.Limits.RequestSizeBytesMax + options.GrpcOverheadBytes;
        _callsInFlightMax = node.Options.TransactionSessionCallsInFlightMax;
    }

    public async Task RunAsync(IAsyncStreamReader<SessionRequest> requests, IServerStreamWriter<SessionResponse> responses, ServerCallContext context)
    {
        // Headers at once: a client waits for them to learn that the session is served here.
        await context.WriteResponseHeadersAsync(new Metadata { { SessionMetadata.CallsInFlightMaxHeader, _callsInFlightMax.ToString(System.Globalization.CultureInfo.InvariantCulture) } }).ConfigureAwait(false);
        using var lifetime = _shutdown.Link(context);
        var running = new List<Task>();
        try
        {
            while (await requests.MoveNext(lifetime.Token).ConfigureAwait(false))
            {
                var request = requests.Current;
                if (request.CallCase == SessionRequest.CallOneofCase.Cancel)
                {
                    if (_calls.TryGetValue(request.CallId, out var call))
                    {
                        await CancelAsync(call).ConfigureAwait(false);
                    }

                    continue;
                }

                if (Refusal(request) is { } refused)
                {
                    await WriteAsync(responses, Failed(request.CallId, refused), lifetime.Token).ConfigureAwait(false);
                    continue;
                }

                var cancel = CancellationTokenSource.CreateLinkedTokenSource(lifetime.Token);
                _calls[request.CallId] = cancel;
                running.RemoveAll(t => t.IsCompleted);
                running.Add(RunCallAsync(request, responses, cancel, lifetime.Token));
            }

            // The client finished sending: answer what it already asked, then end the stream.
            await Task.WhenAll(running).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (lifetime.IsCancellationRequested)
        {
            _shutdown.ThrowIfStopping();
            throw;
        }
        finally
        {
            foreach (var call in _calls.Values)
            {
                await CancelAsync(call).ConfigureAwait(false);
            }

            // A call still writing must finish before the stream ends (gRPC refuses a write after).
            await Task.WhenAll(running).ConfigureAwait(false);
        }
    }

    /// <inheritdoc />
    public void Dispose() => _writeGate.Dispose();

    private static async Task CancelAsync(CancellationTokenSource call)
    {
        try
        {
            await call.CancelAsync().ConfigureAwait(false);
        }
        catch (ObjectDisposedException)
        {
            // It finished meanwhile.
        }
    }

    /// <summary>Why a request is refused before it runs, or null.</summary>
    private RpcException? Refusal(SessionRequest request)
    {
        if (request.CallCase == SessionRequest.CallOneofCase.None)
        {
            return new RpcException(new Status(StatusCode.InvalidArgument, "arbiter: a session request must carry a call"));
        }

        if (_calls.ContainsKey(request.CallId))
        {
            return new RpcException(new Status(StatusCode.InvalidArgument, $"arbiter: call id {request.CallId} is already in flight on this session"));
        }

        if (_calls.Count >= _callsInFlightMax)
        {
            return new RpcException(new Status(StatusCode.ResourceExhausted, $"arbiter: too many calls in flight on this session (limit {_callsInFlightMax}); wait for one to finish or open another session"));
        }

        return EtcdErrorInterceptor.TooLarge(request, _requestSizeBytesMax);
    }

    private async Task RunCallAsync(SessionRequest request, IServerStreamWriter<SessionResponse> responses, CancellationTokenSource cancel, CancellationToken stream)
    {
        // Off the reader's path: the reader goes on to the next request while this one runs.
        await Task.Yield();
        SessionResponse response;
        try
        {
            response = await CallAsync(request, cancel.Token).ConfigureAwait(false);
        }
        catch (Exception e)
        {
            response = Failed(request.CallId, AsRpcException(e, cancel.Token));
        }
        finally
        {
            _calls.TryRemove(request.CallId, out _);
            cancel.Dispose();
        }

        try
        {
            await WriteAsync(responses, response, stream).ConfigureAwait(false);
        }
        catch (Exception e) when (e is OperationCanceledException or InvalidOperationException or IOException)
        {
            // The stream ended first: nobody is left to answer.
        }
    }

    private async Task<SessionResponse> CallAsync(SessionRequest request, CancellationToken cancellationToken)
    {
        var response = new SessionResponse { CallId = request.CallId };
        switch (request.CallCase)
        {
            case SessionRequest.CallOneofCase.Begin:
                response.Begin = await _node.TxnBeginAsync(request.Begin, cancellationToken).ConfigureAwait(false);
                break;
            case SessionRequest.CallOneofCase.Lock:
                response.Lock = await _node.TxnLockAsync(request.Lock, cancellationToken).ConfigureAwait(false);
                break;
            case SessionRequest.CallOneofCase.Commit:
                response.Commit = await _node.TxnCommitAsync(request.Commit, cancellationToken).ConfigureAwait(false);
                break;
            case SessionRequest.CallOneofCase.Abort:
                response.Abort = await _node.TxnAbortAsync(request.Abort, cancellationToken).ConfigureAwait(false);
                break;
            case SessionRequest.CallOneofCase.OptimisticCommit:
                response.OptimisticCommit = await _node.TxnOptimisticCommitAsync(request.OptimisticCommit, cancellationToken).ConfigureAwait(false);
                break;
            case SessionRequest.CallOneofCase.Range:
                response.Range = await _node.RangeAsync(request.Range, Consistency(request), cancellationToken).ConfigureAwait(false);
                break;
            case SessionRequest.CallOneofCase.Txn:
                response.Txn = await _node.TxnAsync(request.Txn, Consistency(request), cancellationToken).ConfigureAwait(false);
                break;
            default:
                throw new RpcException(new Status(StatusCode.InvalidArgument, $"arbiter: unknown session call {request.CallCase}"));
        }

        return response;
    }

    /// <summary>The read consistency the request's map names, decoded as the unary form's metadata is.</summary>
    private static ReadConsistency? Consistency(SessionRequest request) =>
        request.Consistency.Count == 0 || !request.Consistency.ContainsKey(ConsistencyMetadata.LevelKey)
            ? null
            : ConsistencyMetadata.Decode(key => request.Consistency.TryGetValue(key, out var value) ? value : null);

    /// <summary>The error the unary form would have ended with.</summary>
    private RpcException AsRpcException(Exception e, CancellationToken call)
    {
        switch (e)
        {
            case RpcException rpc:
                return rpc;
            case EtcdException etcd:
                return EtcdErrorInterceptor.ToRpcException(etcd.Error);
            case ConsistencyException consistency:
                return EtcdErrorInterceptor.ToRpcException(consistency);
            case OperationCanceledException when _shutdown.IsStopping:
                return EtcdErrorInterceptor.ToRpcException(EtcdError.Stopped);
            case OperationCanceledException when call.IsCancellationRequested:
                return new RpcException(new Status(StatusCode.Cancelled, "arbiter: call cancelled by the client"));
            default:
                _logger.LogError(e, "A transaction session call failed");
                return new RpcException(new Status(StatusCode.Unknown, "Exception was thrown by handler."));
        }
    }

    private static SessionResponse Failed(ulong callId, RpcException e)
    {
        var error = new SessionError { Code = (int)e.StatusCode, Message = e.Status.Detail };
        foreach (var trailer in e.Trailers)
        {
            error.Trailers.Add(new SessionTrailer { Key = trailer.Key, Value = trailer.IsBinary ? ByteString.CopyFrom(trailer.ValueBytes) : ByteString.CopyFromUtf8(trailer.Value) });
        }

        return new SessionResponse { CallId = callId, Error = error };
    }

    private async Task WriteAsync(IServerStreamWriter<SessionResponse> responses, SessionResponse response, CancellationToken cancellationToken)
    {
        await _writeGate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            await responses.WriteAsync(response, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            _writeGate.Release();
        }
    }
}
