namespace Arbiter.Crdt;

/// <summary>
/// Bad input to the CRDT layer: an operation that does not fit the key's type, a value over a
/// limit, a malformed context or encoding, a type mismatch in a join. The message is meant for the
/// user (the server answers it as InvalidArgument). Whatever threw it changed nothing.
/// </summary>
public class CrdtException : Exception
{
    /// <summary>An exception with a user-facing message.</summary>
    public CrdtException(string message)
        : base(message)
    {
    }

    /// <summary>An exception with a user-facing message and the error that caused it.</summary>
    public CrdtException(string message, Exception innerException)
        : base(message, innerException)
    {
    }

    /// <summary>An exception with a generic message.</summary>
    public CrdtException()
        : base("invalid CRDT input")
    {
    }
}

/// <summary>
/// A remote hybrid logical clock timestamp lies further in the future than the clock's maximum
/// offset allows: the peer's clock (or the token's origin) is not trusted, and the clock is left
/// unchanged. Raise it as an alarm.
/// </summary>
public sealed class ClockOffsetException : CrdtException
{
    /// <summary>An exception naming the refused timestamp and the bound it broke.</summary>
    public ClockOffsetException(Hlc remote, long physicalWallMs, long maxOffsetMs)
        : base($"clock offset too large: a remote timestamp {remote} is {remote.WallMs - physicalWallMs} ms ahead of the local clock ({physicalWallMs} ms), more than the maximum offset of {maxOffsetMs} ms; refused")
    {
        Remote = remote;
        PhysicalWallMs = physicalWallMs;
        MaxOffsetMs = maxOffsetMs;
    }

    /// <summary>The refused timestamp.</summary>
    public Hlc Remote { get; }

    /// <summary>The local physical time it was compared with, in milliseconds since the Unix epoch.</summary>
    public long PhysicalWallMs { get; }

    /// <summary>The maximum offset in force, in milliseconds.</summary>
    public long MaxOffsetMs { get; }

    /// <summary>How far ahead of the local clock the remote timestamp was, in milliseconds.</summary>
    public long OffsetMs => Remote.WallMs - PhysicalWallMs;
}
