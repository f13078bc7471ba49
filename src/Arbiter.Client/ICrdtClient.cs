using Arbiter.Protocol.Crdt;

namespace Arbiter.Client;

/// <summary>
/// The raw arbiter.v1.Crdt calls (the eventual tier), implemented by the embedded and the gRPC
/// client. Errors surface as <c>RpcException</c>; against a server without the service (a real
/// etcd) the calls fail with <c>StatusCode.Unimplemented</c>. <see cref="Crdt.CrdtClient"/> is the
/// typed SDK over these calls.
/// </summary>
public interface ICrdtClient
{
    /// <summary>Crdt.Update.</summary>
    Task<CrdtUpdateResponse> CrdtUpdateAsync(CrdtUpdateRequest request, CancellationToken cancellationToken = default);

    /// <summary>Crdt.Get.</summary>
    Task<CrdtGetResponse> CrdtGetAsync(CrdtGetRequest request, CancellationToken cancellationToken = default);

    /// <summary>Crdt.Watch: the key's value now and after every change, until cancelled.</summary>
    IAsyncEnumerable<CrdtWatchResponse> CrdtWatchAsync(CrdtWatchRequest request, CancellationToken cancellationToken = default);
}
