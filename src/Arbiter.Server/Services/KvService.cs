using Arbiter.Node;
using Arbiter.Protocol.Etcd;
using Grpc.Core;

namespace Arbiter.Server.Services;

/// <summary>etcdserverpb.KV over the node.</summary>
public sealed class KvService(ArbiterNode node) : KV.KVBase
{
    /// <inheritdoc />
    public override Task<RangeResponse> Range(RangeRequest request, ServerCallContext context) =>
        node.RangeAsync(request, context.CancellationToken);

    /// <inheritdoc />
    public override Task<PutResponse> Put(PutRequest request, ServerCallContext context) =>
        node.PutAsync(request, context.CancellationToken);

    /// <inheritdoc />
    public override Task<DeleteRangeResponse> DeleteRange(DeleteRangeRequest request, ServerCallContext context) =>
        node.DeleteRangeAsync(request, context.CancellationToken);

    /// <inheritdoc />
    public override Task<TxnResponse> Txn(TxnRequest request, ServerCallContext context) =>
        node.TxnAsync(request, context.CancellationToken);

    /// <inheritdoc />
    public override Task<CompactionResponse> Compact(CompactionRequest request, ServerCallContext context) =>
        node.CompactAsync(request, context.CancellationToken);
}
