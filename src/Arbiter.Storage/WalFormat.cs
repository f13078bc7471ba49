using System.Buffers;
using System.Buffers.Binary;
using System.Globalization;

namespace Arbiter.Storage;

/// <summary>
/// The on-disk format. All integers little-endian; all checksums CRC-32C.
/// <code>
/// segment  wal-{firstIndex:D20}.seg
///   header  magic u32 "ARBW" | version u16 | reserved u16 | firstIndex u64 | reserved u32 | crc u32 (of the 20 bytes before)
///   record* crc u32 (of the 12 header bytes after it + payload) | payloadLength u32 | index u64 | payload
///   zeros*  preallocated space (fallocate to SegmentSizeBytesMax when the segment is created or
///           reopened for appending); sealed segments are trimmed to their records at a roll
/// snapshot snap-{index:D20}.snap
///   header  magic u32 "ARBS" | version u16 | reserved u16 | index u64
///   payload
///   trailer payloadLength u64 | crc u32 (of header + payload + payloadLength) | magic u32 "ARBE"
/// </code>
/// No record header is all zeros (indexes start at 1), so a zero header with only zeros after it ends
/// a segment's records. A zero header followed by anything non-zero is a bad record: a torn tail at
/// the end of the last segment if no valid record follows, corruption anywhere else.
/// </summary>
internal static class WalFormat
{
    public const uint SegmentMagic = 0x5742_5241; // "ARBW" read as little-endian
    public const ushort SegmentVersion = 1;
    public const int SegmentHeaderSizeBytes = 24;
    public const int RecordHeaderSizeBytes = 16;

    public const uint SnapshotMagic = 0x5342_5241; // "ARBS"
    public const uint SnapshotTrailerMagic = 0x4542_5241; // "ARBE"
    public const ushort SnapshotVersion = 1;
    public const int SnapshotHeaderSizeBytes = 16;
    public const int SnapshotTrailerSizeBytes = 16;

    public const string SegmentPrefix = "wal-";
    public const string SegmentSuffix = ".seg";
    public const string SnapshotPrefix = "snap-";
    public const string SnapshotSuffix = ".snap";
    public const string TempSuffix = ".tmp";
    public const string CorruptSuffix = ".corrupt";
    public const string LockFileName = "LOCK";

    public static string SegmentFileName(long firstIndex) =>
        string.Create(CultureInfo.InvariantCulture, $"{SegmentPrefix}{firstIndex:D20}{SegmentSuffix}");

    public static string SnapshotFileName(long index) =>
        string.Create(CultureInfo.InvariantCulture, $"{SnapshotPrefix}{index:D20}{SnapshotSuffix}");

    /// <summary>Parses the index out of a name like <c>wal-00000000000000000001.seg</c>.</summary>
    public static bool TryParseIndex(string fileName, string prefix, string suffix, out long index)
    {
        index = 0;
        if (!fileName.StartsWith(prefix, StringComparison.Ordinal) || !fileName.EndsWith(suffix, StringComparison.Ordinal))
        {
            return false;
        }

        ReadOnlySpan<char> digits = fileName.AsSpan(prefix.Length, fileName.Length - prefix.Length - suffix.Length);
        return digits.Length == 20
            && long.TryParse(digits, NumberStyles.None, CultureInfo.InvariantCulture, out index)
            && index >= 0;
    }

    public static void WriteSegmentHeader(Span<byte> destination, long firstIndex)
    {
        destination[..SegmentHeaderSizeBytes].Clear();
        BinaryPrimitives.WriteUInt32LittleEndian(destination, SegmentMagic);
        BinaryPrimitives.WriteUInt16LittleEndian(destination[4..], SegmentVersion);
        BinaryPrimitives.WriteInt64LittleEndian(destination[8..], firstIndex);
        BinaryPrimitives.WriteUInt32LittleEndian(destination[20..], Crc32C.Compute(destination[..20]));
    }

    /// <summary>Returns null if the header is valid, else what is wrong with it.</summary>
    public static string? CheckSegmentHeader(ReadOnlySpan<byte> header, out long firstIndex)
    {
        firstIndex = 0;
        if (header.Length < SegmentHeaderSizeBytes)
        {
            return $"segment header is {header.Length} bytes, expected {SegmentHeaderSizeBytes}";
        }

        if (BinaryPrimitives.ReadUInt32LittleEndian(header[20..]) != Crc32C.Compute(header[..20]))
        {
            return "segment header checksum mismatch";
        }

        if (BinaryPrimitives.ReadUInt32LittleEndian(header) != SegmentMagic)
        {
            return "not a segment file (bad magic number)";
        }

        ushort version = BinaryPrimitives.ReadUInt16LittleEndian(header[4..]);
        if (version != SegmentVersion)
        {
            return $"unsupported segment format version {version}";
        }

        firstIndex = BinaryPrimitives.ReadInt64LittleEndian(header[8..]);
        return null;
    }

    public static int RecordSizeBytes(int payloadLength) => RecordHeaderSizeBytes + payloadLength;

    public static void WriteRecord(IBufferWriter<byte> writer, long index, ReadOnlySpan<byte> payload)
    {
        int size = RecordSizeBytes(payload.Length);
        Span<byte> span = writer.GetSpan(size)[..size];
        BinaryPrimitives.WriteUInt32LittleEndian(span[4..], (uint)payload.Length);
        BinaryPrimitives.WriteInt64LittleEndian(span[8..], index);
        payload.CopyTo(span[RecordHeaderSizeBytes..]);
        BinaryPrimitives.WriteUInt32LittleEndian(span, Crc32C.Compute(span[4..]));
        writer.Advance(size);
    }

    /// <summary>Reads the length and index fields of a record header (not yet verified).</summary>
    public static (uint PayloadLength, long Index) ReadRecordHeader(ReadOnlySpan<byte> header) =>
        (BinaryPrimitives.ReadUInt32LittleEndian(header[4..]), BinaryPrimitives.ReadInt64LittleEndian(header[8..]));

    /// <summary>Whether the stored checksum matches the header fields and payload.</summary>
    public static bool RecordChecksumMatches(ReadOnlySpan<byte> header, ReadOnlySpan<byte> payload)
    {
        uint state = Crc32C.Append(Crc32C.Start, header[4..RecordHeaderSizeBytes]);
        state = Crc32C.Append(state, payload);
        return Crc32C.Finish(state) == BinaryPrimitives.ReadUInt32LittleEndian(header);
    }
}
