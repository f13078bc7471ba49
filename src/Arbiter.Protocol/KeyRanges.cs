using Google.Protobuf;

namespace Arbiter.Protocol;

/// <summary>Key arithmetic shared by the server-side recipes and the client SDK.</summary>
public static class KeyRanges
{
    /// <summary>The range_end that selects every key with <paramref name="prefix"/> (etcd's GetPrefixRangeEnd).</summary>
    public static ByteString PrefixEnd(ByteString prefix)
    {
        ArgumentNullException.ThrowIfNull(prefix);
        var bytes = prefix.ToByteArray();
        for (var i = bytes.Length - 1; i >= 0; i--)
        {
            if (bytes[i] < 0xff)
            {
                bytes[i]++;
                return ByteString.CopyFrom(bytes, 0, i + 1);
            }
        }

        // All 0xff (or empty): every key from the prefix on.
        return ByteString.CopyFrom(0);
    }

    /// <summary>Go's <c>%x</c> of a lease id, as etcd's recipes build keys with it.</summary>
    public static string LeaseHex(long lease) =>
        lease >= 0
            ? lease.ToString("x", System.Globalization.CultureInfo.InvariantCulture)
            : "-" + ((ulong)(-(lease + 1)) + 1).ToString("x", System.Globalization.CultureInfo.InvariantCulture);
}
