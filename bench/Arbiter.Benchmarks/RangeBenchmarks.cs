using Arbiter.Core;
using Arbiter.Node.Spill;
using Arbiter.Protocol.Etcd;
using BenchmarkDotNet.Attributes;
using Microsoft.Extensions.Logging.Abstractions;

namespace Arbiter.Benchmarks;

/// <summary>StateMachine.Range over N keys (the core's share of a read; the node adds a read lock).</summary>
public class RangeBenchmarks
{
    private StateMachine _state = null!;
    private RangeRequest _all = null!;
    private RangeRequest _one = null!;

    /// <summary>Keys in the store, all returned by <see cref="RangeAll"/>.</summary>
    [Params(1, 100, 1_000)]
    public int KeyCount { get; set; }

    /// <summary>
    /// Where the versions live: <c>heap</c> (no spill, <c>--keep-history-in-memory</c>), <c>spill</c>
    /// (the node's file spill, whose copy of the bytes paged out last holds them all here: every
    /// read is a copy and a parse), <c>spill-cold</c> (without that copy: every read is a pread and a parse).
    /// </summary>
    [Params("heap", "spill", "spill-cold")]
    public string Storage { get; set; } = "heap";

    private string? _spillDirectory;

    /// <summary>Store with <see cref="KeyCount"/> keys of 256 bytes, each written twice (two versions).</summary>
    [GlobalSetup]
    public void Setup()
    {
        _spillDirectory = Storage == "heap" ? null : Directory.CreateTempSubdirectory("arbiter-bench-spill").FullName;
        _state = new StateMachine(valueSpill: _spillDirectory is null
            ? null
            : new FileValueSpill(_spillDirectory, NullLogger.Instance, Storage == "spill-cold" ? 0 : FileValueSpill.DefaultRecentSizeBytes));
        var value = Commands.Value(256);
        long index = 0;
        for (var round = 0; round < 2; round++)
        {
            for (var i = 0; i < KeyCount; i++)
            {
                _state.Apply(++index, Commands.Put(Commands.Key(i), value));
            }
        }

        _all = new RangeRequest { Key = Commands.Prefix, RangeEnd = Commands.PrefixEnd };
        _one = new RangeRequest { Key = Commands.Key(KeyCount / 2) };
    }

    /// <summary>Removes the spill directory.</summary>
    [GlobalCleanup]
    public void Cleanup()
    {
        if (_spillDirectory is not null)
        {
            Directory.Delete(_spillDirectory, recursive: true);
        }
    }

    /// <summary>Every key under the prefix.</summary>
    [Benchmark]
    public RangeResponse RangeAll() => _state.Range(_all);

    /// <summary>One key (what a point read costs at this store size).</summary>
    [Benchmark]
    public RangeResponse RangeOne() => _state.Range(_one);
}
