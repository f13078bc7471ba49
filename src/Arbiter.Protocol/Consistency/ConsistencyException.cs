using System.Globalization;
using Grpc.Core;

namespace Arbiter.Protocol.Consistency;

/// <summary>
/// A read refused because its consistency level cannot be honoured here, with the numbers that
/// say why. The gRPC server answers it as <see cref="StatusCode"/> and the message plus the trailers
/// <see cref="ConsistencyMetadata.ErrorKindKey"/>, <see cref="ConsistencyMetadata.AppliedRevisionKey"/>
/// and <see cref="ConsistencyMetadata.RequiredRevisionKey"/>.
/// </summary>
public sealed class ConsistencyException : Exception
{
    /// <summary>Creates the exception.</summary>
    public ConsistencyException(ConsistencyErrorKind kind, StatusCode statusCode, string message, long appliedRevision = 0, long requiredRevision = 0)
        : base(message)
    {
        Kind = kind;
        StatusCode = statusCode;
        AppliedRevision = appliedRevision;
        RequiredRevision = requiredRevision;
    }

    /// <summary>Why.</summary>
    public ConsistencyErrorKind Kind { get; }

    /// <summary>The gRPC status a client sees (with <see cref="Exception.Message"/> as its text).</summary>
    public StatusCode StatusCode { get; }

    /// <summary>The revision this member had applied when it refused (0 when not relevant).</summary>
    public long AppliedRevision { get; }

    /// <summary>The revision the read required (token revision, or the leader's revision minus the allowed lag; 0 when not relevant).</summary>
    public long RequiredRevision { get; }

    /// <summary>How many revisions this member was behind what the read required.</summary>
    public long BehindRevisions => Math.Max(0, RequiredRevision - AppliedRevision);

    /// <summary>A token string that does not parse.</summary>
    public static ConsistencyException Malformed(string? text) => new(
        ConsistencyErrorKind.MalformedToken,
        StatusCode.InvalidArgument, string.Create(CultureInfo.InvariantCulture, $"arbiter: malformed consistency token ({Describe(text)}; expected {ConsistencyToken.FormatPrefix}<cluster>.<revision> as returned by a response)"));

    /// <summary>A token of another cluster.</summary>
    public static ConsistencyException OtherCluster(ConsistencyToken token, ulong clusterId) => new(
        ConsistencyErrorKind.OtherClusterToken,
        StatusCode.FailedPrecondition, string.Create(CultureInfo.InvariantCulture, $"arbiter: consistency token is from another cluster (token cluster {token.ClusterId:x16}, this cluster {clusterId:x16})"),
        requiredRevision: token.Revision);

    /// <summary>A token whose revision the leader has not reached.</summary>
    public static ConsistencyException Future(ConsistencyToken token, long leaderRevision) => new(
        ConsistencyErrorKind.FutureToken,
        StatusCode.OutOfRange, string.Create(CultureInfo.InvariantCulture, $"arbiter: consistency token is from the future (token revision {token.Revision}, leader revision {leaderRevision})"),
        leaderRevision,
        token.Revision);

    /// <summary>This member is behind the token and did not catch up within the wait budget.</summary>
    public static ConsistencyException Behind(long appliedRevision, long requiredRevision, int waitedMs, string? why = null) => new(
        ConsistencyErrorKind.MemberBehind,
        StatusCode.Unavailable, string.Create(CultureInfo.InvariantCulture, $"arbiter: read not available on this member: applied revision {appliedRevision} is {requiredRevision - appliedRevision} behind the required revision {requiredRevision} after waiting {waitedMs} ms{(why is null ? string.Empty : "; " + why)}"),
        appliedRevision,
        requiredRevision);

    /// <summary>This member could not show it is within the staleness bound.</summary>
    public static ConsistencyException Stale(long appliedRevision, long requiredRevision, string why) => new(
        ConsistencyErrorKind.StalenessBoundExceeded,
        StatusCode.Unavailable, string.Create(CultureInfo.InvariantCulture, $"arbiter: staleness bound exceeded on this member: {why} (applied revision {appliedRevision}, required {requiredRevision})"),
        appliedRevision,
        requiredRevision);

    /// <summary>Consistency metadata that does not parse.</summary>
    public static ConsistencyException InvalidLevel(string what) => new(
        ConsistencyErrorKind.InvalidLevel,
        StatusCode.InvalidArgument, "arbiter: invalid consistency level: " + what);

    private static string Describe(string? text) => text switch
    {
        null => "none given",
        { Length: > ConsistencyToken.StringLengthMax } => $"{text.Length} characters",
        _ => $"\"{text}\"",
    };
}
