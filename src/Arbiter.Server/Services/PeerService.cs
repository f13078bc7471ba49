using Arbiter.Node;
using Arbiter.Protocol.Etcd;
using Arbiter.Protocol.Internal;
using Grpc.Core;

namespace Arbiter.Server.Services;

/// <summary>
/// arbiter.internal.v1.Peer: what followers ask of the leader (proposals, read index, lease TTL).
/// Served on the client port next to the etcd services; Raft itself runs on the peer port.
/// </summary>
public sealed class PeerService(ArbiterNode node) : Peer.PeerBase
{
    /// <inheritdoc />
    public override Task<ForwardedResult> Propose(Command request, ServerCallContext context) =>
        node.ProposeForwardedAsync(request, context.CancellationToken);

    /// <inheritdoc />
    public override Task<ReadIndexResponse> ReadIndex(ReadIndexRequest request, ServerCallContext context) =>
        node.ReadIndexForwardedAsync(context.CancellationToken);

    /// <inheritdoc />
    public override Task<StandbyResponse> Standby(StandbyRequest request, ServerCallContext context) =>
        node.StandbyAsync(request, context.CancellationToken);

    /// <inheritdoc />
    public override Task<LeaseTimeToLiveResponse> LeaseTimeToLive(LeaseTimeToLiveRequest request, ServerCallContext context) =>
        Task.FromResult(node.LeaseTimeToLiveHere(request));

    /// <inheritdoc />
    public override Task<LeaderRevisionResponse> LeaderRevision(LeaderRevisionRequest request, ServerCallContext context) =>
        Task.FromResult(node.LeaderRevisionHere());
}
