using Arbiter.Storage.CrashHost;

namespace Arbiter.Storage.Tests;

public sealed class SnapshotTests
{
    [Fact]
    public void Snapshot_round_trips_and_ReadFrom_continues_after_it()
    {
        using var dir = new TempDirectory();
        using (var wal = WriteAheadLog.Open(dir.Options(segmentSizeBytesMax: 4096)))
        {
            Records.AppendRange(wal, 200);
            wal.Flush();
            wal.WriteSnapshot(150, s => s.Write(CrashPayload.ForSnapshot(150)));
            Assert.Equal(150, wal.LatestSnapshot!.Index);
            Records.AppendRange(wal, 10);
        }

        using (var wal = WriteAheadLog.Open(dir.Options(segmentSizeBytesMax: 4096)))
        {
            SnapshotInfo snapshot = wal.LatestSnapshot!;
            Assert.Equal(150, snapshot.Index);
            Assert.Equal(new FileInfo(snapshot.FilePath).Length, snapshot.SizeBytes);
            Assert.Equal(CrashPayload.ForSnapshot(150), ReadAll(wal, snapshot));
            Assert.Equal(210, wal.LastIndex);
            Records.AssertIntact(wal, snapshot.Index);
        }
    }

    [Fact]
    public void Snapshot_index_must_be_durable_and_newer_than_the_latest()
    {
        using var dir = new TempDirectory();
        using var wal = WriteAheadLog.Open(dir.Options());
        Records.AppendRange(wal, 10);
        Assert.Throws<ArgumentOutOfRangeException>(() => wal.WriteSnapshot(5, _ => { }));
        wal.Flush();
        wal.WriteSnapshot(5, _ => { });
        Assert.Throws<ArgumentOutOfRangeException>(() => wal.WriteSnapshot(5, _ => { }));
        Assert.Throws<ArgumentOutOfRangeException>(() => wal.WriteSnapshot(11, _ => { }));
        wal.WriteSnapshot(10, _ => { });
        Assert.Equal(10, wal.LatestSnapshot!.Index);
        Assert.Equal(0, wal.LatestSnapshot.SizeBytes - 32);
    }

    [Fact]
    public async Task Appends_and_flushes_go_on_while_a_snapshot_payload_is_written()
    {
        using var dir = new TempDirectory();
        using (var wal = WriteAheadLog.Open(dir.Options(segmentSizeBytesMax: 4096)))
        {
            Records.AppendRange(wal, 100);
            wal.Flush();
            using var payloadStarted = new ManualResetEventSlim();
            using var releasePayload = new ManualResetEventSlim();
            var snapshot = Task.Run(() => wal.WriteSnapshot(100, s =>
            {
                payloadStarted.Set();
                Assert.True(releasePayload.Wait(TimeSpan.FromSeconds(30)), "the test never released the payload writer");
                s.Write(CrashPayload.ForSnapshot(100));
            }));
            Assert.True(payloadStarted.Wait(TimeSpan.FromSeconds(30)), "the snapshot payload writer never started");

            // The writer's calls must not wait for the payload (they would time out here if they did).
            var writer = Task.Run(() =>
            {
                Records.AppendRange(wal, 300);
                wal.Flush();
            });
            await writer.WaitAsync(TimeSpan.FromSeconds(30)); // times out if append + flush waited for the snapshot payload
            Assert.Equal(400, wal.DurableIndex);
            Assert.Throws<InvalidOperationException>(() => wal.WriteSnapshot(400, _ => { }));

            releasePayload.Set();
            await snapshot.WaitAsync(TimeSpan.FromSeconds(30));
            Assert.Equal(100, wal.LatestSnapshot!.Index);
            wal.WriteSnapshot(400, s => s.Write(CrashPayload.ForSnapshot(400)));
        }

        using (var wal = WriteAheadLog.Open(dir.Options(segmentSizeBytesMax: 4096)))
        {
            Assert.Equal(400, wal.LatestSnapshot!.Index);
            Assert.Equal(400, wal.LastIndex);
            Assert.Equal(CrashPayload.ForSnapshot(400), ReadAll(wal, wal.LatestSnapshot));
        }
    }

    [Fact]
    public void A_failing_payload_writer_leaves_no_snapshot_behind()
    {
        using var dir = new TempDirectory();
        using var wal = WriteAheadLog.Open(dir.Options());
        Records.AppendRange(wal, 10);
        wal.Flush();
        Assert.Throws<InvalidOperationException>(() => wal.WriteSnapshot(5, _ => throw new InvalidOperationException("boom")));
        Assert.Null(wal.LatestSnapshot);
        Assert.Empty(Directory.GetFiles(dir.Path, "snap-*"));
        wal.WriteSnapshot(5, s => s.WriteByte(1));
        Assert.Equal(5, wal.LatestSnapshot!.Index);
    }

    [Fact]
    public void Old_snapshots_and_covered_segments_are_pruned()
    {
        using var dir = new TempDirectory();
        using (var wal = WriteAheadLog.Open(dir.Options(segmentSizeBytesMax: 4096)))
        {
            Records.AppendRange(wal, 300);
            wal.Flush();
            int segmentsBefore = dir.Segments().Length;
            wal.WriteSnapshot(100, s => s.Write(CrashPayload.ForSnapshot(100)));
            wal.WriteSnapshot(200, s => s.Write(CrashPayload.ForSnapshot(200)));

            // Two kept: segments up to the oldest kept (100) are gone, the rest stay.
            Assert.Equal(2, dir.Snapshots().Length);
            Assert.True(dir.Segments().Length < segmentsBefore);
            Assert.True(wal.FirstIndex <= 101, $"log must still cover from the oldest kept snapshot, starts at {wal.FirstIndex}");
            Assert.True(wal.FirstIndex > 1);
            Records.AssertIntact(wal, wal.FirstIndex - 1);
            Assert.Throws<InvalidOperationException>(() => wal.ReadFrom(0));

            wal.WriteSnapshot(300, s => s.Write(CrashPayload.ForSnapshot(300)));
            Assert.Equal(
                ["snap-00000000000000000200.snap", "snap-00000000000000000300.snap"],
                dir.Snapshots().Select(Path.GetFileName));
            Assert.True(wal.FirstIndex is > 101 and <= 201);

            // The last segment survives even when fully covered: it carries LastIndex.
            Assert.NotEmpty(dir.Segments());
            Assert.Equal(300, wal.LastIndex);
        }

        using (var wal = WriteAheadLog.Open(dir.Options(segmentSizeBytesMax: 4096)))
        {
            Assert.Equal(300, wal.LastIndex);
            Assert.Equal(300, wal.LatestSnapshot!.Index);
            Records.AssertIntact(wal, wal.FirstIndex - 1);
            Records.AppendRange(wal, 5);
        }
    }

    [Fact]
    public void Log_fully_covered_by_a_snapshot_reopens_and_continues()
    {
        using var dir = new TempDirectory();
        using (var wal = WriteAheadLog.Open(dir.Options(segmentSizeBytesMax: 1024, snapshotsKeptMax: 1)))
        {
            Records.AppendRange(wal, 50);
            wal.Flush();
            wal.WriteSnapshot(50, _ => { });
        }

        using (var wal = WriteAheadLog.Open(dir.Options(segmentSizeBytesMax: 1024, snapshotsKeptMax: 1)))
        {
            Assert.Equal(50, wal.LastIndex);
            Assert.Empty(wal.ReadFrom(50));
            Assert.Equal(51, wal.Append([1]));
        }
    }

    [Fact]
    public void Corrupt_newest_snapshot_falls_back_to_an_older_one_the_log_still_covers()
    {
        using var dir = new TempDirectory();
        using (var wal = WriteAheadLog.Open(dir.Options(segmentSizeBytesMax: 4096)))
        {
            Records.AppendRange(wal, 300);
            wal.Flush();
            wal.WriteSnapshot(100, s => s.Write(CrashPayload.ForSnapshot(100)));
            wal.WriteSnapshot(200, s => s.Write(CrashPayload.ForSnapshot(200)));
        }

        string newest = dir.Snapshots()[^1];
        FlipByte(newest, 100);

        using (var wal = WriteAheadLog.Open(dir.Options(segmentSizeBytesMax: 4096)))
        {
            Assert.Equal(100, wal.LatestSnapshot!.Index);
            Assert.Equal(CrashPayload.ForSnapshot(100), ReadAll(wal, wal.LatestSnapshot));
            Records.AssertIntact(wal, 100);
        }

        // Set aside for inspection, not deleted.
        Assert.True(File.Exists(newest + ".corrupt"));
    }

    [Fact]
    public void Corrupt_snapshot_without_a_covered_fallback_fails_open()
    {
        using var dir = new TempDirectory();
        using (var wal = WriteAheadLog.Open(dir.Options(segmentSizeBytesMax: 4096, snapshotsKeptMax: 1)))
        {
            Records.AppendRange(wal, 300);
            wal.Flush();
            wal.WriteSnapshot(200, s => s.Write(CrashPayload.ForSnapshot(200)));
        }

        string snapshot = dir.Snapshots().Single();
        FlipByte(snapshot, 20);
        WalCorruptException error = Assert.Throws<WalCorruptException>(() => WriteAheadLog.Open(dir.Options()));
        Assert.Equal(snapshot, error.FilePath);
        Assert.Contains("checksum", error.Message, StringComparison.Ordinal);

        // Nothing was renamed or deleted by the failed open.
        Assert.True(File.Exists(snapshot));
    }

    [Fact]
    public void Truncated_snapshot_is_detected_when_opened()
    {
        using var dir = new TempDirectory();
        using var wal = WriteAheadLog.Open(dir.Options());
        Records.AppendRange(wal, 10);
        wal.Flush();
        wal.WriteSnapshot(10, s => s.Write(new byte[5000]));
        SnapshotInfo snapshot = wal.LatestSnapshot!;
        using (var file = new FileStream(snapshot.FilePath, FileMode.Open))
        {
            file.SetLength(file.Length - 1);
        }

        Assert.Throws<WalCorruptException>(() => wal.OpenSnapshot(snapshot).Dispose());
    }

    internal static void FlipByte(string filePath, long offset)
    {
        using var file = new FileStream(filePath, FileMode.Open, FileAccess.ReadWrite);
        file.Position = offset;
        int value = file.ReadByte();
        file.Position = offset;
        file.WriteByte((byte)(value ^ 0x40));
    }

    private static byte[] ReadAll(WriteAheadLog wal, SnapshotInfo snapshot)
    {
        using Stream stream = wal.OpenSnapshot(snapshot);
        using var copy = new MemoryStream();
        stream.CopyTo(copy);
        return copy.ToArray();
    }
}
