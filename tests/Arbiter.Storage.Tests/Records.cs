using Arbiter.Storage.CrashHost;

namespace Arbiter.Storage.Tests;

/// <summary>Helpers to write and check deterministic records.</summary>
internal static class Records
{
    public static void AppendRange(WriteAheadLog wal, long count)
    {
        for (long i = 0; i < count; i++)
        {
            long index = wal.Append(CrashPayload.ForRecord(wal.LastIndex + 1));
            Assert.Equal(wal.LastIndex, index);
        }
    }

    /// <summary>A new directory holding a flushed log of <paramref name="records"/> deterministic records.</summary>
    public static TempDirectory WriteLog(long records, long segmentSizeBytesMax)
    {
        var dir = new TempDirectory();
        using var wal = WriteAheadLog.Open(dir.Options(segmentSizeBytesMax));
        AppendRange(wal, records);
        wal.Flush();
        return dir;
    }

    /// <summary>Asserts the log holds exactly the deterministic records after <paramref name="afterIndex"/> up to LastIndex.</summary>
    public static void AssertIntact(WriteAheadLog wal, long afterIndex)
    {
        long expected = afterIndex + 1;
        foreach (LogRecord record in wal.ReadFrom(afterIndex))
        {
            Assert.Equal(expected, record.Index);
            Assert.True(
                record.Payload.Span.SequenceEqual(CrashPayload.ForRecord(record.Index)),
                $"payload of record {record.Index} differs");
            expected++;
        }

        Assert.Equal(wal.LastIndex + 1, expected);
    }
}
