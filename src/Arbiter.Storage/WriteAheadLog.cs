using System.Buffers;
using Microsoft.Win32.SafeHandles;

namespace Arbiter.Storage;

/// <summary>
/// A durable, checksummed, segmented log of opaque payloads with snapshots.
/// </summary>
/// <remarks>
/// <para>
/// Use from one thread at a time (the node's single writer loop). Calls are serialized by an
/// internal lock, so a <see cref="Dispose"/> from another thread is safe, but the log is not built
/// for concurrent writers; the exception is <see cref="WriteSnapshot"/>, which may run on another
/// thread while the writer appends. An enumeration from <see cref="ReadFrom"/> must not be
/// interleaved with <see cref="WriteSnapshot"/>, which may delete segments it is about to read.
/// </para>
/// <para>
/// If a write or fsync fails, the log stops accepting calls (what reached the disk is unknown after
/// a failed fsync); reopen it to recover from what is on disk.
/// </para>
/// </remarks>
public sealed partial class WriteAheadLog : IDisposable
{
    private readonly WalOptions _options;
    private readonly string _directoryPath;
    private readonly FileStream _lockFile;
    private readonly Lock _gate = new();
    private readonly List<Segment> _segments = [];
    private readonly List<SnapshotInfo> _snapshots = []; // ascending by index

    private SafeFileHandle? _writeHandle;
    private Segment? _writeSegment;
    private bool _writeHandleDirty;
    private bool _directoryDirty;
    private long _pendingBytes;
    private Exception? _failure;
    private bool _disposed;
    private bool _snapshotInProgress;

    private WriteAheadLog(WalOptions options, string directoryPath, FileStream lockFile)
    {
        _options = options;
        _directoryPath = directoryPath;
        _lockFile = lockFile;
    }

    /// <summary>Index of the last appended record (flushed or not); 0 if the log is empty.</summary>
    public long LastIndex { get; private set; }

    /// <summary>Index of the last record known to be fsynced.</summary>
    public long DurableIndex { get; private set; }

    /// <summary>How many times <see cref="Flush"/> synced the log's data to disk (for tests and diagnostics).</summary>
    public long DataSyncCount { get; private set; }

    /// <summary>First index still in the log; records before it live only in snapshots.</summary>
    public long FirstIndex
    {
        get
        {
            lock (_gate)
            {
                return _segments.Count > 0 ? _segments[0].FirstIndex : LastIndex + 1;
            }
        }
    }

    /// <summary>The newest valid snapshot, or null.</summary>
    public SnapshotInfo? LatestSnapshot
    {
        get
        {
            lock (_gate)
            {
                return _snapshots.Count > 0 ? _snapshots[^1] : null;
            }
        }
    }

    /// <summary>Bytes on disk: segment files and snapshot files.</summary>
    public long SizeBytes
    {
        get
        {
            lock (_gate)
            {
                long total = 0;
                foreach (Segment segment in _segments)
                {
                    total += segment.Created ? segment.WrittenBytes : 0;
                }

                foreach (SnapshotInfo snapshot in _snapshots)
                {
                    total += snapshot.SizeBytes;
                }

                return total;
            }
        }
    }

    /// <summary>Bytes cut off the end of the last segment (or whole torn segments) when this log was opened.</summary>
    public long RecoveredTailBytesTruncated { get; private set; }

    /// <summary>
    /// Opens (creating if needed) the log in <see cref="WalOptions.DirectoryPath"/>: takes an exclusive
    /// lock on the directory, verifies every segment, cuts a torn tail off the last one, picks the newest
    /// valid snapshot, and fsyncs what it found so that <see cref="DurableIndex"/> equals <see cref="LastIndex"/>.
    /// </summary>
    /// <param name="options">Where and how to store the log.</param>
    /// <returns>The open log; dispose it to release the directory.</returns>
    /// <exception cref="IOException">The directory is locked by another open log, in this or another process.</exception>
    /// <exception cref="WalCorruptException">Data is damaged other than by a torn tail, or indexes have a gap.</exception>
    public static WriteAheadLog Open(WalOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentOutOfRangeException.ThrowIfLessThan(options.SegmentSizeBytesMax, WalFormat.SegmentHeaderSizeBytes + WalFormat.RecordHeaderSizeBytes);
        ArgumentOutOfRangeException.ThrowIfLessThan(options.SnapshotsKeptMax, 1);
        ArgumentOutOfRangeException.ThrowIfNegative(options.RecordPayloadSizeBytesMax);
        ArgumentOutOfRangeException.ThrowIfNegative(options.PendingSizeBytesMax);

        string directoryPath = Path.GetFullPath(options.DirectoryPath);
        if (!Directory.Exists(directoryPath))
        {
            Directory.CreateDirectory(directoryPath);

            // The new directory's own entry must be durable too, or the whole log can vanish.
            string? parent = Path.GetDirectoryName(directoryPath);
            if (options.FsyncEnabled && parent is not null)
            {
                NativeFile.Fsync(parent);
            }
        }

        FileStream lockFile = AcquireLock(directoryPath);
        var log = new WriteAheadLog(options, directoryPath, lockFile);
        try
        {
            log.Recover();
            return log;
        }
        catch
        {
            log.ReleaseResources();
            throw;
        }
    }

    /// <summary>
    /// Buffers one record and returns its index (<see cref="LastIndex"/> + 1). Not durable until
    /// <see cref="Flush"/> returns.
    /// </summary>
    /// <param name="payload">Opaque bytes; copied before this returns.</param>
    /// <returns>The record's index.</returns>
    public long Append(ReadOnlySpan<byte> payload)
    {
        lock (_gate)
        {
            ThrowIfUnusable();
            if (payload.Length > _options.RecordPayloadSizeBytesMax)
            {
                throw new ArgumentException(
                    $"Payload of {payload.Length} bytes exceeds RecordPayloadSizeBytesMax ({_options.RecordPayloadSizeBytesMax}).",
                    nameof(payload));
            }

            long index = LastIndex + 1;
            int recordBytes = WalFormat.RecordSizeBytes(payload.Length);
            Segment? active = _segments.Count > 0 ? _segments[^1] : null;
            if (active is null || (!active.IsEmpty && active.TotalBytes + recordBytes > _options.SegmentSizeBytesMax))
            {
                active = new Segment(Path.Combine(_directoryPath, WalFormat.SegmentFileName(index)), index, created: false, writtenBytes: 0);
                _segments.Add(active);
            }

            active.Pending ??= new ArrayBufferWriter<byte>();
            active.NoteRecord(index, active.TotalBytes);
            WalFormat.WriteRecord(active.Pending, index, payload);
            active.LastIndex = index;
            LastIndex = index;
            _pendingBytes += recordBytes;

            if (_pendingBytes > _options.PendingSizeBytesMax)
            {
                Guarded(WritePending);
            }

            return index;
        }
    }

    /// <summary>
    /// Hands every buffered record to the operating system without an fsync: from then on they
    /// survive the process being killed, though not a power loss or a kernel crash, until
    /// <see cref="Flush"/> makes them durable.
    /// </summary>
    public void WriteUnsynced()
    {
        lock (_gate)
        {
            ThrowIfUnusable();
            Guarded(WritePending);
        }
    }

    /// <summary>
    /// Writes all buffered records and fsyncs them (and the directory, if a segment was created).
    /// When this returns, every appended record is durable. Cheap when nothing is buffered.
    /// </summary>
    public void Flush()
    {
        lock (_gate)
        {
            ThrowIfUnusable();
            if (_pendingBytes == 0 && !_writeHandleDirty && !_directoryDirty)
            {
                DurableIndex = LastIndex;
                return;
            }

            Guarded(() =>
            {
                WritePending();
                if (_options.FsyncEnabled && _writeHandle is not null)
                {
                    // Records go into preallocated space, so fdatasync has no size change to commit.
                    var started = System.Diagnostics.Stopwatch.GetTimestamp();
                    NativeFile.DataSync(_writeHandle);
                    StorageMetrics.WalFsyncDurationSeconds.Record(System.Diagnostics.Stopwatch.GetElapsedTime(started).TotalSeconds);
                    DataSyncCount++;
                }

                _writeHandleDirty = false;
                SyncDirectoryIfDirty();
                DurableIndex = LastIndex;
            });
        }
    }

    /// <summary>
    /// Records with index greater than <paramref name="afterIndex"/>, in order, up to the
    /// <see cref="LastIndex"/> at the time of the call (buffered records included). Checksums are verified.
    /// </summary>
    /// <param name="afterIndex">Return records after this one; at least <see cref="FirstIndex"/> - 1.</param>
    /// <returns>A lazy sequence; each payload is a fresh array the caller owns.</returns>
    /// <exception cref="InvalidOperationException">Records after <paramref name="afterIndex"/> were compacted away.</exception>
    public IEnumerable<LogRecord> ReadFrom(long afterIndex)
    {
        lock (_gate)
        {
            ThrowIfUnusable();
            ArgumentOutOfRangeException.ThrowIfNegative(afterIndex);
            long first = _segments.Count > 0 ? _segments[0].FirstIndex : LastIndex + 1;
            if (afterIndex < first - 1)
            {
                throw new InvalidOperationException(
                    $"Records {afterIndex + 1}..{first - 1} were compacted into a snapshot; the log starts at {first}.");
            }

            long endIndex = LastIndex;
            if (afterIndex >= endIndex)
            {
                return [];
            }

            // Buffered records become readable through the files (written, not fsynced).
            Guarded(WritePending);

            var plan = new List<(string FilePath, long StartIndex, long StartOffset, long LastIndex)>();
            foreach (Segment segment in _segments)
            {
                if (segment.LastIndex <= afterIndex || segment.IsEmpty)
                {
                    continue;
                }

                (long startIndex, long startOffset) = segment.SeekPoint(afterIndex + 1);
                plan.Add((segment.FilePath, startIndex, startOffset, Math.Min(segment.LastIndex, endIndex)));
            }

            return ReadSegments(plan, afterIndex);
        }
    }

    /// <summary>Flushes buffered records, closes files and releases the directory lock. Safe to call more than once.</summary>
    public void Dispose()
    {
        lock (_gate)
        {
            if (_disposed)
            {
                return;
            }

            try
            {
                if (_failure is null)
                {
                    Flush();
                }
            }
            finally
            {
                _disposed = true;
                ReleaseResources();
            }
        }
    }

    private static FileStream AcquireLock(string directoryPath)
    {
        string lockPath = Path.Combine(directoryPath, WalFormat.LockFileName);
        try
        {
            // FileShare.None takes flock(LOCK_EX) on Unix, which also conflicts within this process.
            var lockFile = new FileStream(lockPath, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
            lockFile.SetLength(0);
            lockFile.Write(System.Text.Encoding.ASCII.GetBytes($"{Environment.ProcessId}\n"));
            lockFile.Flush();
            return lockFile;
        }
        catch (IOException ex)
        {
            throw new IOException(
                $"Write-ahead log directory '{directoryPath}' is locked: another WriteAheadLog, in this or another process, has it open ({ex.Message}).",
                ex);
        }
    }

    private static IEnumerable<LogRecord> ReadSegments(
        List<(string FilePath, long StartIndex, long StartOffset, long LastIndex)> plan,
        long afterIndex)
    {
        byte[] header = new byte[WalFormat.RecordHeaderSizeBytes];
        foreach ((string filePath, long startIndex, long startOffset, long lastIndex) in plan)
        {
            using var stream = new FileStream(filePath, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete, 64 * 1024);
            stream.Position = startOffset;
            for (long expected = startIndex; expected <= lastIndex; expected++)
            {
                long offset = stream.Position;
                if (stream.ReadAtLeast(header, header.Length, throwOnEndOfStream: false) < header.Length)
                {
                    throw new WalCorruptException(filePath, offset, $"record {expected} is missing (file ends)");
                }

                (uint length, long index) = WalFormat.ReadRecordHeader(header);
                if (length > stream.Length - offset - header.Length)
                {
                    throw new WalCorruptException(filePath, offset, $"record {expected} has length {length} past the end of the file");
                }

                byte[] payload = new byte[length];
                stream.ReadExactly(payload);
                if (index != expected || !WalFormat.RecordChecksumMatches(header, payload))
                {
                    throw new WalCorruptException(filePath, offset, $"record {expected} fails its checksum or has index {index}");
                }

                if (index > afterIndex)
                {
                    yield return new LogRecord(index, payload);
                }
            }
        }
    }

    /// <summary>Hands buffered records to the OS (no fsync), creating segment files as needed.</summary>
    private void WritePending()
    {
        if (_pendingBytes == 0)
        {
            return;
        }

        int start = _segments.Count - 1;
        while (start > 0 && (_segments[start - 1].PendingBytes > 0 || !_segments[start - 1].Created))
        {
            start--;
        }

        for (int i = start; i < _segments.Count; i++)
        {
            Segment segment = _segments[i];
            if (segment.PendingBytes == 0 && segment.Created)
            {
                continue;
            }

            SafeFileHandle handle = HandleFor(segment);
            ArrayBufferWriter<byte> pending = segment.Pending!;
            RandomAccess.Write(handle, pending.WrittenSpan, segment.WrittenBytes);
            segment.WrittenBytes += pending.WrittenCount;
            _pendingBytes -= pending.WrittenCount;
            _writeHandleDirty = true;

            // Keep the active segment's buffer for the next batch; drop the rolled one's.
            if (i == _segments.Count - 1)
            {
                pending.ResetWrittenCount();
            }
            else
            {
                segment.Pending = null;
            }
        }
    }

    /// <summary>
    /// The write handle for <paramref name="segment"/>, creating its file if it does not exist yet.
    /// Creating a segment seals the one before it first.
    /// </summary>
    private SafeFileHandle HandleFor(Segment segment)
    {
        if (_writeSegment == segment && _writeHandle is not null)
        {
            return _writeHandle;
        }

        if (!segment.Created)
        {
            int position = _segments.IndexOf(segment);
            if (position > 0 && _segments[position - 1].Created)
            {
                SealSegment(_segments[position - 1]);
            }
        }

        if (_writeHandle is not null)
        {
            // Normally the segment just sealed, already durable; if not, it must be before it closes.
            if (_writeHandleDirty && _options.FsyncEnabled)
            {
                RandomAccess.FlushToDisk(_writeHandle);
            }

            _writeHandle.Dispose();
            _writeHandle = null;
            _writeSegment = null;
            _writeHandleDirty = false;
        }

        if (segment.Created)
        {
            _writeHandle = File.OpenHandle(segment.FilePath, FileMode.Open, FileAccess.ReadWrite, FileShare.ReadWrite | FileShare.Delete);
        }
        else
        {
            _writeHandle = File.OpenHandle(segment.FilePath, FileMode.CreateNew, FileAccess.ReadWrite, FileShare.ReadWrite | FileShare.Delete);

            // Before the header, so that no later write changes the file size (fdatasync stays cheap).
            NativeFile.TryPreallocate(_writeHandle, _options.SegmentSizeBytesMax);
            Span<byte> header = stackalloc byte[WalFormat.SegmentHeaderSizeBytes];
            WalFormat.WriteSegmentHeader(header, segment.FirstIndex);
            RandomAccess.Write(_writeHandle, header, 0);
            segment.Created = true;
            segment.WrittenBytes = WalFormat.SegmentHeaderSizeBytes;
            _writeHandleDirty = true;
            _directoryDirty = true;
        }

        _writeSegment = segment;
        return _writeHandle;
    }

    /// <summary>
    /// Before a newer segment is created: trims <paramref name="sealedSegment"/>'s preallocated tail
    /// so it takes only the space it uses, and makes it durable (a full fsync, since the size may
    /// change), so recovery never sees a later segment after a torn earlier one.
    /// </summary>
    private void SealSegment(Segment sealedSegment)
    {
        bool ownHandle = _writeSegment != sealedSegment || _writeHandle is null;
        SafeFileHandle handle = ownHandle
            ? File.OpenHandle(sealedSegment.FilePath, FileMode.Open, FileAccess.ReadWrite, FileShare.ReadWrite | FileShare.Delete)
            : _writeHandle!;
        try
        {
            bool trimmed = RandomAccess.GetLength(handle) > sealedSegment.WrittenBytes;
            if (trimmed)
            {
                RandomAccess.SetLength(handle, sealedSegment.WrittenBytes);
            }

            if (_options.FsyncEnabled && (trimmed || (!ownHandle && _writeHandleDirty)))
            {
                RandomAccess.FlushToDisk(handle);
            }

            if (!ownHandle)
            {
                _writeHandleDirty = false;
            }
        }
        finally
        {
            if (ownHandle)
            {
                handle.Dispose();
            }
        }
    }

    private void SyncDirectoryIfDirty()
    {
        if (_directoryDirty && _options.FsyncEnabled)
        {
            NativeFile.Fsync(_directoryPath);
        }

        _directoryDirty = false;
    }

    /// <summary>Runs an I/O step; if it fails, the log refuses further use (the disk state is unknown).</summary>
    private void Guarded(Action step)
    {
        try
        {
            step();
        }
        catch (Exception ex)
        {
            _failure = ex;
            throw;
        }
    }

    private void ThrowIfUnusable()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (_failure is not null)
        {
            throw new InvalidOperationException("The write-ahead log failed earlier and must be reopened.", _failure);
        }
    }

    private void ReleaseResources()
    {
        _writeHandle?.Dispose();
        _writeHandle = null;
        _writeSegment = null;
        _lockFile.Dispose();
    }
}
