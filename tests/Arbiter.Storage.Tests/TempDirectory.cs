namespace Arbiter.Storage.Tests;

/// <summary>A fresh directory under the system temp path, deleted on dispose.</summary>
internal sealed class TempDirectory : IDisposable
{
    public TempDirectory()
    {
        Path = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "arbiter-storage-tests", Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(Path);
    }

    public string Path { get; }

    public WalOptions Options(long segmentSizeBytesMax = 64L * 1024 * 1024, bool fsync = false, int snapshotsKeptMax = 2) => new()
    {
        DirectoryPath = Path,
        SegmentSizeBytesMax = segmentSizeBytesMax,
        FsyncEnabled = fsync,
        SnapshotsKeptMax = snapshotsKeptMax,
    };

    public string[] Segments() =>
        [.. Directory.GetFiles(Path, "wal-*.seg").Order(StringComparer.Ordinal)];

    public string[] Snapshots() =>
        [.. Directory.GetFiles(Path, "snap-*.snap").Order(StringComparer.Ordinal)];

    public void Dispose()
    {
        try
        {
            Directory.Delete(Path, recursive: true);
        }
        catch (IOException)
        {
            // Best effort: a leftover temp directory must not fail a test.
        }
    }
}
