using Arbiter.Protocol.Etcd;
using Grpc.Core;
using Grpc.Core.Interceptors;

namespace Arbiter.Client;

/// <summary>
/// Sends etcd's <c>token</c> metadata on every call, as etcd's clients do: authenticates with the
/// user name and password on first use, and again when the server answers "invalid auth token"
/// (expired, or the member forgot it) or "revision of auth store is old" (an auth change since),
/// then retries that unary call once with the new token. Streams get the current token when opened.
/// </summary>
public sealed class AuthTokenInterceptor : Interceptor
{
    private readonly Auth.AuthClient _auth;
    private readonly string _user;
    private readonly string _password;
    private readonly Lock _gate = new();
    private Task<string>? _authenticating;
    private string? _token;

    /// <summary>Creates the interceptor; <paramref name="authInvoker"/> must not itself carry this interceptor.</summary>
    public AuthTokenInterceptor(CallInvoker authInvoker, string user, string password)
    {
        _auth = new Auth.AuthClient(authInvoker);
        _user = user ?? throw new ArgumentNullException(nameof(user));
        _password = password ?? throw new ArgumentNullException(nameof(password));
    }

    /// <summary>Whether an error means the token should be renewed (etcd's clients renew on these two).</summary>
    public static bool IsTokenError(RpcException e)
    {
        ArgumentNullException.ThrowIfNull(e);
        return (e.StatusCode == StatusCode.Unauthenticated && e.Status.Detail == "etcdserver: invalid auth token")
            || (e.StatusCode == StatusCode.InvalidArgument && e.Status.Detail == "etcdserver: revision of auth store is old");
    }

    /// <inheritdoc />
    public override AsyncUnaryCall<TResponse> AsyncUnaryCall<TRequest, TResponse>(
        TRequest request, ClientInterceptorContext<TRequest, TResponse> context, AsyncUnaryCallContinuation<TRequest, TResponse> continuation)
    {
        ArgumentNullException.ThrowIfNull(continuation);
        // The call that answered (the first, or the retry) supplies headers, status and trailers.
        AsyncUnaryCall<TResponse>? last = null;
        var response = CallWithTokenAsync(request, context, continuation, call => last = call);
        return new AsyncUnaryCall<TResponse>(
            response,
            HeadersAsync(response, () => last),
            () => last?.GetStatus() ?? Status.DefaultSuccess,
            () => last?.GetTrailers() ?? [],
            () => last?.Dispose());
    }

    /// <inheritdoc />
    public override AsyncDuplexStreamingCall<TRequest, TResponse> AsyncDuplexStreamingCall<TRequest, TResponse>(
        ClientInterceptorContext<TRequest, TResponse> context, AsyncDuplexStreamingCallContinuation<TRequest, TResponse> continuation)
    {
        ArgumentNullException.ThrowIfNull(continuation);
        return continuation(WithToken(context, CurrentTokenBlocking()));
    }

    /// <inheritdoc />
    public override AsyncServerStreamingCall<TResponse> AsyncServerStreamingCall<TRequest, TResponse>(
        TRequest request, ClientInterceptorContext<TRequest, TResponse> context, AsyncServerStreamingCallContinuation<TRequest, TResponse> continuation)
    {
        ArgumentNullException.ThrowIfNull(continuation);
        return continuation(request, WithToken(context, CurrentTokenBlocking()));
    }

    /// <summary>The token calls get now, or null before the first authentication.</summary>
    internal string? CurrentToken => Volatile.Read(ref _token);

    /// <summary>Drops the token so that the next call authenticates afresh.</summary>
    public void Invalidate(string? token)
    {
        if (token is not null)
        {
            Interlocked.CompareExchange(ref _token, null, token);
        }
    }

    private async Task<TResponse> CallWithTokenAsync<TRequest, TResponse>(
        TRequest request, ClientInterceptorContext<TRequest, TResponse> context, AsyncUnaryCallContinuation<TRequest, TResponse> continuation, Action<AsyncUnaryCall<TResponse>> started)
        where TRequest : class
        where TResponse : class
    {
        var token = await TokenAsync(context.Options.CancellationToken).ConfigureAwait(false);
        try
        {
            var call = continuation(request, WithToken(context, token));
            started(call);
            return await call.ResponseAsync.ConfigureAwait(false);
        }
        catch (RpcException e) when (IsTokenError(e))
        {
            Invalidate(token);
            token = await TokenAsync(context.Options.CancellationToken).ConfigureAwait(false);
            var retry = continuation(request, WithToken(context, token));
            started(retry);
            return await retry.ResponseAsync.ConfigureAwait(false);
        }
    }

    private static async Task<Metadata> HeadersAsync<TResponse>(Task<TResponse> response, Func<AsyncUnaryCall<TResponse>?> last)
    {
        try
        {
            await response.ConfigureAwait(false);
        }
        catch (RpcException)
        {
        }

        return last() is { } call ? await call.ResponseHeadersAsync.ConfigureAwait(false) : [];
    }

    private string CurrentTokenBlocking() => Volatile.Read(ref _token) ?? TokenAsync(CancellationToken.None).GetAwaiter().GetResult();

    /// <summary>The current token, or one authentication shared by every caller that needs it.</summary>
    private Task<string> TokenAsync(CancellationToken cancellationToken)
    {
        if (Volatile.Read(ref _token) is { } current)
        {
            return Task.FromResult(current);
        }

        Task<string> authenticating;
        lock (_gate)
        {
            if (_authenticating is null || _authenticating.IsCompleted)
            {
                _authenticating = AuthenticateAsync();
            }

            authenticating = _authenticating;
        }

        return authenticating.WaitAsync(cancellationToken);
    }

    private async Task<string> AuthenticateAsync()
    {
        var response = await _auth.AuthenticateAsync(new AuthenticateRequest { Name = _user, Password = _password }, deadline: DateTime.UtcNow.AddSeconds(30)).ConfigureAwait(false);
        Volatile.Write(ref _token, response.Token);
        return response.Token;
    }

    private static ClientInterceptorContext<TRequest, TResponse> WithToken<TRequest, TResponse>(ClientInterceptorContext<TRequest, TResponse> context, string token)
        where TRequest : class
        where TResponse : class
    {
        var headers = new Metadata();
        if (context.Options.Headers is { } existing)
        {
            foreach (var entry in existing)
            {
                if (entry.Key != "token")
                {
                    headers.Add(entry);
                }
            }
        }

        headers.Add("token", token);
        return new ClientInterceptorContext<TRequest, TResponse>(context.Method, context.Host, context.Options.WithHeaders(headers));
    }
}
