using System.Buffers;
using Arbiter.Storage.CrashHost;

namespace Arbiter.Storage.Tests;

/// <summary>Preallocated segments: their length, the zero tail at recovery, trimming at a roll.</summary>
public sealed class PreallocationTests(ITestOutputHelper output)
{
    private const long MiB = 1024 * 1024;

    [Fact]
    public void A_new_segment_is_preallocated_to_SegmentSizeBytesMax_by_its_first_append()
    {
        using var dir = new TempDirectory();
        using var wal = WriteAheadLog.Open(dir.Options(fsync: true));
        wal.Append(CrashPayload.ForRecord(1));
        wal.Flush();

        string segment = dir.Segments().Single();
        long writtenBytes = SegmentFiles.WrittenBytes(1, 1);
        if (!PreallocationWorks(dir))
        {
            Assert.Equal(writtenBytes, new FileInfo(segment).Length);
            return;
        }

        Assert.Equal(64 * MiB, new FileInfo(segment).Length);
        Assert.True(SegmentFiles.IsZeroFrom(segment, writtenBytes));
        Assert.Equal(writtenBytes, wal.SizeBytes);
    }

    [Fact]
    public void Reopen_finds_exactly_the_records_and_appends_right_after_them()
    {
        using var dir = new TempDirectory();
        long segmentSizeBytesMax = 4 * MiB;
        using (var wal = WriteAheadLog.Open(dir.Options(segmentSizeBytesMax, fsync: true)))
        {
            Records.AppendRange(wal, 300);
            wal.Flush();
        }

        for (int reopen = 0; reopen < 3; reopen++)
        {
            using var wal = WriteAheadLog.Open(dir.Options(segmentSizeBytesMax, fsync: true));
            long expected = 300 + (reopen * 50);
            Assert.Equal(expected, wal.LastIndex);
            Assert.Equal(0, wal.RecoveredTailBytesTruncated);
            Assert.Equal(SegmentFiles.WrittenBytes(1, expected), wal.SizeBytes);
            Records.AssertIntact(wal, 0);
            Records.AppendRange(wal, 50);
            wal.Flush();
        }

        // No gap and no overwrite: the records are back to back, zeros after them.
        string segment = dir.Segments().Single();
        long writtenBytes = SegmentFiles.WrittenBytes(1, 450);
        Assert.True(SegmentFiles.IsZeroFrom(segment, writtenBytes));
        if (PreallocationWorks(dir))
        {
            Assert.Equal(segmentSizeBytesMax, new FileInfo(segment).Length);
        }

        using (var wal = WriteAheadLog.Open(dir.Options(segmentSizeBytesMax)))
        {
            Assert.Equal(450, wal.LastIndex);
            Records.AssertIntact(wal, 0);
        }
    }

    [Fact]
    public void A_roll_trims_the_sealed_segment_to_its_records()
    {
        using var dir = new TempDirectory();
        using (var wal = WriteAheadLog.Open(dir.Options(segmentSizeBytesMax: 4096, fsync: true)))
        {
            for (int batch = 0; batch < 10; batch++)
            {
                Records.AppendRange(wal, 17);
                wal.Flush();
            }
        }

        // Reopened, the last segment is preallocated again though its handle was never the write
        // handle; rolling away from it must trim it too.
        string lastBeforeReopen = dir.Segments()[^1];
        using (var wal = WriteAheadLog.Open(dir.Options(segmentSizeBytesMax: 4096, fsync: true)))
        {
            Records.AppendRange(wal, 60);
            wal.Flush();
            Assert.Equal(230, wal.LastIndex);
        }

        string[] segments = dir.Segments();
        Assert.Contains(lastBeforeReopen, segments[..^1]);
        for (int i = 0; i < segments.Length - 1; i++)
        {
            long firstIndex = SegmentFiles.FirstIndexOf(segments[i]);
            long lastIndex = SegmentFiles.FirstIndexOf(segments[i + 1]) - 1;
            Assert.Equal(SegmentFiles.WrittenBytes(firstIndex, lastIndex), new FileInfo(segments[i]).Length);
        }

        if (PreallocationWorks(dir))
        {
            Assert.Equal(4096, new FileInfo(segments[^1]).Length);
        }
    }

    [Theory]
    [InlineData(1)]
    [InlineData(15)]
    [InlineData(16)]
    [InlineData(5000)]
    public void A_sealed_segment_with_a_zero_tail_is_accepted_and_trimmed(int zeroBytes)
    {
        // As if the process died after the roll's trim was issued but before it reached the disk.
        using var dir = Records.WriteLog(records: 300, segmentSizeBytesMax: 4096);
        string victim = dir.Segments()[1];
        long writtenBytes = new FileInfo(victim).Length;
        SegmentFiles.SetLength(victim, writtenBytes + zeroBytes);

        using var wal = WriteAheadLog.Open(dir.Options(segmentSizeBytesMax: 4096));
        Assert.Equal(300, wal.LastIndex);
        Assert.Equal(0, wal.RecoveredTailBytesTruncated);
        Records.AssertIntact(wal, 0);
        Assert.Equal(writtenBytes, new FileInfo(victim).Length);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(3000)]
    public void A_zero_header_then_garbage_in_the_last_segment_is_a_torn_tail(int zerosBeforeGarbage)
    {
        using var dir = Records.WriteLog(records: 100, segmentSizeBytesMax: 2 * MiB);
        string segment = dir.Segments().Single();
        long writtenBytes = SegmentFiles.WrittenBytes(1, 100);
        SegmentFiles.WriteAt(segment, writtenBytes + 16 + zerosBeforeGarbage, [0xDE, 0xAD, 0xBE, 0xEF]);
        long damagedLength = new FileInfo(segment).Length;

        using (var wal = WriteAheadLog.Open(dir.Options(segmentSizeBytesMax: 2 * MiB)))
        {
            Assert.Equal(100, wal.LastIndex);
            Assert.Equal(damagedLength - writtenBytes, wal.RecoveredTailBytesTruncated);
            Records.AssertIntact(wal, 0);
            if (PreallocationWorks(dir))
            {
                Assert.Equal(2 * MiB, new FileInfo(segment).Length); // cut, then preallocated again
            }

            Assert.True(SegmentFiles.IsZeroFrom(segment, writtenBytes));
            Records.AppendRange(wal, 10);
        }

        using (var wal = WriteAheadLog.Open(dir.Options(segmentSizeBytesMax: 2 * MiB)))
        {
            Assert.Equal(110, wal.LastIndex);
            Assert.Equal(0, wal.RecoveredTailBytesTruncated);
            Records.AssertIntact(wal, 0);
        }
    }

    [Theory]
    [InlineData(0)]
    [InlineData(100)]
    public void A_zero_header_then_garbage_in_a_sealed_segment_is_corruption(int zerosBeforeGarbage)
    {
        using var dir = Records.WriteLog(records: 300, segmentSizeBytesMax: 4096);
        string victim = dir.Segments()[1];
        long writtenBytes = new FileInfo(victim).Length;
        SegmentFiles.WriteAt(victim, writtenBytes + 16 + zerosBeforeGarbage, [0x01]);

        WalCorruptException error = Assert.Throws<WalCorruptException>(() => WriteAheadLog.Open(dir.Options(segmentSizeBytesMax: 4096)));
        Assert.Equal(victim, error.FilePath);
        Assert.Equal(writtenBytes, error.OffsetBytes);
        Assert.Contains("zero record header", error.Message, StringComparison.Ordinal);
    }

    /// <summary>
    /// The record after the gap would be index 101, plausible right after 100: dropping it silently
    /// could lose an acknowledged write, so the open refuses. Gaps and payloads reach across the
    /// recovery scan's 1 MiB read windows.
    /// </summary>
    [Theory]
    [InlineData(16, 100)]
    [InlineData(4096, 100)]
    [InlineData((1024 * 1024) - 30, 100)] // the header fits the first window, its payload does not
    [InlineData((1024 * 1024) - 7, 100)] // the header straddles the first window's end
    [InlineData(3 * 1024 * 1024, 100)]
    [InlineData(5000, 2 * 1024 * 1024)] // the payload runs past the window
    public void A_valid_record_after_a_zero_gap_in_the_last_segment_is_corruption(int gapBytes, int payloadBytes)
    {
        using var dir = Records.WriteLog(records: 100, segmentSizeBytesMax: 8 * MiB);
        string segment = dir.Segments().Single();
        long writtenBytes = SegmentFiles.WrittenBytes(1, 100);
        var record = new ArrayBufferWriter<byte>();
        WalFormat.WriteRecord(record, 101, new byte[payloadBytes]);
        SegmentFiles.WriteAt(segment, writtenBytes + gapBytes, record.WrittenSpan);

        WalCorruptException error = Assert.Throws<WalCorruptException>(() => WriteAheadLog.Open(dir.Options(segmentSizeBytesMax: 8 * MiB)));
        output.WriteLine(error.Message);
        Assert.Equal(segment, error.FilePath);
        Assert.Equal(writtenBytes, error.OffsetBytes);
        Assert.Contains("not a torn tail", error.Message, StringComparison.Ordinal);
        Assert.Contains($"offset {writtenBytes + gapBytes}", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Old_growing_segments_open_and_the_last_one_gets_preallocated()
    {
        // What an older build leaves: every segment exactly as long as its records.
        using var dir = Records.WriteLog(records: 300, segmentSizeBytesMax: 4096);
        string last = dir.Segments()[^1];
        SegmentFiles.SetLength(last, SegmentFiles.WrittenBytes(SegmentFiles.FirstIndexOf(last), 300));

        using (var wal = WriteAheadLog.Open(dir.Options(segmentSizeBytesMax: 4096)))
        {
            Assert.Equal(300, wal.LastIndex);
            Assert.Equal(0, wal.RecoveredTailBytesTruncated);
            Records.AssertIntact(wal, 0);
            if (PreallocationWorks(dir))
            {
                Assert.Equal(4096, new FileInfo(last).Length);
            }

            Records.AppendRange(wal, 40);
        }

        using (var wal = WriteAheadLog.Open(dir.Options(segmentSizeBytesMax: 4096)))
        {
            Assert.Equal(340, wal.LastIndex);
            Assert.Equal(0, wal.RecoveredTailBytesTruncated);
            Records.AssertIntact(wal, 0);
        }
    }

    [Fact]
    public void A_segment_preallocated_but_torn_before_its_header_is_removed()
    {
        // Created and extended, then the process died before the header reached the disk.
        using var dir = Records.WriteLog(records: 300, segmentSizeBytesMax: 4096);
        string[] segments = dir.Segments();
        long lastOfPrevious = SegmentFiles.FirstIndexOf(segments[^1]) - 1;
        SegmentFiles.SetLength(segments[^1], 0);
        SegmentFiles.SetLength(segments[^1], 4096);

        using (var wal = WriteAheadLog.Open(dir.Options(segmentSizeBytesMax: 4096)))
        {
            Assert.Equal(lastOfPrevious, wal.LastIndex);
            Assert.Equal(4096, wal.RecoveredTailBytesTruncated);
            Assert.False(File.Exists(segments[^1]));
            Records.AssertIntact(wal, 0);
            Records.AppendRange(wal, 30);
        }

        using (var wal = WriteAheadLog.Open(dir.Options(segmentSizeBytesMax: 4096)))
        {
            Assert.Equal(lastOfPrevious + 30, wal.LastIndex);
            Assert.Equal(0, wal.RecoveredTailBytesTruncated);
            Records.AssertIntact(wal, 0);
        }
    }

    [Fact]
    public void A_torn_tail_before_a_large_zero_tail_is_cut_without_reading_it_into_one_array()
    {
        using var dir = Records.WriteLog(records: 100, segmentSizeBytesMax: 64 * MiB);
        string segment = dir.Segments().Single();
        SnapshotTests.FlipByte(segment, SegmentFiles.OffsetOf(segment, 100) + 2); // its checksum
        SegmentFiles.SetLength(segment, 64 * MiB); // the zero tail, also where fallocate is unsupported

        long allocatedBefore = GC.GetAllocatedBytesForCurrentThread();
        using var wal = WriteAheadLog.Open(dir.Options());
        long allocatedBytes = GC.GetAllocatedBytesForCurrentThread() - allocatedBefore;
        output.WriteLine($"allocated {allocatedBytes} bytes opening a log with a torn record before 64 MiB of zeros");

        Assert.Equal(99, wal.LastIndex);
        Assert.Equal((64 * MiB) - SegmentFiles.OffsetOf(segment, 100), wal.RecoveredTailBytesTruncated);
        Assert.True(allocatedBytes < 16 * MiB, $"open allocated {allocatedBytes} bytes");
    }

    private bool PreallocationWorks(TempDirectory dir)
    {
        bool works = SegmentFiles.PreallocationWorks(dir.Path);
        if (!works)
        {
            output.WriteLine($"fallocate does not extend files in {dir.Path}: preallocated-length assertions skipped (the log grows files instead)");
        }

        return works;
    }
}
