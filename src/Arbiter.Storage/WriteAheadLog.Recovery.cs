using System.Buffers;
using System.Buffers.Binary;

namespace Arbiter.Storage;

/// <summary>Opening: scanning segments, cutting a torn tail, choosing a snapshot.</summary>
public sealed partial class WriteAheadLog
{
    /// <summary>Read size when scanning a segment's tail (zero check, torn-tail check).</summary>
    private const int ScanChunkSizeBytes = 1024 * 1024;

    private void Recover()
    {
        foreach (string temp in Directory.EnumerateFiles(_directoryPath, "*" + WalFormat.TempSuffix))
        {
            // An unfinished snapshot: never renamed into place, so never relied upon.
            File.Delete(temp);
        }

        var segmentFiles = new List<(long FirstIndex, string FilePath)>();
        var snapshotFiles = new List<(long Index, string FilePath)>();
        foreach (string filePath in Directory.EnumerateFiles(_directoryPath))
        {
            string name = Path.GetFileName(filePath);
            if (WalFormat.TryParseIndex(name, WalFormat.SegmentPrefix, WalFormat.SegmentSuffix, out long firstIndex))
            {
                segmentFiles.Add((firstIndex, filePath));
            }
            else if (WalFormat.TryParseIndex(name, WalFormat.SnapshotPrefix, WalFormat.SnapshotSuffix, out long index))
            {
                snapshotFiles.Add((index, filePath));
            }
        }

        segmentFiles.Sort((a, b) => a.FirstIndex.CompareTo(b.FirstIndex));
        snapshotFiles.Sort((a, b) => a.Index.CompareTo(b.Index));

        for (int i = 0; i < segmentFiles.Count; i++)
        {
            bool isLast = i == segmentFiles.Count - 1;
            long expectedFirst = _segments.Count > 0 ? _segments[^1].LastIndex + 1 : -1;
            Segment? segment = ScanSegment(segmentFiles[i].FilePath, segmentFiles[i].FirstIndex, expectedFirst, isLast);
            if (segment is not null)
            {
                _segments.Add(segment);
            }
        }

        LastIndex = _segments.Count > 0 ? _segments[^1].LastIndex : 0;
        ChooseSnapshot(snapshotFiles);

        if (_segments.Count > 0)
        {
            using var handle = File.OpenHandle(_segments[^1].FilePath, FileMode.Open, FileAccess.ReadWrite, FileShare.ReadWrite | FileShare.Delete);

            // Appends go here next: (re)extend it like a new segment, which also covers files written
            // before segments were preallocated and files whose torn tail was just cut.
            NativeFile.TryPreallocate(handle, _options.SegmentSizeBytesMax);

            // What a killed process left in the page cache is readable but maybe not on disk yet;
            // a full fsync, since the size may have changed.
            if (_options.FsyncEnabled)
            {
                RandomAccess.FlushToDisk(handle);
                NativeFile.Fsync(_directoryPath);
            }
        }

        DurableIndex = LastIndex;
    }

    /// <summary>
    /// Verifies one segment. Returns null if it was a torn, record-less last segment that got deleted.
    /// <paramref name="expectedFirst"/> is -1 for the first segment (its start is checked against snapshots).
    /// </summary>
    private Segment? ScanSegment(string filePath, long nameIndex, long expectedFirst, bool isLast)
    {
        using var stream = new FileStream(filePath, FileMode.Open, FileAccess.ReadWrite, FileShare.ReadWrite | FileShare.Delete, 1024 * 1024);
        long fileLength = stream.Length;
        byte[] header = new byte[WalFormat.SegmentHeaderSizeBytes];
        int headerRead = stream.ReadAtLeast(header, header.Length, throwOnEndOfStream: false);
        string? headerError = WalFormat.CheckSegmentHeader(header.AsSpan(0, headerRead), out long firstIndex);
        if (headerError is null && firstIndex != nameIndex)
        {
            headerError = $"header says first index {firstIndex} but the file name says {nameIndex}";
        }

        if (headerError is not null)
        {
            if (!isLast)
            {
                throw new WalCorruptException(filePath, 0, headerError);
            }

            // A segment whose creation was torn: only acceptable if nothing valid follows.
            long previousLast = expectedFirst < 0 ? nameIndex - 1 : expectedFirst - 1;
            ThrowIfValidRecordFollows(stream, filePath, 0, previousLast, headerError);
            stream.Dispose();
            File.Delete(filePath);
            SyncDirectoryIfEnabled();
            RecoveredTailBytesTruncated += fileLength;
            return null;
        }

        if (expectedFirst >= 0 && firstIndex != expectedFirst)
        {
            throw new WalCorruptException(
                filePath, 0, $"gap in the log: segment starts at index {firstIndex}, expected {expectedFirst}");
        }

        var segment = new Segment(filePath, firstIndex, created: true, writtenBytes: WalFormat.SegmentHeaderSizeBytes);
        byte[] recordHeader = new byte[WalFormat.RecordHeaderSizeBytes];
        byte[] payload = new byte[4096];
        long offset = WalFormat.SegmentHeaderSizeBytes;
        while (offset < fileLength)
        {
            long expectedIndex = segment.LastIndex + 1;
            string? problem = null;
            bool checksumValid = false;
            if (fileLength - offset < WalFormat.RecordHeaderSizeBytes)
            {
                if (IsZeroFrom(stream, offset))
                {
                    break; // preallocated space too short for a header
                }

                problem = "partial record header at the end of the file";
            }
            else
            {
                stream.ReadExactly(recordHeader);
                (uint length, long index) = WalFormat.ReadRecordHeader(recordHeader);
                if (recordHeader.AsSpan().IndexOfAnyExcept((byte)0) < 0)
                {
                    // No record is all zeros (indexes start at 1): this is preallocated space, the end
                    // of the records, kept as it is; unless something non-zero comes after it.
                    if (IsZeroFrom(stream, offset + WalFormat.RecordHeaderSizeBytes))
                    {
                        break;
                    }

                    problem = "zero record header followed by non-zero bytes";
                }
                else if (length > fileLength - offset - WalFormat.RecordHeaderSizeBytes || length > int.MaxValue - WalFormat.RecordHeaderSizeBytes)
                {
                    problem = $"record length {length} runs past the end of the file";
                }
                else
                {
                    if (payload.Length < length)
                    {
                        payload = new byte[Math.Max(length, payload.Length * 2L)];
                    }

                    stream.ReadExactly(payload, 0, (int)length);
                    checksumValid = WalFormat.RecordChecksumMatches(recordHeader, payload.AsSpan(0, (int)length));
                    if (!checksumValid)
                    {
                        problem = $"checksum mismatch in the record expected to be index {expectedIndex}";
                    }
                    else if (index != expectedIndex)
                    {
                        problem = $"record has index {index}, expected {expectedIndex}";
                    }
                    else
                    {
                        segment.NoteRecord(index, offset);
                        segment.LastIndex = index;
                        offset += WalFormat.RecordSizeBytes((int)length);
                        continue;
                    }
                }
            }

            // A record with a valid checksum but the wrong index was written whole: not a torn write.
            if (!isLast || checksumValid)
            {
                throw new WalCorruptException(filePath, offset, problem);
            }

            ThrowIfValidRecordFollows(stream, filePath, offset, segment.LastIndex, problem);
            stream.SetLength(offset);
            if (_options.FsyncEnabled)
            {
                stream.Flush(flushToDisk: true);
            }

            RecoveredTailBytesTruncated += fileLength - offset;
            fileLength = offset;
        }

        if (!isLast && offset < fileLength)
        {
            // A sealed segment whose trim (at the roll) did not reach the disk: trim it now.
            stream.SetLength(offset);
            if (_options.FsyncEnabled)
            {
                stream.Flush(flushToDisk: true);
            }
        }

        segment.WrittenBytes = offset;
        return segment;
    }

    /// <summary>Whether every byte from <paramref name="offset"/> to the end of the file is zero; read in chunks.</summary>
    private static bool IsZeroFrom(FileStream stream, long offset)
    {
        long fileLength = stream.Length;
        if (offset >= fileLength)
        {
            return true;
        }

        byte[] chunk = ArrayPool<byte>.Shared.Rent(ScanChunkSizeBytes);
        try
        {
            stream.Position = offset;
            while (offset < fileLength)
            {
                int count = (int)Math.Min(chunk.Length, fileLength - offset);
                stream.ReadExactly(chunk, 0, count);
                if (chunk.AsSpan(0, count).IndexOfAnyExcept((byte)0) >= 0)
                {
                    return false;
                }

                offset += count;
            }

            return true;
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(chunk);
        }
    }

    /// <summary>
    /// A bad record is a torn tail only if nothing valid comes after it. Looks at every later offset
    /// for a record with a plausible index and a matching checksum; finding one means corruption.
    /// Reads in overlapping chunks, so a 64 MB preallocated tail costs no 64 MB array.
    /// </summary>
    private static void ThrowIfValidRecordFollows(FileStream stream, string filePath, long badOffset, long lastGoodIndex, string problem)
    {
        const int HeaderBytes = WalFormat.RecordHeaderSizeBytes;
        long fileLength = stream.Length;
        long remaining = fileLength - badOffset;
        if (remaining <= HeaderBytes)
        {
            return;
        }

        long indexCeiling = lastGoodIndex + 1 + (remaining / HeaderBytes);
        byte[] window = ArrayPool<byte>.Shared.Rent(ScanChunkSizeBytes);
        try
        {
            // A window holds candidate headers at windowStart + i for i + HeaderBytes <= count; the
            // next window starts at the first candidate whose header did not fit (overlap of 15 bytes).
            long windowStart = badOffset + 1;
            while (windowStart + HeaderBytes <= fileLength)
            {
                int count = (int)Math.Min(window.Length, fileLength - windowStart);
                stream.Position = windowStart;
                stream.ReadExactly(window, 0, count);
                for (int i = 0; i + HeaderBytes <= count; i++)
                {
                    if (lastGoodIndex >= 0)
                    {
                        // Index 0 is never plausible, so skip to the first candidate whose index
                        // field has a non-zero byte: zero runs (preallocated space) cost one vector scan.
                        int nonZero = window.AsSpan(i + 8, count - i - 8).IndexOfAnyExcept((byte)0);
                        if (nonZero < 0)
                        {
                            break;
                        }

                        i = Math.Max(i, i + 8 + nonZero - (HeaderBytes - 1));
                        if (i + HeaderBytes > count)
                        {
                            break;
                        }
                    }

                    long at = windowStart + i;
                    ReadOnlySpan<byte> candidate = window.AsSpan(i, HeaderBytes);
                    (uint length, long index) = WalFormat.ReadRecordHeader(candidate);
                    if (index <= lastGoodIndex || index > indexCeiling || length > fileLength - at - HeaderBytes)
                    {
                        continue;
                    }

                    bool valid = i + HeaderBytes + length <= count
                        ? WalFormat.RecordChecksumMatches(candidate, window.AsSpan(i + HeaderBytes, (int)length))
                        : RecordChecksumMatchesInFile(stream, candidate, at + HeaderBytes, length);
                    if (valid)
                    {
                        throw new WalCorruptException(
                            filePath,
                            badOffset,
                            $"{problem}, yet a valid record (index {index}) follows at offset {at}; this is not a torn tail");
                    }
                }

                windowStart += count - (HeaderBytes - 1);
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(window);
        }
    }

    /// <summary>Checks a candidate record whose payload runs past the scan window, reading it in chunks.</summary>
    private static bool RecordChecksumMatchesInFile(FileStream stream, ReadOnlySpan<byte> header, long payloadOffset, long payloadLength)
    {
        uint state = Crc32C.Append(Crc32C.Start, header[4..WalFormat.RecordHeaderSizeBytes]);
        byte[] chunk = ArrayPool<byte>.Shared.Rent(ScanChunkSizeBytes);
        try
        {
            stream.Position = payloadOffset;
            long left = payloadLength;
            while (left > 0)
            {
                int count = (int)Math.Min(chunk.Length, left);
                stream.ReadExactly(chunk, 0, count);
                state = Crc32C.Append(state, chunk.AsSpan(0, count));
                left -= count;
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(chunk);
        }

        return Crc32C.Finish(state) == BinaryPrimitives.ReadUInt32LittleEndian(header);
    }

    private void SyncDirectoryIfEnabled()
    {
        if (_options.FsyncEnabled)
        {
            NativeFile.Fsync(_directoryPath);
        }
    }
}
