using Arbiter.Node;
using Arbiter.Protocol.Crdt;
using Grpc.Core;

namespace Arbiter.Server.Services;

/// <summary>
/// arbiter.v1.Crdt over the member's CRDT replica: every member answers from its own replica, a
/// member cut off from the others included (the eventual tier is available under partition).
/// </summary>
public sealed class CrdtService(ArbiterNode node, ServerShutdown shutdown) : Protocol.Crdt.Crdt.CrdtBase
{
    /// <inheritdoc />
    public override Task<CrdtUpdateResponse> Update(CrdtUpdateRequest request, ServerCallContext context) =>
        node.CrdtUpdateAsync(request, context.CancellationToken);

    /// <inheritdoc />
    public override Task<CrdtGetResponse> Get(CrdtGetRequest request, ServerCallContext context) =>
        node.CrdtGetAsync(request, context.CancellationToken);

    /// <inheritdoc />
    public override async Task Watch(CrdtWatchRequest request, IServerStreamWriter<CrdtWatchResponse> responseStream, ServerCallContext context)
    {
        ArgumentNullException.ThrowIfNull(request);
        ArgumentNullException.ThrowIfNull(responseStream);
        ArgumentNullException.ThrowIfNull(context);
        using var lifetime = shutdown.Link(context);
        try
        {
            await foreach (var change in node.CrdtWatchAsync(request.Key, lifetime.Token).ConfigureAwait(false))
            {
                await responseStream.WriteAsync(change, lifetime.Token).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException) when (context.CancellationToken.IsCancellationRequested || lifetime.Token.IsCancellationRequested)
        {
            shutdown.ThrowIfStopping();
        }
    }
}
