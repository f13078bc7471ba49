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
    public static ByteString PrefixEnd(ByteString prefix) => Arbiter.Protocol.KeyRanges.PrefixEnd(prefix);

    /// <summary>The range end for the string prefix <paramref name="prefix"/>.</summary>
    public static ByteString PrefixEnd(string prefix) => PrefixEnd(From(prefix));

    /// <summary>Lowercase hex without leading zeros, as etcd's Go client formats lease ids in lock keys.</summary>
    public static string LeaseHex(long leaseId) => Arbiter.Protocol.KeyRanges.LeaseHex(leaseId);

    internal static string Text(ReadOnlySpan<byte> bytes) => Encoding.UTF8.GetString(bytes);
}
