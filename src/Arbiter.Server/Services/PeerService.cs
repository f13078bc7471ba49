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
    public override Task<ProposeBatchResponse> ProposeBatch(ProposeBatchRequest request, ServerCallContext context) =>
        node.ProposeBatchForwardedAsync(request, context.CancellationToken);

    /// <inheritdoc />
    public override Task<ReadIndexResponse> ReadIndex(ReadIndexRequest request, ServerCallContext context) =>
        node.ReadIndexForwardedAsync(context.CancellationToken);

    /// <inheritdoc />
    public override Task<StandbyResponse> Standby(StandbyRequest request, ServerCallContext context) =>
        node.StandbyAsync(request, context.CancellationToken);

    /// <inheritdoc />
    public override Task<LogPositionResponse> LogPosition(LogPositionRequest request, ServerCallContext context) =>
        node.LogPositionAsync(context.CancellationToken);

    /// <inheritdoc />
    public override Task<LeaseTimeToLiveResponse> LeaseTimeToLive(LeaseTimeToLiveRequest request, ServerCallContext context) =>
        Task.FromResult(node.LeaseTimeToLiveHere(request));

    /// <inheritdoc />
    public override async Task FetchSnapshotImage(FetchSnapshotImageRequest request, IServerStreamWriter<SnapshotImageChunk> responseStream, ServerCallContext context)
    {
        await using var image = await node.OpenSnapshotImageAsync(request.Index, request.Term, request.Sha256.Memory, context.CancellationToken)
            ?? throw new RpcException(new Status(StatusCode.NotFound, $"this member has no image of Raft snapshot {request.Index}-{request.Term}"));
        var buffer = new byte[ImageChunkSizeBytes];
        int read;
        while ((read = await image.ReadAsync(buffer, context.CancellationToken)) > 0)
        {
            await responseStream.WriteAsync(new SnapshotImageChunk { Data = Google.Protobuf.ByteString.CopyFrom(buffer, 0, read) }, context.CancellationToken);
        }
    }

    /// <inheritdoc />
    public override Task<RefreshSnapshotResponse> RefreshSnapshot(RefreshSnapshotRequest request, ServerCallContext context) =>
        node.RefreshSnapshotHereAsync(request.AboveIndex, context.CancellationToken);

    /// <summary>Chunks well under gRPC's default 4 MB message limit.</summary>
    private const int ImageChunkSizeBytes = 1 << 20;

    /// <inheritdoc />
    public override Task<LeaderRevisionResponse> LeaderRevision(LeaderRevisionRequest request, ServerCallContext context) =>
        Task.FromResult(node.LeaderRevisionHere());
}
