using System.Globalization;

namespace Arbiter.Protocol.Consistency;

/// <summary>
/// A causal token: "everything up to revision <see cref="Revision"/> of cluster
/// <see cref="ClusterId"/>". Arbiter has one Raft log, so one revision is a complete causal
/// position: a member that has applied that revision has applied everything the token's holder
/// saw or wrote. Carried as an opaque, versioned string (<see cref="ToString"/>,
/// <see cref="Parse"/>); hand it on unmodified. Merging keeps the larger revision.
/// </summary>
/// <param name="ClusterId">The cluster the revision belongs to.</param>
/// <param name="Revision">The store revision (0: nothing seen yet).</param>
public readonly record struct ConsistencyToken(ulong ClusterId, long Revision)
{
    /// <summary>The version prefix of the string form; a later format gets another.</summary>
    public const string FormatPrefix = "arb1.";

    /// <summary>Longest string accepted as a token (a bad header is refused before it is parsed).</summary>
    public const int StringLengthMax = 64;

    /// <summary>The opaque string form: <c>arb1.&lt;cluster id, 16 hex digits&gt;.&lt;revision, hex&gt;</c>.</summary>
    public override string ToString() =>
        string.Create(CultureInfo.InvariantCulture, $"{FormatPrefix}{ClusterId:x16}.{Revision:x}");

    /// <summary>The later of the two (same cluster required).</summary>
    /// <exception cref="ConsistencyException">The tokens come from different clusters.</exception>
    public ConsistencyToken Merge(ConsistencyToken other)
    {
        if (other.ClusterId != ClusterId && other.ClusterId != 0 && ClusterId != 0)
        {
            throw ConsistencyException.OtherCluster(other, ClusterId);
        }

        return new ConsistencyToken(ClusterId == 0 ? other.ClusterId : ClusterId, Math.Max(Revision, other.Revision));
    }

    /// <summary>Parses a token string.</summary>
    /// <exception cref="ConsistencyException">Malformed (with <see cref="ConsistencyErrorKind.MalformedToken"/>).</exception>
    public static ConsistencyToken Parse(string? text) =>
        TryParse(text, out var token) ? token : throw ConsistencyException.Malformed(text);

    /// <summary>Parses a token string; false when it is not one.</summary>
    public static bool TryParse(string? text, out ConsistencyToken token)
    {
        token = default;
        if (text is null || text.Length > StringLengthMax || !text.StartsWith(FormatPrefix, StringComparison.Ordinal))
        {
            return false;
        }

        var body = text.AsSpan(FormatPrefix.Length);
        var dot = body.IndexOf('.');
        if (dot != 16 || body.Length == dot + 1)
        {
            return false;
        }

        if (!ulong.TryParse(body[..dot], NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out var clusterId)
            || !long.TryParse(body[(dot + 1)..], NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out var revision)
            || revision < 0)
        {
            return false;
        }

        token = new ConsistencyToken(clusterId, revision);
        return true;
    }
}
