using System.Globalization;
using Arbiter.Storage.CrashHost;

namespace Arbiter.Storage.Tests;

public sealed class TornTailTests(ITestOutputHelper output)
{
    private enum Damage
    {
        Truncate,
        TruncateThenGarbage,
        TruncateThenZeros,
        GarbageOnly,
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
            long firstIndex = long.Parse(Path.GetFileName(last)[4..24], CultureInfo.InvariantCulture);
            List<long> recordEnds = RecordEnds(firstIndex, written);
            long fileLength = new FileInfo(last).Length;
            Assert.Equal(recordEnds[^1], fileLength);

            var damage = (Damage)random.Next(4);
            long cut = damage == Damage.GarbageOnly ? fileLength : random.NextInt64(0, fileLength + 1);
            byte[] tail = damage switch
            {
                Damage.TruncateThenGarbage or Damage.GarbageOnly => RandomBytes(random, random.Next(1, 300)),
                Damage.TruncateThenZeros => new byte[random.Next(1, 4096)],
                _ => [],
            };
            using (var file = new FileStream(last, FileMode.Open, FileAccess.ReadWrite))
            {
                file.SetLength(cut);
                file.Position = cut;
                file.Write(tail);
            }

            // Whole records before the cut survive; a cut inside the header drops the segment.
            long expectedLast = cut < 24 ? firstIndex - 1 : firstIndex - 1 + recordEnds.Count(end => end <= cut && end > 24);
            long expectedTruncated = cut + tail.Length - (cut < 24 ? 0 : recordEnds.Where(end => end <= cut).Max());
            output.WriteLine($"round {round}: {written} records, {damage} at {cut} of {fileLength} in {Path.GetFileName(last)}, +{tail.Length} bytes -> expect last {expectedLast}");

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
        long lastOfPrevious = long.Parse(Path.GetFileName(segments[^1])[4..24], CultureInfo.InvariantCulture) - 1;
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

    /// <summary>Offsets just past each record of the segment starting at <paramref name="firstIndex"/> (first entry: the header end).</summary>
    private static List<long> RecordEnds(long firstIndex, long lastIndex)
    {
        var ends = new List<long> { 24 };
        for (long index = firstIndex; index <= lastIndex; index++)
        {
            ends.Add(ends[^1] + 16 + CrashPayload.ForRecord(index).Length);
        }

        return ends;
    }

    private static byte[] RandomBytes(Random random, int length)
    {
        byte[] bytes = new byte[length];
        random.NextBytes(bytes);
        return bytes;
    }
}
