using System.Security.Cryptography;
using Arbiter.Core;
using Arbiter.Node;
using Arbiter.Protocol.Etcd;
using Google.Protobuf;
using Grpc.Core;

namespace Arbiter.Server.Services;

/// <summary>etcdserverpb.Maintenance over the node.</summary>
public sealed class MaintenanceService(ArbiterNode node) : Maintenance.MaintenanceBase
{
    /// <summary>Snapshot chunk size, in bytes (etcd sends 32 KiB).</summary>
    public const int SnapshotChunkSizeBytes = 32 * 1024;

    /// <inheritdoc />
    public override Task<StatusResponse> Status(StatusRequest request, ServerCallContext context) =>
        node.StatusAsync(request, context.CancellationToken);

    /// <inheritdoc />
    public override Task<AlarmResponse> Alarm(AlarmRequest request, ServerCallContext context) =>
        node.AlarmAsync(request, context.CancellationToken);

    /// <inheritdoc />
    public override Task<HashResponse> Hash(HashRequest request, ServerCallContext context) =>
        node.HashAsync(request, context.CancellationToken);

    /// <inheritdoc />
    public override Task<HashKVResponse> HashKV(HashKVRequest request, ServerCallContext context) =>
        node.HashKvAsync(request, context.CancellationToken);

    /// <inheritdoc />
    public override Task<DefragmentResponse> Defragment(DefragmentRequest request, ServerCallContext context) =>
        node.DefragmentAsync(request, context.CancellationToken);

    /// <summary>Moves leadership (a cluster leader steps down until the target wins).</summary>
    public override Task<MoveLeaderResponse> MoveLeader(MoveLeaderRequest request, ServerCallContext context) =>
        node.MoveLeaderAsync(request, context.CancellationToken);

    /// <summary>
    /// Streams a consistent snapshot in chunks, then its SHA-256, as etcd does: of this member's
    /// state, or, when the request names a consistency level (e.g. a session token), once this member
    /// may serve that level.
    /// </summary>
    public override async Task Snapshot(SnapshotRequest request, IServerStreamWriter<SnapshotResponse> responseStream, ServerCallContext context)
    {
        ArgumentNullException.ThrowIfNull(responseStream);
        ArgumentNullException.ThrowIfNull(context);
        if (ConsistencyHeaders.Of(context) is { } consistency)
        {
            await node.PrepareReadAsync(consistency, serializableFlag: true, context.CancellationToken).ConfigureAwait(false);
        }

        var bytes = node.CreateSnapshot();
        var token = context.CancellationToken;
        var sent = 0;
        while (sent < bytes.Length)
        {
            var count = Math.Min(SnapshotChunkSizeBytes, bytes.Length - sent);
            await responseStream.WriteAsync(new SnapshotResponse
            {
                Header = node.NewHeader(node.Revision),
                RemainingBytes = (ulong)(bytes.Length - sent - count),
                Blob = ByteString.CopyFrom(bytes, sent, count),
            }, token).ConfigureAwait(false);
            sent += count;
        }

        await responseStream.WriteAsync(new SnapshotResponse
        {
            Header = node.NewHeader(node.Revision),
            RemainingBytes = 0,
            Blob = ByteString.CopyFrom(SHA256.HashData(bytes)),
        }, token).ConfigureAwait(false);
    }
}
