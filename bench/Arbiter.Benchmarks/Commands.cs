using System.Globalization;
using Arbiter.Protocol.Etcd;
using Arbiter.Protocol.Internal;
using Google.Protobuf;

namespace Arbiter.Benchmarks;

/// <summary>Keys, values and commands shared by the benchmarks.</summary>
public static class Commands
{
    /// <summary>Key <paramref name="slot"/> as bytes ("/bench/00000042").</summary>
    public static ByteString Key(int slot) => ByteString.CopyFromUtf8("/bench/" + slot.ToString("D8", CultureInfo.InvariantCulture));

    /// <summary>Start of every benchmark key.</summary>
    public static ByteString Prefix { get; } = ByteString.CopyFromUtf8("/bench/");

    /// <summary>range_end selecting every key under <see cref="Prefix"/>.</summary>
    public static ByteString PrefixEnd { get; } = ByteString.CopyFromUtf8("/bench0");

    /// <summary>A value of <paramref name="sizeBytes"/> bytes.</summary>
    public static ByteString Value(int sizeBytes)
    {
        var bytes = new byte[sizeBytes];
        new Random(42).NextBytes(bytes);
        return ByteString.CopyFrom(bytes);
    }

    /// <summary>A Put command, as the node would propose it.</summary>
    public static Command Put(ByteString key, ByteString value, long timeMs = 1) =>
        new() { TimeMs = timeMs, Put = new PutRequest { Key = key, Value = value } };
}
