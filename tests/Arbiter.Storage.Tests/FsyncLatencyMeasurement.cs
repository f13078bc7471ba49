using System.Diagnostics;

namespace Arbiter.Storage.Tests;

/// <summary>
/// Not an assertion on time: prints how long fsync takes on this disk, which bounds group commit
/// (one writer loop can acknowledge at most about 1 / fsync-latency batches per second).
/// </summary>
public sealed class FsyncLatencyMeasurement(ITestOutputHelper output)
{
    private const int Samples = 200;

    [Fact]
    public void Print_fsync_latency_of_this_disk()
    {
        using var dir = new TempDirectory();
        output.WriteLine($"directory: {dir.Path}");

        // Raw: append 4 KiB to a growing file + fsync (FlushToDisk), then to a preallocated file
        // + fdatasync (what the log does where fallocate works).
        string path = Path.Combine(dir.Path, "probe");
        using (var handle = File.OpenHandle(path, FileMode.CreateNew, FileAccess.ReadWrite))
        {
            byte[] block = new byte[4096];
            long offset = 0;
            Print("raw write 4 KiB + fsync", Measure(() =>
            {
                RandomAccess.Write(handle, block, offset);
                offset += block.Length;
                RandomAccess.FlushToDisk(handle);
            }));
        }

        File.Delete(path);
        using (var handle = File.OpenHandle(path, FileMode.CreateNew, FileAccess.ReadWrite))
        {
            bool preallocated = NativeFile.TryPreallocate(handle, (Samples + 1) * 4096L);
            byte[] block = new byte[4096];
            long offset = 0;
            Print(preallocated ? "raw preallocated 4 KiB + fdatasync" : "raw write 4 KiB + fdatasync (no fallocate)", Measure(() =>
            {
                RandomAccess.Write(handle, block, offset);
                offset += block.Length;
                NativeFile.DataSync(handle);
            }));
        }

        // Through the log: one small record per Flush, then group commits of 100 records.
        using var wal = WriteAheadLog.Open(dir.Options(fsync: true));
        byte[] payload = new byte[100];
        Print("WAL Append(100 B) + Flush", Measure(() =>
        {
            wal.Append(payload);
            wal.Flush();
        }));
        Print("WAL 100 x Append(100 B) + Flush", Measure(() =>
        {
            for (int i = 0; i < 100; i++)
            {
                wal.Append(payload);
            }

            wal.Flush();
        }));
        Print("WAL Flush with nothing buffered", Measure(wal.Flush));
    }

    private static double[] Measure(Action action)
    {
        action(); // warm-up: file creation, JIT
        double[] microseconds = new double[Samples];
        for (int i = 0; i < Samples; i++)
        {
            long start = Stopwatch.GetTimestamp();
            action();
            microseconds[i] = Stopwatch.GetElapsedTime(start).TotalMicroseconds;
        }

        Array.Sort(microseconds);
        return microseconds;
    }

    private void Print(string what, double[] sorted)
    {
        double P(double q) => sorted[(int)Math.Min(sorted.Length - 1, q * sorted.Length)];
        string rate = P(0.50) >= 1 ? $"(~{1_000_000 / P(0.50):F0} per second at p50)" : string.Empty;
        output.WriteLine(
            $"{what,-34} p50 {P(0.50),9:F1} us  p90 {P(0.90),9:F1} us  p99 {P(0.99),9:F1} us  max {sorted[^1],9:F1} us  {rate}");
    }
}
