namespace Arbiter.Storage.Tests;

public sealed class TornTailTests(ITestOutputHelper output)
{
    private enum Damage
    {
        Truncate,
        TruncateThenGarbage,
        TruncateThenZeros,
        GarbageOnly,
        GarbageInZeroTail,
    }

    [Fact]
    public void Random_torn_tails_recover_exactly_the_whole_records()
    {
        int seed = TestSeed.Get(output);
        var random = new Random(seed);
        for (int round = 0; round < 60; round++)
        {
            using var dir = new TempDirectory();
            long segmentSizeBytesMax = random.Next(1024, 16 * 1024);
            int written = random.Next(1, 300);
            using (var wal = WriteAheadLog.Open(dir.Options(segmentSizeBytesMax)))
            {
                while (wal.LastIndex < written)
                {
                    Records.AppendRange(wal, Math.Min(random.Next(1, 40), written - wal.LastIndex));
                    wal.Flush();
                }
            }

            string last = dir.Segments()[^1];
            long firstIndex = SegmentFiles.FirstIndexOf(last);
            List<long> recordEnds = SegmentFiles.RecordEnds(firstIndex, written);
            long writtenEnd = recordEnds[^1];
            long fileLength = new FileInfo(last).Length;

            // The records, then zeros up to the preallocated size (none where fallocate is unsupported).
            Assert.True(fileLength == writtenEnd || fileLength == Math.Max(writtenEnd, segmentSizeBytesMax), $"last segment is {fileLength} bytes");
            Assert.True(SegmentFiles.IsZeroFrom(last, writtenEnd));

            // Truncations model a crash of a growing file (or of an older build); garbage written over
            // the zero tail models a crash inside a preallocated one.
            var damage = (Damage)random.Next(5);
            long cut = damage switch
            {
                Damage.GarbageOnly => writtenEnd,
                Damage.GarbageInZeroTail => writtenEnd + random.Next(16, 200),
                _ => random.NextInt64(0, writtenEnd + 1),
            };
            byte[] tail = damage switch
            {
                Damage.TruncateThenGarbage or Damage.GarbageOnly or Damage.GarbageInZeroTail => RandomBytes(random, random.Next(1, 300)),
                Damage.TruncateThenZeros => new byte[random.Next(1, 4096)],
                _ => [],
            };
            using (var file = new FileStream(last, FileMode.Open, FileAccess.ReadWrite))
            {
                if (damage is Damage.Truncate or Damage.TruncateThenGarbage or Damage.TruncateThenZeros)
                {
                    file.SetLength(cut);
                }

                file.Position = cut;
                file.Write(tail);
            }

            // Whole records before the cut survive; a cut inside the header drops the segment. What
            // follows the last whole record is cut unless it is all zeros (preallocated space).
            long damagedLength = new FileInfo(last).Length;
            long recordsEnd = Math.Min(cut, writtenEnd);
            long expectedLast = cut < 24 ? firstIndex - 1 : firstIndex - 1 + recordEnds.Count(end => end <= recordsEnd && end > 24);
            long boundary = recordEnds.Where(end => end <= recordsEnd).DefaultIfEmpty(0).Max();
            long expectedTruncated = cut < 24 ? damagedLength
                : SegmentFiles.IsZeroFrom(last, boundary) ? 0
                : damagedLength - boundary;
            output.WriteLine(
                $"round {round}: {written} records, {damage} at {cut} of {fileLength} (records end at {writtenEnd}) in {Path.GetFileName(last)}, " +
                $"+{tail.Length} bytes -> expect last {expectedLast}, {expectedTruncated} bytes cut");

            using (var wal = WriteAheadLog.Open(dir.Options(segmentSizeBytesMax)))
            {
                Assert.Equal(expectedLast, wal.LastIndex);
                Assert.Equal(expectedTruncated, wal.RecoveredTailBytesTruncated);
                Records.AssertIntact(wal, 0);
                Records.AppendRange(wal, 5);
            }

            using (var wal = WriteAheadLog.Open(dir.Options(segmentSizeBytesMax)))
            {
                Assert.Equal(expectedLast + 5, wal.LastIndex);
                Assert.Equal(0, wal.RecoveredTailBytesTruncated);
                Records.AssertIntact(wal, 0);
            }
        }
    }

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(13)]
    [InlineData(23)]
    public void A_segment_torn_while_being_created_is_removed(int headerBytesKept)
    {
        using var dir = new TempDirectory();
        using (var wal = WriteAheadLog.Open(dir.Options(segmentSizeBytesMax: 2048)))
        {
            Records.AppendRange(wal, 100);
        }

        string[] segments = dir.Segments();
        long lastOfPrevious = SegmentFiles.FirstIndexOf(segments[^1]) - 1;
        using (var file = new FileStream(segments[^1], FileMode.Open, FileAccess.ReadWrite))
        {
            file.SetLength(headerBytesKept);
        }

        using (var wal = WriteAheadLog.Open(dir.Options(segmentSizeBytesMax: 2048)))
        {
            Assert.Equal(lastOfPrevious, wal.LastIndex);
            Assert.Equal(headerBytesKept, wal.RecoveredTailBytesTruncated);
            Assert.False(File.Exists(segments[^1]));
            Records.AssertIntact(wal, 0);
            Records.AppendRange(wal, 50);
        }

        using (var wal = WriteAheadLog.Open(dir.Options(segmentSizeBytesMax: 2048)))
        {
            Assert.Equal(lastOfPrevious + 50, wal.LastIndex);
            Records.AssertIntact(wal, 0);
        }
    }

    private static byte[] RandomBytes(Random random, int length)
    {
        byte[] bytes = new byte[length];
        random.NextBytes(bytes);
        return bytes;
    }
}
