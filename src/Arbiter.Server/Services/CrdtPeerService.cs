using Arbiter.Node;
using Arbiter.Protocol.Internal;
using Grpc.Core;

namespace Arbiter.Server.Services;

/// <summary>The eventual tier's member-to-member calls (anti-entropy and quorum reads and writes).</summary>
public sealed class CrdtPeerService(ArbiterNode node) : CrdtPeer.CrdtPeerBase
{
    /// <inheritdoc />
    public override Task<CrdtDeltaAck> PushDeltas(CrdtDeltaBatch request, ServerCallContext context) =>
        node.CrdtPushDeltasAsync(request, context.CancellationToken);

    /// <inheritdoc />
    public override Task<CrdtRepairResponse> Repair(CrdtDigest request, ServerCallContext context) =>
        Task.FromResult(node.CrdtRepair(request));

    /// <inheritdoc />
    public override Task<CrdtReadStateResponse> ReadState(CrdtReadStateRequest request, ServerCallContext context) =>
        Task.FromResult(node.CrdtReadState(request));
}
