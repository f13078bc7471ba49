using System.Globalization;
using Arbiter.Protocol.Consistency;
using Grpc.Core;

namespace Arbiter.Client;

/// <summary>
/// A read refused because its consistency level could not be honoured by the member that got it:
/// a malformed token, another cluster's token, a token from the future, a member behind the
/// token (it waited its budget), or a member outside a staleness bound. Still an
/// <see cref="RpcException"/> with the server's status and text, so existing handlers keep working;
/// <see cref="StatusCode.Unavailable"/> ones are retried on another endpoint by <see cref="ArbiterClient"/>.
/// </summary>
public sealed class ReadConsistencyException : RpcException
{
    /// <summary>Creates the exception.</summary>
    public ReadConsistencyException(Status status, Metadata trailers, ConsistencyErrorKind kind, long appliedRevision, long requiredRevision)
        : base(status, trailers)
    {
        Kind = kind;
        AppliedRevision = appliedRevision;
        RequiredRevision = requiredRevision;
    }

    /// <summary>Why the read was refused.</summary>
    public ConsistencyErrorKind Kind { get; }

    /// <summary>The revision the member had applied (for a token from the future: the leader's revision).</summary>
    public long AppliedRevision { get; }

    /// <summary>The revision the read required.</summary>
    public long RequiredRevision { get; }

    /// <summary>How many revisions the member was behind.</summary>
    public long BehindRevisions => Math.Max(0, RequiredRevision - AppliedRevision);

    /// <summary>The typed form of <paramref name="e"/> when its trailers say it is a consistency refusal, else <paramref name="e"/> itself.</summary>
    public static RpcException From(RpcException e)
    {
        ArgumentNullException.ThrowIfNull(e);
        if (e is ReadConsistencyException || e.Trailers.GetValue(ConsistencyMetadata.ErrorKindKey) is not { } kindText
            || !Enum.TryParse<ConsistencyErrorKind>(kindText, out var kind))
        {
            return e;
        }

        return new ReadConsistencyException(e.Status, e.Trailers, kind, Number(e.Trailers, ConsistencyMetadata.AppliedRevisionKey), Number(e.Trailers, ConsistencyMetadata.RequiredRevisionKey));
    }

    /// <summary>The form a gRPC client would see of a node's <see cref="ConsistencyException"/>.</summary>
    public static ReadConsistencyException From(ConsistencyException e)
    {
        ArgumentNullException.ThrowIfNull(e);
        var trailers = new Metadata
        {
            { ConsistencyMetadata.ErrorKindKey, e.Kind.ToString() },
            { ConsistencyMetadata.AppliedRevisionKey, e.AppliedRevision.ToString(CultureInfo.InvariantCulture) },
            { ConsistencyMetadata.RequiredRevisionKey, e.RequiredRevision.ToString(CultureInfo.InvariantCulture) },
        };
        return new ReadConsistencyException(new Status(e.StatusCode, e.Message), trailers, e.Kind, e.AppliedRevision, e.RequiredRevision);
    }

    private static long Number(Metadata trailers, string key) =>
        long.TryParse(trailers.GetValue(key), NumberStyles.Integer, CultureInfo.InvariantCulture, out var value) ? value : 0;
}
