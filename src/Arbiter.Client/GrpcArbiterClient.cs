using System.Runtime.CompilerServices;
using Arbiter.Protocol.Consistency;
using Arbiter.Protocol.Etcd;
using Arbiter.Protocol.Transactions;
using Grpc.Core;
using Grpc.Core.Interceptors;
using Grpc.Net.Client;

namespace Arbiter.Client;

/// <summary>
/// <see cref="IArbiterClient"/> over gRPC: talks to an Arbiter server or a real etcd. With several
/// endpoints it fails over: a call that fails with Unavailable moves the client to the next
/// endpoint for the calls that follow (the failed call itself is not repeated here; see
/// <see cref="ArbiterClient"/> for the retry policy).
/// </summary>
public sealed class GrpcArbiterClient : IArbiterClient, ITransactionsClient, ICrdtClient
{
    private readonly Endpoint[] _endpoints;

    /// <summary>The index of the endpoint calls go to (shared with the <see cref="ForTransactions"/> view).</summary>
    private readonly StrongBox<int> _current;

    /// <summary>False for the <see cref="ForTransactions"/> view: the channels belong to the client it was made from.</summary>
    private readonly bool _ownsChannels = true;

    /// <summary>True for the <see cref="ForTransactions"/> view: Range and Txn go on the session stream too.</summary>
    private readonly bool _kvOnSession;

    private GrpcArbiterClient? _forTransactions;

    /// <summary>Connects to <paramref name="endpoint"/>, e.g. <c>http://127.0.0.1:2379</c>.</summary>
    public GrpcArbiterClient(string endpoint)
        : this([endpoint])
    {
    }

    /// <summary>Connects to the first of <paramref name="endpoints"/> and fails over to the others in turn.</summary>
    public GrpcArbiterClient(IReadOnlyList<string> endpoints)
        : this(endpoints, createHandler: null)
    {
    }

    /// <summary>
    /// Connects to the first of <paramref name="endpoints"/> and fails over to the others in turn,
    /// each channel over a handler from <paramref name="createHandler"/> (e.g. with TLS settings;
    /// null: the default handler), authenticating as <paramref name="userName"/> when given (each
    /// endpoint gets its own token).
    /// </summary>
    public GrpcArbiterClient(IReadOnlyList<string> endpoints, Func<HttpMessageHandler>? createHandler, string? userName = null, string? password = null)
    {
        ArgumentNullException.ThrowIfNull(endpoints);
        if (endpoints.Count == 0)
        {
            throw new ArgumentException("at least one endpoint is needed", nameof(endpoints));
        }

        _current = new StrongBox<int>();
        _endpoints = [.. endpoints.Select(e => new Endpoint(GrpcChannel.ForAddress(e, new GrpcChannelOptions
        {
            MaxReceiveMessageSize = null,
            MaxSendMessageSize = null,
            HttpHandler = createHandler?.Invoke(),
            DisposeHttpClient = true,
        }), userName, password))];
    }

    /// <summary>Uses an existing channel (it is disposed with the client).</summary>
    public GrpcArbiterClient(GrpcChannel channel)
    {
        ArgumentNullException.ThrowIfNull(channel);
        _current = new StrongBox<int>();
        _endpoints = [new Endpoint(channel)];
    }

    private GrpcArbiterClient(GrpcArbiterClient shared)
    {
        _endpoints = shared._endpoints;
        _current = shared._current;
        _ownsChannels = false;
        _kvOnSession = true;
        TransactionSessions = shared.TransactionSessions;
    }

    /// <summary>
    /// Whether transaction calls (arbiter.v1 Transactions: Begin, Lock, Commit, Abort,
    /// OptimisticCommit) go as messages on one long-lived Transactions.Session stream per endpoint
    /// instead of one HTTP/2 stream each (about a fifth less work per call on both sides). On by
    /// default; a server that does not serve the session (a real etcd) gets unary calls. Turn it off
    /// for a proxy that cuts long-lived streams.
    /// </summary>
    public bool TransactionSessions { get; init; } = true;

    /// <summary>
    /// A view of this client whose Range and Txn calls go on the transaction session stream as well:
    /// for the reads and commits a transaction makes (small, and awaited one at a time), not for bulk
    /// reads, which would hold up the stream's other calls. It shares this client's channels,
    /// sessions and failover; disposing it does nothing.
    /// </summary>
    public GrpcArbiterClient ForTransactions() =>
        _kvOnSession ? this : LazyInitializer.EnsureInitialized(ref _forTransactions, () => new GrpcArbiterClient(this));

    /// <inheritdoc />
    IArbiterClient ITransactionsClient.KvForTransactions => ForTransactions();

    /// <summary>The address calls currently go to.</summary>
    public string CurrentEndpoint => Current.Channel.Target;

    private Endpoint Current => _endpoints[Volatile.Read(ref _current.Value) % _endpoints.Length];

    /// <inheritdoc />
    public Task<RangeResponse> RangeAsync(RangeRequest request, CancellationToken cancellationToken = default) =>
        _kvOnSession
            ? SessionCall(new SessionRequest { Range = request }, r => r.Range, e => e.Kv.RangeAsync(request, cancellationToken: cancellationToken).ResponseAsync, cancellationToken)
            : Call(e => e.Kv.RangeAsync(request, cancellationToken: cancellationToken).ResponseAsync, cancellationToken);

    /// <inheritdoc />
    public Task<RangeResponse> RangeAsync(RangeRequest request, ReadConsistency? consistency, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        if (consistency is null)
        {
            return RangeAsync(request, cancellationToken);
        }

        // etcd ignores the metadata: say serializable and at-revision in etcd's own terms as well.
        if ((consistency.Level == ReadLevel.Serializable && !request.Serializable) || (consistency.Level == ReadLevel.AtRevision && request.Revision == 0))
        {
            request = request.Clone();
            request.Serializable |= consistency.Level == ReadLevel.Serializable;
            request.Revision = consistency.Level == ReadLevel.AtRevision ? consistency.Revision : request.Revision;
        }

        var headers = Headers(consistency);
        return _kvOnSession
            ? SessionCall(WithConsistency(new SessionRequest { Range = request }, consistency), r => r.Range, e => e.Kv.RangeAsync(request, headers, cancellationToken: cancellationToken).ResponseAsync, cancellationToken)
            : Call(e => e.Kv.RangeAsync(request, headers, cancellationToken: cancellationToken).ResponseAsync, cancellationToken);
    }

    /// <inheritdoc />
    public Task<PutResponse> PutAsync(PutRequest request, CancellationToken cancellationToken = default) =>
        Call(e => e.Kv.PutAsync(request, cancellationToken: cancellationToken).ResponseAsync, cancellationToken);

    /// <inheritdoc />
    public Task<DeleteRangeResponse> DeleteRangeAsync(DeleteRangeRequest request, CancellationToken cancellationToken = default) =>
        Call(e => e.Kv.DeleteRangeAsync(request, cancellationToken: cancellationToken).ResponseAsync, cancellationToken);

    /// <inheritdoc />
    public Task<TxnResponse> TxnAsync(TxnRequest request, CancellationToken cancellationToken = default) =>
        TxnAsync(request, consistency: null, cancellationToken);

    /// <inheritdoc />
    public Task<TxnResponse> TxnAsync(TxnRequest request, ReadConsistency? consistency, CancellationToken cancellationToken = default)
    {
        var headers = consistency is null ? null : Headers(consistency);
        return _kvOnSession
            ? SessionCall(WithConsistency(new SessionRequest { Txn = request }, consistency), r => r.Txn, e => e.Kv.TxnAsync(request, headers, cancellationToken: cancellationToken).ResponseAsync, cancellationToken)
            : Call(e => e.Kv.TxnAsync(request, headers, cancellationToken: cancellationToken).ResponseAsync, cancellationToken);
    }

    /// <inheritdoc />
    public Task<CompactionResponse> CompactAsync(CompactionRequest request, CancellationToken cancellationToken = default) =>
        Call(e => e.Kv.CompactAsync(request, cancellationToken: cancellationToken).ResponseAsync, cancellationToken);

    /// <inheritdoc />
    public Task<LeaseGrantResponse> LeaseGrantAsync(LeaseGrantRequest request, CancellationToken cancellationToken = default) =>
        Call(e => e.Lease.LeaseGrantAsync(request, cancellationToken: cancellationToken).ResponseAsync, cancellationToken);

    /// <inheritdoc />
    public Task<LeaseRevokeResponse> LeaseRevokeAsync(LeaseRevokeRequest request, CancellationToken cancellationToken = default) =>
        Call(e => e.Lease.LeaseRevokeAsync(request, cancellationToken: cancellationToken).ResponseAsync, cancellationToken);

    /// <inheritdoc />
    public Task<LeaseKeepAliveResponse> LeaseKeepAliveOnceAsync(LeaseKeepAliveRequest request, CancellationToken cancellationToken = default) =>
        Call(async e =>
        {
            using var call = e.Lease.LeaseKeepAlive(cancellationToken: cancellationToken);
            await call.RequestStream.WriteAsync(request, cancellationToken).ConfigureAwait(false);
            await call.RequestStream.CompleteAsync().ConfigureAwait(false);
            if (!await call.ResponseStream.MoveNext(cancellationToken).ConfigureAwait(false))
            {
                throw new RpcException(new Status(StatusCode.Unavailable, "keep-alive stream closed without a response"));
            }

            return call.ResponseStream.Current;
        },
        cancellationToken);

    /// <inheritdoc />
    public Task<LeaseTimeToLiveResponse> LeaseTimeToLiveAsync(LeaseTimeToLiveRequest request, CancellationToken cancellationToken = default) =>
        Call(e => e.Lease.LeaseTimeToLiveAsync(request, cancellationToken: cancellationToken).ResponseAsync, cancellationToken);

    /// <inheritdoc />
    public Task<LeaseLeasesResponse> LeaseLeasesAsync(CancellationToken cancellationToken = default) =>
        Call(e => e.Lease.LeaseLeasesAsync(new LeaseLeasesRequest(), cancellationToken: cancellationToken).ResponseAsync, cancellationToken);

    /// <inheritdoc />
    public Task<StatusResponse> StatusAsync(CancellationToken cancellationToken = default) =>
        Call(e => e.Maintenance.StatusAsync(new StatusRequest(), cancellationToken: cancellationToken).ResponseAsync, cancellationToken);

    /// <inheritdoc />
    public Task<Protocol.Transactions.BeginResponse> TxnBeginAsync(Protocol.Transactions.BeginRequest request, CancellationToken cancellationToken = default) =>
        SessionCall(new SessionRequest { Begin = request }, r => r.Begin, e => e.Transactions.BeginAsync(request, cancellationToken: cancellationToken).ResponseAsync, cancellationToken);

    /// <inheritdoc />
    public Task<Protocol.Transactions.LockResponse> TxnLockAsync(Protocol.Transactions.LockRequest request, CancellationToken cancellationToken = default) =>
        SessionCall(new SessionRequest { Lock = request }, r => r.Lock, e => e.Transactions.LockAsync(request, cancellationToken: cancellationToken).ResponseAsync, cancellationToken);

    /// <inheritdoc />
    public Task<Protocol.Transactions.CommitResponse> TxnCommitAsync(Protocol.Transactions.CommitRequest request, CancellationToken cancellationToken = default) =>
        SessionCall(new SessionRequest { Commit = request }, r => r.Commit, e => e.Transactions.CommitAsync(request, cancellationToken: cancellationToken).ResponseAsync, cancellationToken);

    /// <inheritdoc />
    public Task<Protocol.Transactions.AbortResponse> TxnAbortAsync(Protocol.Transactions.AbortRequest request, CancellationToken cancellationToken = default) =>
        SessionCall(new SessionRequest { Abort = request }, r => r.Abort, e => e.Transactions.AbortAsync(request, cancellationToken: cancellationToken).ResponseAsync, cancellationToken);

    /// <inheritdoc />
    public Task<Protocol.Transactions.OptimisticCommitResponse> TxnOptimisticCommitAsync(Protocol.Transactions.OptimisticCommitRequest request, CancellationToken cancellationToken = default) =>
        SessionCall(new SessionRequest { OptimisticCommit = request }, r => r.OptimisticCommit, e => e.Transactions.OptimisticCommitAsync(request, cancellationToken: cancellationToken).ResponseAsync, cancellationToken);

    /// <inheritdoc />
    public Task<Protocol.Transactions.TransactionStatusResponse> TxnStatusAsync(CancellationToken cancellationToken = default) =>
        Call(e => e.Transactions.StatusAsync(new Protocol.Transactions.TransactionStatusRequest(), cancellationToken: cancellationToken).ResponseAsync, cancellationToken);

    /// <inheritdoc />
    public IWatchSession OpenWatch() => OpenWatch(null);

    /// <inheritdoc />
    public Task<Protocol.Crdt.CrdtUpdateResponse> CrdtUpdateAsync(Protocol.Crdt.CrdtUpdateRequest request, CancellationToken cancellationToken = default) =>
        Call(e => e.Crdt.UpdateAsync(request, cancellationToken: cancellationToken).ResponseAsync, cancellationToken);

    /// <inheritdoc />
    public Task<Protocol.Crdt.CrdtGetResponse> CrdtGetAsync(Protocol.Crdt.CrdtGetRequest request, CancellationToken cancellationToken = default) =>
        Call(e => e.Crdt.GetAsync(request, cancellationToken: cancellationToken).ResponseAsync, cancellationToken);

    /// <inheritdoc />
    public async IAsyncEnumerable<Protocol.Crdt.CrdtWatchResponse> CrdtWatchAsync(Protocol.Crdt.CrdtWatchRequest request, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        var endpoint = Current;
        using var call = endpoint.Crdt.Watch(request, cancellationToken: cancellationToken);
        while (true)
        {
            bool more;
            try
            {
                more = await call.ResponseStream.MoveNext(cancellationToken).ConfigureAwait(false);
            }
            catch (RpcException e) when (e.StatusCode == StatusCode.Cancelled && cancellationToken.IsCancellationRequested)
            {
                throw new OperationCanceledException(e.Status.Detail, e, cancellationToken);
            }
            catch (RpcException e) when (e.StatusCode == StatusCode.Unavailable)
            {
                Advance(endpoint);
                throw;
            }

            if (!more)
            {
                yield break;
            }

            yield return call.ResponseStream.Current;
        }
    }

    /// <inheritdoc />
    public IWatchSession OpenWatch(ReadConsistency? consistency)
    {
        var endpoint = Current;
        return new GrpcWatchSession(endpoint.Watch.Watch(consistency is null ? null : Headers(consistency)), () => Advance(endpoint));
    }

    /// <summary>The request metadata that asks for <paramref name="consistency"/>.</summary>
    public static Metadata Headers(ReadConsistency consistency)
    {
        var headers = new Metadata();
        foreach (var (key, value) in ConsistencyMetadata.Encode(consistency))
        {
            headers.Add(key, value);
        }

        return headers;
    }

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        if (!_ownsChannels)
        {
            return;
        }

        foreach (var endpoint in _endpoints)
        {
            await endpoint.DisposeAsync().ConfigureAwait(false);
        }
    }

    /// <summary>
    /// True when grpc-dotnet reports a connection that never carried the call as Internal: it maps an
    /// <see cref="HttpRequestException"/> without a socket or IO cause (e.g. "the server did not complete
    /// the HTTP/2 handshake", seen when a TLS 1.3 server rejects the client certificate after the client
    /// finished its side of the handshake, or a peer that does not speak HTTP/2) to Internal, where every
    /// other connection failure is Unavailable. Reported as Unavailable, it fails over and retries alike.
    /// </summary>
    private static bool IsConnectionNotEstablished(RpcException e) =>
        e.StatusCode == StatusCode.Internal && e.Status.DebugException is HttpRequestException;

    private async Task<T> Call<T>(Func<Endpoint, Task<T>> call, CancellationToken cancellationToken)
    {
        var endpoint = Current;
        try
        {
            try
            {
                return await call(endpoint).ConfigureAwait(false);
            }
            catch (RpcException e) when (IsConnectionNotEstablished(e))
            {
                throw new RpcException(new Status(StatusCode.Unavailable, e.Status.Detail, e.Status.DebugException), e.Trailers);
            }
        }
        catch (RpcException e) when (e.StatusCode == StatusCode.Unavailable)
        {
            Advance(endpoint);
            if (ReadConsistencyException.From(e) is ReadConsistencyException typed)
            {
                throw typed;
            }

            throw;
        }
        catch (RpcException e) when (e.StatusCode == StatusCode.Cancelled && cancellationToken.IsCancellationRequested)
        {
            // Same as the embedded client: the caller's cancellation surfaces as OperationCanceledException.
            throw new OperationCanceledException(e.Status.Detail, e, cancellationToken);
        }
        catch (RpcException e) when (ReadConsistencyException.From(e) is ReadConsistencyException typed)
        {
            throw typed;
        }
    }

    /// <summary>
    /// A call on the current endpoint's transaction session stream, or unary (<paramref name="unary"/>)
    /// where there is none: sessions turned off, not served (etcd), or at the server's limit of calls
    /// in flight. Errors are the unary form's, failover included. A session call refused for its
    /// token (expired, or an auth change since the stream opened) drops the stream and the token and
    /// is made once more unary, which authenticates afresh as every unary call does.
    /// </summary>
    private Task<T> SessionCall<T>(SessionRequest request, Func<SessionResponse, T> result, Func<Endpoint, Task<T>> unary, CancellationToken cancellationToken) =>
        !TransactionSessions ? Call(unary, cancellationToken) : Call(
            async endpoint =>
            {
                TransactionSessionStream? session;
                try
                {
                    session = await endpoint.SessionAsync().WaitAsync(cancellationToken).ConfigureAwait(false);
                }
                catch (RpcException e) when (AuthTokenInterceptor.IsTokenError(e))
                {
                    // Refused as it opened (the token was dropped): this call goes unary, the next reopens.
                    return await unary(endpoint).ConfigureAwait(false);
                }

                if (session?.TryCallAsync(request, cancellationToken) is not { } call)
                {
                    return await unary(endpoint).ConfigureAwait(false);
                }

                try
                {
                    return result(await call.ConfigureAwait(false));
                }
                catch (RpcException e) when (AuthTokenInterceptor.IsTokenError(e))
                {
                    await endpoint.DropSessionAsync(session).ConfigureAwait(false);
                    return await unary(endpoint).ConfigureAwait(false);
                }
            },
            cancellationToken);

    private static SessionRequest WithConsistency(SessionRequest request, ReadConsistency? consistency)
    {
        if (consistency is not null)
        {
            foreach (var (key, value) in ConsistencyMetadata.Encode(consistency))
            {
                request.Consistency[key] = value;
            }
        }

        return request;
    }

    /// <summary>Moves on from <paramref name="failed"/> unless another caller already did.</summary>
    private void Advance(Endpoint failed)
    {
        var index = Volatile.Read(ref _current.Value);
        if (ReferenceEquals(_endpoints[index % _endpoints.Length], failed))
        {
            Interlocked.CompareExchange(ref _current.Value, (index + 1) % _endpoints.Length, index);
        }
    }

    private sealed class Endpoint : IAsyncDisposable
    {
        private readonly Lock _sessionGate = new();
        private readonly AuthTokenInterceptor? _auth;

        /// <summary>The session stream, opening or open; its result is null when the server does not serve it.</summary>
        private Task<TransactionSessionStream?>? _session;

        public Endpoint(GrpcChannel channel, string? userName = null, string? password = null)
        {
            Channel = channel;

            // With a user, every call carries etcd's token metadata (renewed on "invalid auth token").
            // Outermost (runs first): the caller's span as the W3C trace context of the call.
            _auth = userName is null ? null : new AuthTokenInterceptor(channel.CreateCallInvoker(), userName, password ?? string.Empty);
            var invoker = (_auth is null ? channel.CreateCallInvoker() : channel.Intercept(_auth))
                .Intercept(new Diagnostics.TraceContextInterceptor());
            Kv = new(invoker);
            Lease = new(invoker);
            Watch = new(invoker);
            Maintenance = new(invoker);
            Transactions = new(invoker);
            Crdt = new(invoker);
        }

        public GrpcChannel Channel { get; }

        public KV.KVClient Kv { get; }

        public Lease.LeaseClient Lease { get; }

        public Watch.WatchClient Watch { get; }

        public Maintenance.MaintenanceClient Maintenance { get; }

        public Protocol.Transactions.Transactions.TransactionsClient Transactions { get; }

        public Protocol.Crdt.Crdt.CrdtClient Crdt { get; }

        /// <summary>
        /// The endpoint's session stream: the open one, or a new one when there is none yet or the
        /// last one ended or failed to open. Null when the server does not serve sessions (etcd);
        /// that answer is kept for the endpoint's life.
        /// </summary>
        public Task<TransactionSessionStream?> SessionAsync()
        {
            lock (_sessionGate)
            {
                if (_session is { } current && (!current.IsCompleted || (current.IsCompletedSuccessfully && current.Result is not { IsEnded: true })))
                {
                    return current;
                }

                if (_session is { IsCompletedSuccessfully: true, Result: { } ended })
                {
                    // Its reader has stopped: this only releases the call.
                    _ = ended.DisposeAsync().AsTask();
                }

                // On the thread pool: opening may authenticate first, and the interceptor does that
                // synchronously for streams.
                _session = Task.Run(() => TransactionSessionStream.OpenAsync(Transactions, () => _auth?.CurrentToken, token => _auth?.Invalidate(token)));
                return _session;
            }
        }

        /// <summary>Closes <paramref name="session"/> after a token error and drops its token.</summary>
        public async Task DropSessionAsync(TransactionSessionStream session)
        {
            _auth?.Invalidate(session.Token);
            lock (_sessionGate)
            {
                if (_session is { IsCompletedSuccessfully: true } current && ReferenceEquals(current.Result, session))
                {
                    _session = null;
                }
            }

            await session.DisposeAsync().ConfigureAwait(false);
        }

        public async ValueTask DisposeAsync()
        {
            Task<TransactionSessionStream?>? session;
            lock (_sessionGate)
            {
                session = _session;
                _session = null;
            }

            if (session is { IsCompletedSuccessfully: true, Result: { } open })
            {
                await open.DisposeAsync().ConfigureAwait(false);
            }

            Channel.Dispose();
        }
    }

    private sealed class GrpcWatchSession(AsyncDuplexStreamingCall<WatchRequest, WatchResponse> call, Action onUnavailable) : IWatchSession
    {
        private readonly SemaphoreSlim _writeGate = new(1, 1);

        public ValueTask CreateAsync(WatchCreateRequest request, CancellationToken cancellationToken = default) =>
            WriteAsync(new WatchRequest { CreateRequest = request }, cancellationToken);

        public ValueTask CancelAsync(long watchId, CancellationToken cancellationToken = default) =>
            WriteAsync(new WatchRequest { CancelRequest = new WatchCancelRequest { WatchId = watchId } }, cancellationToken);

        public ValueTask RequestProgressAsync(CancellationToken cancellationToken = default) =>
            WriteAsync(new WatchRequest { ProgressRequest = new WatchProgressRequest() }, cancellationToken);

        public async IAsyncEnumerable<WatchResponse> ReadAllAsync([EnumeratorCancellation] CancellationToken cancellationToken = default)
        {
            while (await MoveNextAsync(cancellationToken).ConfigureAwait(false))
            {
                yield return call.ResponseStream.Current;
            }
        }

        public ValueTask DisposeAsync()
        {
            call.Dispose();
            _writeGate.Dispose();
            return ValueTask.CompletedTask;
        }

        private async Task<bool> MoveNextAsync(CancellationToken cancellationToken)
        {
            try
            {
                return await call.ResponseStream.MoveNext(cancellationToken).ConfigureAwait(false);
            }
            catch (RpcException e) when (e.StatusCode == StatusCode.Unavailable)
            {
                onUnavailable();
                if (ReadConsistencyException.From(e) is ReadConsistencyException typed)
                {
                    throw typed;
                }

                throw;
            }
            catch (RpcException e) when (e.StatusCode == StatusCode.Cancelled && cancellationToken.IsCancellationRequested)
            {
                throw new OperationCanceledException(e.Status.Detail, e, cancellationToken);
            }
            catch (RpcException e) when (ReadConsistencyException.From(e) is ReadConsistencyException typed)
            {
                throw typed;
            }
        }

        private async ValueTask WriteAsync(WatchRequest request, CancellationToken cancellationToken)
        {
            // gRPC allows one pending write per stream.
            await _writeGate.WaitAsync(cancellationToken).ConfigureAwait(false);
            try
            {
                await call.RequestStream.WriteAsync(request, cancellationToken).ConfigureAwait(false);
            }
            catch (RpcException e) when (e.StatusCode == StatusCode.Unavailable)
            {
                onUnavailable();
                throw;
            }
            catch (RpcException e) when (e.StatusCode == StatusCode.Cancelled && cancellationToken.IsCancellationRequested)
            {
                throw new OperationCanceledException(e.Status.Detail, e, cancellationToken);
            }
            finally
            {
                _writeGate.Release();
            }
        }
    }
}
