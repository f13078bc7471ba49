namespace Arbiter.Storage;

/// <summary>One log record: its index (dense, from 1) and its opaque payload.</summary>
/// <param name="Index">Position in the log, starting at 1.</param>
/// <param name="Payload">The bytes given to <see cref="WriteAheadLog.Append"/>; owned by the caller.</param>
public sealed record LogRecord(long Index, ReadOnlyMemory<byte> Payload);
