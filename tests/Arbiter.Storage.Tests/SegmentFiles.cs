using System.Globalization;
using Arbiter.Storage.CrashHost;
using Microsoft.Win32.SafeHandles;

namespace Arbiter.Storage.Tests;

/// <summary>Layout of segment files holding the deterministic records of <see cref="Records"/>.</summary>
internal static class SegmentFiles
{
    public const int HeaderSizeBytes = 24;
    public const int RecordHeaderSizeBytes = 16;

    public static long FirstIndexOf(string segment) =>
        long.Parse(Path.GetFileName(segment)[4..24], CultureInfo.InvariantCulture);

    /// <summary>Offsets just past each record of the segment starting at <paramref name="firstIndex"/> (first entry: the header end).</summary>
    public static List<long> RecordEnds(long firstIndex, long lastIndex)
    {
        var ends = new List<long> { HeaderSizeBytes };
        for (long index = firstIndex; index <= lastIndex; index++)
        {
            ends.Add(ends[^1] + RecordHeaderSizeBytes + CrashPayload.ForRecord(index).Length);
        }

        return ends;
    }

    /// <summary>Bytes the records <paramref name="firstIndex"/>..<paramref name="lastIndex"/> take in their segment, header included.</summary>
    public static long WrittenBytes(long firstIndex, long lastIndex) => RecordEnds(firstIndex, lastIndex)[^1];

    /// <summary>File offset of record <paramref name="index"/> within <paramref name="segment"/>.</summary>
    public static long OffsetOf(string segment, long index) => RecordEnds(FirstIndexOf(segment), index - 1)[^1];

    /// <summary>
    /// Whether fallocate extends files in <paramref name="directoryPath"/> (Linux, and a file system
    /// that supports it). Where it does not, the log falls back to growing files and tests of the
    /// preallocated length have nothing to check.
    /// </summary>
    public static bool PreallocationWorks(string directoryPath)
    {
        string probe = Path.Combine(directoryPath, "fallocate-probe");
        try
        {
            using SafeFileHandle handle = File.OpenHandle(probe, FileMode.CreateNew, FileAccess.ReadWrite);
            return NativeFile.TryPreallocate(handle, 8192) && RandomAccess.GetLength(handle) == 8192;
        }
        finally
        {
            File.Delete(probe);
        }
    }

    /// <summary>Overwrites bytes at <paramref name="offset"/>, extending the file if needed.</summary>
    public static void WriteAt(string filePath, long offset, ReadOnlySpan<byte> bytes)
    {
        using var file = new FileStream(filePath, FileMode.Open, FileAccess.ReadWrite);
        file.Position = offset;
        file.Write(bytes);
    }

    public static void SetLength(string filePath, long lengthBytes)
    {
        using var file = new FileStream(filePath, FileMode.Open, FileAccess.ReadWrite);
        file.SetLength(lengthBytes);
    }

    /// <summary>Whether the file holds only zeros from <paramref name="offset"/> on.</summary>
    public static bool IsZeroFrom(string filePath, long offset)
    {
        using var file = new FileStream(filePath, FileMode.Open, FileAccess.Read);
        file.Position = offset;
        byte[] chunk = new byte[1024 * 1024];
        int read;
        while ((read = file.Read(chunk)) > 0)
        {
            if (chunk.AsSpan(0, read).IndexOfAnyExcept((byte)0) >= 0)
            {
                return false;
            }
        }

        return true;
    }
}
