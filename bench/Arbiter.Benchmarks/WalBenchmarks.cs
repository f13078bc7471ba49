using Arbiter.Storage;
using BenchmarkDotNet.Attributes;

namespace Arbiter.Benchmarks;

/// <summary>
/// WriteAheadLog append + flush without fsync: the WAL's own CPU cost (framing, CRC-32C, write).
/// A fresh log per iteration keeps the disk use bounded (invocations per iteration are fixed).
/// </summary>
[InvocationCount(16_384)]
[WarmupCount(3)]
[IterationCount(12)]
public class WalAppendBenchmarks : WalBenchmarkBase
{
    /// <inheritdoc />
    protected override bool FsyncEnabled => false;
}

/// <summary>
/// WriteAheadLog append + flush with fsync: what one durable write costs on this disk, alone and
/// with <see cref="WalBenchmarkBase.RecordsPerFlush"/> records sharing one fsync (group commit).
/// </summary>
[InvocationCount(128)]
[WarmupCount(1)]
[IterationCount(8)]
public class WalFsyncBenchmarks : WalBenchmarkBase
{
    /// <inheritdoc />
    protected override bool FsyncEnabled => true;
}

/// <summary>Shared set-up for the WAL benchmarks.</summary>
public abstract class WalBenchmarkBase
{
    private WriteAheadLog? _wal;
    private string _directory = "";
    private byte[] _payload = [];

    /// <summary>Records appended before each flush (1 = a lone write; more = group commit).</summary>
    [Params(1, 32)]
    public int RecordsPerFlush { get; set; }

    /// <summary>Payload size of each record (about a serialized 256-byte Put command).</summary>
    [Params(300)]
    public int PayloadSizeBytes { get; set; }

    /// <summary>Whether Flush fsyncs.</summary>
    protected abstract bool FsyncEnabled { get; }

    /// <summary>Payload bytes.</summary>
    [GlobalSetup]
    public void Setup()
    {
        _payload = new byte[PayloadSizeBytes];
        new Random(42).NextBytes(_payload);
    }

    /// <summary>A fresh, empty log in a temporary directory.</summary>
    [IterationSetup]
    public void OpenLog()
    {
        CloseLog();
        _directory = Directory.CreateTempSubdirectory("arbiter-wal-bench-").FullName;
        _wal = WriteAheadLog.Open(new WalOptions { DirectoryPath = _directory, FsyncEnabled = FsyncEnabled });
    }

    /// <summary>Closes and deletes the log.</summary>
    [IterationCleanup]
    public void CloseLog()
    {
        _wal?.Dispose();
        _wal = null;
        if (_directory.Length > 0 && Directory.Exists(_directory))
        {
            Directory.Delete(_directory, recursive: true);
        }
    }

    /// <summary>Append <see cref="RecordsPerFlush"/> records, then one Flush.</summary>
    [Benchmark]
    public long AppendAndFlush()
    {
        var wal = _wal!;
        long index = 0;
        for (var i = 0; i < RecordsPerFlush; i++)
        {
            index = wal.Append(_payload);
        }

        wal.Flush();
        return index;
    }
}
