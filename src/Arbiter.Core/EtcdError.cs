namespace Arbiter.Core;

/// <summary>gRPC status codes the core reports (numbers match grpc's <c>StatusCode</c>).</summary>
public enum ErrorStatusCode
{
    /// <summary>Canceled (1).</summary>
    Canceled = 1,
    /// <summary>Unknown (2): what gRPC reports for a plain error (etcd's election errors).</summary>
    Unknown = 2,
    /// <summary>InvalidArgument (3).</summary>
    InvalidArgument = 3,
    /// <summary>DeadlineExceeded (4).</summary>
    DeadlineExceeded = 4,
    /// <summary>NotFound (5).</summary>
    NotFound = 5,
    /// <summary>PermissionDenied (7).</summary>
    PermissionDenied = 7,
    /// <summary>ResourceExhausted (8).</summary>
    ResourceExhausted = 8,
    /// <summary>FailedPrecondition (9).</summary>
    FailedPrecondition = 9,
    /// <summary>OutOfRange (11).</summary>
    OutOfRange = 11,
    /// <summary>Aborted (10): a transaction lost to a deadlock, an optimistic conflict, or was aborted.</summary>
    Aborted = 10,
    /// <summary>Unimplemented (12).</summary>
    Unimplemented = 12,
    /// <summary>Internal (13).</summary>
    Internal = 13,
    /// <summary>Unavailable (14).</summary>
    Unavailable = 14,
    /// <summary>DataLoss (15).</summary>
    DataLoss = 15,
    /// <summary>Unauthenticated (16): an invalid auth token.</summary>
    Unauthenticated = 16,
}

/// <summary>An error with etcd's exact status code and text (clients match on both).</summary>
/// <param name="StatusCode">The gRPC status code.</param>
/// <param name="Message">The exact message text etcd sends.</param>
public sealed record EtcdError(ErrorStatusCode StatusCode, string Message)
{
    /// <summary>For transaction errors (arbiter.v1): which one, with its cycle, key or reason; null otherwise.</summary>
    public Protocol.Transactions.TransactionError? Transaction { get; init; }

    /// <summary>Empty key in a request.</summary>
    public static readonly EtcdError EmptyKey = new(ErrorStatusCode.InvalidArgument, "etcdserver: key is not provided");
    /// <summary>ignore_value/ignore_lease on a key that does not exist.</summary>
    public static readonly EtcdError KeyNotFound = new(ErrorStatusCode.InvalidArgument, "etcdserver: key not found");
    /// <summary>ignore_value with a value.</summary>
    public static readonly EtcdError ValueProvided = new(ErrorStatusCode.InvalidArgument, "etcdserver: value is provided");
    /// <summary>ignore_lease with a lease.</summary>
    public static readonly EtcdError LeaseProvided = new(ErrorStatusCode.InvalidArgument, "etcdserver: lease is provided");
    /// <summary>More than the allowed operations in one txn branch.</summary>
    public static readonly EtcdError TooManyOps = new(ErrorStatusCode.InvalidArgument, "etcdserver: too many operations in txn request");
    /// <summary>A txn writes the same key twice.</summary>
    public static readonly EtcdError DuplicateKey = new(ErrorStatusCode.InvalidArgument, "etcdserver: duplicate key given in txn request");
    /// <summary>A read below the compacted revision.</summary>
    public static readonly EtcdError Compacted = new(ErrorStatusCode.OutOfRange, "etcdserver: mvcc: required revision has been compacted");
    /// <summary>A read or compaction above the current revision.</summary>
    public static readonly EtcdError FutureRevision = new(ErrorStatusCode.OutOfRange, "etcdserver: mvcc: required revision is a future revision");
    /// <summary>The space quota is exhausted.</summary>
    public static readonly EtcdError NoSpace = new(ErrorStatusCode.ResourceExhausted, "etcdserver: mvcc: database space exceeded");
    /// <summary>The lease does not exist.</summary>
    public static readonly EtcdError LeaseNotFound = new(ErrorStatusCode.NotFound, "etcdserver: requested lease not found");
    /// <summary>A client-chosen lease id is taken.</summary>
    public static readonly EtcdError LeaseExists = new(ErrorStatusCode.FailedPrecondition, "etcdserver: lease already exists");
    /// <summary>The requested TTL is above the maximum.</summary>
    public static readonly EtcdError LeaseTtlTooLarge = new(ErrorStatusCode.OutOfRange, "etcdserver: too large lease TTL");
    /// <summary>The request is larger than the request size limit.</summary>
    public static readonly EtcdError RequestTooLarge = new(ErrorStatusCode.InvalidArgument, "etcdserver: request is too large");
    /// <summary>Too many requests in flight.</summary>
    public static readonly EtcdError TooManyRequests = new(ErrorStatusCode.ResourceExhausted, "etcdserver: too many requests");
    /// <summary>No leader (cluster) or the node is not serving.</summary>
    public static readonly EtcdError NoLeader = new(ErrorStatusCode.Unavailable, "etcdserver: no leader");
    /// <summary>The server is shutting down.</summary>
    public static readonly EtcdError Stopped = new(ErrorStatusCode.Unavailable, "etcdserver: server stopped");
    /// <summary>The request did not complete in time.</summary>
    public static readonly EtcdError Timeout = new(ErrorStatusCode.Unavailable, "etcdserver: request timed out");
    /// <summary>The member was not found.</summary>
    public static readonly EtcdError MemberNotFound = new(ErrorStatusCode.NotFound, "etcdserver: member not found");
    /// <summary>The request needs the leader and this member is not it (e.g. MoveLeader on a follower).</summary>
    public static readonly EtcdError NotLeader = new(ErrorStatusCode.FailedPrecondition, "etcdserver: not leader");
    /// <summary>Leadership moved while the request was in flight.</summary>
    public static readonly EtcdError LeaderChanged = new(ErrorStatusCode.Unavailable, "etcdserver: leader changed");
    /// <summary>A write handed to a leader that was then lost (killed, stopped, cut off) before it was known to commit: outcome unknown (it may still commit).</summary>
    public static readonly EtcdError TimeoutDueToLeaderFail = new(ErrorStatusCode.Unavailable, "etcdserver: request timed out, possibly due to previous leader failure");
    /// <summary>
    /// The answers a request may get while a cluster loses or changes its leader, all Unavailable
    /// (docs/operations.md, "Failure modes"): <see cref="NoLeader"/> and <see cref="LeaderChanged"/>
    /// mean the request was not applied; <see cref="Timeout"/> and <see cref="TimeoutDueToLeaderFail"/>
    /// mean a write's outcome is unknown.
    /// </summary>
    public static IReadOnlyList<EtcdError> LeaderLoss { get; } = [NoLeader, LeaderChanged, Timeout, TimeoutDueToLeaderFail];
    /// <summary>A member with these peer URLs already exists.</summary>
    public static readonly EtcdError PeerUrlExists = new(ErrorStatusCode.FailedPrecondition, "etcdserver: Peer URLs already exists");
    /// <summary>Member URLs that do not parse.</summary>
    public static readonly EtcdError MemberBadUrls = new(ErrorStatusCode.InvalidArgument, "etcdserver: given member URLs are invalid");
    /// <summary>MoveLeader to a member that cannot lead (unknown, or not a voting member).</summary>
    public static readonly EtcdError BadLeaderTransferee = new(ErrorStatusCode.FailedPrecondition, "etcdserver: bad leader transferee");
    /// <summary>A membership change while another is still in progress (Raft changes one member at a time).</summary>
    public static readonly EtcdError Unhealthy = new(ErrorStatusCode.Unavailable, "etcdserver: unhealthy cluster");
    /// <summary>Learner promotion: Arbiter has no learners.</summary>
    public static readonly EtcdError MemberNotLearner = new(ErrorStatusCode.FailedPrecondition, "etcdserver: can only promote a learner member");
    /// <summary>The leader stepped down but the target did not win in time.</summary>
    public static readonly EtcdError LeaderTransferTimeout = new(ErrorStatusCode.Unavailable, "etcdserver: request timed out, leader transfer took too long");
    /// <summary>The watch was canceled.</summary>
    public static readonly EtcdError WatchCanceled = new(ErrorStatusCode.Canceled, "etcdserver: watch canceled");
}

/// <summary>Thrown by read paths of the core with an etcd-identical error.</summary>
public sealed class EtcdException : Exception
{
    /// <summary>Creates the exception for <paramref name="error"/>.</summary>
    public EtcdException(EtcdError error)
        : base(error.Message) => Error = error;

    /// <summary>The error carried.</summary>
    public EtcdError Error { get; }
}
