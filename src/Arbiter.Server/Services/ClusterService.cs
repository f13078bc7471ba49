using Arbiter.Core;
using Arbiter.Node;
using Arbiter.Protocol.Etcd;
using Grpc.Core;

namespace Arbiter.Server.Services;

/// <summary>etcdserverpb.Cluster: the single member; membership changes need a Raft cluster.</summary>
public sealed class ClusterService(ArbiterNode node) : Cluster.ClusterBase
{
    private static readonly EtcdError SingleNode = new(
        ErrorStatusCode.FailedPrecondition,
        "arbiter: membership changes need a cluster; this member runs as a single node");

    /// <inheritdoc />
    public override Task<MemberListResponse> MemberList(MemberListRequest request, ServerCallContext context) =>
        Task.FromResult(node.MemberList());

    /// <inheritdoc />
    public override Task<MemberAddResponse> MemberAdd(MemberAddRequest request, ServerCallContext context) =>
        throw EtcdErrorInterceptor.ToRpcException(SingleNode);

    /// <inheritdoc />
    public override Task<MemberRemoveResponse> MemberRemove(MemberRemoveRequest request, ServerCallContext context) =>
        throw EtcdErrorInterceptor.ToRpcException(request.ID == node.MemberId ? SingleNode : EtcdError.MemberNotFound);

    /// <inheritdoc />
    public override Task<MemberUpdateResponse> MemberUpdate(MemberUpdateRequest request, ServerCallContext context) =>
        throw EtcdErrorInterceptor.ToRpcException(request.ID == node.MemberId ? SingleNode : EtcdError.MemberNotFound);

    /// <inheritdoc />
    public override Task<MemberPromoteResponse> MemberPromote(MemberPromoteRequest request, ServerCallContext context) =>
        throw EtcdErrorInterceptor.ToRpcException(request.ID == node.MemberId
            ? new EtcdError(ErrorStatusCode.FailedPrecondition, "etcdserver: can only promote a learner member")
            : EtcdError.MemberNotFound);
}
