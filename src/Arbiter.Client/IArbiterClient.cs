using Arbiter.Protocol.Consistency;
using Arbiter.Protocol.Etcd;

namespace Arbiter.Client;

/// <summary>
/// The client abstraction everything above builds on: the etcd v3 KV, Lease, Watch and Status
/// operations. Implemented over gRPC (an Arbiter server or a real etcd) and in-process (an
/// embedded node, package Arbiter.Embedded), with identical behaviour: failures are thrown as
/// <see cref="Grpc.Core.RpcException"/> with etcd's status code and message.
/// </summary>
public interface IArbiterClient : IAsyncDisposable
{
    /// <summary>Range (get).</summary>
    Task<RangeResponse> RangeAsync(RangeRequest request, CancellationToken cancellationToken = default);

    /// <summary>
    /// Range at a consistency level (null: etcd's choice by the request's <c>serializable</c> flag).
    /// Against a real etcd the level is ignored, except serializable (sent as etcd's flag) and at-revision.
    /// </summary>
    Task<RangeResponse> RangeAsync(RangeRequest request, ReadConsistency? consistency, CancellationToken cancellationToken = default);

    /// <summary>Put.</summary>
    Task<PutResponse> PutAsync(PutRequest request, CancellationToken cancellationToken = default);

    /// <summary>DeleteRange.</summary>
    Task<DeleteRangeResponse> DeleteRangeAsync(DeleteRangeRequest request, CancellationToken cancellationToken = default);

    /// <summary>Txn.</summary>
    Task<TxnResponse> TxnAsync(TxnRequest request, CancellationToken cancellationToken = default);

    /// <summary>Txn; a read-only one is served at <paramref name="consistency"/> (a txn that writes goes through the log whatever the level).</summary>
    Task<TxnResponse> TxnAsync(TxnRequest request, ReadConsistency? consistency, CancellationToken cancellationToken = default);

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

    /// <summary>
    /// Opens a watch session that starts once the member may serve <paramref name="consistency"/>
    /// (e.g. a session watch from "now" starts at or after the session's revision). A refusal
    /// surfaces as a <see cref="ReadConsistencyException"/> when responses are read.
    /// </summary>
    IWatchSession OpenWatch(ReadConsistency? consistency);
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
