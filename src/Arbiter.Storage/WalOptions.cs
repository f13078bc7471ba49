namespace Arbiter.Storage;

/// <summary>Configuration of a <see cref="WriteAheadLog"/>.</summary>
public sealed record WalOptions
{
    /// <summary>Directory holding segments, snapshots and the lock file; created if missing.</summary>
    public required string DirectoryPath { get; init; }

    /// <summary>
    /// A segment rolls to a new file once the next record would take it past this size. The segment
    /// being appended to is preallocated to this size (on Linux file systems with fallocate), so this
    /// much disk space is taken up front; sealed segments are trimmed to what they hold.
    /// </summary>
    public long SegmentSizeBytesMax { get; init; } = 64L * 1024 * 1024;

    /// <summary>Number of snapshots kept on disk; older ones (and log segments they cover) are deleted.</summary>
    public int SnapshotsKeptMax { get; init; } = 2;

    /// <summary>Whether to fsync files and the directory. Turn off only for throwaway test directories.</summary>
    public bool FsyncEnabled { get; init; } = true;

    /// <summary>Largest payload <see cref="WriteAheadLog.Append"/> accepts.</summary>
    public int RecordPayloadSizeBytesMax { get; init; } = 64 * 1024 * 1024;

    /// <summary>
    /// Buffered (appended, not yet written) bytes past which <see cref="WriteAheadLog.Append"/> hands
    /// them to the OS early, without fsync, to bound memory for very large batches.
    /// </summary>
    public int PendingSizeBytesMax { get; init; } = 4 * 1024 * 1024;
}
