using Google.Protobuf;

namespace Arbiter.Protocol.Transactions;

/// <summary>One lock of a multi-target Lock or of a Begin that carries locks (see transactions.proto).</summary>
public sealed partial class LockTarget
{
    /// <summary>An exclusive lock on <paramref name="key"/>, or on [key, rangeEnd) ("\0" = to the end of the keyspace).</summary>
    public static LockTarget Exclusive(string key, string? rangeEnd = null) => Of(key, rangeEnd, LockMode.Exclusive);

    /// <summary>A shared lock on <paramref name="key"/>, or on [key, rangeEnd) ("\0" = to the end of the keyspace).</summary>
    public static LockTarget Shared(string key, string? rangeEnd = null) => Of(key, rangeEnd, LockMode.Shared);

    private static LockTarget Of(string key, string? rangeEnd, LockMode mode)
    {
        ArgumentNullException.ThrowIfNull(key);
        return new LockTarget
        {
            Key = ByteString.CopyFromUtf8(key),
            RangeEnd = rangeEnd is null ? ByteString.Empty : ByteString.CopyFromUtf8(rangeEnd),
            Mode = mode,
        };
    }
}
