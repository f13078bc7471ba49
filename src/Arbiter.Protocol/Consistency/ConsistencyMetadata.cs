using System.Globalization;

namespace Arbiter.Protocol.Consistency;

/// <summary>
/// How a consistency level and a token travel in gRPC metadata (names etcd and its clients
/// ignore). Requests carry <see cref="LevelKey"/> and, by level, <see cref="TokenKey"/>,
/// <see cref="MaxStalenessMsKey"/>, <see cref="MaxLagRevisionsKey"/> or <see cref="RevisionKey"/>;
/// every unary response carries <see cref="TokenKey"/> as a trailer.
/// </summary>
public static class ConsistencyMetadata
{
    /// <summary>The level: <c>linearizable</c>, <c>bounded</c>, <c>session</c>, <c>causal</c>, <c>serializable</c> or <c>at-revision</c>.</summary>
    public const string LevelKey = "arbiter-consistency";

    /// <summary>A token (request: the one to honour; response trailer: the one the response gives).</summary>
    public const string TokenKey = "arbiter-token";

    /// <summary>Bounded staleness: the bound in ms.</summary>
    public const string MaxStalenessMsKey = "arbiter-max-staleness-ms";

    /// <summary>Bounded staleness: revisions allowed behind.</summary>
    public const string MaxLagRevisionsKey = "arbiter-max-lag-revisions";

    /// <summary>At revision: the revision.</summary>
    public const string RevisionKey = "arbiter-revision";

    /// <summary>Error trailer: the <see cref="ConsistencyErrorKind"/> name.</summary>
    public const string ErrorKindKey = "arbiter-error";

    /// <summary>Error trailer: the member's applied revision.</summary>
    public const string AppliedRevisionKey = "arbiter-applied-revision";

    /// <summary>Error trailer: the revision the read required.</summary>
    public const string RequiredRevisionKey = "arbiter-required-revision";

    /// <summary>The metadata entries that ask for <paramref name="consistency"/>.</summary>
    public static IEnumerable<KeyValuePair<string, string>> Encode(ReadConsistency consistency)
    {
        ArgumentNullException.ThrowIfNull(consistency);
        yield return new(LevelKey, LevelName(consistency.Level));
        switch (consistency.Level)
        {
            case ReadLevel.Session or ReadLevel.Causal when consistency.Token is { } token:
                yield return new(TokenKey, token.ToString());
                break;
            case ReadLevel.BoundedStaleness:
                yield return new(MaxStalenessMsKey, consistency.MaxStalenessMs.ToString(CultureInfo.InvariantCulture));
                yield return new(MaxLagRevisionsKey, consistency.MaxLagRevisions.ToString(CultureInfo.InvariantCulture));
                break;
            case ReadLevel.AtRevision:
                yield return new(RevisionKey, consistency.Revision.ToString(CultureInfo.InvariantCulture));
                break;
            default:
                break;
        }
    }

    /// <summary>
    /// The consistency asked for by request metadata (looked up by <paramref name="get"/>), or null
    /// when the request names no level (then etcd's own <c>serializable</c> flag decides).
    /// </summary>
    /// <exception cref="ConsistencyException">The metadata is malformed (a bad token, an unknown level, a missing bound).</exception>
    public static ReadConsistency? Decode(Func<string, string?> get)
    {
        ArgumentNullException.ThrowIfNull(get);
        var level = get(LevelKey);
        if (level is null)
        {
            return null;
        }

        switch (level)
        {
            case "linearizable":
                return ReadConsistency.Linearizable;
            case "serializable":
                return ReadConsistency.Serializable;
            case "session":
                return get(TokenKey) is { } sessionToken ? ReadConsistency.Session(ConsistencyToken.Parse(sessionToken)) : ReadConsistency.Session(null);
            case "causal":
                return ReadConsistency.Causal(ConsistencyToken.Parse(get(TokenKey)));
            case "bounded":
                {
                    var ms = Number(get, MaxStalenessMsKey, required: true);
                    var lag = Number(get, MaxLagRevisionsKey, required: false);
                    if (ms is < 1 or > int.MaxValue)
                    {
                        throw ConsistencyException.InvalidLevel($"{MaxStalenessMsKey} must be between 1 and {int.MaxValue}");
                    }

                    return ReadConsistency.BoundedStaleness(TimeSpan.FromMilliseconds(ms), lag);
                }

            case "at-revision":
                {
                    var revision = Number(get, RevisionKey, required: true);
                    return revision > 0 ? ReadConsistency.AtRevision(revision) : throw ConsistencyException.InvalidLevel($"{RevisionKey} must be positive");
                }

            default:
                throw ConsistencyException.InvalidLevel($"unknown level \"{(level.Length > 32 ? level[..32] + "…" : level)}\" (linearizable, bounded, session, causal, serializable, at-revision)");
        }
    }

    /// <summary>The wire name of a level.</summary>
    public static string LevelName(ReadLevel level) => level switch
    {
        ReadLevel.Linearizable => "linearizable",
        ReadLevel.BoundedStaleness => "bounded",
        ReadLevel.Session => "session",
        ReadLevel.Causal => "causal",
        ReadLevel.Serializable => "serializable",
        ReadLevel.AtRevision => "at-revision",
        _ => throw new ArgumentOutOfRangeException(nameof(level), level, null),
    };

    private static long Number(Func<string, string?> get, string key, bool required)
    {
        var text = get(key);
        if (text is null)
        {
            return required ? throw ConsistencyException.InvalidLevel(key + " is missing") : 0;
        }

        return long.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var value)
            ? value
            : throw ConsistencyException.InvalidLevel($"{key} is not a non-negative integer");
    }
}
