using Arbiter.Core.Mvcc;
using Microsoft.Extensions.Logging;
using Microsoft.Win32.SafeHandles;

namespace Arbiter.Node.Spill;

/// <summary>
/// Pages versions out to files in the data directory as they are written, so the keyspace's values
/// and the history etcd keeps by default (every version until a compaction) cost disk and page
/// cache, not the process's managed heap — as etcd's versions live in bbolt's file.
/// </summary>
/// <remarks>
/// Each segment is a file unlinked as soon as it is created: nothing is left behind by a crash, and
/// the space is returned when the segment's handle closes, which happens once no version refers to
/// it (compaction dropped them all, or the state holding them was replaced) and the GC has collected
/// it. Its bytes are never needed across a restart: the state is rebuilt from the log and the
/// snapshots, which hold every value. Appends are buffered (one write per 64 KiB) and never
/// fsynced. The space shows in <c>df</c>, not in <c>du</c>.
/// <para>
/// The bytes appended last (<see cref="RecentSizeBytes"/>) are also kept in one array, written
/// round: a version written lately (a hot key) is read back with a copy instead of a system call.
/// It is the only cache: the state keeps no key-value objects for spilled versions, so nothing it
/// caches is promoted through the GC's generations to die in the oldest one.
/// </para>
/// </remarks>
internal sealed class FileValueSpill : IValueSpill
{
    /// <summary>A segment takes appends until it holds this many bytes.</summary>
    public const long SegmentSizeBytesMax = 32L << 20;

    private const int BufferSizeBytes = 64 << 10;

    private readonly string _directory;
    private readonly ILogger _logger;
    private Segment? _active;
    private long _segmentsCreated;
    private long _appendedBytes;

    // Appended bytes of segments not yet collected: the disk space the spill holds.
    private long _liveBytes;
    private bool _failureLogged;

    // The bytes appended last, written round at their position (below) modulo the length. A
    // reader checks, after copying, that no append started over what it copied (_recentWriting
    // is announced before the copy, _recentEnd published after it): a seqlock, since readers
    // outside the state's lock (a snapshot being written) may read while an append goes on.
    private readonly byte[] _recent;
    private long _recentEnd;
    private long _recentWriting;
    private long _recentReads;
    private long _fileReads;

    /// <summary>Spills into <paramref name="directory"/> (created when missing; leftovers in it are deleted).</summary>
    /// <param name="directory">Where the segment files are created.</param>
    /// <param name="logger">Where a refused append is reported (once).</param>
    /// <param name="recentSizeBytes">How many of the bytes appended last are kept in memory too (0: none).</param>
    public FileValueSpill(string directory, ILogger logger, int recentSizeBytes = DefaultRecentSizeBytes)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(recentSizeBytes);
        _recent = new byte[recentSizeBytes];
        _directory = directory;
        _logger = logger;
        Directory.CreateDirectory(directory);
        foreach (var leftover in Directory.EnumerateFiles(directory, "spill-*"))
        {
            File.Delete(leftover);
        }
    }

    /// <summary>The default of <see cref="RecentSizeBytes"/>: 4 MiB.</summary>
    public const int DefaultRecentSizeBytes = 4 << 20;

    /// <summary>How many of the bytes appended last are kept in memory as well.</summary>
    public int RecentSizeBytes => _recent.Length;

    /// <summary>Reads answered from the bytes appended last, without a system call (for tests and diagnostics).</summary>
    public long RecentReads => Interlocked.Read(ref _recentReads);

    /// <summary>Reads that went to a segment's file (for tests and diagnostics).</summary>
    public long FileReads => Interlocked.Read(ref _fileReads);

    /// <summary>Bytes appended so far (in every segment, live or returned).</summary>
    public long AppendedBytes => Interlocked.Read(ref _appendedBytes);

    /// <summary>Bytes in segments still open: the disk space the spill holds (its files are unlinked, so <c>du</c> does not show it).</summary>
    public long LiveBytes => Interlocked.Read(ref _liveBytes);

    /// <summary>Segments created so far.</summary>
    public long SegmentsCreated => Interlocked.Read(ref _segmentsCreated);

    /// <inheritdoc/>
    public bool TryAppend(ReadOnlySpan<byte> bytes, out IValueSpillSegment segment, out long offset)
    {
        try
        {
            if (_active is null || (_active.LengthBytes > 0 && _active.LengthBytes + bytes.Length > SegmentSizeBytesMax))
            {
                // The full segment's buffer is written before it is let go; if that fails, it stays active.
                _active?.Seal();
                _active = null;
                var path = Path.Combine(_directory, $"spill-{Environment.ProcessId}-{Interlocked.Increment(ref _segmentsCreated)}");
                _active = Segment.Create(path, this, AppendedBytes);
            }

            offset = _active.Append(bytes);
            segment = _active;
            RememberRecent(_active.BasePosition + offset, bytes);
            Interlocked.Add(ref _appendedBytes, bytes.Length);
            Interlocked.Add(ref _liveBytes, bytes.Length);
            return true;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            if (!_failureLogged)
            {
                _failureLogged = true;
                _logger.LogWarning(e, "Cannot page versions out to {Directory}; keeping them in memory until it works again", _directory);
            }

            segment = null!;
            offset = 0;
            return false;
        }
    }

    /// <summary>Keeps <paramref name="bytes"/>, appended at <paramref name="position"/> (positions only grow), among the bytes appended last.</summary>
    private void RememberRecent(long position, ReadOnlySpan<byte> bytes)
    {
        var ring = _recent;
        if (bytes.Length > ring.Length)
        {
            return;
        }

        var end = position + bytes.Length;
        Interlocked.Exchange(ref _recentWriting, end);
        var at = (int)(position % ring.Length);
        var first = Math.Min(bytes.Length, ring.Length - at);
        bytes[..first].CopyTo(ring.AsSpan(at));
        bytes[first..].CopyTo(ring);
        Volatile.Write(ref _recentEnd, end);
    }

    /// <summary>Copies the bytes at <paramref name="position"/> from the bytes appended last, if they are still there.</summary>
    private bool TryReadRecent(long position, Span<byte> destination)
    {
        var ring = _recent;
        if (ring.Length == 0 || position < Volatile.Read(ref _recentEnd) - ring.Length || position + destination.Length > Volatile.Read(ref _recentEnd))
        {
            return false;
        }

        var at = (int)(position % ring.Length);
        var first = Math.Min(destination.Length, ring.Length - at);
        ring.AsSpan(at, first).CopyTo(destination);
        ring.AsSpan(0, destination.Length - first).CopyTo(destination[first..]);

        // Valid only if no append started over these bytes while they were copied.
        Interlocked.MemoryBarrier();
        if (position < Volatile.Read(ref _recentWriting) - ring.Length)
        {
            return false;
        }

        Interlocked.Increment(ref _recentReads);
        return true;
    }

    private sealed class Segment : IValueSpillSegment
    {
        private readonly SafeFileHandle _handle;
        private readonly FileValueSpill _owner;
        private readonly Lock _lock = new();
        private byte[]? _buffer = new byte[BufferSizeBytes];
        private int _buffered;

        // Bytes in the file; an append lies wholly in the file or wholly in the buffer.
        private long _writtenBytes;

        private Segment(SafeFileHandle handle, FileValueSpill owner, long basePosition)
        {
            _handle = handle;
            _owner = owner;
            BasePosition = basePosition;
        }

        // No version refers to this segment any more: its handle is being closed too, and the
        // unlinked file's space returns.
        ~Segment() => Interlocked.Add(ref _owner._liveBytes, -LengthBytes);

        public long LengthBytes => _writtenBytes + _buffered;

        /// <summary>The spill's append position of this segment's first byte (what was appended before it).</summary>
        public long BasePosition { get; }

        public static Segment Create(string path, FileValueSpill owner, long basePosition)
        {
            var handle = File.OpenHandle(
                path,
                FileMode.CreateNew,
                FileAccess.ReadWrite,
                FileShare.ReadWrite | FileShare.Delete,
                OperatingSystem.IsWindows() ? FileOptions.DeleteOnClose : FileOptions.None);
            if (!OperatingSystem.IsWindows())
            {
                // Unlinked at once: the open handle keeps the bytes; closing it returns the space.
                File.Delete(path);
            }

            return new Segment(handle, owner, basePosition);
        }

        /// <summary>Appends under the state's write lock (one writer); returns the offset.</summary>
        public long Append(ReadOnlySpan<byte> bytes)
        {
            lock (_lock)
            {
                var buffer = _buffer ?? throw new InvalidOperationException("A sealed spill segment takes no appends.");
                if (bytes.Length > buffer.Length - _buffered)
                {
                    Flush(buffer);
                }

                var offset = _writtenBytes + _buffered;
                if (bytes.Length > buffer.Length)
                {
                    RandomAccess.Write(_handle, bytes, offset);
                    Volatile.Write(ref _writtenBytes, offset + bytes.Length);
                }
                else
                {
                    bytes.CopyTo(buffer.AsSpan(_buffered));
                    _buffered += bytes.Length;
                }

                return offset;
            }
        }

        /// <summary>Writes the buffer out and drops it: the segment takes no more appends.</summary>
        public void Seal()
        {
            lock (_lock)
            {
                if (_buffer is { } buffer)
                {
                    Flush(buffer);
                    _buffer = null;
                }
            }
        }

        public void Read(long offset, Span<byte> destination)
        {
            if (_owner.TryReadRecent(BasePosition + offset, destination))
            {
                return;
            }

            Interlocked.Increment(ref _owner._fileReads);
            if (offset + destination.Length > Volatile.Read(ref _writtenBytes))
            {
                lock (_lock)
                {
                    if (offset >= _writtenBytes)
                    {
                        _buffer.AsSpan((int)(offset - _writtenBytes), destination.Length).CopyTo(destination);
                        return;
                    }
                }
            }

            while (!destination.IsEmpty)
            {
                var read = RandomAccess.Read(_handle, destination, offset);
                if (read <= 0)
                {
                    throw new IOException($"A spill segment ended {destination.Length} bytes short at offset {offset}.");
                }

                destination = destination[read..];
                offset += read;
            }
        }

        private void Flush(byte[] buffer)
        {
            if (_buffered == 0)
            {
                return;
            }

            RandomAccess.Write(_handle, buffer.AsSpan(0, _buffered), _writtenBytes);
            Volatile.Write(ref _writtenBytes, _writtenBytes + _buffered);
            _buffered = 0;
        }
    }
}
