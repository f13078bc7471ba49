using System.Runtime.CompilerServices;
using Arbiter.Protocol.Etcd;
using Grpc.Core;
using Grpc.Net.Client;

namespace Arbiter.Client;

/// <summary><see cref="IArbiterClient"/> over gRPC: talks to an Arbiter server or a real etcd.</summary>
public sealed class GrpcArbiterClient : IArbiterClient
{
    private readonly GrpcChannel _channel;
    private readonly KV.KVClient _kv;
    private readonly Lease.LeaseClient _lease;
    private readonly Watch.WatchClient _watch;
    private readonly Maintenance.MaintenanceClient _maintenance;

    /// <summary>Connects to <paramref name="endpoint"/>, e.g. <c>http://127.0.0.1:2379</c>.</summary>
    public GrpcArbiterClient(string endpoint)
        : this(GrpcChannel.ForAddress(endpoint, new GrpcChannelOptions { MaxReceiveMessageSize = null, MaxSendMessageSize = null }))
    {
    }

    /// <summary>Uses an existing channel (it is disposed with the client).</summary>
    public GrpcArbiterClient(GrpcChannel channel)
    {
        _channel = channel ?? throw new ArgumentNullException(nameof(channel));
        _kv = new KV.KVClient(channel);
        _lease = new Lease.LeaseClient(channel);
        _watch = new Watch.WatchClient(channel);
        _maintenance = new Maintenance.MaintenanceClient(channel);
    }

    /// <inheritdoc />
    public Task<RangeResponse> RangeAsync(RangeRequest request, CancellationToken cancellationToken = default) =>
        _kv.RangeAsync(request, cancellationToken: cancellationToken).ResponseAsync;

    /// <inheritdoc />
    public Task<PutResponse> PutAsync(PutRequest request, CancellationToken cancellationToken = default) =>
        _kv.PutAsync(request, cancellationToken: cancellationToken).ResponseAsync;

    /// <inheritdoc />
    public Task<DeleteRangeResponse> DeleteRangeAsync(DeleteRangeRequest request, CancellationToken cancellationToken = default) =>
        _kv.DeleteRangeAsync(request, cancellationToken: cancellationToken).ResponseAsync;

    /// <inheritdoc />
    public Task<TxnResponse> TxnAsync(TxnRequest request, CancellationToken cancellationToken = default) =>
        _kv.TxnAsync(request, cancellationToken: cancellationToken).ResponseAsync;

    /// <inheritdoc />
    public Task<CompactionResponse> CompactAsync(CompactionRequest request, CancellationToken cancellationToken = default) =>
        _kv.CompactAsync(request, cancellationToken: cancellationToken).ResponseAsync;

    /// <inheritdoc />
    public Task<LeaseGrantResponse> LeaseGrantAsync(LeaseGrantRequest request, CancellationToken cancellationToken = default) =>
        _lease.LeaseGrantAsync(request, cancellationToken: cancellationToken).ResponseAsync;

    /// <inheritdoc />
    public Task<LeaseRevokeResponse> LeaseRevokeAsync(LeaseRevokeRequest request, CancellationToken cancellationToken = default) =>
        _lease.LeaseRevokeAsync(request, cancellationToken: cancellationToken).ResponseAsync;

    /// <inheritdoc />
    public async Task<LeaseKeepAliveResponse> LeaseKeepAliveOnceAsync(LeaseKeepAliveRequest request, CancellationToken cancellationToken = default)
    {
        using var call = _lease.LeaseKeepAlive(cancellationToken: cancellationToken);
        await call.RequestStream.WriteAsync(request, cancellationToken).ConfigureAwait(false);
        await call.RequestStream.CompleteAsync().ConfigureAwait(false);
        if (!await call.ResponseStream.MoveNext(cancellationToken).ConfigureAwait(false))
        {
            throw new RpcException(new Status(StatusCode.Unavailable, "keep-alive stream closed without a response"));
        }

        return call.ResponseStream.Current;
    }

    /// <inheritdoc />
    public Task<LeaseTimeToLiveResponse> LeaseTimeToLiveAsync(LeaseTimeToLiveRequest request, CancellationToken cancellationToken = default) =>
        _lease.LeaseTimeToLiveAsync(request, cancellationToken: cancellationToken).ResponseAsync;

    /// <inheritdoc />
    public Task<LeaseLeasesResponse> LeaseLeasesAsync(CancellationToken cancellationToken = default) =>
        _lease.LeaseLeasesAsync(new LeaseLeasesRequest(), cancellationToken: cancellationToken).ResponseAsync;

    /// <inheritdoc />
    public Task<StatusResponse> StatusAsync(CancellationToken cancellationToken = default) =>
        _maintenance.StatusAsync(new StatusRequest(), cancellationToken: cancellationToken).ResponseAsync;

    /// <inheritdoc />
    public IWatchSession OpenWatch() => new GrpcWatchSession(_watch.Watch());

    /// <inheritdoc />
    public ValueTask DisposeAsync()
    {
        _channel.Dispose();
        return ValueTask.CompletedTask;
    }

    private sealed class GrpcWatchSession(AsyncDuplexStreamingCall<WatchRequest, WatchResponse> call) : IWatchSession
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
            while (await call.ResponseStream.MoveNext(cancellationToken).ConfigureAwait(false))
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

        private async ValueTask WriteAsync(WatchRequest request, CancellationToken cancellationToken)
        {
            // gRPC allows one pending write per stream.
            await _writeGate.WaitAsync(cancellationToken).ConfigureAwait(false);
            try
            {
                await call.RequestStream.WriteAsync(request, cancellationToken).ConfigureAwait(false);
            }
            finally
            {
                _writeGate.Release();
            }
        }
    }
}
