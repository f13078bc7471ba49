using System.Buffers;

namespace Arbiter.Storage;

/// <summary>In-memory bookkeeping for one segment file: its index range, size and a sparse offset index.</summary>
internal sealed class Segment
{
    /// <summary>A checkpoint (index → file offset) every this many bytes, so reads seek instead of scanning.</summary>
    private const long CheckpointSpacingBytes = 64 * 1024;

    private readonly List<long> _checkpointIndexes = [];
    private readonly List<long> _checkpointOffsets = [];

    public Segment(string filePath, long firstIndex, bool created, long writtenBytes)
    {
        FilePath = filePath;
        FirstIndex = firstIndex;
        LastIndex = firstIndex - 1;
        Created = created;
        WrittenBytes = writtenBytes;
    }

    public string FilePath { get; }

    public long FirstIndex { get; }

    /// <summary>Last index in this segment, written or pending; FirstIndex - 1 when empty.</summary>
    public long LastIndex { get; set; }

    /// <summary>Whether the file exists (new segments are created on the first write).</summary>
    public bool Created { get; set; }

    /// <summary>Bytes in the file, header included.</summary>
    public long WrittenBytes { get; set; }

    /// <summary>Encoded records not yet written to the file.</summary>
    public ArrayBufferWriter<byte>? Pending { get; set; }

    public long PendingBytes => Pending?.WrittenCount ?? 0;

    public bool IsEmpty => LastIndex < FirstIndex;

    /// <summary>Size the file will have once pending bytes are written.</summary>
    public long TotalBytes => (Created ? WrittenBytes : WalFormat.SegmentHeaderSizeBytes) + PendingBytes;

    public void NoteRecord(long index, long offset)
    {
        if (_checkpointOffsets.Count == 0 || offset - _checkpointOffsets[^1] >= CheckpointSpacingBytes)
        {
            _checkpointIndexes.Add(index);
            _checkpointOffsets.Add(offset);
        }
    }

    /// <summary>Greatest checkpoint at or before <paramref name="index"/>: where to start reading for it.</summary>
    public (long Index, long Offset) SeekPoint(long index)
    {
        int found = _checkpointIndexes.BinarySearch(index);
        if (found < 0)
        {
            found = ~found - 1;
        }

        return found < 0
            ? (FirstIndex, WalFormat.SegmentHeaderSizeBytes)
            : (_checkpointIndexes[found], _checkpointOffsets[found]);
    }
}
