using Arbiter.Protocol.Etcd;

namespace Arbiter.Client;

/// <summary>
/// The client abstraction everything above builds on: the etcd v3 KV, Lease, Watch and Status
/// operations. Implemented over gRPC (an Arbiter server or a real etcd) and in-process (an
/// embedded <see cref="Node.ArbiterNode"/>), with identical behaviour: failures are thrown as
/// <see cref="Grpc.Core.RpcException"/> with etcd's status code and message.
/// </summary>
public interface IArbiterClient : IAsyncDisposable
{
    /// <summary>Range (get).</summary>
    Task<RangeResponse> RangeAsync(RangeRequest request, CancellationToken cancellationToken = default);

    /// <summary>Put.</summary>
    Task<PutResponse> PutAsync(PutRequest request, CancellationToken cancellationToken = default);

    /// <summary>DeleteRange.</summary>
    Task<DeleteRangeResponse> DeleteRangeAsync(DeleteRangeRequest request, CancellationToken cancellationToken = default);

    /// <summary>Txn.</summary>
    Task<TxnResponse> TxnAsync(TxnRequest request, CancellationToken cancellationToken = default);

    /// <summary>Compact.</summary>
    Task<CompactionResponse> CompactAsync(CompactionRequest request, CancellationToken cancellationToken = default);

    /// <summary>LeaseGrant.</summary>
    Task<LeaseGrantResponse> LeaseGrantAsync(LeaseGrantRequest request, CancellationToken cancellationToken = default);

    /// <summary>LeaseRevoke.</summary>
    Task<LeaseRevokeResponse> LeaseRevokeAsync(LeaseRevokeRequest request, CancellationToken cancellationToken = default);

    /// <summary>One keep-alive round trip (TTL = 0 in the answer when the lease is gone).</summary>
    Task<LeaseKeepAliveResponse> LeaseKeepAliveOnceAsync(LeaseKeepAliveRequest request, CancellationToken cancellationToken = default);

    /// <summary>LeaseTimeToLive.</summary>
    Task<LeaseTimeToLiveResponse> LeaseTimeToLiveAsync(LeaseTimeToLiveRequest request, CancellationToken cancellationToken = default);

    /// <summary>LeaseLeases.</summary>
    Task<LeaseLeasesResponse> LeaseLeasesAsync(CancellationToken cancellationToken = default);

    /// <summary>Maintenance.Status of the member this client talks to.</summary>
    Task<StatusResponse> StatusAsync(CancellationToken cancellationToken = default);

    /// <summary>Opens a watch session: many watches multiplexed on one ordered response stream.</summary>
    IWatchSession OpenWatch();
}

/// <summary>One watch stream (etcd's Watch RPC): create, cancel and progress requests in, responses out, in order.</summary>
public interface IWatchSession : IAsyncDisposable
{
    /// <summary>Asks for a new watch; its "created" response arrives on <see cref="ReadAllAsync"/>.</summary>
    ValueTask CreateAsync(WatchCreateRequest request, CancellationToken cancellationToken = default);

    /// <summary>Cancels a watch.</summary>
    ValueTask CancelAsync(long watchId, CancellationToken cancellationToken = default);

    /// <summary>Asks for a progress notification.</summary>
    ValueTask RequestProgressAsync(CancellationToken cancellationToken = default);

    /// <summary>Every response, in the order the server sent them.</summary>
    IAsyncEnumerable<WatchResponse> ReadAllAsync(CancellationToken cancellationToken = default);
}
