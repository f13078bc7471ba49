using Arbiter.Core.Mvcc;
using Arbiter.Node.Spill;
using Microsoft.Extensions.Logging.Abstractions;
using Xunit.Abstractions;

namespace Arbiter.Server.Tests.Spill;

/// <summary>
/// The node's spill on its own: bytes read back exactly whether they come from its copy of the
/// bytes appended last, a segment's write buffer or its file, across segments; and a reader racing
/// the appends never gets bytes an append wrote over while it copied them.
/// </summary>
public sealed class FileValueSpillTests(ITestOutputHelper output) : IDisposable
{
    private readonly string _directory = Path.Combine(Path.GetTempPath(), "arbiter-file-spill-" + Guid.NewGuid().ToString("N"));

    // Record i: its length from its index, every byte from (i, position), so a byte of another record is seen.
    private static byte[] Record(int i, int lengthSpread = 700)
    {
        var bytes = new byte[50 + (i * 37 % lengthSpread)];
        for (var j = 0; j < bytes.Length; j++)
        {
            bytes[j] = (byte)((i * 131) + (j * 7) + (i >> 8));
        }

        return bytes;
    }

    [Fact]
    public void Everything_appended_reads_back_exactly_across_segments()
    {
        var spill = new FileValueSpill(_directory, NullLogger.Instance, recentSizeBytes: 64 << 10);
        var places = new List<(IValueSpillSegment Segment, long Offset)>();
        long appended = 0;
        for (var i = 0; appended < FileValueSpill.SegmentSizeBytesMax + (4 << 20); i++)
        {
            var record = Record(i);
            Assert.True(spill.TryAppend(record, out var segment, out var offset));
            places.Add((segment, offset));
            appended += record.Length;
        }

        Assert.Equal(2, spill.SegmentsCreated);
        for (var i = places.Count - 1; i >= 0; i--)
        {
            var expected = Record(i);
            var actual = new byte[expected.Length];
            places[i].Segment.Read(places[i].Offset, actual);
            Assert.True(expected.AsSpan().SequenceEqual(actual), $"record {i} of {places.Count} read back wrong");
        }

        // The newest ~64 KiB came from the copy of recent bytes, everything else from the segments.
        output.WriteLine($"{places.Count} records, {spill.RecentReads} read from recent bytes, {spill.FileReads} from segments");
        Assert.InRange(spill.RecentReads, 64, 400);
        Assert.Equal(places.Count, spill.RecentReads + spill.FileReads);
    }

    [Fact]
    public async Task Readers_racing_appends_never_get_overwritten_bytes()
    {
        // A tiny copy of recent bytes, so appends keep writing over what readers are copying.
        var spill = new FileValueSpill(_directory, NullLogger.Instance, recentSizeBytes: 4096);
        const int RecordsMax = 400_000;
        const int Spread = 150;
        var places = new (IValueSpillSegment Segment, long Offset)[RecordsMax];
        var published = -1;
        var done = false;
        var failures = 0;
        using var started = new CountdownEvent(2);

        var readers = Enumerable.Range(0, 2).Select(seed => Task.Factory.StartNew(
            () =>
            {
                var random = new Random(seed);
                started.Signal();
                while (!Volatile.Read(ref done))
                {
                    var newest = Volatile.Read(ref published);
                    if (newest < 0)
                    {
                        continue;
                    }

                    // The oldest records the 4 KiB still hold (about 32 of 125 B on average): those
                    // the next appends write over, some of them while they are being copied.
                    var i = Math.Max(0, newest - 24 - random.Next(12));
                    var expected = Record(i, Spread);
                    var actual = new byte[expected.Length];
                    places[i].Segment.Read(places[i].Offset, actual);
                    if (!expected.AsSpan().SequenceEqual(actual))
                    {
                        Interlocked.Increment(ref failures);
                    }
                }
            },
            TaskCreationOptions.LongRunning)).ToArray();

        Assert.True(started.Wait(TimeSpan.FromSeconds(30)), "the readers did not start");
        var appended = 0;
        try
        {
            // Until the readers have raced enough appends (or the records run out).
            for (; appended < RecordsMax && (appended < 50_000 || spill.RecentReads < 20_000); appended++)
            {
                Assert.True(spill.TryAppend(Record(appended, Spread), out var segment, out var offset));
                places[appended] = (segment, offset);
                Volatile.Write(ref published, appended);
            }
        }
        finally
        {
            Volatile.Write(ref done, true);
            await Task.WhenAll(readers);
        }

        output.WriteLine($"{appended} appends, {spill.RecentReads} reads from recent bytes, {spill.FileReads} from segments, {failures} wrong");
        Assert.Equal(0, failures);
        Assert.True(spill.RecentReads >= 20_000, $"only {spill.RecentReads} reads raced the appends");
    }

    public void Dispose()
    {
        if (Directory.Exists(_directory))
        {
            Directory.Delete(_directory, recursive: true);
        }
    }
}
