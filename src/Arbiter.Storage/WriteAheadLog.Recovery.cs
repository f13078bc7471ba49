namespace Arbiter.Storage;

/// <summary>Opening: scanning segments, cutting a torn tail, choosing a snapshot.</summary>
public sealed partial class WriteAheadLog
{
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

        // What a killed process left in the page cache is readable but maybe not on disk yet.
        if (_options.FsyncEnabled && _segments.Count > 0)
        {
            using var handle = File.OpenHandle(_segments[^1].FilePath, FileMode.Open, FileAccess.ReadWrite, FileShare.ReadWrite | FileShare.Delete);
            RandomAccess.FlushToDisk(handle);
            DirectorySync.Fsync(_directoryPath);
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
                problem = "partial record header at the end of the file";
            }
            else
            {
                stream.ReadExactly(recordHeader);
                (uint length, long index) = WalFormat.ReadRecordHeader(recordHeader);
                if (length > fileLength - offset - WalFormat.RecordHeaderSizeBytes || length > int.MaxValue - WalFormat.RecordHeaderSizeBytes)
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

        segment.WrittenBytes = fileLength;
        return segment;
    }

    /// <summary>
    /// A bad record is a torn tail only if nothing valid comes after it. Looks at every later offset
    /// for a record with a plausible index and a matching checksum; finding one means corruption.
    /// </summary>
    private static void ThrowIfValidRecordFollows(FileStream stream, string filePath, long badOffset, long lastGoodIndex, string problem)
    {
        long remaining = stream.Length - badOffset;
        if (remaining <= WalFormat.RecordHeaderSizeBytes)
        {
            return;
        }

        byte[] tail = new byte[remaining];
        stream.Position = badOffset;
        stream.ReadExactly(tail);
        long indexCeiling = lastGoodIndex + 1 + (remaining / WalFormat.RecordHeaderSizeBytes);
        for (int at = 1; at + WalFormat.RecordHeaderSizeBytes <= tail.Length; at++)
        {
            ReadOnlySpan<byte> candidate = tail.AsSpan(at);
            (uint length, long index) = WalFormat.ReadRecordHeader(candidate);
            if (index <= lastGoodIndex || index > indexCeiling || length > candidate.Length - WalFormat.RecordHeaderSizeBytes)
            {
                continue;
            }

            if (WalFormat.RecordChecksumMatches(candidate, candidate.Slice(WalFormat.RecordHeaderSizeBytes, (int)length)))
            {
                throw new WalCorruptException(
                    filePath,
                    badOffset,
                    $"{problem}, yet a valid record (index {index}) follows at offset {badOffset + at}; this is not a torn tail");
            }
        }
    }

    private void SyncDirectoryIfEnabled()
    {
        if (_options.FsyncEnabled)
        {
            DirectorySync.Fsync(_directoryPath);
        }
    }
}
