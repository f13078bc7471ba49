using Arbiter.Node;
using Arbiter.Protocol.Etcd;
using Grpc.Core;

namespace Arbiter.Server.Services;

/// <summary>etcdserverpb.Cluster: membership (one member on a single node; Raft membership in a cluster).</summary>
public sealed class ClusterService(ArbiterNode node) : Cluster.ClusterBase
{
    /// <inheritdoc />
    public override Task<MemberListResponse> MemberList(MemberListRequest request, ServerCallContext context) =>
        node.MemberListAsync(context.CancellationToken);

    /// <inheritdoc />
    public override Task<MemberAddResponse> MemberAdd(MemberAddRequest request, ServerCallContext context) =>
        node.MemberAddAsync(request, context.CancellationToken);

    /// <inheritdoc />
    public override Task<MemberRemoveResponse> MemberRemove(MemberRemoveRequest request, ServerCallContext context) =>
        node.MemberRemoveAsync(request, context.CancellationToken);

    /// <inheritdoc />
    public override Task<MemberUpdateResponse> MemberUpdate(MemberUpdateRequest request, ServerCallContext context) =>
        node.MemberUpdateAsync(request, context.CancellationToken);

    /// <inheritdoc />
    public override Task<MemberPromoteResponse> MemberPromote(MemberPromoteRequest request, ServerCallContext context) =>
        node.MemberPromoteAsync(request, context.CancellationToken);
}
