namespace Arbiter.Protocol.Consistency;

/// <summary>Why a read at a chosen consistency level was refused.</summary>
public enum ConsistencyErrorKind
{
    /// <summary>The token string is not a token (InvalidArgument).</summary>
    MalformedToken = 1,

    /// <summary>The token belongs to another cluster (FailedPrecondition).</summary>
    OtherClusterToken = 2,

    /// <summary>The token's revision is beyond the leader's: it was never issued by this cluster (OutOfRange).</summary>
    FutureToken = 3,

    /// <summary>This member has not applied the token's revision within the wait budget (Unavailable: try another member or later).</summary>
    MemberBehind = 4,

    /// <summary>This member cannot show it is within the staleness bound (Unavailable).</summary>
    StalenessBoundExceeded = 5,

    /// <summary>The consistency metadata of the request is not understood (InvalidArgument).</summary>
    InvalidLevel = 6,
}
