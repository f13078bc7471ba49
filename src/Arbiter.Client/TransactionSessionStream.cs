using System.Collections.Concurrent;
using System.Globalization;
using Arbiter.Protocol.Transactions;
using Grpc.Core;

namespace Arbiter.Client;

/// <summary>
/// The client end of one arbiter.v1 Transactions.Session stream: calls become messages tagged with
/// a call id, each written by its caller under a gate (a gRPC stream takes one write at a time; a
/// queue and a writer loop would cost every call a thread hop) and matched to their responses by a
/// reader loop. When the stream ends, every call still waiting fails with <c>Unavailable</c>, as a
/// unary call cut off with its connection does: its outcome is unknown, and callers handle it as
/// they handle that.
/// </summary>
internal sealed class TransactionSessionStream : IAsyncDisposable
{
    private readonly AsyncDuplexStreamingCall<SessionRequest, SessionResponse> _call;
    private readonly ConcurrentDictionary<ulong, TaskCompletionSource<SessionResponse>> _pending = new();
    private readonly Lock _gate = new();

    /// <summary>One write at a time; never disposed, as a cancel may still be on its way to it (it holds no kernel handle).</summary>
    private readonly SemaphoreSlim _writeGate = new(1, 1);
    private readonly Task _reader;
    private long _lastCallId;
    private RpcException? _ended;

    private TransactionSessionStream(AsyncDuplexStreamingCall<SessionRequest, SessionResponse> call, int callsInFlightMax, string? token)
    {
        _call = call;
        CallsInFlightMax = callsInFlightMax;
        Token = token;
        _reader = ReadAsync();
    }

    /// <summary>The server's limit of calls in flight on one session; past it the client calls unary.</summary>
    public int CallsInFlightMax { get; }

    /// <summary>The auth token the stream was opened with (its calls run as that identity), or null.</summary>
    public string? Token { get; }

    /// <summary>True once the stream ended: a new call needs a new stream.</summary>
    public bool IsEnded
    {
        get
        {
            lock (_gate)
            {
                return _ended is not null;
            }
        }
    }

    /// <summary>
    /// Opens a session on <paramref name="client"/>, or returns null when the server does not serve
    /// it (a real etcd answers Unimplemented; any server that does not send <see cref="SessionMetadata.CallsInFlightMaxHeader"/>).
    /// </summary>
    /// <remarks>
    /// A token refused as the stream opens (expired, or older than an auth change) is handed to
    /// <paramref name="dropToken"/> before the error is thrown, so that the next call authenticates afresh.
    /// </remarks>
    public static async Task<TransactionSessionStream?> OpenAsync(Transactions.TransactionsClient client, Func<string?> currentToken, Action<string?> dropToken)
    {
        var call = client.Session();
        // Read once the call has its token: if that token is refused later, only it is dropped.
        var token = currentToken();
        try
        {
            var headers = await call.ResponseHeadersAsync.ConfigureAwait(false);
            if (headers.GetValue(SessionMetadata.CallsInFlightMaxHeader) is { } text && int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var callsMax) && callsMax > 0)
            {
                return new TransactionSessionStream(call, callsMax, token);
            }

            // No marker: the call was answered with its status alone (grpc-dotnet hands such
            // headers over without throwing). Reading the stream throws that status.
            await call.ResponseStream.MoveNext(CancellationToken.None).ConfigureAwait(false);
            call.Dispose();
            return null;
        }
        catch (RpcException e) when (e.StatusCode == StatusCode.Unimplemented)
        {
            call.Dispose();
            return null;
        }
        catch (RpcException e) when (AuthTokenInterceptor.IsTokenError(e))
        {
            dropToken(token);
            call.Dispose();
            throw;
        }
        catch
        {
            call.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Sends <paramref name="request"/> (its call id is set here) and returns its response, or
    /// returns null without sending when the stream has ended or the server's limit of calls in
    /// flight is reached (the caller then calls unary). A <see cref="SessionError"/> is thrown as the
    /// <see cref="RpcException"/> its unary form would have thrown. Cancelling
    /// <paramref name="cancellationToken"/> ends the wait at once and asks the server to cancel the call.
    /// </summary>
    public Task<SessionResponse>? TryCallAsync(SessionRequest request, CancellationToken cancellationToken)
    {
        var callId = (ulong)Interlocked.Increment(ref _lastCallId);
        request.CallId = callId;
        var waiter = new TaskCompletionSource<SessionResponse>(TaskCreationOptions.RunContinuationsAsynchronously);
        lock (_gate)
        {
            // A cancelled call still counts until the server answers it: so does it on the server.
            if (_ended is not null || _pending.Count >= CallsInFlightMax)
            {
                return null;
            }

            _pending[callId] = waiter;
        }

        return SendAndWaitAsync(callId, request, waiter, cancellationToken);
    }

    private async Task<SessionResponse> SendAndWaitAsync(ulong callId, SessionRequest request, TaskCompletionSource<SessionResponse> waiter, CancellationToken cancellationToken)
    {
        // A write that fails ends the stream, and that fails this call's wait too.
        await SendAsync(request).ConfigureAwait(false);
        SessionResponse response;
        using (cancellationToken.Register(() => Cancel(callId, waiter, cancellationToken)))
        {
            response = await waiter.Task.ConfigureAwait(false);
        }

        if (response.ResultCase == SessionResponse.ResultOneofCase.Error)
        {
            throw AsRpcException(response.Error);
        }

        return response;
    }

    /// <summary>
    /// Ends the stream at once: calls still waiting fail with Cancelled, and the server cancels
    /// them (a lock wait would otherwise hold the stream open until its timeout).
    /// </summary>
    public async ValueTask DisposeAsync()
    {
        End(new RpcException(new Status(StatusCode.Cancelled, "arbiter: the transaction session was closed")));
        _call.Dispose();
        await _reader.ConfigureAwait(false);
    }

    private void Cancel(ulong callId, TaskCompletionSource<SessionResponse> waiter, CancellationToken cancellationToken)
    {
        if (waiter.TrySetCanceled(cancellationToken))
        {
            _ = SendAsync(new SessionRequest { CallId = callId, Cancel = new SessionCancel() });
        }
    }

    private static RpcException AsRpcException(SessionError error)
    {
        var trailers = new Metadata();
        foreach (var trailer in error.Trailers)
        {
            if (trailer.Key.EndsWith(Metadata.BinaryHeaderSuffix, StringComparison.Ordinal))
            {
                trailers.Add(trailer.Key, trailer.Value.ToByteArray());
            }
            else
            {
                trailers.Add(trailer.Key, trailer.Value.ToStringUtf8());
            }
        }

        return new RpcException(new Status((StatusCode)error.Code, error.Message), trailers);
    }

    /// <summary>Fails every waiting call with <paramref name="why"/> and stops taking new ones.</summary>
    private void End(RpcException why)
    {
        lock (_gate)
        {
            _ended ??= why;
        }

        foreach (var callId in _pending.Keys)
        {
            if (_pending.TryRemove(callId, out var waiter))
            {
                waiter.TrySetException(why);
            }
        }
    }

    private static RpcException Lost(string detail, Exception? cause) =>
        new(new Status(StatusCode.Unavailable, "arbiter: the transaction session stream ended: " + detail, cause));

    /// <summary>Writes one message; a failed write ends the stream (never throws).</summary>
    private async Task SendAsync(SessionRequest request)
    {
        await _writeGate.WaitAsync().ConfigureAwait(false);
        try
        {
            if (!IsEnded)
            {
                await _call.RequestStream.WriteAsync(request).ConfigureAwait(false);
            }
        }
        catch (Exception e)
        {
            End(Lost(e is RpcException rpc ? rpc.Status.Detail : e.Message, e));
        }
        finally
        {
            _writeGate.Release();
        }
    }

    private async Task ReadAsync()
    {
        RpcException why;
        try
        {
            while (await _call.ResponseStream.MoveNext(CancellationToken.None).ConfigureAwait(false))
            {
                var response = _call.ResponseStream.Current;
                if (_pending.TryRemove(response.CallId, out var waiter))
                {
                    waiter.TrySetResult(response);
                }
            }

            why = Lost("closed by the server", null);
        }
        catch (Exception e)
        {
            why = Lost(e is RpcException rpc ? rpc.Status.Detail : e.Message, e);
        }

        End(why);
    }
}
