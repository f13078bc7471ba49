using Arbiter.Storage.CrashHost;

namespace Arbiter.Storage.Tests;

public sealed class WriteAheadLogTests
{
    [Fact]
    public void Empty_log_opens_with_nothing_in_it()
    {
        using var dir = new TempDirectory();
        using var wal = WriteAheadLog.Open(dir.Options());
        Assert.Equal(0, wal.LastIndex);
        Assert.Equal(0, wal.DurableIndex);
        Assert.Equal(1, wal.FirstIndex);
        Assert.Null(wal.LatestSnapshot);
        Assert.Empty(wal.ReadFrom(0));
        wal.Flush();
        Assert.Empty(dir.Segments());
    }

    [Fact]
    public void Append_flush_reopen_round_trips_payloads()
    {
        using var dir = new TempDirectory();
        using (var wal = WriteAheadLog.Open(dir.Options(fsync: true)))
        {
            Assert.Equal(1, wal.Append([]));
            Assert.Equal(2, wal.Append([1, 2, 3]));
            Assert.Equal(2, wal.LastIndex);
            Assert.Equal(0, wal.DurableIndex);
            wal.Flush();
            Assert.Equal(2, wal.DurableIndex);
            Records.AppendRange(wal, 98);
            wal.Flush();
            Assert.Equal(100, wal.DurableIndex);
        }

        using (var wal = WriteAheadLog.Open(dir.Options(fsync: true)))
        {
            Assert.Equal(100, wal.LastIndex);
            Assert.Equal(100, wal.DurableIndex);
            Assert.Equal(0, wal.RecoveredTailBytesTruncated);
            LogRecord[] records = [.. wal.ReadFrom(0)];
            Assert.Equal(100, records.Length);
            Assert.True(records[0].Payload.IsEmpty);
            Assert.Equal([1, 2, 3], records[1].Payload.ToArray());
            for (int i = 2; i < records.Length; i++)
            {
                Assert.Equal(i + 1, records[i].Index);
                Assert.Equal(CrashPayload.ForRecord(i + 1), records[i].Payload.ToArray());
            }

            // Appending continues densely after a reopen.
            Assert.Equal(101, wal.Append([9]));
        }

        using (var wal = WriteAheadLog.Open(dir.Options()))
        {
            Assert.Equal(101, wal.LastIndex);
            Assert.Equal([9], wal.ReadFrom(100).Single().Payload.ToArray());
        }
    }

    [Fact]
    public void Dispose_flushes_buffered_records_and_is_idempotent()
    {
        using var dir = new TempDirectory();
        var wal = WriteAheadLog.Open(dir.Options());
        Records.AppendRange(wal, 10);
        wal.Dispose();
        wal.Dispose();
        Assert.Throws<ObjectDisposedException>(() => wal.Append([1]));
        Assert.Throws<ObjectDisposedException>(wal.Flush);

        using var reopened = WriteAheadLog.Open(dir.Options());
        Assert.Equal(10, reopened.LastIndex);
        Records.AssertIntact(reopened, 0);
    }

    [Fact]
    public void Segments_roll_and_are_named_by_their_first_index()
    {
        using var dir = new TempDirectory();
        using (var wal = WriteAheadLog.Open(dir.Options(segmentSizeBytesMax: 4096)))
        {
            // Several flushes, some spanning a roll inside one batch.
            for (int batch = 0; batch < 20; batch++)
            {
                Records.AppendRange(wal, 17);
                wal.Flush();
            }

            Assert.Equal(340, wal.LastIndex);
        }

        string[] segments = dir.Segments();
        Assert.True(segments.Length > 5, $"expected many segments, got {segments.Length}");
        Assert.Equal("wal-00000000000000000001.seg", Path.GetFileName(segments[0]));
        foreach (string segment in segments)
        {
            // A segment holds at least one record, so only one record may overshoot the limit.
            Assert.True(new FileInfo(segment).Length <= 4096 + 16 + CrashPayload.RecordSizeBytesMax);
        }

        using (var wal = WriteAheadLog.Open(dir.Options(segmentSizeBytesMax: 4096)))
        {
            Assert.Equal(340, wal.LastIndex);
            Records.AssertIntact(wal, 0);
            long firstOfThird = long.Parse(Path.GetFileName(segments[2])[4..24], System.Globalization.CultureInfo.InvariantCulture);
            Assert.Equal(firstOfThird, wal.ReadFrom(firstOfThird - 1).First().Index);
        }
    }

    [Fact]
    public void A_record_larger_than_a_segment_gets_a_segment_of_its_own()
    {
        using var dir = new TempDirectory();
        using (var wal = WriteAheadLog.Open(dir.Options(segmentSizeBytesMax: 1024)))
        {
            wal.Append(new byte[10]);
            wal.Append(new byte[5000]);
            wal.Append(new byte[10]);
        }

        Assert.Equal(3, dir.Segments().Length);
        using var reopened = WriteAheadLog.Open(dir.Options(segmentSizeBytesMax: 1024));
        Assert.Equal([10, 5000, 10], reopened.ReadFrom(0).Select(r => r.Payload.Length));
    }

    [Fact]
    public void ReadFrom_any_point_including_unflushed_records()
    {
        using var dir = new TempDirectory();
        using var wal = WriteAheadLog.Open(dir.Options(segmentSizeBytesMax: 8192));
        Records.AppendRange(wal, 500);
        wal.Flush();
        Records.AppendRange(wal, 20);
        Assert.Equal(500, wal.DurableIndex);

        foreach (long after in new long[] { 0, 1, 137, 499, 500, 519 })
        {
            Records.AssertIntact(wal, after);
        }

        Assert.Empty(wal.ReadFrom(520));
        Assert.Empty(wal.ReadFrom(10_000));
        Assert.Equal(500, wal.DurableIndex);
        wal.Flush();
        Assert.Equal(520, wal.DurableIndex);
    }

    [Fact]
    public void Large_batches_spill_to_the_file_early_but_become_durable_only_on_flush()
    {
        using var dir = new TempDirectory();
        using (var wal = WriteAheadLog.Open(dir.Options(segmentSizeBytesMax: 16 * 1024) with { PendingSizeBytesMax = 2048 }))
        {
            Records.AppendRange(wal, 200);
            Assert.NotEmpty(dir.Segments());
            Assert.Equal(0, wal.DurableIndex);
            wal.Flush();
            Assert.Equal(200, wal.DurableIndex);
        }

        using (var wal = WriteAheadLog.Open(dir.Options(segmentSizeBytesMax: 16 * 1024)))
        {
            Assert.Equal(200, wal.LastIndex);
            Records.AssertIntact(wal, 0);
        }
    }

    [Fact]
    public void Oversized_payload_is_refused_and_the_log_stays_usable()
    {
        using var dir = new TempDirectory();
        using var wal = WriteAheadLog.Open(dir.Options() with { RecordPayloadSizeBytesMax = 100 });
        Assert.Throws<ArgumentException>(() => wal.Append(new byte[101]));
        Assert.Equal(1, wal.Append(new byte[100]));
    }

    [Fact]
    public void A_second_open_of_the_same_directory_fails_until_the_first_is_disposed()
    {
        using var dir = new TempDirectory();
        var first = WriteAheadLog.Open(dir.Options());
        IOException error = Assert.Throws<IOException>(() => WriteAheadLog.Open(dir.Options()));
        Assert.Contains("locked", error.Message, StringComparison.Ordinal);
        Assert.Contains(dir.Path, error.Message, StringComparison.Ordinal);

        first.Dispose();
        using var second = WriteAheadLog.Open(dir.Options());
    }

    [Fact]
    public void SizeBytes_counts_segments_and_snapshots()
    {
        using var dir = new TempDirectory();
        using var wal = WriteAheadLog.Open(dir.Options(segmentSizeBytesMax: 4096));
        Records.AppendRange(wal, 100);
        wal.Flush();
        wal.WriteSnapshot(50, s => s.Write(new byte[1000]));

        // Written bytes, not file lengths: the last segment is preallocated past its records.
        string[] segments = dir.Segments();
        long sealedBytes = segments[..^1].Sum(f => new FileInfo(f).Length);
        long lastWrittenBytes = SegmentFiles.WrittenBytes(SegmentFiles.FirstIndexOf(segments[^1]), 100);
        long snapshotBytes = dir.Snapshots().Sum(f => new FileInfo(f).Length);
        Assert.Equal(sealedBytes + lastWrittenBytes + snapshotBytes, wal.SizeBytes);
    }
}
