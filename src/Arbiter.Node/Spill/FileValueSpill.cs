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

    /// <summary>Spills into <paramref name="directory"/> (created when missing; leftovers in it are deleted).</summary>
    /// <param name="directory">Where the segment files are created.</param>
    /// <param name="logger">Where a refused append is reported (once).</param>
    /// <param name="recentVersionsSizeBytes">See <see cref="IValueSpill.RecentVersionsSizeBytes"/>.</param>
    public FileValueSpill(string directory, ILogger logger, long recentVersionsSizeBytes = IValueSpill.DefaultRecentVersionsSizeBytes)
    {
        RecentVersionsSizeBytes = recentVersionsSizeBytes;
        _directory = directory;
        _logger = logger;
        Directory.CreateDirectory(directory);
        foreach (var leftover in Directory.EnumerateFiles(directory, "spill-*"))
        {
            File.Delete(leftover);
        }
    }

    /// <inheritdoc/>
    public long RecentVersionsSizeBytes { get; }

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
                _active = Segment.Create(path, this);
            }

            offset = _active.Append(bytes);
            segment = _active;
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

    private sealed class Segment : IValueSpillSegment
    {
        private readonly SafeFileHandle _handle;
        private readonly FileValueSpill _owner;
        private readonly Lock _lock = new();
        private byte[]? _buffer = new byte[BufferSizeBytes];
        private int _buffered;

        // Bytes in the file; an append lies wholly in the file or wholly in the buffer.
        private long _writtenBytes;

        private Segment(SafeFileHandle handle, FileValueSpill owner)
        {
            _handle = handle;
            _owner = owner;
        }

        // No version refers to this segment any more: its handle is being closed too, and the
        // unlinked file's space returns.
        ~Segment() => Interlocked.Add(ref _owner._liveBytes, -LengthBytes);

        public long LengthBytes => _writtenBytes + _buffered;

        public static Segment Create(string path, FileValueSpill owner)
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

            return new Segment(handle, owner);
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
