using Arbiter.Node;
using Arbiter.Protocol.Etcd;
using Grpc.Core;

namespace Arbiter.Server.Services;

/// <summary>etcdserverpb.Lease over the node.</summary>
public sealed class LeaseService(ArbiterNode node, ServerShutdown shutdown) : Lease.LeaseBase
{
    /// <inheritdoc />
    public override Task<LeaseGrantResponse> LeaseGrant(LeaseGrantRequest request, ServerCallContext context) =>
        node.LeaseGrantAsync(request, context.CancellationToken);

    /// <inheritdoc />
    public override Task<LeaseRevokeResponse> LeaseRevoke(LeaseRevokeRequest request, ServerCallContext context) =>
        node.LeaseRevokeAsync(request, context.CancellationToken);

    /// <inheritdoc />
    public override Task<LeaseTimeToLiveResponse> LeaseTimeToLive(LeaseTimeToLiveRequest request, ServerCallContext context) =>
        node.LeaseTimeToLiveAsync(request, context.CancellationToken);

    /// <inheritdoc />
    public override Task<LeaseLeasesResponse> LeaseLeases(LeaseLeasesRequest request, ServerCallContext context) =>
        node.LeaseLeasesAsync(request, context.CancellationToken);

    /// <summary>Each keep-alive is answered in order on the same stream; unknown leases answer TTL = 0.</summary>
    public override async Task LeaseKeepAlive(IAsyncStreamReader<LeaseKeepAliveRequest> requestStream, IServerStreamWriter<LeaseKeepAliveResponse> responseStream, ServerCallContext context)
    {
        ArgumentNullException.ThrowIfNull(requestStream);
        ArgumentNullException.ThrowIfNull(responseStream);
        using var lifetime = shutdown.Link(context);
        var token = lifetime.Token;
        try
        {
            // WaitAsync: a pending read on the request stream does not observe cancellation by itself.
            while (await requestStream.MoveNext(CancellationToken.None).WaitAsync(token).ConfigureAwait(false))
            {
                var response = await node.LeaseKeepAliveAsync(requestStream.Current, token).ConfigureAwait(false);
                await responseStream.WriteAsync(response, token).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException) when (token.IsCancellationRequested)
        {
            // The client went away, or the server is stopping.
            shutdown.ThrowIfStopping();
        }
        catch (IOException e) when (ClientDisconnect.IsClientGone(e, token))
        {
            shutdown.ThrowIfStopping();
        }
    }
}
