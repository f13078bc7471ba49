using System.Globalization;
using Arbiter.Storage;
using Arbiter.Storage.CrashHost;

// Appends records in group-commit batches forever and prints "ack <index>" only after Flush
// returned, i.e. after the batch is durable. The crash test SIGKILLs this process at a random moment.
// Usage: Arbiter.Storage.CrashHost <directory> <seed>
if (args.Length != 2 || !int.TryParse(args[1], NumberStyles.Integer, CultureInfo.InvariantCulture, out int seed))
{
    await Console.Error.WriteLineAsync("usage: Arbiter.Storage.CrashHost <directory> <seed>");
    return 2;
}

using var output = new StreamWriter(Console.OpenStandardOutput()) { AutoFlush = true };
WriteAheadLog wal;
try
{
    wal = WriteAheadLog.Open(new WalOptions
    {
        DirectoryPath = args[0],
        SegmentSizeBytesMax = 64 * 1024,  // small, so rolling happens under the kill too
        SnapshotsKeptMax = 2,
    });
}
catch (IOException ex)
{
    await Console.Error.WriteLineAsync($"open failed: {ex.Message}");
    return 3;
}

using (wal)
{
    var random = new Random(seed);
    output.WriteLine(string.Create(CultureInfo.InvariantCulture, $"ready {wal.LastIndex}"));
    long snapshotIndex = wal.LatestSnapshot?.Index ?? 0;
    while (true)
    {
        int batch = random.Next(1, 33);
        for (int i = 0; i < batch; i++)
        {
            wal.Append(CrashPayload.ForRecord(wal.LastIndex + 1));
        }

        wal.Flush();
        output.WriteLine(string.Create(CultureInfo.InvariantCulture, $"ack {wal.DurableIndex}"));

        if (wal.DurableIndex - snapshotIndex >= 300 && random.Next(4) == 0)
        {
            snapshotIndex = wal.DurableIndex;
            wal.WriteSnapshot(snapshotIndex, stream => stream.Write(CrashPayload.ForSnapshot(snapshotIndex)));
            output.WriteLine(string.Create(CultureInfo.InvariantCulture, $"snap {snapshotIndex}"));
        }
    }
}
