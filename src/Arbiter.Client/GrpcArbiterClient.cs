using System.Runtime.CompilerServices;
using Arbiter.Protocol.Consistency;
using Arbiter.Protocol.Etcd;
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
    private int _current;

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
        _endpoints = [new Endpoint(channel)];
    }

    /// <summary>The address calls currently go to.</summary>
    public string CurrentEndpoint => Current.Channel.Target;

    private Endpoint Current => _endpoints[Volatile.Read(ref _current) % _endpoints.Length];

    /// <inheritdoc />
    public Task<RangeResponse> RangeAsync(RangeRequest request, CancellationToken cancellationToken = default) =>
        Call(e => e.Kv.RangeAsync(request, cancellationToken: cancellationToken).ResponseAsync, cancellationToken);

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
        return Call(e => e.Kv.RangeAsync(request, headers, cancellationToken: cancellationToken).ResponseAsync, cancellationToken);
    }

    /// <inheritdoc />
    public Task<PutResponse> PutAsync(PutRequest request, CancellationToken cancellationToken = default) =>
        Call(e => e.Kv.PutAsync(request, cancellationToken: cancellationToken).ResponseAsync, cancellationToken);

    /// <inheritdoc />
    public Task<DeleteRangeResponse> DeleteRangeAsync(DeleteRangeRequest request, CancellationToken cancellationToken = default) =>
        Call(e => e.Kv.DeleteRangeAsync(request, cancellationToken: cancellationToken).ResponseAsync, cancellationToken);

    /// <inheritdoc />
    public Task<TxnResponse> TxnAsync(TxnRequest request, CancellationToken cancellationToken = default) =>
        Call(e => e.Kv.TxnAsync(request, cancellationToken: cancellationToken).ResponseAsync, cancellationToken);

    /// <inheritdoc />
    public Task<TxnResponse> TxnAsync(TxnRequest request, ReadConsistency? consistency, CancellationToken cancellationToken = default)
    {
        var headers = consistency is null ? null : Headers(consistency);
        return Call(e => e.Kv.TxnAsync(request, headers, cancellationToken: cancellationToken).ResponseAsync, cancellationToken);
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
        Call(e => e.Transactions.BeginAsync(request, cancellationToken: cancellationToken).ResponseAsync, cancellationToken);

    /// <inheritdoc />
    public Task<Protocol.Transactions.LockResponse> TxnLockAsync(Protocol.Transactions.LockRequest request, CancellationToken cancellationToken = default) =>
        Call(e => e.Transactions.LockAsync(request, cancellationToken: cancellationToken).ResponseAsync, cancellationToken);

    /// <inheritdoc />
    public Task<Protocol.Transactions.CommitResponse> TxnCommitAsync(Protocol.Transactions.CommitRequest request, CancellationToken cancellationToken = default) =>
        Call(e => e.Transactions.CommitAsync(request, cancellationToken: cancellationToken).ResponseAsync, cancellationToken);

    /// <inheritdoc />
    public Task<Protocol.Transactions.AbortResponse> TxnAbortAsync(Protocol.Transactions.AbortRequest request, CancellationToken cancellationToken = default) =>
        Call(e => e.Transactions.AbortAsync(request, cancellationToken: cancellationToken).ResponseAsync, cancellationToken);

    /// <inheritdoc />
    public Task<Protocol.Transactions.OptimisticCommitResponse> TxnOptimisticCommitAsync(Protocol.Transactions.OptimisticCommitRequest request, CancellationToken cancellationToken = default) =>
        Call(e => e.Transactions.OptimisticCommitAsync(request, cancellationToken: cancellationToken).ResponseAsync, cancellationToken);

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
    public ValueTask DisposeAsync()
    {
        foreach (var endpoint in _endpoints)
        {
            endpoint.Channel.Dispose();
        }

        return ValueTask.CompletedTask;
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

    /// <summary>Moves on from <paramref name="failed"/> unless another caller already did.</summary>
    private void Advance(Endpoint failed)
    {
        var index = Volatile.Read(ref _current);
        if (ReferenceEquals(_endpoints[index % _endpoints.Length], failed))
        {
            Interlocked.CompareExchange(ref _current, (index + 1) % _endpoints.Length, index);
        }
    }

    private sealed class Endpoint
    {
        public Endpoint(GrpcChannel channel, string? userName = null, string? password = null)
        {
            Channel = channel;

            // With a user, every call carries etcd's token metadata (renewed on "invalid auth token").
            // Outermost (runs first): the caller's span as the W3C trace context of the call.
            var invoker = (userName is null
                ? channel.CreateCallInvoker()
                : channel.Intercept(new AuthTokenInterceptor(channel.CreateCallInvoker(), userName, password ?? string.Empty)))
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
