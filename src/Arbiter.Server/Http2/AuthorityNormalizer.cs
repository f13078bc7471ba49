namespace Arbiter.Server.Http2;

/// <summary>
/// Turns an <c>:authority</c> that carries a URL (grpc-go's "passthrough:///http://host:port"
/// target sends <c>http://host:port</c>) into the <c>host:port</c> that Kestrel accepts.
/// </summary>
internal static class AuthorityNormalizer
{
    /// <summary>Returns true, with the host[:port] part, when <paramref name="value"/> starts with http:// or https://.</summary>
    public static bool TryNormalize(ReadOnlySpan<byte> value, out ReadOnlySpan<byte> normalized)
    {
        normalized = value;
        int schemeLength;
        if (StartsWithIgnoreCase(value, "http://"u8))
        {
            schemeLength = 7;
        }
        else if (StartsWithIgnoreCase(value, "https://"u8))
        {
            schemeLength = 8;
        }
        else
        {
            return false;
        }

        var rest = value[schemeLength..];
        var end = rest.IndexOfAny("/?#"u8);
        normalized = end >= 0 ? rest[..end] : rest;
        return true;
    }

    private static bool StartsWithIgnoreCase(ReadOnlySpan<byte> value, ReadOnlySpan<byte> lowerPrefix)
    {
        if (value.Length < lowerPrefix.Length)
        {
            return false;
        }

        for (var i = 0; i < lowerPrefix.Length; i++)
        {
            var expected = lowerPrefix[i];
            var isLetter = expected is >= (byte)'a' and <= (byte)'z';
            if (value[i] != expected && !(isLetter && (value[i] | 0x20) == expected))
            {
                return false;
            }
        }

        return true;
    }
}
