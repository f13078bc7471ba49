using Arbiter.Node;
using Arbiter.Protocol.Etcd;
using Grpc.Core;

namespace Arbiter.Server.Services;

/// <summary>etcdserverpb.KV over the node; reads honour the consistency level in the request metadata (<see cref="ConsistencyHeaders"/>).</summary>
public sealed class KvService(ArbiterNode node) : KV.KVBase
{
    /// <inheritdoc />
    public override Task<RangeResponse> Range(RangeRequest request, ServerCallContext context) =>
        node.RangeAsync(request, ConsistencyHeaders.Of(context), context.CancellationToken);

    /// <inheritdoc />
    public override Task<PutResponse> Put(PutRequest request, ServerCallContext context) =>
        node.PutAsync(request, context.CancellationToken);

    /// <inheritdoc />
    public override Task<DeleteRangeResponse> DeleteRange(DeleteRangeRequest request, ServerCallContext context) =>
        node.DeleteRangeAsync(request, context.CancellationToken);

    /// <inheritdoc />
    public override Task<TxnResponse> Txn(TxnRequest request, ServerCallContext context) =>
        node.TxnAsync(request, ConsistencyHeaders.Of(context), context.CancellationToken);

    /// <inheritdoc />
    public override Task<CompactionResponse> Compact(CompactionRequest request, ServerCallContext context) =>
        node.CompactAsync(request, context.CancellationToken);
}
