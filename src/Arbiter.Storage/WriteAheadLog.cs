namespace Arbiter.Storage;

/// <summary>Options of the write-ahead log.</summary>
public sealed record WalOptions
{
    /// <summary>Directory holding segments and snapshots.</summary>
    public required string DirectoryPath { get; init; }

    /// <summary>Roll to a new segment file past this size.</summary>
    public long SegmentSizeBytesMax { get; init; } = 64L * 1024 * 1024;

    /// <summary>How many snapshots to keep.</summary>
    public int SnapshotsKeptMax { get; init; } = 2;

    /// <summary>Whether Flush fsyncs (false only for throwaway test directories).</summary>
    public bool FsyncEnabled { get; init; } = true;
}

/// <summary>One log record.</summary>
public sealed record LogRecord(long Index, ReadOnlyMemory<byte> Payload);

/// <summary>A snapshot on disk.</summary>
public sealed record SnapshotInfo(long Index, string FilePath, long SizeBytes);

/// <summary>Contract stub; replaced by the real log.</summary>
public sealed class WriteAheadLog : IDisposable
{
    private WriteAheadLog()
    {
    }

    /// <summary>Opens (or creates) the log.</summary>
    public static WriteAheadLog Open(WalOptions options) => throw new NotImplementedException(options.DirectoryPath);

    /// <summary>Last index on disk.</summary>
    public long LastIndex => throw new NotImplementedException();

    /// <summary>Last index fsynced.</summary>
    public long DurableIndex => throw new NotImplementedException();

    /// <summary>Newest valid snapshot.</summary>
    public SnapshotInfo? LatestSnapshot => throw new NotImplementedException();

    /// <summary>Bytes on disk.</summary>
    public long SizeBytes => throw new NotImplementedException();

    /// <summary>Opens a snapshot's payload.</summary>
    public Stream OpenSnapshot(SnapshotInfo snapshot) => throw new NotImplementedException(snapshot.FilePath);

    /// <summary>Records after an index.</summary>
    public IEnumerable<LogRecord> ReadFrom(long afterIndex) => throw new NotImplementedException(afterIndex.ToString(System.Globalization.CultureInfo.InvariantCulture));

    /// <summary>Buffers a record.</summary>
    public long Append(ReadOnlySpan<byte> payload) => throw new NotImplementedException(payload.Length.ToString(System.Globalization.CultureInfo.InvariantCulture));

    /// <summary>Writes and fsyncs buffered records.</summary>
    public void Flush() => throw new NotImplementedException();

    /// <summary>Writes a snapshot.</summary>
    public void WriteSnapshot(long index, Action<Stream> writePayload) => throw new NotImplementedException(index.ToString(System.Globalization.CultureInfo.InvariantCulture) + writePayload);

    /// <summary>Flushes and releases the lock.</summary>
    public void Dispose()
    {
    }
}
