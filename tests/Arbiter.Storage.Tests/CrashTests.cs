using System.Globalization;
using Arbiter.Storage.CrashHost;

namespace Arbiter.Storage.Tests;

/// <summary>Kills a real process writing the log with SIGKILL and checks every acknowledged record survives.</summary>
public sealed class CrashTests(ITestOutputHelper output)
{
    private const int StepTimeoutMs = 60_000;

    private static TimeSpan StepTimeout => TimeSpan.FromMilliseconds(StepTimeoutMs);

    [Fact]
    public void Acknowledged_records_survive_SIGKILL_across_rounds()
    {
        int seed = TestSeed.Get(output);
        var random = new Random(seed);
        using var dir = new TempDirectory();
        long ackedMax = 0;
        long snapshotMax = 0;
        const int Rounds = 10;
        for (int round = 0; round < Rounds; round++)
        {
            // Most rounds kill after a random number of acknowledged batches (0: right after open);
            // some kill without waiting at all, possibly while the host is still recovering.
            bool killAtStartup = random.Next(5) == 0;
            int acksBeforeKill = random.Next(0, 60);
            long recovered = -1;
            int acks = 0;
            using (var host = CrashHostProcess.Start(dir.Path, random.Next()))
            {
                DateTime deadline = DateTime.UtcNow + StepTimeout;
                if (!killAtStartup)
                {
                    Assert.True(Consume(host.NextLine(deadline), ref recovered, ref ackedMax, ref snapshotMax));
                    Assert.True(recovered >= 0, "the host's first line must be 'ready'");
                    while (acks < acksBeforeKill && Consume(host.NextLine(deadline), ref recovered, ref ackedMax, ref snapshotMax))
                    {
                        acks++;
                    }
                }

                host.Kill(StepTimeout);

                // Lines already written to the pipe were acknowledged before the kill: count them.
                while (Consume(host.NextLine(DateTime.UtcNow + StepTimeout), ref recovered, ref ackedMax, ref snapshotMax))
                {
                }
            }

            using var wal = WriteAheadLog.Open(new WalOptions { DirectoryPath = dir.Path, SegmentSizeBytesMax = 64 * 1024 });
            output.WriteLine(
                $"round {round}: recovered {recovered}, killed {(killAtStartup ? "at startup" : $"after {acks} acks")}, acknowledged up to {ackedMax}, " +
                $"reopened: last {wal.LastIndex}, first {wal.FirstIndex}, snapshot {wal.LatestSnapshot?.Index}, " +
                $"cut {wal.RecoveredTailBytesTruncated} bytes, {Directory.GetFiles(dir.Path).Length} files");
            Assert.True(wal.LastIndex >= ackedMax, $"acknowledged {ackedMax} but only {wal.LastIndex} survived");
            Records.AssertIntact(wal, wal.FirstIndex - 1);

            SnapshotInfo? snapshot = wal.LatestSnapshot;
            Assert.True((snapshot?.Index ?? 0) >= snapshotMax, $"snapshot {snapshotMax} was acknowledged but is gone");
            if (snapshot is not null)
            {
                using Stream stream = wal.OpenSnapshot(snapshot);
                using var copy = new MemoryStream();
                stream.CopyTo(copy);
                Assert.Equal(CrashPayload.ForSnapshot(snapshot.Index), copy.ToArray());
                Assert.True(wal.FirstIndex <= snapshot.Index + 1);
            }
        }

        Assert.True(ackedMax > 0, "the host never acknowledged anything");
    }

    [Fact]
    public void A_second_process_cannot_open_a_locked_directory()
    {
        using var dir = new TempDirectory();
        using var wal = WriteAheadLog.Open(dir.Options());
        using var host = CrashHostProcess.Start(dir.Path, 1);
        Assert.Equal(3, host.WaitForExit(StepTimeout));
        Assert.Contains("locked", host.StandardError(StepTimeout), StringComparison.Ordinal);
    }

    /// <summary>Applies one host line; false at end of output.</summary>
    private static bool Consume(string? line, ref long recovered, ref long ackedMax, ref long snapshotMax)
    {
        if (line is null)
        {
            return false;
        }

        string[] parts = line.Split(' ');
        long value = long.Parse(parts[1], CultureInfo.InvariantCulture);
        switch (parts[0])
        {
            case "ready":
                recovered = value;
                Assert.True(value >= ackedMax, $"host recovered {value}, but {ackedMax} was acknowledged");
                break;
            case "ack":
                Assert.True(value >= ackedMax, $"acknowledgements went backwards: {value} after {ackedMax}");
                ackedMax = value;
                break;
            case "snap":
                snapshotMax = value;
                break;
            default:
                Assert.Fail($"unexpected host output: {line}");
                break;
        }

        return true;
    }
}
