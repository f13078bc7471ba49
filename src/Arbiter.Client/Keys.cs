using System.Text;
using Google.Protobuf;

namespace Arbiter.Client;

/// <summary>Key helpers: UTF-8 conversion and etcd's range ends.</summary>
public static class Keys
{
    /// <summary>UTF-8 bytes of <paramref name="key"/>.</summary>
    public static ByteString From(string key) => ByteString.CopyFromUtf8(key ?? throw new ArgumentNullException(nameof(key)));

    /// <summary>The key as a UTF-8 string.</summary>
    public static string ToText(ByteString key) => (key ?? throw new ArgumentNullException(nameof(key))).ToStringUtf8();

    /// <summary>
    /// The range end that selects every key starting with <paramref name="prefix"/>: the prefix with its
    /// last byte below 0xff incremented, or "\0" (everything from the key on) when no byte can be.
    /// </summary>
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

        return ByteString.CopyFrom(0);
    }

    /// <summary>The range end for the string prefix <paramref name="prefix"/>.</summary>
    public static ByteString PrefixEnd(string prefix) => PrefixEnd(From(prefix));

    /// <summary>Lowercase hex without leading zeros, as etcd's Go client formats lease ids in lock keys.</summary>
    public static string LeaseHex(long leaseId) => leaseId.ToString("x", System.Globalization.CultureInfo.InvariantCulture);

    internal static string Text(ReadOnlySpan<byte> bytes) => Encoding.UTF8.GetString(bytes);
}
