using System.Buffers.Binary;

namespace Arbiter.Storage;

/// <summary>Snapshots: writing, verifying, choosing at open, pruning.</summary>
public sealed partial class WriteAheadLog
{
    /// <summary>
    /// Writes a snapshot of the state up to <paramref name="index"/>: a temp file, fsync, rename,
    /// directory fsync. Then deletes snapshots beyond <see cref="WalOptions.SnapshotsKeptMax"/> and
    /// the segments whose records are all at or below the oldest kept snapshot.
    /// </summary>
    /// <remarks>
    /// The payload is written to the temp file without holding the log's lock, so another thread
    /// may keep appending and flushing meanwhile; only the rename and pruning take the lock. One
    /// snapshot at a time.
    /// </remarks>
    /// <param name="index">Last index the snapshot covers; at most <see cref="DurableIndex"/> and above the latest snapshot's.</param>
    /// <param name="writePayload">Writes the payload to the given stream (write-only; do not dispose it).</param>
    /// <exception cref="InvalidOperationException">Another snapshot is being written.</exception>
    public void WriteSnapshot(long index, Action<Stream> writePayload)
    {
        ArgumentNullException.ThrowIfNull(writePayload);
        string finalPath;
        lock (_gate)
        {
            ThrowIfUnusable();
            ThrowIfBadSnapshotIndex(index);
            if (_snapshotInProgress)
            {
                throw new InvalidOperationException("Another snapshot is being written.");
            }

            _snapshotInProgress = true;
            finalPath = Path.Combine(_directoryPath, WalFormat.SnapshotFileName(index));
        }

        string tempPath = finalPath + WalFormat.TempSuffix;
        try
        {
            long sizeBytes;
            try
            {
                sizeBytes = WriteSnapshotFile(tempPath, index, writePayload);
            }
            catch
            {
                File.Delete(tempPath);
                throw;
            }

            lock (_gate)
            {
                try
                {
                    ThrowIfUnusable();
                    File.Move(tempPath, finalPath);
                }
                catch
                {
                    File.Delete(tempPath);
                    throw;
                }

                // From here on a failure leaves the disk in an unknown state.
                Guarded(() =>
                {
                    SyncDirectoryIfEnabled();
                    _snapshots.Add(new SnapshotInfo(index, finalPath, sizeBytes));
                    Prune();
                });
            }
        }
        finally
        {
            lock (_gate)
            {
                _snapshotInProgress = false;
            }
        }
    }

    /// <summary>Opens a snapshot's payload for reading after verifying its checksum.</summary>
    /// <param name="snapshot">A snapshot from <see cref="LatestSnapshot"/>.</param>
    /// <returns>A read-only stream over the payload; the caller disposes it.</returns>
    /// <exception cref="WalCorruptException">The snapshot file is damaged.</exception>
    public Stream OpenSnapshot(SnapshotInfo snapshot)
    {
        ArgumentNullException.ThrowIfNull(snapshot);
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
        }

        var stream = new FileStream(snapshot.FilePath, FileMode.Open, FileAccess.Read, FileShare.Read | FileShare.Delete, 64 * 1024);
        try
        {
            string? problem = VerifySnapshot(stream, snapshot.Index, out long payloadLength);
            if (problem is not null)
            {
                throw new WalCorruptException(snapshot.FilePath, 0, problem);
            }

            return new BoundedReadStream(stream, WalFormat.SnapshotHeaderSizeBytes, payloadLength);
        }
        catch
        {
            stream.Dispose();
            throw;
        }
    }

    private void ThrowIfBadSnapshotIndex(long index)
    {
        if (index < 1 || index > DurableIndex)
        {
            throw new ArgumentOutOfRangeException(nameof(index), index, $"A snapshot index must be in 1..DurableIndex ({DurableIndex}).");
        }

        if (_snapshots.Count > 0 && index <= _snapshots[^1].Index)
        {
            throw new ArgumentOutOfRangeException(nameof(index), index, $"A snapshot at or after index {_snapshots[^1].Index} exists already.");
        }
    }

    private long WriteSnapshotFile(string tempPath, long index, Action<Stream> writePayload)
    {
        using var file = new FileStream(tempPath, FileMode.Create, FileAccess.Write, FileShare.None, 64 * 1024);
        Span<byte> header = stackalloc byte[WalFormat.SnapshotHeaderSizeBytes];
        header.Clear();
        BinaryPrimitives.WriteUInt32LittleEndian(header, WalFormat.SnapshotMagic);
        BinaryPrimitives.WriteUInt16LittleEndian(header[4..], WalFormat.SnapshotVersion);
        BinaryPrimitives.WriteInt64LittleEndian(header[8..], index);
        file.Write(header);

        using var payload = new ChecksumWriteStream(file, Crc32C.Append(Crc32C.Start, header));
        writePayload(payload);

        Span<byte> trailer = stackalloc byte[WalFormat.SnapshotTrailerSizeBytes];
        BinaryPrimitives.WriteInt64LittleEndian(trailer, payload.LengthBytes);
        uint crc = Crc32C.Finish(Crc32C.Append(payload.State, trailer[..8]));
        BinaryPrimitives.WriteUInt32LittleEndian(trailer[8..], crc);
        BinaryPrimitives.WriteUInt32LittleEndian(trailer[12..], WalFormat.SnapshotTrailerMagic);
        file.Write(trailer);
        file.Flush(flushToDisk: _options.FsyncEnabled);
        return file.Length;
    }

    /// <summary>Checks framing and checksum of a whole snapshot file. Returns null if valid, else the problem.</summary>
    private static string? VerifySnapshot(FileStream stream, long expectedIndex, out long payloadLength)
    {
        payloadLength = 0;
        long fileLength = stream.Length;
        if (fileLength < WalFormat.SnapshotHeaderSizeBytes + WalFormat.SnapshotTrailerSizeBytes)
        {
            return $"snapshot file is only {fileLength} bytes";
        }

        Span<byte> header = stackalloc byte[WalFormat.SnapshotHeaderSizeBytes];
        stream.Position = 0;
        stream.ReadExactly(header);
        if (BinaryPrimitives.ReadUInt32LittleEndian(header) != WalFormat.SnapshotMagic)
        {
            return "not a snapshot file (bad magic number)";
        }

        ushort version = BinaryPrimitives.ReadUInt16LittleEndian(header[4..]);
        if (version != WalFormat.SnapshotVersion)
        {
            return $"unsupported snapshot format version {version}";
        }

        long index = BinaryPrimitives.ReadInt64LittleEndian(header[8..]);
        if (index != expectedIndex)
        {
            return $"snapshot header says index {index}, the file name says {expectedIndex}";
        }

        Span<byte> trailer = stackalloc byte[WalFormat.SnapshotTrailerSizeBytes];
        stream.Position = fileLength - WalFormat.SnapshotTrailerSizeBytes;
        stream.ReadExactly(trailer);
        long length = BinaryPrimitives.ReadInt64LittleEndian(trailer);
        if (BinaryPrimitives.ReadUInt32LittleEndian(trailer[12..]) != WalFormat.SnapshotTrailerMagic
            || length != fileLength - WalFormat.SnapshotHeaderSizeBytes - WalFormat.SnapshotTrailerSizeBytes)
        {
            return "snapshot trailer is missing or its length does not match the file";
        }

        uint state = Crc32C.Append(Crc32C.Start, header);
        stream.Position = WalFormat.SnapshotHeaderSizeBytes;
        byte[] buffer = new byte[64 * 1024];
        long left = length;
        while (left > 0)
        {
            int read = stream.Read(buffer, 0, (int)Math.Min(buffer.Length, left));
            if (read == 0)
            {
                return "snapshot file ended early";
            }

            state = Crc32C.Append(state, buffer.AsSpan(0, read));
            left -= read;
        }

        state = Crc32C.Append(state, trailer[..8]);
        if (Crc32C.Finish(state) != BinaryPrimitives.ReadUInt32LittleEndian(trailer[8..]))
        {
            return "snapshot checksum mismatch";
        }

        payloadLength = length;
        return null;
    }

    /// <summary>
    /// At open: the newest valid snapshot the log continues from. A damaged newer snapshot is set
    /// aside (renamed *.corrupt) only when an older valid one is still covered by the log.
    /// </summary>
    private void ChooseSnapshot(List<(long Index, string FilePath)> snapshotFiles)
    {
        long logFirst = _segments.Count > 0 ? _segments[0].FirstIndex : 1;
        var damaged = new List<(string FilePath, string Problem)>();
        int chosen = -1;
        for (int i = snapshotFiles.Count - 1; i >= 0; i--)
        {
            (long index, string filePath) = snapshotFiles[i];
            string? problem;
            using (var stream = new FileStream(filePath, FileMode.Open, FileAccess.Read, FileShare.Read | FileShare.Delete, 64 * 1024))
            {
                problem = VerifySnapshot(stream, index, out _);
            }

            if (problem is null)
            {
                chosen = i;
                break;
            }

            damaged.Add((filePath, problem));
        }

        long snapshotIndex = chosen >= 0 ? snapshotFiles[chosen].Index : 0;
        bool covered = logFirst <= snapshotIndex + 1 && snapshotIndex <= LastIndex;
        if (!covered)
        {
            string where = _segments.Count > 0
                ? $"the log holds {logFirst}..{LastIndex}"
                : "the log is empty";
            string why = chosen >= 0
                ? $"snapshot at index {snapshotIndex} cannot be continued: {where}"
                : $"no valid snapshot, and {where} (it must start at 1)";
            if (damaged.Count > 0)
            {
                (string damagedPath, string damagedProblem) = damaged[0];
                throw new WalCorruptException(damagedPath, 0, $"{damagedProblem}; and {why}");
            }

            throw new WalCorruptException(_segments.Count > 0 ? _segments[0].FilePath : _directoryPath, 0, why);
        }

        foreach ((string filePath, _) in damaged)
        {
            File.Move(filePath, filePath + WalFormat.CorruptSuffix, overwrite: true);
        }

        if (damaged.Count > 0)
        {
            SyncDirectoryIfEnabled();
        }

        for (int i = 0; i <= chosen; i++)
        {
            (long index, string filePath) = snapshotFiles[i];
            _snapshots.Add(new SnapshotInfo(index, filePath, new FileInfo(filePath).Length));
        }
    }

    /// <summary>Deletes old snapshots, then segments entirely covered by the oldest kept snapshot.</summary>
    private void Prune()
    {
        while (_snapshots.Count > _options.SnapshotsKeptMax)
        {
            File.Delete(_snapshots[0].FilePath);
            _snapshots.RemoveAt(0);
        }

        long coveredIndex = _snapshots[0].Index;

        // Oldest first, each deletion made durable before the next, so a crash can only leave a
        // prefix deleted and never a gap. The last segment stays: it carries LastIndex.
        while (_segments.Count > 1 && _segments[0].LastIndex <= coveredIndex)
        {
            File.Delete(_segments[0].FilePath);
            _segments.RemoveAt(0);
            SyncDirectoryIfEnabled();
        }
    }
}
