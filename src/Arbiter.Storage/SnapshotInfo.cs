namespace Arbiter.Storage;

/// <summary>A snapshot file on disk.</summary>
/// <param name="Index">Last log index the snapshot covers.</param>
/// <param name="FilePath">Full path of the snapshot file.</param>
/// <param name="SizeBytes">Size of the file, framing included.</param>
public sealed record SnapshotInfo(long Index, string FilePath, long SizeBytes);
