namespace Arbiter.Storage;

/// <summary>
/// Thrown when log or snapshot data on disk is damaged in a way that is not a torn tail: data that
/// may have been acknowledged is unreadable, so the log refuses to guess.
/// </summary>
public sealed class WalCorruptException : IOException
{
    /// <summary>Creates the exception for a damaged file at an offset.</summary>
    /// <param name="filePath">The damaged file.</param>
    /// <param name="offsetBytes">Byte offset in the file where the damage starts.</param>
    /// <param name="reason">What is wrong there.</param>
    public WalCorruptException(string filePath, long offsetBytes, string reason)
        : base($"Corrupt write-ahead log data in '{filePath}' at offset {offsetBytes}: {reason}")
    {
        FilePath = filePath;
        OffsetBytes = offsetBytes;
    }

    /// <summary>Creates the exception with a message only.</summary>
    public WalCorruptException()
        : this("(unknown)", 0, "unspecified")
    {
    }

    /// <summary>Creates the exception with a message only.</summary>
    /// <param name="message">The message.</param>
    public WalCorruptException(string message)
        : base(message)
    {
        FilePath = "(unknown)";
    }

    /// <summary>Creates the exception with a message and an inner exception.</summary>
    /// <param name="message">The message.</param>
    /// <param name="innerException">The cause.</param>
    public WalCorruptException(string message, Exception innerException)
        : base(message, innerException)
    {
        FilePath = "(unknown)";
    }

    /// <summary>The damaged file.</summary>
    public string FilePath { get; }

    /// <summary>Byte offset in <see cref="FilePath"/> where the damage starts.</summary>
    public long OffsetBytes { get; }
}
